//! Device migration: `migrate_vma_setup/pages/finalize` as a driver drives them (test_hmm's
//! `dmirror_migrate_to_device`/`_to_system`, and `dmirror_devmem_fault` for `migrate_to_ram`),
//! and eviction through `migrate_device_range/pages/finalize` when a device runs out of pages.

use hmmtrace_common::{
    DeviceFault, Migration, API_MIGRATE_DEVICE, API_MIGRATE_VMA, DIRECTION_TO_DEVICE,
    DIRECTION_TO_RAM, MIGRATE_VMA_SELECT_DEVICE_COHERENT, MIGRATE_VMA_SELECT_DEVICE_PRIVATE,
    MIGRATE_VMA_SELECT_SYSTEM, MMU_NOTIFY_CLEAR, MMU_NOTIFY_MIGRATE,
};

use smallvec::SmallVec;

use super::mm::Pte;
use super::pages::{Frame, PageId};
use super::{DevId, DeviceKind, Engine, EngineError, Result, Tgid};
use crate::event::Body;

/// `VM_FAULT_SIGBUS`: what `migrate_to_ram` returns when it could not bring the page back.
const VM_FAULT_SIGBUS: u32 = 0x0002;

/// The most pages one `migrate_vma` call of the engine covers: a larger request is split in
/// calls of this many (one `Migration` event each), as drivers split theirs (test_hmm by 64),
/// so that what one call collects stays within tens of megabytes of the engine's memory, at
/// every size a scenario may ask (a request of 2^26 pages in one call took 3.6 GB and, under
/// a 4 GiB address-space limit, aborted).
pub const MIGRATE_CHUNK: u64 = 1 << 20;

/// `cpages` and `migrated` of one migration, as the `Migration` event reports them.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct MigrateOutcome {
    pub cpages: u64,
    pub migrated: u64,
}

/// Mappings of one page: (process, vpn, writable). Nearly always one, so kept inline.
type Mappings = SmallVec<[(Tgid, u64, bool); 1]>;

/// One collected entry of `migrate_vma.src`: the old page (`None` for a `pte_none` hole), every
/// mapping that now holds a migration entry for it, and whether it was writable.
struct Collected {
    vpn: u64,
    page: Option<PageId>,
    mappings: Mappings,
    write: bool,
}

/// See `Engine::scratch`.
#[derive(Default)]
pub(crate) struct Scratch {
    collected: Vec<Collected>,
    dst: Vec<Option<PageId>>,
    /// `migrate_device_range`'s own (it runs inside `migrate_vma` when a device is full).
    in_use: Vec<PageId>,
    range_collected: Vec<Collected>,
    range_dst: Vec<Option<PageId>>,
}

