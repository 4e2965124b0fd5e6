//! `--aggregate`: instead of a ring-buffer record per event, per-CPU counts per (class,
//! device, process) and per-CPU duration histograms per (class, device), which userspace reads
//! once per interval (layouts and buckets: `hmmtrace_common::agg`). No ring traffic per event,
//! so nothing is lost at any rate; a group that does not fit the maps is counted as dropped
//! for its probe, like a record that did not fit the ring.

use aya_ebpf::{
    bindings::BPF_NOEXIST,
    macros::map,
    maps::{PerCpuArray, PerCpuHashMap},
};
use hmmtrace_common::{
    agg::{
        bucket, AggCounts, AggKey, CountSlot, HistKey, HistSlot, Histogram, BUCKETS,
        CLASS_DEVICE_FAULT, CLASS_INTERVAL_INVALIDATE, CLASS_INVALIDATION, CLASS_MIGRATION,
        CLASS_PAGE_FREE, CLASS_RANGE_FAULT, CLASS_SYSTEM_MIGRATION, COUNT_SLOTS, HIST_SLOTS,
        MAX_HISTOGRAMS, MAX_KEYS,
    },
    DeviceFault, EventHeader, Invalidation, Migration, PageFree, RangeFault, SystemMigration,
    FLAG_HAS_DURATION, INVALIDATE_CALLBACK,
};

/// `BPF_F_NO_PREALLOC`: the histograms (9.5 KiB per CPU each) are allocated when a group
/// first appears, so they cost nothing without `--aggregate` and only what is used with it.
/// The counts stay preallocated (72 bytes per CPU each): lookups in a preallocated map
/// measured 5-10 % cheaper here (bench --only kernel, three runs each).
const NO_PREALLOC: u32 = 1;

#[map]
static AGG_COUNTS: PerCpuHashMap<AggKey, AggCounts> = PerCpuHashMap::with_max_entries(MAX_KEYS, 0);

#[map]
static AGG_HIST: PerCpuHashMap<HistKey, Histogram> =
    PerCpuHashMap::with_max_entries(MAX_HISTOGRAMS, NO_PREALLOC);

/// The direct-mapped per-CPU slots in front of the two maps (see `hmmtrace_common::agg`):
/// an array lookup per event instead of a hash-map update, for every group that has its slot
/// to itself. Userspace shrinks both to one entry when it does not aggregate.
#[map]
static AGG_COUNT_SLOTS: PerCpuArray<CountSlot> = PerCpuArray::with_max_entries(COUNT_SLOTS, 0);

#[map]
static AGG_HIST_SLOTS: PerCpuArray<HistSlot> = PerCpuArray::with_max_entries(HIST_SLOTS, 0);

/// A zeroed histogram to create entries from: 9.5 KiB do not fit the 512-byte stack.
#[map]
static ZERO_HIST: PerCpuArray<Histogram> = PerCpuArray::with_max_entries(1, 0);

/// What aggregation needs of an event, as `Event::class`, `::device` and `::pages` say it.
pub(crate) struct Facts {
    pub class: u8,
    pub owner: u64,
    pub pages: u64,
    pub retries: u64,
    pub direction: u8,
    pub api: u8,
}

pub(crate) trait Aggregated {
    fn facts(&self) -> Facts;
}

const fn facts(class: u8, owner: u64, pages: u64) -> Facts {
    Facts {
        class,
        owner,
        pages,
        retries: 0,
        direction: 0,
        api: 0,
    }
}

impl Aggregated for Migration {
    fn facts(&self) -> Facts {
        Facts {
            direction: self.direction,
            api: self.api,
            ..facts(CLASS_MIGRATION, self.pgmap_owner, self.migrated)
        }
    }
}

impl Aggregated for DeviceFault {
    fn facts(&self) -> Facts {
        facts(CLASS_DEVICE_FAULT, self.pgmap_owner, 1)
    }
}

impl Aggregated for PageFree {
    fn facts(&self) -> Facts {
        let order = if self.order > 20 { 20 } else { self.order };
        facts(CLASS_PAGE_FREE, self.pgmap_owner, 1 << order)
    }
}

impl Aggregated for Invalidation {
    fn facts(&self) -> Facts {
        let class = if self.path == INVALIDATE_CALLBACK {
            CLASS_INTERVAL_INVALIDATE
        } else {
            CLASS_INVALIDATION
        };
        facts(class, self.owner, 0)
    }
}

impl Aggregated for RangeFault {
    fn facts(&self) -> Facts {
        Facts {
            retries: self.retries as u64,
            ..facts(CLASS_RANGE_FAULT, self.dev_private_owner, self.npages)
        }
    }
}

