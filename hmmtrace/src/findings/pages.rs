//! Device pages, per device: how many were migrated in, migrated back (by a CPU fault or a
//! driver's `migrate_vma` to RAM), evicted (`migrate_device_*`, by pfn), freed (`page_free`,
//! which ends every device page's life), and how many are still held; and how long pages
//! lived on the device, as a histogram, the figure reports and the TUI show beside latencies.
//!
//! A page's life is measured on its user address: from the migration that brought it to the
//! device to the first of a `migrate_vma` back to RAM, an `MMU_NOTIFY_UNMAP` or
//! `MMU_NOTIFY_RELEASE` of the process covering it. Evictions name device pfns, not
//! addresses, so a page that was resident while its device evicted anything is not measured
//! (it may have been the one evicted): counted as `unmeasured` instead of guessed.
//!
//! Bounds: at most [`MAX_RESIDENT`] resident ranges (a migration's range is one), the oldest
//! dropped first (counted unmeasured); 16 devices. One event: O(log resident ranges).

use std::collections::{BTreeMap, VecDeque};

use serde::Serialize;

use crate::event::{Body, Event};
use crate::stats::Durations;
use hmmtrace_common::{
    API_MIGRATE_DEVICE, DIRECTION_TO_DEVICE, INVALIDATE_RANGE_START, MMU_NOTIFY_RELEASE,
    MMU_NOTIFY_UNMAP,
};

pub const MAX_RESIDENT: usize = 65_536;
const MAX_DEVICES: usize = 16;

/// One device's page accounting.
#[derive(Clone, Debug, Default, Serialize)]
pub struct DevicePages {
    /// Pages migrated to the device.
    pub to_device: u64,
    /// Pages migrated back by `migrate_vma` (a CPU fault's `migrate_to_ram`, or the driver).
    pub back: u64,
    /// Pages evicted by `migrate_device_*`.
    pub evicted: u64,
    /// `page_free` calls' pages.
    pub freed: u64,
    /// Time on the device of the pages measured.
    #[serde(skip)]
    pub lifetime: Durations,
    /// Pages whose life ended unmeasured (see the module doc).
    pub unmeasured: u64,
    /// Evictions so far: a resident range that saw one is not measured.
    #[serde(skip)]
    epoch: u64,
}

impl DevicePages {
    /// Migrated in and not freed. When more were freed than migrated in, pages were on the
    /// device before the source began: 0.
    pub fn held(&self) -> u64 {
        self.to_device.saturating_sub(self.freed)
    }
}

#[derive(Clone, Copy, Debug)]
struct Resident {
    end: u64,
    since_ns: u64,
    owner: u64,
    epoch: u64,
}

#[derive(Default)]
pub struct Pages {
    /// By pgmap owner, in order of first appearance.
    pub devices: Vec<(u64, DevicePages)>,
    /// Resident ranges per process, by start address.
    resident: BTreeMap<(u32, u64), Resident>,
    /// Insertion order, for dropping the oldest (entries may be stale).
    order: VecDeque<(u32, u64)>,
    page_size: u64,
}

impl Pages {
    pub fn new(page_size: u64) -> Pages {
        Pages {
            page_size: page_size.max(1),
            ..Pages::default()
        }
    }

    pub fn page_size(&self) -> u64 {
        self.page_size
    }

    pub fn device(&self, owner: u64) -> Option<&DevicePages> {
        self.devices
            .iter()
            .find(|(o, _)| *o == owner)
            .map(|(_, d)| d)
    }

    fn stats(&mut self, owner: u64) -> Option<&mut DevicePages> {
        if let Some(i) = self.devices.iter().position(|(o, _)| *o == owner) {
            return Some(&mut self.devices[i].1);
        }
        if owner == 0 || self.devices.len() >= MAX_DEVICES {
            return None;
        }
        self.devices.push((owner, DevicePages::default()));
        self.devices.last_mut().map(|(_, d)| d)
    }

