//! Address spaces: VMAs, PTEs and pages with their reverse maps; mmap, munmap, mprotect, fork
//! with copy-on-write, exit, and CPU accesses (which fault device-private pages back to RAM).

use std::collections::BTreeMap;

use hmmtrace_common::{
    PageFree, MMU_NOTIFY_CLEAR, MMU_NOTIFY_PROTECTION_PAGE, MMU_NOTIFY_PROTECTION_VMA,
    MMU_NOTIFY_UNMAP,
};

use super::pages::{Frame, PageId};
use super::table::Sparse;
use super::{Engine, EngineError, Result, Tgid};
use crate::event::{Body, Comm};

/// A page table entry that is not `pte_none`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Pte {
    /// A present PTE: a system page, or a device-coherent page.
    Present { page: PageId, write: bool },
    /// A device-private swap entry (`make_*_device_private_entry`).
    DevicePrivate { page: PageId, write: bool },
    /// A device-exclusive entry (`make_device_exclusive_range`); the CPU must restore it first.
    Exclusive { page: PageId, write: bool },
    /// A migration entry: installed by `migrate_vma_collect`/`try_to_migrate` and replaced at
    /// finalize. Operations are atomic here, so nothing else ever meets one; a CPU access
    /// would wait for the migration (`migration_entry_wait`) and find the final PTE.
    Migration { page: PageId, write: bool },
}

impl Pte {
    pub fn page(self) -> PageId {
        match self {
            Pte::Present { page, .. }
            | Pte::DevicePrivate { page, .. }
            | Pte::Exclusive { page, .. }
            | Pte::Migration { page, .. } => page,
        }
    }
}

/// Protection of a VMA.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Prot {
    pub read: bool,
    pub write: bool,
}

impl Prot {
    pub const RW: Prot = Prot {
        read: true,
        write: true,
    };
    pub const R: Prot = Prot {
        read: true,
        write: false,
    };
    pub const NONE: Prot = Prot {
        read: false,
        write: false,
    };
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct Vma {
    pub end: u64,
    pub prot: Prot,
    /// A private file mapping (a program's data): read faults map the page-cache page.
    pub file: bool,
}

pub(crate) struct Process {
    pub comm: Comm,
    /// Start vpn → VMA. Anonymous private mappings only: what HMM workloads migrate.
    pub vmas: BTreeMap<u64, Vma>,
    pub ptes: Sparse<Pte>,
    pub next_vpn: u64,
}

impl Process {
    pub fn vma(&self, vpn: u64) -> Option<(u64, Vma)> {
        self.vmas
            .range(..=vpn)
            .next_back()
            .filter(|(_, v)| vpn < v.end)
            .map(|(s, v)| (*s, *v))
    }
}

impl Engine<'_> {
    /// Creates a process (an empty address space).
    pub fn spawn(&mut self, comm: &str) -> Tgid {
        let tgid = self.next_tgid;
        self.next_tgid += 1;
        self.procs.insert(
            tgid,
            Process {
                comm: Comm::new(comm),
                vmas: BTreeMap::new(),
                ptes: Sparse::default(),
                next_vpn: 0x10000,
            },
        );
        // The name kept for events is forgotten: an event of this tgid before it existed said
        // "kworker".
        self.comm_of = None;
        tgid
    }

    pub(crate) fn proc_ref(&self, tgid: Tgid) -> Result<&Process> {
        self.procs
            .get(&tgid)
            .ok_or(EngineError::NoSuchProcess(tgid))
    }

    pub(crate) fn proc_mut(&mut self, tgid: Tgid) -> Result<&mut Process> {
        self.procs
            .get_mut(&tgid)
            .ok_or(EngineError::NoSuchProcess(tgid))
    }

    /// `mmap(NULL, npages * PAGE_SIZE, prot, MAP_PRIVATE | MAP_ANONYMOUS)`: returns the address.
    /// Nothing is populated, as in the kernel.
    /// A private mapping of `npages`: anonymous, or of a file when `file` (see [`Vma::file`]).
    pub fn mmap(&mut self, tgid: Tgid, npages: u64, prot: Prot, file: bool) -> Result<u64> {
        let p = self.proc_mut(tgid)?;
        let start = p.next_vpn;
        // A guard gap so adjacent mappings never merge.
        p.next_vpn += npages + 16;
        p.vmas.insert(
            start,
            Vma {
                end: start + npages,
                prot,
                file,
            },
        );
        Ok(start * self.page_size)
    }

    pub(crate) fn vpn(&self, addr: u64) -> u64 {
        addr / self.page_size
    }