impl Aggregated for SystemMigration {
    fn facts(&self) -> Facts {
        facts(CLASS_SYSTEM_MIGRATION, 0, self.succeeded)
    }
}

/// Adds one event; false when its group did not fit (the caller counts a drop).
#[inline(always)]
pub(crate) fn add(header: &EventHeader, f: Facts) -> bool {
    let key = AggKey {
        owner: f.owner,
        tgid: header.tgid,
        class: f.class,
        direction: f.direction,
        api: f.api,
        _pad: 0,
    };
    let timed = header.flags & FLAG_HAS_DURATION != 0;
    let d = header.duration_ns;
    let ts = header.ts_ns;
    let first = AggCounts {
        count: 1,
        pages: f.pages,
        retries: f.retries,
        timed: timed as u64,
        sum_ns: if timed { d } else { 0 },
        min_ns: if timed { d } else { 0 },
        max_ns: if timed { d } else { 0 },
        last_ns: ts,
        first_ns: ts,
    };
    let update = |c: *mut AggCounts| {
        // SAFETY: `c` is this CPU's value of a per-CPU map entry, valid for the program's run;
        // no other program updates this CPU's value meanwhile (programs do not nest on a CPU
        // for these probes' contexts).
        unsafe {
            // An entry another CPU created starts zeroed on this one.
            if (*c).count == 0 {
                *c = first;
                return;
            }
            (*c).count += 1;
            (*c).pages += f.pages;
            (*c).retries += f.retries;
            (*c).last_ns = if ts > (*c).last_ns { ts } else { (*c).last_ns };
            if timed {
                let had = (*c).timed != 0;
                (*c).timed += 1;
                (*c).sum_ns += d;
                (*c).min_ns = if !had || d < (*c).min_ns {
                    d
                } else {
                    (*c).min_ns
                };
                (*c).max_ns = if d > (*c).max_ns { d } else { (*c).max_ns };
            }
        }
    };
    let slotted = match AGG_COUNT_SLOTS.get_ptr_mut(key.slot()) {
        // SAFETY: this CPU's value of a per-CPU array entry, valid for the program's run; as
        // for `update`, nothing else writes it meanwhile.
        Some(s) => unsafe {
            if (*s).counts.count == 0 {
                (*s).key = key;
                (*s).counts = first;
                true
            } else if (*s).key == key {
                update(&mut (*s).counts);
                true
            } else {
                false
            }
        },
        None => false,
    };
    if !slotted {
        match AGG_COUNTS.get_ptr_mut(key) {
            Some(c) => update(c),
            None => {
                if AGG_COUNTS.insert(key, first, BPF_NOEXIST as u64).is_err() {
                    // Created meanwhile, or the map is full.
                    match AGG_COUNTS.get_ptr_mut(key) {
                        Some(c) => update(c),
                        None => return false,
                    }
                }
            }
        }
    }
    if timed {
        let hk = HistKey {
            owner: f.owner,
            class: f.class,
            _pad: [0; 7],
        };
        let b = bucket(d);
        if let Some(s) = AGG_HIST_SLOTS.get_ptr_mut(hk.slot()) {
            // SAFETY: this CPU's value of a per-CPU array entry, valid for the program's run;
            // nothing else writes it meanwhile. The index is checked against the array.
            unsafe {
                if (*s).used == 0 {
                    (*s).key = hk;
                    (*s).used = 1;
                }
                if (*s).key == hk {
                    if b < BUCKETS {
                        (*s).hist[b] += 1;
                    }
                    return true;
                }
            }
        }
        let h = match AGG_HIST.get_ptr_mut(hk) {
            Some(h) => Some(h),
            None => {
                if let Some(zero) = ZERO_HIST.get_ptr(0) {
                    // SAFETY: a pointer to this CPU's value of a one-entry per-CPU array,
                    // which nothing writes: a zeroed histogram to copy from.
                    // A reference: by value, 9.5 KiB would be copied onto the 512-byte stack.
                    let zero: &Histogram = unsafe { &*zero };
                    let _ = AGG_HIST.insert(hk, zero, BPF_NOEXIST as u64);
                }
                AGG_HIST.get_ptr_mut(hk)
            }
        };
        // Without a histogram (the map is full) the duration is still in the exact counts;
        // userspace sees the histogram hold fewer than `timed` and says so.
        if let Some(h) = h {
            if b < BUCKETS {
                // SAFETY: this CPU's value of a per-CPU map entry, index checked above.
                unsafe { (*h)[b] += 1 };
            }
        }
    }
    true
}