    pub fn event(&mut self, e: &Event) {
        if self.page_size == 0 {
            self.page_size = 4096;
        }
        match &e.body {
            Body::Migration(m) if m.migrated > 0 => {
                let to_device = m.direction == DIRECTION_TO_DEVICE;
                let Some(d) = self.stats(m.pgmap_owner) else {
                    return;
                };
                if m.api == API_MIGRATE_DEVICE {
                    d.evicted += m.migrated;
                    d.epoch += 1;
                } else if to_device {
                    d.to_device += m.migrated;
                    let epoch = d.epoch;
                    // The pages that moved are the range's that were in RAM: its gaps.
                    self.fill(e.tgid, m.start, m.end, e.ts_ns, m.pgmap_owner, epoch);
                } else {
                    d.back += m.migrated;
                    self.end(e.tgid, m.start, m.end, e.ts_ns, Some(m.pgmap_owner));
                }
            }
            Body::PageFree(p) => {
                let pages = e.pages();
                if let Some(d) = self.stats(p.pgmap_owner) {
                    d.freed += pages;
                }
            }
            Body::Invalidation(i)
                if i.path == INVALIDATE_RANGE_START || i.event == MMU_NOTIFY_RELEASE =>
            {
                match i.event {
                    MMU_NOTIFY_UNMAP => self.end(e.tgid, i.start, i.end, e.ts_ns, None),
                    MMU_NOTIFY_RELEASE => self.end(e.tgid, 0, u64::MAX, e.ts_ns, None),
                    _ => {}
                }
            }
            _ => {}
        }
    }

    /// Pages of `tgid`'s `[start, end)` resident on device `owner`, as far as this has seen.
    pub fn resident_pages(&self, tgid: u32, start: u64, end: u64, owner: u64) -> u64 {
        self.resident
            .range((tgid, 0)..(tgid, end))
            .rev()
            .take_while(|(_, r)| r.end > start)
            .filter(|(_, r)| r.owner == owner)
            .map(|(k, r)| (r.end.min(end) - k.1.max(start)) / self.page_size)
            .sum()
    }

    fn insert(&mut self, tgid: u32, start: u64, end: u64, ts: u64, owner: u64, epoch: u64) {
        if end <= start {
            return;
        }
        while self.resident.len() >= MAX_RESIDENT {
            let Some(k) = self.order.pop_front() else {
                break;
            };
            if let Some(r) = self.resident.remove(&k) {
                let pages = (r.end - k.1) / self.page_size;
                if let Some(d) = self.stats(r.owner) {
                    d.unmeasured += pages;
                }
            }
        }
        self.resident.insert(
            (tgid, start),
            Resident {
                end,
                since_ns: ts,
                owner,
                epoch,
            },
        );
        self.order.push_back((tgid, start));
        if self.order.len() > 2 * MAX_RESIDENT {
            // Drop stale order entries so the queue stays bounded too.
            let resident = &self.resident;
            self.order.retain(|k| resident.contains_key(k));
        }
    }

    /// Makes the parts of `[start, end)` no range covers resident on `owner` since `ts`.
    fn fill(&mut self, tgid: u32, start: u64, end: u64, ts: u64, owner: u64, epoch: u64) {
        let covered: Vec<(u64, u64)> = self
            .resident
            .range((tgid, 0)..(tgid, end))
            .rev()
            .take_while(|(_, r)| r.end > start)
            .map(|(k, r)| (k.1, r.end))
            .collect();
        let mut at = start;
        for (a, b) in covered.into_iter().rev() {
            if a > at {
                self.insert(tgid, at, a, ts, owner, epoch);
            }
            at = at.max(b);
        }
        if at < end {
            self.insert(tgid, at, end, ts, owner, epoch);
        }
    }