    /// Whether `[vpn, vpn + npages)` lies inside one VMA.
    pub(crate) fn check_range(&self, tgid: Tgid, vpn: u64, npages: u64) -> Result<Vma> {
        let p = self.proc_ref(tgid)?;
        match p.vma(vpn) {
            Some((_, vma)) if vpn + npages <= vma.end && npages > 0 => Ok(vma),
            _ => Err(EngineError::BadRange {
                tgid,
                addr: vpn * self.page_size,
                npages,
            }),
        }
    }

    /// `munmap`: one `MMU_NOTIFY_UNMAP` over the range (`unmap_vmas`), then every PTE is zapped
    /// and pages whose last mapping this was are freed (device pages through `page_free`).
    pub fn munmap(&mut self, tgid: Tgid, addr: u64, npages: u64) -> Result<()> {
        self.current = tgid;
        let (start, end) = (self.vpn(addr), self.vpn(addr) + npages);
        self.proc_ref(tgid)?;
        self.invalidate(tgid, start, end, MMU_NOTIFY_UNMAP, 0);
        self.zap(tgid, start, end);
        let p = self.proc_mut(tgid)?;
        // Split the VMAs that straddle the range, drop what is inside.
        let affected: Vec<(u64, Vma)> = p
            .vmas
            .range(..end)
            .filter(|(s, v)| v.end > start && **s < end)
            .map(|(s, v)| (*s, *v))
            .collect();
        for (s, v) in affected {
            p.vmas.remove(&s);
            if s < start {
                p.vmas.insert(s, Vma { end: start, ..v });
            }
            if v.end > end {
                p.vmas.insert(end, Vma { end: v.end, ..v });
            }
        }
        Ok(())
    }

    /// Removes the PTEs in `[start, end)` and drops their page references.
    pub(crate) fn zap(&mut self, tgid: Tgid, start: u64, end: u64) {
        // In batches, so that zapping a huge range never copies all of its PTEs at once.
        let mut batch = Vec::with_capacity(4096);
        let mut from = start;
        loop {
            let Some(p) = self.procs.get_mut(&tgid) else {
                return;
            };
            batch.clear();
            batch.extend(p.ptes.range(from, end).take(4096));
            let Some(&(last, _)) = batch.last() else {
                return;
            };
            p.ptes.remove_range(from, last + 1);
            for &(vpn, pte) in &batch {
                self.unmap_page(pte.page(), tgid, vpn);
            }
            from = last + 1;
        }
    }

    /// `mprotect`: one `MMU_NOTIFY_PROTECTION_VMA` per VMA with page tables (change_pud_range),
    /// then write permission is removed from the PTEs when the new protection forbids it.
    pub fn mprotect(&mut self, tgid: Tgid, addr: u64, npages: u64, prot: Prot) -> Result<()> {
        self.current = tgid;
        let (start, end) = (self.vpn(addr), self.vpn(addr) + npages);
        let vma = self.check_range(tgid, start, npages)?;
        let has_ptes = {
            let p = self.proc_ref(tgid)?;
            p.ptes.any_in(start, end)
        };
        if has_ptes {
            self.invalidate(tgid, start, end, MMU_NOTIFY_PROTECTION_VMA, 0);
        }
        let p = self.proc_mut(tgid)?;
        let (vstart, _) = p.vma(start).expect("checked above");
        // Split so that exactly [start, end) gets the new protection.
        p.vmas.remove(&vstart);
        if vstart < start {
            p.vmas.insert(vstart, Vma { end: start, ..vma });
        }
        p.vmas.insert(start, Vma { end, prot, ..vma });
        if vma.end > end {
            p.vmas.insert(
                end,
                Vma {
                    end: vma.end,
                    ..vma
                },
            );
        }
        if !prot.write {
            let vpns: Vec<u64> = p.ptes.range(start, end).map(|(v, _)| v).collect();
            for vpn in vpns {
                if let Some(pte) = p.ptes.get_mut(vpn) {
                    match pte {
                        Pte::Present { write, .. }
                        | Pte::DevicePrivate { write, .. }
                        | Pte::Exclusive { write, .. }
                        | Pte::Migration { write, .. } => *write = false,
                    }
                }
            }
        }
        Ok(())
    }

