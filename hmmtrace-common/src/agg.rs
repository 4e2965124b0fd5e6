//! In-kernel aggregation (`--aggregate`): what the programs keep per CPU instead of sending a
//! record per event, and the histogram buckets both sides compute the same way.
//!
//! Two per-CPU maps. [`AggKey`] → [`AggCounts`]: per class of event, device, process (and, for
//! migrations, direction and API), exact counts, pages, retries, and the exact sum, minimum
//! and maximum of the durations. [`HistKey`] → [`Histogram`]: per class and device, the
//! durations in log-linear buckets. In front of each, a per-CPU array of slots
//! ([`COUNT_SLOTS`], [`HIST_SLOTS`]) that holds most groups at a plain index.
//!
//! Buckets: every value below `2 * SUB` (128 ns) has its own bucket; above, each power of two
//! is cut into [`SUB`] (64) equal buckets. A bucket spans at most 1/64 of its lowest value, so
//! a percentile read as a bucket's midpoint is within 0.8 % of the true value (HdrHistogram at
//! 3 significant digits: 0.1 %; the in-kernel value must fit a per-CPU map value, and 64
//! buckets per power of two is 9.5 KiB per histogram). Durations of 2^42 ns (73 minutes) and
//! more share the last bucket; the exact maximum is in [`AggCounts`].

/// Buckets per power of two.
pub const SUB: u64 = 64;
/// log2 of [`SUB`].
const SUB_BITS: u32 = 6;
/// Values at and above `1 << TOP_BITS` share the last bucket.
const TOP_BITS: u32 = 42;
/// Buckets in a [`Histogram`].
pub const BUCKETS: usize = (SUB * (TOP_BITS - SUB_BITS) as u64 + SUB) as usize;

/// Per-CPU count of each bucket.
pub type Histogram = [u32; BUCKETS];

/// `AggKey::class` values: hmmtrace's classes of events, in this order.
pub const CLASS_MIGRATION: u8 = 0;
pub const CLASS_DEVICE_FAULT: u8 = 1;
pub const CLASS_PAGE_FREE: u8 = 2;
/// `__mmu_notifier_invalidate_range_start`.
pub const CLASS_INVALIDATION: u8 = 3;
/// An interval notifier's `invalidate` callback.
pub const CLASS_INTERVAL_INVALIDATE: u8 = 4;
pub const CLASS_RANGE_FAULT: u8 = 5;
pub const CLASS_SYSTEM_MIGRATION: u8 = 6;

/// Most distinct [`AggKey`]s (then events are counted as dropped, per probe, as a full ring's
/// are) and [`HistKey`]s.
pub const MAX_KEYS: u32 = 4096;
pub const MAX_HISTOGRAMS: u32 = 512;

/// What a group of events has in common.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AggKey {
    /// The device's pgmap owner (0: none).
    pub owner: u64,
    /// The process (thread group).
    pub tgid: u32,
    /// A `CLASS_*`.
    pub class: u8,
    /// Migrations: `Migration::direction` and `::api`; 0 otherwise.
    pub direction: u8,
    pub api: u8,
    pub _pad: u8,
}

/// Exact figures of a group of events.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AggCounts {
    pub count: u64,
    /// Pages, as `Event::pages` counts them.
    pub pages: u64,
    /// Range faults' `-EBUSY` retries.
    pub retries: u64,
    /// Events with a duration, and the sum, minimum and maximum of those durations (ns).
    pub timed: u64,
    pub sum_ns: u64,
    pub min_ns: u64,
    pub max_ns: u64,
    /// Latest entry time seen (`bpf_ktime_get_ns`), and the earliest.
    pub last_ns: u64,
    pub first_ns: u64,
}

/// Whose durations a histogram holds.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HistKey {
    pub owner: u64,
    pub class: u8,
    pub _pad: [u8; 7],
}

/// Slots of the per-CPU direct-mapped caches in front of the two maps: a group or histogram
/// lives in the slot its key hashes to, on each CPU, when that slot is free or already its
/// own, and in the hash map only when another key holds the slot. An array slot is a plain
/// index where a hash-map update hashes the key and walks a bucket: that update was about
/// half of an aggregated event's cost (host tracepoint, bench --only kernel). Userspace sums a
/// key's slots and map entries. Powers of two.
pub const COUNT_SLOTS: u32 = 64;
pub const HIST_SLOTS: u32 = 8;

/// A [`COUNT_SLOTS`] slot: free while `counts.count` is 0.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CountSlot {
    pub key: AggKey,
    pub counts: AggCounts,
}

/// A [`HIST_SLOTS`] slot: free while `used` is 0.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct HistSlot {
    pub key: HistKey,
    pub used: u64,
    pub hist: Histogram,
}

// The Pod impls rely on these having no implicit padding.
const _: () = {
    use core::mem::size_of;
    assert!(size_of::<AggKey>() == 16);
    assert!(size_of::<CountSlot>() == size_of::<AggKey>() + size_of::<AggCounts>());
    assert!(size_of::<HistSlot>() == size_of::<HistKey>() + 8 + size_of::<Histogram>());
};

