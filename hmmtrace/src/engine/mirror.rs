//! Mirroring: mmu interval notifiers and their sequence numbers, invalidations, the drivers'
//! `invalidate` callbacks, `hmm_range_fault` with its `-EBUSY` retry loop (test_hmm's
//! `dmirror_range_fault`), and device-exclusive access.

use hmmtrace_common::{
    Invalidation, RangeFault, INVALIDATE_CALLBACK, INVALIDATE_RANGE_START, MMU_NOTIFY_CLEAR,
    MMU_NOTIFY_EXCLUSIVE, MMU_NOTIFY_MIGRATE, MMU_NOTIFY_RELEASE,
};

use super::mm::Pte;
use super::{DevId, Engine, EngineError, Notifier, Result, Tgid};
use crate::event::Body;

/// `MMU_NOTIFIER_RANGE_BLOCKABLE`: every invalidation the engine makes may sleep.
const BLOCKABLE: u16 = 1;

/// How many times the driver retries `hmm_range_fault` before giving up
/// (test_hmm bounds the loop by `HMM_RANGE_DEFAULT_TIMEOUT`; the engine by count).
const MAX_RETRIES: u32 = 64;

/// Concurrent activity during one `hmm_range_fault` call, as a scenario states it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Race {
    /// Invalidations (a concurrent `madvise(MADV_DONTNEED)` of one page of the range) that land
    /// while `hmm_range_fault` walks: each makes it return `-EBUSY`.
    pub during: u32,
    /// Invalidations that land after it returned 0 but before the driver takes its lock: each
    /// makes `mmu_interval_read_retry` fail and the driver call `hmm_range_fault` again.
    pub after: u32,
}