    /// `fork`: the child gets a copy of every VMA; private writable mappings become
    /// copy-on-write in both, with `MMU_NOTIFY_PROTECTION_PAGE` over each such VMA of the
    /// parent (`copy_page_range`). Device-private entries are shared read-only
    /// (`copy_nonpresent_pte`); device-exclusive entries are restored first.
    pub fn fork(&mut self, parent: Tgid, comm: &str) -> Result<Tgid> {
        self.current = parent;
        let vmas: Vec<(u64, Vma)> = self
            .proc_ref(parent)?
            .vmas
            .iter()
            .map(|(s, v)| (*s, *v))
            .collect();
        let child = self.spawn(comm);
        for (start, vma) in vmas {
            let cow = vma.prot.write;
            let ptes: Vec<(u64, Pte)> = {
                let p = self.proc_ref(parent)?;
                p.ptes.range(start, vma.end).collect::<Vec<_>>()
            };
            if cow && !ptes.is_empty() {
                self.invalidate(parent, start, vma.end, MMU_NOTIFY_PROTECTION_PAGE, 0);
            }
            for (vpn, pte) in ptes {
                let shared = match pte {
                    Pte::Present { page, .. }
                    | Pte::Exclusive { page, .. }
                    | Pte::Migration { page, .. } => Pte::Present { page, write: false },
                    Pte::DevicePrivate { page, .. } => Pte::DevicePrivate { page, write: false },
                };
                let parent_pte = if cow { shared } else { pte };
                self.procs
                    .get_mut(&parent)
                    .unwrap()
                    .ptes
                    .insert(vpn, parent_pte);
                self.procs.get_mut(&child).unwrap().ptes.insert(vpn, shared);
                self.pages.add_map(pte.page(), (child, vpn));
            }
            let c = self.procs.get_mut(&child).unwrap();
            c.vmas.insert(start, vma);
            c.next_vpn = c.next_vpn.max(vma.end + 16);
        }
        Ok(child)
    }

    /// Process exit: `mmu_notifier_release` calls every interval notifier with
    /// `MMU_NOTIFY_RELEASE`, then `exit_mmap` unmaps everything (`MMU_NOTIFY_UNMAP` over the whole
    /// address space); then `exit_files` closes the device files, whose release removes the
    /// notifiers and, for drivers that do, evicts the device's memory.
    pub fn exit(&mut self, tgid: Tgid) -> Result<()> {
        self.current = tgid;
        self.proc_ref(tgid)?;
        self.release(tgid);
        self.invalidate(tgid, 0, u64::MAX, MMU_NOTIFY_UNMAP, 0);
        self.zap(tgid, 0, u64::MAX);
        let opened: Vec<_> = self
            .notifiers
            .iter()
            .filter(|n| n.tgid == tgid)
            .map(|n| n.dev)
            .collect();
        self.notifiers.retain(|n| n.tgid != tgid);
        for dev in opened {
            if self.devices[dev].evict_on_release {
                let capacity = self.devices[dev].capacity;
                self.migrate_device_range(dev, tgid, 0, capacity);
            }
        }
        for d in &mut self.devices {
            d.mirror.remove(&tgid);
        }
        self.procs.remove(&tgid);
        self.comm_of = None;
        Ok(())
    }

    /// CPU reads or writes of `npages` pages: demand faults, COW breaks, restores of exclusive
    /// entries, and `migrate_to_ram` for device-private entries.
    pub fn cpu_access(&mut self, tgid: Tgid, addr: u64, npages: u64, write: bool) -> Result<()> {
        self.within_limit(npages)?;
        let start = self.vpn(addr);
        for vpn in start..start + npages {
            self.cpu_fault(tgid, vpn, write)?;
        }
        Ok(())
    }

    /// One CPU access to one page (`handle_mm_fault` where the PTE does not allow it).
    pub(crate) fn cpu_fault(&mut self, tgid: Tgid, vpn: u64, write: bool) -> Result<()> {
        self.current = tgid;
        let p = self.proc_ref(tgid)?;
        let Some((_, vma)) = p.vma(vpn) else {
            return Err(EngineError::Segv {
                tgid,
                addr: vpn * self.page_size,
            });
        };
        if !vma.prot.read || (write && !vma.prot.write) {
            return Err(EngineError::Segv {
                tgid,
                addr: vpn * self.page_size,
            });
        }
        let pte = p.ptes.get(vpn);
        // A demand fault, or a write that may copy: a page more.
        let allocates = match pte {
            None => true,
            Some(Pte::Present { write: w, .. }) => write && !w,
            _ => false,
        };
        if allocates && self.pages.live_count() >= self.page_limit {
            return Err(EngineError::TooManyPages {
                limit: self.page_limit,
            });
        }
        match pte {
            None => {
                let page = self.alloc_system_page();
                self.clock.spend(self.clock.model.cpu_fault_ns);
                // A read of a private file mapping maps the page-cache page read-only
                // (do_read_fault); a write gets a private copy at once (do_cow_fault).
                let cache = vma.file && !write;
                self.pages[page].cache = cache;
                self.map_page(
                    tgid,
                    vpn,
                    Pte::Present {
                        page,
                        write: vma.prot.write && !cache,
                    },
                );
            }
            Some(Pte::DevicePrivate { page, .. }) => {
                let dev = match self.pages[page].frame() {
                    Frame::Device { dev, .. } => dev,
                    Frame::System => unreachable!("device-private entry to a system page"),
                };
                self.migrate_to_ram_fault(dev, tgid, vpn)?;
                if write {
                    return self.cpu_fault(tgid, vpn, true);
                }
            }
            // The migration that installed it has finished by the time any access runs.
            Some(Pte::Migration { .. }) => {}
            Some(Pte::Exclusive { .. }) => {
                self.restore_exclusive(tgid, vpn);
                return self.cpu_fault(tgid, vpn, write);
            }
            Some(Pte::Present { page, write: w }) => {
                if write && !w {
                    self.wp_fault(tgid, vpn, page);
                }
            }
        }
        Ok(())
    }