    /// The lives of `tgid`'s resident pages in `[start, end)` (on `owner`, or on any device)
    /// end at `ts`.
    fn end(&mut self, tgid: u32, start: u64, end: u64, ts: u64, owner: Option<u64>) {
        // A process's resident ranges do not overlap, so walking back from `end` the first
        // one that ends at or before `start` ends the overlapping ones.
        let hits: Vec<((u32, u64), Resident)> = self
            .resident
            .range((tgid, 0)..(tgid, end))
            .rev()
            .take_while(|(_, r)| r.end > start)
            .filter(|(_, r)| owner.is_none_or(|o| o == r.owner))
            .map(|(k, r)| (*k, *r))
            .collect();
        for (k, r) in hits {
            self.resident.remove(&k);
            let (a, b) = (k.1.max(start), r.end.min(end));
            let pages = (b - a) / self.page_size;
            if let Some(d) = self.stats(r.owner) {
                if d.epoch == r.epoch {
                    d.lifetime
                        .record_n(ts.saturating_sub(r.since_ns).max(1), pages);
                } else {
                    d.unmeasured += pages;
                }
            }
            // What is left of the range on either side stays resident.
            if k.1 < a {
                self.resident.insert(k, Resident { end: a, ..r });
            }
            if b < r.end {
                self.resident.insert((tgid, b), r);
                self.order.push_back((tgid, b));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hmmtrace_common::{Invalidation, PageFree, API_MIGRATE_VMA, DIRECTION_TO_RAM};

    fn ev(ts: u64, body: Body) -> Event {
        crate::fixtures::event(ts, Some(1), 7, body)
    }

    fn migrate(ts: u64, start: u64, pages: u64, dir: u8, api: u8) -> Event {
        ev(ts, crate::fixtures::migration(start, pages, dir, api))
    }

    #[test]
    fn resident_ranges_are_bounded_and_the_dropped_ones_counted() {
        let mut p = Pages::new(4096);
        let n = MAX_RESIDENT as u64 + 100;
        for i in 0..n {
            p.event(&migrate(
                i,
                i * 0x10_0000,
                1,
                DIRECTION_TO_DEVICE,
                API_MIGRATE_VMA,
            ));
        }
        assert!(p.resident.len() <= MAX_RESIDENT);
        assert!(p.order.len() <= 2 * MAX_RESIDENT + 1);
        assert_eq!(p.device(1).unwrap().unmeasured, n - MAX_RESIDENT as u64);
    }

    #[test]
    fn lives_end_by_migration_back_or_unmap_and_evictions_make_them_unmeasured() {
        let mut p = Pages::new(4096);
        p.event(&migrate(
            100,
            0x10000,
            16,
            DIRECTION_TO_DEVICE,
            API_MIGRATE_VMA,
        ));
        // One page comes back: its life was 900 ns; the range splits around it.
        p.event(&migrate(
            1_000,
            0x12000,
            1,
            DIRECTION_TO_RAM,
            API_MIGRATE_VMA,
        ));
        let d = p.device(1).unwrap();
        assert_eq!((d.to_device, d.back, d.lifetime.count()), (16, 1, 1));
        assert_eq!(d.lifetime.max(), Some(900));
        // munmap of the whole range ends the other 15 at 5000.
        p.event(&ev(
            5_000,
            Body::Invalidation(Invalidation {
                start: 0x10000,
                end: 0x20000,
                event: MMU_NOTIFY_UNMAP,
                path: INVALIDATE_RANGE_START,
                ..Invalidation::default()
            }),
        ));
        let d = p.device(1).unwrap();
        assert_eq!(d.lifetime.count(), 16);
        assert_eq!(d.lifetime.max(), Some(4_900));
        // Resident while the device evicted by pfn: unmeasured, not guessed.
        p.event(&migrate(
            6_000,
            0x40000,
            4,
            DIRECTION_TO_DEVICE,
            API_MIGRATE_VMA,
        ));
        p.event(&migrate(
            6_500,
            0x100,
            2,
            DIRECTION_TO_RAM,
            API_MIGRATE_DEVICE,
        ));
        p.event(&migrate(
            7_000,
            0x40000,
            4,
            DIRECTION_TO_RAM,
            API_MIGRATE_VMA,
        ));
        let d = p.device(1).unwrap();
        assert_eq!((d.lifetime.count(), d.unmeasured, d.evicted), (16, 4, 2));
        // Every page ends in page_free: held is what was not freed.
        for _ in 0..10 {
            p.event(&ev(
                8_000,
                Body::PageFree(PageFree {
                    pgmap_owner: 1,
                    ..PageFree::default()
                }),
            ));
        }
        assert_eq!(p.device(1).unwrap().held(), 20 - 10);
    }
}