/// A mix of the key's fields to a slot of `slots` (a power of two): a multiplicative hash.
#[inline(always)]
pub const fn slot(parts: u64, slots: u32) -> u32 {
    let h = parts.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    // The top bits; one slot would shift by 64, which `wrapping_shr` takes as 0 (and the mask
    // then gives slot 0).
    h.wrapping_shr(64 - slots.trailing_zeros()) as u32 & (slots - 1)
}

impl AggKey {
    /// Its [`COUNT_SLOTS`] slot.
    #[inline(always)]
    pub const fn slot(&self) -> u32 {
        let parts = self.owner
            ^ ((self.tgid as u64) << 17)
            ^ ((self.class as u64) << 5)
            ^ ((self.direction as u64) << 3)
            ^ (self.api as u64);
        slot(parts, COUNT_SLOTS)
    }
}

impl HistKey {
    /// Its [`HIST_SLOTS`] slot.
    #[inline(always)]
    pub const fn slot(&self) -> u32 {
        slot(self.owner ^ ((self.class as u64) << 5), HIST_SLOTS)
    }
}

/// The bucket of `ns`. No loops and only constant shifts: the verifier takes it as it is.
#[inline(always)]
pub const fn bucket(ns: u64) -> usize {
    if ns < 2 * SUB {
        return ns as usize;
    }
    if ns >= 1 << TOP_BITS {
        return BUCKETS - 1;
    }
    // floor(log2(ns)), by halving.
    let mut e = 0u32;
    let mut x = ns;
    if x >= 1 << 32 {
        x >>= 32;
        e += 32;
    }
    if x >= 1 << 16 {
        x >>= 16;
        e += 16;
    }
    if x >= 1 << 8 {
        x >>= 8;
        e += 8;
    }
    if x >= 1 << 4 {
        x >>= 4;
        e += 4;
    }
    if x >= 1 << 2 {
        x >>= 2;
        e += 2;
    }
    if x >= 1 << 1 {
        e += 1;
    }
    let shift = e - SUB_BITS;
    // In [SUB, 2 * SUB).
    let mantissa = ns >> shift;
    (SUB * shift as u64 + mantissa) as usize
}

/// The lowest and highest value of bucket `i`.
pub const fn bucket_bounds(i: usize) -> (u64, u64) {
    let i = i as u64;
    if i < 2 * SUB {
        return (i, i);
    }
    let shift = i / SUB - 1;
    let mantissa = i % SUB + SUB;
    let low = mantissa << shift;
    if i as usize == BUCKETS - 1 {
        return (low, u64::MAX);
    }
    (low, ((mantissa + 1) << shift) - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_spread_over_the_slots_and_stay_within_them() {
        // The keys a machine makes: a few devices (owners are kernel pointers), many
        // processes, the seven classes.
        let mut hit = [0u32; COUNT_SLOTS as usize];
        for owner in [0, 0xffff_8881_0a3c_4000u64, 0xffff_8881_0a3c_8800] {
            for tgid in 1000..1040 {
                for class in 0..7 {
                    let k = AggKey {
                        owner,
                        tgid,
                        class,
                        ..AggKey::default()
                    };
                    hit[k.slot() as usize] += 1;
                }
            }
        }
        let used = hit.iter().filter(|&&n| n > 0).count();
        // 840 keys over 64 slots: every slot taken, none with more than three times its share.
        assert_eq!(used, COUNT_SLOTS as usize, "{hit:?}");
        assert!(hit.iter().all(|&n| n <= 3 * 840 / COUNT_SLOTS), "{hit:?}");
        for class in 0..7 {
            let h = HistKey {
                owner: 0xffff_8881_0a3c_4000,
                class,
                _pad: [0; 7],
            };
            assert!(h.slot() < HIST_SLOTS);
        }
        for slots in [1, 2, 8, 64, 1 << 20] {
            for parts in [0, 1, u64::MAX, 0x1234_5678_9abc_def0] {
                assert!(slot(parts, slots) < slots, "{parts:#x} in {slots}");
            }
        }
    }

    #[test]
    fn every_value_falls_in_the_bucket_whose_bounds_hold_it() {
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        for i in 0..200_000u64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // Values of every magnitude, and the edges.
            let v = match i % 4 {
                0 => x >> (x % 64),
                1 => i,
                2 => (1u64 << (i % 63)).wrapping_sub(1 + i % 3),
                _ => 1u64 << (i % 64),
            };
            let b = bucket(v);
            assert!(b < BUCKETS, "{v}");
            let (lo, hi) = bucket_bounds(b);
            assert!(lo <= v && v <= hi, "{v} in bucket {b} = {lo}..={hi}");
            // The stated precision: a bucket spans at most 1/64 of its lowest value.
            if b != BUCKETS - 1 && lo >= 2 * SUB {
                assert!((hi - lo + 1) * SUB <= lo, "{lo}..={hi}");
            }
        }
        // Buckets tile the values with no gap.
        for b in 1..BUCKETS {
            assert_eq!(bucket_bounds(b).0, bucket_bounds(b - 1).1 + 1, "{b}");
        }
    }
}