    /// A write to a write-protected present page of a writable VMA (`do_wp_page`): reuse it when
    /// this is its only mapping, else copy it (`wp_page_copy`, `MMU_NOTIFY_CLEAR` over the page).
    pub(crate) fn wp_fault(&mut self, tgid: Tgid, vpn: u64, page: PageId) {
        let p = &self.pages[page];
        if self.pages.map_count(page) <= 1 && p.pins == 0 && !p.cache {
            self.procs
                .get_mut(&tgid)
                .unwrap()
                .ptes
                .insert(vpn, Pte::Present { page, write: true });
            return;
        }
        self.invalidate(tgid, vpn, vpn + 1, MMU_NOTIFY_CLEAR, 0);
        let new = self.alloc_system_page();
        self.clock.spend(self.clock.model.cpu_fault_ns);
        self.procs.get_mut(&tgid).unwrap().ptes.insert(
            vpn,
            Pte::Present {
                page: new,
                write: true,
            },
        );
        self.pages.add_map(new, (tgid, vpn));
        self.unmap_page(page, tgid, vpn);
    }

    /// GUP pin (`pin_user_pages`): faults the pages in and holds an extra reference, which makes
    /// `migrate_vma` skip them.
    pub fn pin(&mut self, tgid: Tgid, addr: u64, npages: u64) -> Result<()> {
        self.within_limit(npages)?;
        let start = self.vpn(addr);
        for vpn in start..start + npages {
            self.cpu_fault(tgid, vpn, false)?;
            let page = self
                .proc_ref(tgid)?
                .ptes
                .get(vpn)
                .expect("faulted in")
                .page();
            self.pages[page].pins += 1;
        }
        Ok(())
    }

    /// `unpin_user_pages`.
    pub fn unpin(&mut self, tgid: Tgid, addr: u64, npages: u64) -> Result<()> {
        let start = self.vpn(addr);
        for vpn in start..start + npages {
            let page = self.proc_ref(tgid)?.ptes.get(vpn).map(|p| p.page());
            if let Some(page) = page {
                let p = &mut self.pages[page];
                p.pins = p.pins.saturating_sub(1);
                self.maybe_free(page);
            }
        }
        Ok(())
    }

    pub(crate) fn alloc_page(&mut self, frame: Frame) -> PageId {
        self.pages.alloc(frame)
    }

    pub(crate) fn alloc_system_page(&mut self) -> PageId {
        self.alloc_page(Frame::System)
    }

    /// Installs `pte` at `vpn` and adds the mapping to the page's rmap.
    pub(crate) fn map_page(&mut self, tgid: Tgid, vpn: u64, pte: Pte) {
        self.pages.add_map(pte.page(), (tgid, vpn));
        self.procs.get_mut(&tgid).unwrap().ptes.insert(vpn, pte);
    }

    /// Drops one mapping of `page` and frees it when that was the last reference.
    pub(crate) fn unmap_page(&mut self, page: PageId, tgid: Tgid, vpn: u64) {
        self.pages.remove_map(page, (tgid, vpn));
        self.maybe_free(page);
    }

    /// Frees a page with no mapping and no pin. A device page goes back to its device's pool
    /// through `free_zone_device_folio` → `pgmap->ops->page_free`, which is a `PageFree` event.
    pub(crate) fn maybe_free(&mut self, page: PageId) {
        let p = &self.pages[page];
        if !p.live || self.pages.map_count(page) > 0 || p.pins > 0 {
            return;
        }
        let frame = p.frame();
        // A leaking driver holds a reference: the last one never drops.
        if let Frame::Device { dev, .. } = frame {
            if self.devices[dev].bugs.leaks_pages {
                return;
            }
        }
        self.pages.release(page);
        if let Frame::Device { dev, pfn } = frame {
            let t0 = self.clock.now();
            self.clock.spend(self.clock.model.page_free_ns);
            let callback_ns = self.clock.spend(self.clock.model.page_free_callback_ns);
            let spent = self.clock.now() - t0;
            let d = &mut self.devices[dev];
            d.free.push(pfn);
            d.by_pfn.remove(pfn);
            let body = Body::PageFree(PageFree {
                pfn: d.base_pfn + pfn,
                pgmap_owner: d.owner,
                pgmap_ops: d.owner,
                order: 0,
                memory_type: d.kind.memory_type(),
                callback_ns,
            });
            self.emit(t0, Some(spent), body);
        }
    }
}