impl Engine<'_> {
    /// `HMM_DMIRROR_MIGRATE_TO_DEV`: `migrate_vma_*` with `MIGRATE_VMA_SELECT_SYSTEM`.
    /// `racing` lists page indices (from `addr`) whose folio lock is contended, so
    /// `migrate_vma_collect` skips them.
    pub fn migrate_to_device(
        &mut self,
        dev: DevId,
        tgid: Tgid,
        addr: u64,
        npages: u64,
        racing: &[u64],
    ) -> Result<MigrateOutcome> {
        self.within_limit(npages)?;
        let start = self.vpn(addr);
        self.check_range(tgid, start, npages)?;
        let racing: Vec<u64> = racing.iter().map(|i| start + i).collect();
        Ok(self.migrate_chunks(dev, tgid, start, npages, MIGRATE_VMA_SELECT_SYSTEM, &racing))
    }

    /// `migrate_vma` over `[start, start + npages)` in calls of at most [`MIGRATE_CHUNK`]
    /// pages, as a driver splits a large request; the outcomes summed.
    fn migrate_chunks(
        &mut self,
        dev: DevId,
        tgid: Tgid,
        start: u64,
        npages: u64,
        select: u32,
        racing: &[u64],
    ) -> MigrateOutcome {
        let mut total = MigrateOutcome::default();
        let mut at = start;
        while at < start + npages {
            let n = (start + npages - at).min(MIGRATE_CHUNK);
            let o = self.migrate_vma(dev, tgid, at, n, select, racing);
            total.cpages += o.cpages;
            total.migrated += o.migrated;
            at += n;
        }
        total
    }

    /// `HMM_DMIRROR_MIGRATE_TO_SYS`: `migrate_vma_*` with `MIGRATE_VMA_SELECT_DEVICE_PRIVATE |
    /// MIGRATE_VMA_SELECT_DEVICE_COHERENT`; only this device's pages are selected.
    pub fn migrate_to_system(
        &mut self,
        dev: DevId,
        tgid: Tgid,
        addr: u64,
        npages: u64,
    ) -> Result<MigrateOutcome> {
        self.within_limit(npages)?;
        let start = self.vpn(addr);
        self.check_range(tgid, start, npages)?;
        let select = MIGRATE_VMA_SELECT_DEVICE_PRIVATE | MIGRATE_VMA_SELECT_DEVICE_COHERENT;
        Ok(self.migrate_chunks(dev, tgid, start, npages, select, &[]))
    }

    /// The owning device's `migrate_to_ram(vmf)` for a CPU fault on a device-private entry:
    /// a one-page `migrate_vma` with `MIGRATE_VMA_SELECT_DEVICE_PRIVATE` (as in
    /// `dmirror_devmem_fault`), inside the callback's own cost.
    pub(crate) fn migrate_to_ram_fault(&mut self, dev: DevId, tgid: Tgid, vpn: u64) -> Result<()> {
        self.current = tgid;
        let t0 = self.clock.now();
        let half = self.clock.model.fault_base_ns / 2;
        self.clock.spend(half);
        let injected = self.devices[dev].bugs.fault_result;
        let out = if injected == 0 {
            self.migrate_vma(dev, tgid, vpn, 1, MIGRATE_VMA_SELECT_DEVICE_PRIVATE, &[])
        } else {
            MigrateOutcome::default()
        };
        self.clock.spend(half);
        let owner = self.devices[dev].owner;
        let result = if injected != 0 {
            injected
        } else if out.migrated == 1 {
            0
        } else {
            VM_FAULT_SIGBUS
        };
        self.current = tgid;
        self.emit(
            t0,
            Some(self.clock.now() - t0),
            Body::DeviceFault(DeviceFault {
                address: vpn * self.page_size,
                pgmap_owner: owner,
                pgmap_ops: owner,
                result,
                _pad: 0,
            }),
        );
        if result != 0 && injected == 0 {
            return Err(EngineError::Segv {
                tgid,
                addr: vpn * self.page_size,
            });
        }
        Ok(())
    }

    /// `migrate_vma_setup` → driver allocation and copy → `migrate_vma_pages` →
    /// `migrate_vma_finalize`, over vpns `[start, start + npages)` of `tgid`.
    fn migrate_vma(
        &mut self,
        dev: DevId,
        tgid: Tgid,
        start: u64,
        npages: u64,
        select: u32,
        racing: &[u64],
    ) -> MigrateOutcome {
        self.current = tgid;
        let owner = self.devices[dev].owner;
        let t_entry = self.clock.now();

        // migrate_vma_setup: migrate_vma_collect (one MMU_NOTIFY_MIGRATE owned by the device),
        // then migrate_vma_unmap.
        self.invalidate(tgid, start, start + npages, MMU_NOTIFY_MIGRATE, owner);
        let mut collected = std::mem::take(&mut self.scratch.collected);
        collected.clear();
        // The loop touches only this mm, the pages and the devices: borrowed once, not looked
        // up per page.
        let proc = self.procs.get_mut(&tgid).expect("checked by the caller");
        let (pages, devices) = (&mut self.pages, &self.devices);
        for vpn in start..start + npages {
            let pte = proc.ptes.get(vpn);
            let take = match pte {
                // migrate_vma_collect_pmd: a hole in an anonymous VMA is always collected.
                None => true,
                Some(Pte::Present { page, .. }) => match pages[page].frame() {
                    Frame::System => select & MIGRATE_VMA_SELECT_SYSTEM != 0,
                    Frame::Device { dev: d, .. } => {
                        select & MIGRATE_VMA_SELECT_DEVICE_COHERENT != 0
                            && devices[d].owner == owner
                    }
                },
                Some(Pte::DevicePrivate { page, .. }) => match pages[page].frame() {
                    Frame::Device { dev: d, .. } => {
                        select & MIGRATE_VMA_SELECT_DEVICE_PRIVATE != 0 && devices[d].owner == owner
                    }
                    Frame::System => false,
                },
                // Not a device-private swap entry: not migratable.
                Some(Pte::Exclusive { .. } | Pte::Migration { .. }) => false,
            };
            // folio_trylock failed: best effort, skip the page.
            if !take || (pte.is_some() && racing.contains(&vpn)) {
                continue;
            }
            let write = match pte {
                None => proc.vma(vpn).is_some_and(|(_, v)| v.prot.write),
                Some(
                    Pte::Present { write, .. }
                    | Pte::DevicePrivate { write, .. }
                    | Pte::Exclusive { write, .. }
                    | Pte::Migration { write, .. },
                ) => write,
            };
            let page = pte.map(Pte::page);
            let mut mappings = Mappings::new();
            if let Some(page) = page {
                // The migration entry replaces this mm's PTE now.
                proc.ptes.insert(vpn, Pte::Migration { page, write });
                pages.remove_map(page, (tgid, vpn));
                mappings.push((tgid, vpn, write));
            }
            collected.push(Collected {
                vpn,
                page,
                mappings,
                write,
            });
        }
        // migrate_device_unmap: pages with extra references fail migrate_vma_check_page and are
        // restored; pages still mapped elsewhere (a forked child) are unmapped with
        // try_to_migrate, one MMU_NOTIFY_CLEAR per mapping. Page-cache pages stay too: the
        // kernel collects them and migrate_vma_pages declines them (only anonymous memory moves
        // to a device), so there cpages counts them where the engine does not.
        // In place and in order (an entry moves only when one before it was dropped).
        collected.retain_mut(|c| {
            if let Some(page) = c.page {
                if self.pages[page].pins > 0 || self.pages[page].cache {
                    self.restore(c);
                    return false;
                }
                self.try_to_migrate(page, &mut c.mappings);
            }
            true
        });
        let cpages = collected.len() as u64;
        let m = &self.clock.model;
        let setup_cost = m.setup_base_ns + cpages * m.setup_per_page_ns;
        self.clock.spend(setup_cost);
        let setup_ns = self.clock.now() - t_entry;
        let to_device = select & MIGRATE_VMA_SELECT_SYSTEM != 0;
        // The record as far as setup tells; finalize adds what moved and the steps' times.
        let record = Migration {
            start: start * self.page_size,
            end: (start + npages) * self.page_size,
            pgmap_owner: owner,
            npages,
            cpages,
            setup_ns,
            select,
            direction: if to_device {
                DIRECTION_TO_DEVICE
            } else {
                DIRECTION_TO_RAM
            },
            api: API_MIGRATE_VMA,
            ..Migration::default()
        };
        if to_device && self.devices[dev].bugs.abandons_migrations {
            // The driver never calls migrate_vma_pages or _finalize. (The kernel would leave
            // the pages locked behind migration entries; the engine puts them back to run on.)
            for c in &collected {
                self.restore(c);
            }
            self.current = tgid;
            let unknown = Migration::FIELD_MIGRATED | Migration::FIELD_FINALIZE;
            self.emit_partial(t_entry, None, Body::Migration(record), unknown);
            self.scratch.collected = collected;
            return MigrateOutcome {
                cpages,
                migrated: 0,
            };
        }

        // The driver allocates destination pages and copies (test_hmm's *_alloc_and_copy).
        let mut dst = std::mem::take(&mut self.scratch.dst);
        dst.clear();
        for _ in &collected {
            let page = if to_device {
                self.alloc_device_page(dev, tgid)
            } else {
                Some(self.alloc_system_page())
            };
            dst.push(page);
        }
        let copied = dst.iter().filter(|d| d.is_some()).count() as u64;
        self.clock.spend(copied * self.clock.model.copy_per_page_ns);

        // migrate_vma_pages: entries without a destination lose MIGRATE_PFN_MIGRATE; holes get
        // their new page inserted under a second MMU_NOTIFY_MIGRATE, from the first hole on.
        let t_pages = self.clock.now();
        if let Some(first_hole) = collected
            .iter()
            .zip(&dst)
            .find(|(c, d)| c.page.is_none() && d.is_some())
            .map(|(c, _)| c.vpn)
        {
            self.invalidate(tgid, first_hole, start + npages, MMU_NOTIFY_MIGRATE, owner);
        }
        let m = &self.clock.model;
        self.clock
            .spend(m.pages_base_ns + copied * m.pages_per_page_ns);
        let pages_ns = self.clock.now() - t_pages;

        // migrate_vma_finalize: remove_migration_ptes to the new page (or back to the old one),
        // then the old page's reference is dropped; a device page's last one calls page_free.
        let t_fin = self.clock.now();
        let mut migrated = 0u64;
        for (c, d) in collected.iter().zip(&dst) {
            match d {
                Some(new) => {
                    migrated += 1;
                    let dev_private = matches!(self.pages[*new].frame(), Frame::Device { dev: dd, .. } if self.devices[dd].kind == DeviceKind::Private);
                    let pte = |write| {
                        if dev_private {
                            Pte::DevicePrivate { page: *new, write }
                        } else {
                            Pte::Present { page: *new, write }
                        }
                    };
                    if c.mappings.is_empty() {
                        self.map_page(tgid, c.vpn, pte(c.write));
                    }
                    for &(t, v, w) in &c.mappings {
                        self.map_page(t, v, pte(w));
                    }
                    self.device_page_mapped(*new);
                    if let Some(old) = c.page {
                        self.maybe_free(old);
                    }
                }
                None => self.restore(c),
            }
        }
        let m = &self.clock.model;
        self.clock
            .spend(m.finalize_base_ns + cpages * m.finalize_per_page_ns);
        let finalize_ns = self.clock.now() - t_fin;

        self.current = tgid;
        let body = Body::Migration(Migration {
            migrated,
            pages_ns,
            finalize_ns,
            ..record
        });
        self.emit(t_entry, Some(self.clock.now() - t_entry), body);
        self.scratch.collected = collected;
        self.scratch.dst = dst;
        MigrateOutcome { cpages, migrated }
    }

    /// `try_to_migrate`: every remaining mapping of `page` gets a migration entry, each under
    /// an `MMU_NOTIFY_CLEAR` of that page in its mm. Appends (tgid, vpn, writable) of each to
    /// `out`.
    fn try_to_migrate(&mut self, page: PageId, out: &mut Mappings) {
        let (first, more) = self.pages.take_map_parts(page);
        for (t, v) in first.into_iter().chain(more) {
            // The migration entry goes in before the invalidation rather than after: nothing
            // the invalidation does reads this mm's page table, and one lookup does both.
            let ptes = &mut self.procs.get_mut(&t).unwrap().ptes;
            let write = match ptes.get_mut(v) {
                Some(pte) => {
                    let write = matches!(
                        pte,
                        Pte::DevicePrivate { write: true, .. } | Pte::Present { write: true, .. }
                    );
                    *pte = Pte::Migration { page, write };
                    write
                }
                None => {
                    ptes.insert(v, Pte::Migration { page, write: false });
                    false
                }
            };
            self.invalidate(t, v, v + 1, MMU_NOTIFY_CLEAR, 0);
            out.push((t, v, write));
        }
    }

    /// Puts back the PTEs a collected entry took (remove_migration_ptes to the old page).
    fn restore(&mut self, c: &Collected) {
        let Some(page) = c.page else { return };
        for &(t, v, w) in &c.mappings {
            let pte = match self.pages[page].frame() {
                Frame::Device { dev, .. } if self.devices[dev].kind == DeviceKind::Private => {
                    Pte::DevicePrivate { page, write: w }
                }
                _ => Pte::Present { page, write: w },
            };
            self.map_page(t, v, pte);
        }
    }

    /// Records a device page as in use for eviction.
    fn device_page_mapped(&mut self, page: PageId) {
        if let Frame::Device { dev, pfn } = self.pages[page].frame() {
            let stamp = self.stamp();
            self.pages[page].stamp = stamp;
            let d = &mut self.devices[dev];
            d.lru.push_back((page, stamp));
            d.by_pfn.insert(pfn, page);
            if d.lru.len() as u64 > 2 * d.by_pfn.len() + 4096 {
                let pages = &self.pages;
                d.lru
                    .retain(|&(page, stamp)| lru_entry_valid(pages, dev, page, stamp));
            }
        }
    }

    /// The driver's device page allocator: a free page, or, when the device is full, evict its
    /// coldest chunk and try again. `None` when nothing can be freed.
    fn alloc_device_page(&mut self, dev: DevId, tgid: Tgid) -> Option<PageId> {
        if self.devices[dev].free.is_empty() {
            self.evict_coldest(dev, tgid);
        }
        let pfn = self.devices[dev].free.pop()?;
        Some(self.alloc_page(Frame::Device { dev, pfn }))
    }

    /// Evicts the aligned chunk holding the device's least recently migrated page.
    fn evict_coldest(&mut self, dev: DevId, tgid: Tgid) {
        while let Some((page, stamp)) = self.devices[dev].lru.pop_front() {
            if !lru_entry_valid(&self.pages, dev, page, stamp) {
                continue;
            }
            let Frame::Device { pfn, .. } = self.pages[page].frame() else {
                unreachable!()
            };
            let chunk = self.devices[dev].evict_chunk;
            let first = pfn - pfn % chunk;
            let n = chunk.min(self.devices[dev].capacity - first);
            self.migrate_device_range(dev, tgid, first, n);
            return;
        }
    }

    /// `migrate_device_range(src_pfns, start, npages)` → `migrate_device_pages` →
    /// `migrate_device_finalize`: every allocated page of the pfn range goes back to system RAM,
    /// wherever it is mapped (try_to_migrate: one `MMU_NOTIFY_CLEAR` per mapping).
    pub fn migrate_device_range(
        &mut self,
        dev: DevId,
        tgid: Tgid,
        first: u64,
        npages: u64,
    ) -> MigrateOutcome {
        self.current = tgid;
        let t_entry = self.clock.now();
        let owner = self.devices[dev].owner;
        let mut collected = std::mem::take(&mut self.scratch.range_collected);
        collected.clear();
        // The pages in use, not every pfn: a device may have 2^32.
        let mut in_use = std::mem::take(&mut self.scratch.in_use);
        in_use.clear();
        in_use.extend(
            self.devices[dev]
                .by_pfn
                .range(first, first + npages)
                .map(|(_, page)| page),
        );
        for &page in &in_use {
            if self.pages[page].pins > 0 {
                continue;
            }
            let mut mappings = Mappings::new();
            self.try_to_migrate(page, &mut mappings);
            collected.push(Collected {
                vpn: 0,
                page: Some(page),
                mappings,
                write: false,
            });
        }
        self.current = tgid;
        let cpages = collected.len() as u64;
        let m = &self.clock.model;
        self.clock
            .spend(m.setup_base_ns + cpages * m.setup_per_page_ns);
        let setup_ns = self.clock.now() - t_entry;
        self.scratch.in_use = in_use;
        let mut dst = std::mem::take(&mut self.scratch.range_dst);
        dst.clear();
        for _ in &collected {
            dst.push(Some(self.alloc_system_page()));
        }
        self.clock.spend(cpages * self.clock.model.copy_per_page_ns);
        let t_pages = self.clock.now();
        let m = &self.clock.model;
        self.clock
            .spend(m.pages_base_ns + cpages * m.pages_per_page_ns);
        let pages_ns = self.clock.now() - t_pages;
        let t_fin = self.clock.now();
        for (c, new) in collected.iter().zip(&dst) {
            let new = new.expect("every page got one above");
            for &(t, v, w) in &c.mappings {
                self.map_page(
                    t,
                    v,
                    Pte::Present {
                        page: new,
                        write: w,
                    },
                );
            }
            // A device page mapped nowhere still holds the driver's reference until finalize.
            self.maybe_free(c.page.unwrap());
            self.maybe_free(new);
        }
        self.scratch.range_collected = collected;
        self.scratch.range_dst = dst;
        let m = &self.clock.model;
        self.clock
            .spend(m.finalize_base_ns + cpages * m.finalize_per_page_ns);
        let finalize_ns = self.clock.now() - t_fin;
        self.current = tgid;
        let base = self.devices[dev].base_pfn;
        self.emit(
            t_entry,
            Some(self.clock.now() - t_entry),
            Body::Migration(Migration {
                start: base + first,
                end: base + first + npages,
                pgmap_owner: owner,
                npages,
                cpages,
                migrated: cpages,
                setup_ns,
                pages_ns,
                finalize_ns,
                select: 0,
                direction: DIRECTION_TO_RAM,
                api: API_MIGRATE_DEVICE,
                _pad: [0; 2],
            }),
        );
        MigrateOutcome {
            cpages,
            migrated: cpages,
        }
    }
}

/// Whether an LRU entry still stands for the device page it was queued for: the page is live,
/// on this device, and has not been re-stamped since.
fn lru_entry_valid(pages: &super::pages::Pages, dev: DevId, page: PageId, stamp: u32) -> bool {
    let p = &pages[page];
    p.live && p.stamp == stamp && matches!(p.frame(), Frame::Device { dev: d, .. } if d == dev)
}