impl Engine<'_> {
    /// The device opens the process: `mmu_interval_notifier_insert` over the whole address space.
    pub fn open(&mut self, dev: DevId, tgid: Tgid) -> Result<()> {
        self.proc_ref(tgid)?;
        if self
            .notifiers
            .iter()
            .all(|n| !(n.dev == dev && n.tgid == tgid))
        {
            self.notifiers.push(Notifier { dev, tgid, seq: 0 });
        }
        Ok(())
    }

    /// Checks that the device mirrors `tgid` and that the range is inside one VMA; returns its
    /// first vpn. Device operations run in `tgid`'s context (test_hmm's ioctls do).
    fn mirrored_range(&mut self, dev: DevId, tgid: Tgid, addr: u64, npages: u64) -> Result<u64> {
        self.current = tgid;
        if !self
            .notifiers
            .iter()
            .any(|n| n.dev == dev && n.tgid == tgid)
        {
            return Err(EngineError::NotOpened {
                device: self.devices[dev].name.clone(),
                tgid,
            });
        }
        let start = self.vpn(addr);
        self.check_range(tgid, start, npages)?;
        Ok(start)
    }

    /// `mmu_notifier_invalidate_range_start` on `tgid`'s mm over vpns `[start, end)`. Only an mm
    /// with notifiers reaches `__mmu_notifier_invalidate_range_start`, so only then are there
    /// events: one per interval callback, then one for the whole call (exit order).
    pub(crate) fn invalidate(&mut self, tgid: Tgid, start: u64, end: u64, event: u32, owner: u64) {
        if !self.notifiers.iter().any(|n| n.tgid == tgid) {
            return;
        }
        // The record belongs to the task doing the invalidation (`current`), which need not own
        // the mm: a child's fault unmaps its parent's mapping of a shared page.
        let t0 = self.clock.now();
        self.clock.spend(self.clock.model.invalidate_base_ns);
        // Callbacks neither add nor remove notifiers.
        for i in 0..self.notifiers.len() {
            if self.notifiers[i].tgid == tgid {
                self.callback(i, start, end, event, owner);
            }
        }
        let body = self.invalidation(start, end, event, owner, INVALIDATE_RANGE_START);
        self.emit(t0, Some(self.clock.now() - t0), body);
    }

    /// `mmu_notifier_release` at exit: every interval notifier's callback with
    /// `MMU_NOTIFY_RELEASE` over everything; `__mmu_notifier_invalidate_range_start` is not
    /// involved.
    pub(crate) fn release(&mut self, tgid: Tgid) {
        let subs: Vec<usize> = (0..self.notifiers.len())
            .filter(|&i| self.notifiers[i].tgid == tgid)
            .collect();
        for i in subs {
            self.callback(i, 0, u64::MAX, MMU_NOTIFY_RELEASE, 0);
        }
    }

    /// The driver's interval `invalidate` callback, after test_hmm's
    /// `dmirror_interval_invalidate`: a migration the device started itself is skipped (it
    /// updates its mirror as part of the migration); anything else bumps the notifier's sequence
    /// and clears the mirrored pages in the range.
    fn callback(&mut self, i: usize, start: u64, end: u64, event: u32, owner: u64) {
        let dev = self.notifiers[i].dev;
        let tgid = self.notifiers[i].tgid;
        let t0 = self.clock.now();
        let mut cleared = 0u64;
        if !(event == MMU_NOTIFY_MIGRATE && owner == self.devices[dev].owner) {
            self.notifiers[i].seq += 1;
            if let Some(set) = self.devices[dev].mirror.get_mut(&tgid) {
                cleared = set.remove_range(start, end);
            }
        }
        let m = &self.clock.model;
        let cost = m.callback_base_ns
            + cleared * m.callback_per_page_ns
            + self.devices[dev].bugs.invalidate_ns;
        let spent = self.clock.spend(cost);
        let body = self.invalidation(start, end, event, owner, INVALIDATE_CALLBACK);
        self.emit(t0, Some(spent), body);
    }

    /// The record of an invalidation of vpns `[start, end)` seen at `path`.
    fn invalidation(&self, start: u64, end: u64, event: u32, owner: u64, path: u8) -> Body {
        let (start, end) = self.addr_range(start, end);
        Body::Invalidation(Invalidation {
            start,
            end,
            owner,
            event,
            range_flags: BLOCKABLE,
            path,
            _pad: 0,
        })
    }

    /// Vpn range → byte range; an end past the address space is `ULONG_MAX`, as in the kernel.
    fn addr_range(&self, start: u64, end: u64) -> (u64, u64) {
        let e = end.saturating_mul(self.page_size);
        (start * self.page_size, e)
    }

    /// The device mirrors `npages` pages at `addr` (test_hmm's `HMM_DMIRROR_READ`/`WRITE`):
    /// `hmm_range_fault` with `HMM_PFN_REQ_FAULT` (and `_WRITE`), retried on `-EBUSY` and when
    /// `mmu_interval_read_retry` says the range changed, then the device page table is filled.
    pub fn range_fault(
        &mut self,
        dev: DevId,
        tgid: Tgid,
        addr: u64,
        npages: u64,
        write: bool,
        race: Race,
    ) -> Result<()> {
        self.within_limit(npages)?;
        let start = self.mirrored_range(dev, tgid, addr, npages)?;
        let mut during = race.during;
        let mut after = race.after;
        let mut retries = 0u32;
        let mut first_entry = None;
        loop {
            if retries > MAX_RETRIES {
                return Err(EngineError::Busy);
            }
            let seq = self.notifier_seq(dev, tgid).expect("checked above");
            let t0 = self.clock.now();
            first_entry.get_or_insert(t0);
            let m = &self.clock.model;
            let walk = m.range_fault_base_ns + npages * m.range_fault_per_page_ns;
            self.clock.spend(walk);
            // The walk faults in what the device cannot use as is; a page the process could
            // not access either ends the walk with -EFAULT, which the driver gets (test_hmm's
            // ioctl returns it).
            let mut failed = false;
            for vpn in start..start + npages {
                match self.range_fault_page(dev, tgid, vpn, write) {
                    Ok(()) => {}
                    Err(EngineError::Segv { .. }) => {
                        failed = true;
                        break;
                    }
                    Err(e) => return Err(e),
                }
            }
            if failed {
                self.current = tgid;
                self.emit_range_fault(
                    dev,
                    (start, npages),
                    retries,
                    -14,
                    first_entry.unwrap_or(t0),
                );
                return Ok(());
            }
            if during > 0 {
                // Another thread's invalidation lands mid-walk.
                during -= 1;
                self.concurrent_zap(tgid, start, npages, retries);
            }
            if self.notifier_seq(dev, tgid) != Some(seq) {
                // mmu_interval_check_retry: the range changed under the walk (a racing
                // invalidation, or one the walk's own faults caused), so hmm_range_fault
                // returns -EBUSY and the driver calls it again.
                retries += 1;
                continue;
            }
            // From the first attempt's entry (this one's, without retries).
            self.emit_range_fault(dev, (start, npages), retries, 0, first_entry.unwrap_or(t0));
            retries = 0;
            first_entry = None;
            if after > 0 {
                after -= 1;
                self.concurrent_zap(tgid, start, npages, 0);
            }
            if self.notifier_seq(dev, tgid) != Some(seq) {
                // mmu_interval_read_retry: start over.
                continue;
            }
            break;
        }
        // dmirror_do_fault: the device page table now mirrors the range.
        let set = self.devices[dev].mirror.entry(tgid).or_default();
        set.fill(start, start + npages, ());
        Ok(())
    }

    /// The record of one `hmm_range_fault` over vpns `[start, start + npages)` that returned
    /// `result` after `retries` -EBUSY, timed from `entry` (its first attempt) to now.
    fn emit_range_fault(
        &mut self,
        dev: DevId,
        (start, npages): (u64, u64),
        retries: u32,
        result: i32,
        entry: u64,
    ) {
        let body = Body::RangeFault(RangeFault {
            start: start * self.page_size,
            end: (start + npages) * self.page_size,
            dev_private_owner: self.devices[dev].owner,
            npages,
            retries,
            result,
        });
        self.emit(entry, Some(self.clock.now() - entry), body);
    }

    /// What `hmm_vma_walk` does with one page: nothing if the device can use it, else a fault
    /// (demand fault, COW break, `migrate_to_ram` of another device's page, exclusive restore).
    fn range_fault_page(&mut self, dev: DevId, tgid: Tgid, vpn: u64, write: bool) -> Result<()> {
        let pte = self.proc_ref(tgid)?.ptes.get(vpn);
        let owner = self.devices[dev].owner;
        let need_fault = match pte {
            None => true,
            Some(Pte::Present { write: w, .. }) => write && !w,
            Some(Pte::DevicePrivate { page, .. }) => {
                // hmm_is_device_private_entry: this device's own pages come back as they are.
                let mine = matches!(self.pages[page].frame(),
                    super::pages::Frame::Device { dev: d, .. } if self.devices[d].owner == owner);
                !mine
            }
            Some(Pte::Exclusive { .. } | Pte::Migration { .. }) => true,
        };
        if need_fault {
            self.cpu_fault(tgid, vpn, write)?;
            self.current = tgid;
        }
        Ok(())
    }

    /// Another thread of `tgid` zaps one page of the range (`madvise(MADV_DONTNEED)` →
    /// `zap_page_range_single`, `MMU_NOTIFY_CLEAR`).
    fn concurrent_zap(&mut self, tgid: Tgid, start: u64, npages: u64, n: u32) {
        let vpn = start + (n as u64 % npages);
        self.invalidate(tgid, vpn, vpn + 1, MMU_NOTIFY_CLEAR, 0);
        self.zap(tgid, vpn, vpn + 1);
    }

    /// `make_device_exclusive_range` (test_hmm's `HMM_DMIRROR_EXCLUSIVE`): each page is faulted
    /// in for write, then its PTE is replaced by a device-exclusive entry with an
    /// `MMU_NOTIFY_EXCLUSIVE` invalidation owned by the device; the device mirrors it.
    pub fn make_exclusive(&mut self, dev: DevId, tgid: Tgid, addr: u64, npages: u64) -> Result<()> {
        self.within_limit(npages)?;
        let start = self.mirrored_range(dev, tgid, addr, npages)?;
        let owner = self.devices[dev].owner;
        for vpn in start..start + npages {
            self.cpu_fault(tgid, vpn, true)?;
            self.current = tgid;
            let pte = self.proc_ref(tgid)?.ptes.get(vpn).expect("faulted in");
            if let Pte::Present { page, write } = pte {
                if matches!(self.pages[page].frame(), super::pages::Frame::System) {
                    self.invalidate(tgid, vpn, vpn + 1, MMU_NOTIFY_EXCLUSIVE, owner);
                    self.procs
                        .get_mut(&tgid)
                        .unwrap()
                        .ptes
                        .insert(vpn, Pte::Exclusive { page, write });
                }
            }
        }
        self.devices[dev]
            .mirror
            .entry(tgid)
            .or_default()
            .fill(start, start + npages, ());
        Ok(())
    }

    /// A CPU access to a device-exclusive entry (`remove_device_exclusive_entry`):
    /// `MMU_NOTIFY_EXCLUSIVE` with no owner, then the original PTE is back.
    pub(crate) fn restore_exclusive(&mut self, tgid: Tgid, vpn: u64) {
        self.invalidate(tgid, vpn, vpn + 1, MMU_NOTIFY_EXCLUSIVE, 0);
        if let Some(Pte::Exclusive { page, write }) =
            self.procs.get(&tgid).and_then(|p| p.ptes.get(vpn))
        {
            self.procs
                .get_mut(&tgid)
                .unwrap()
                .ptes
                .insert(vpn, Pte::Present { page, write });
        }
    }
}
