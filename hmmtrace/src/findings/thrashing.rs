//! Thrashing: the same pages of a process migrating device → RAM → device (or the reverse)
//! again and again, each move soon after the last.
//!
//! A *bounce* is a `migrate_vma` migration that moves pages in the opposite direction to their
//! previous migration, within [`Config::thrash_lapse_ns`] of it; two bounces are a *round
//! trip*. A storm is a run of bounces each within the lapse of the one before; when it ends
//! (the pages stay put for longer than the lapse, or the stream ends) with at least
//! [`Config::thrash_round_trips`] round trips, it is a finding with the pages that bounced,
//! the round trips, and the bytes every migration of those 2 MiB moved during the storm.
//!
//! State is kept per process and 2 MiB of address space (a *granule*: 512 pages of 4 KiB), as
//! two bitmaps: the pages the granule's last migration direction moved, and the pages that
//! bounced. That makes one event O(granules its range covers) with a few word operations each,
//! and a page-exact answer. Bounds: [`MAX_GRANULES`] granules (about 200 bytes each, 0.8 MB),
//! least recently migrated evicted first (its storm, if any, concluded); an event's range is
//! followed over at most [`MAX_GRANULES_PER_EVENT`] granules (1 GiB). `migrate_device`
//! evictions name device pfns, not addresses, so they are not followed here. An unmap
//! (`MMU_NOTIFY_UNMAP`, or the exit's `MMU_NOTIFY_RELEASE`) ends the storms of the pages it
//! touches (by 2 MiB): the same addresses mapped again are new pages.
//!
//! [`Config::thrash_lapse_ns`]: super::Config::thrash_lapse_ns
//! [`Config::thrash_round_trips`]: super::Config::thrash_round_trips

use hashlink::LinkedHashMap;
use rustc_hash::FxBuildHasher;

use super::{Context, Draft, FindingKind, MAX_EVIDENCE_EVENTS};
use crate::event::{Body, Comm, Event};
use hmmtrace_common::{
    API_MIGRATE_DEVICE, DIRECTION_TO_DEVICE, INVALIDATE_RANGE_START, MMU_NOTIFY_RELEASE,
    MMU_NOTIFY_UNMAP,
};

/// Pages per granule (2 MiB of 4 KiB pages; the bitmaps are per page of the capture's size).
pub const GRANULE_PAGES: u64 = 512;
const WORDS: usize = (GRANULE_PAGES / 64) as usize;
/// Granules followed at once.
pub const MAX_GRANULES: usize = 4096;
/// Granules of one event's range followed.
pub const MAX_GRANULES_PER_EVENT: u64 = 512;

type Bits = [u64; WORDS];

#[derive(Clone)]
struct Granule {
    comm: Comm,
    owner: u64,
    /// The direction of the granule's last migration.
    dir: u8,
    last_ns: u64,
    /// Pages moved in `dir` since the direction last changed.
    moved: Bits,
    /// Pages that bounced during the storm.
    bounced: Bits,
    bounces: u32,
    /// When the storm's first migration (the one before the first bounce) began.
    first_ns: u64,
    /// Bytes moved in this granule since `first_ns`.
    bytes: u64,
    events: Vec<u64>,
}

#[derive(Default)]
pub struct Thrashing {
    granules: Option<LinkedHashMap<(u32, u64), Granule, FxBuildHasher>>,
}

/// The bits of pages `[from, to)` of a granule.
fn mask(from: u64, to: u64) -> Bits {
    let mut b = [0u64; WORDS];
    for (w, word) in b.iter_mut().enumerate() {
        let lo = (w as u64) * 64;
        let (a, z) = (from.max(lo), to.min(lo + 64));
        if a < z {
            let n = z - a;
            let bits = if n == 64 { u64::MAX } else { (1u64 << n) - 1 };
            *word = bits << (a - lo);
        }
    }
    b
}

fn and(a: &Bits, b: &Bits) -> Bits {
    std::array::from_fn(|i| a[i] & b[i])
}

fn any(a: &Bits) -> bool {
    a.iter().any(|w| *w != 0)
}

fn count(a: &Bits) -> u64 {
    a.iter().map(|w| u64::from(w.count_ones())).sum()
}

impl Thrashing {
    fn map(&mut self) -> &mut LinkedHashMap<(u32, u64), Granule, FxBuildHasher> {
        self.granules
            .get_or_insert_with(|| LinkedHashMap::with_hasher(FxBuildHasher))
    }

    pub(super) fn event(&mut self, cx: &Context, e: &Event, out: &mut Vec<Draft>) {
        let m = match &e.body {
            Body::Migration(m) => m,
            // Unmapped pages are gone: a storm on them ends, and the same addresses mapped
            // again are new pages (hmm-tests' loops of mmap, migrate, munmap).
            Body::Invalidation(i)
                if (i.path == INVALIDATE_RANGE_START && i.event == MMU_NOTIFY_UNMAP)
                    || i.event == MMU_NOTIFY_RELEASE =>
            {
                self.unmap(cx, e.tgid, i.start, i.end, out);
                return;
            }
            _ => return,
        };
        if m.api == API_MIGRATE_DEVICE || m.end <= m.start {
            return;
        }
        let page = cx.page_size;
        let span = GRANULE_PAGES * page;
        let lapse = cx.config.thrash_lapse_ns;
        let first_page = m.start / page;
        let last_page = m.end.div_ceil(page);
        // The share of the range that really moved (migrated of npages), for bytes.
        let moved_share = |pages: u64| -> u64 {
            if m.npages == 0 {
                0
            } else {
                (pages * m.migrated.min(m.npages)).div_ceil(m.npages)
            }
        };
        let g0 = m.start / span;
        let g1 = (m.end - 1) / span;
        for g in g0..=g1.min(g0 + MAX_GRANULES_PER_EVENT - 1) {
            let base = g * GRANULE_PAGES;
            let bits = mask(
                first_page.max(base) - base,
                last_page.min(base + GRANULE_PAGES) - base,
            );
            let pages = count(&bits);
            let key = (e.tgid, g);
            let map = self.map();
            if map.to_back(&key).is_none() {
                if map.len() >= MAX_GRANULES {
                    if let Some(((tgid, g), old)) = map.pop_front() {
                        conclude(cx, tgid, g, &old, out);
                    }
                }
                map.insert(
                    key,
                    Granule {
                        comm: e.comm,
                        owner: m.pgmap_owner,
                        dir: m.direction,
                        last_ns: e.ts_ns,
                        moved: [0; WORDS],
                        bounced: [0; WORDS],
                        bounces: 0,
                        first_ns: e.ts_ns,
                        bytes: 0,
                        events: Vec::new(),
                    },
                );
            }
            let st = map.get_mut(&key).expect("present");
            if e.ts_ns.saturating_sub(st.last_ns) > lapse {
                // Quiet for longer than the lapse: the storm (if any) is over.
                let old = st.clone();
                conclude(cx, e.tgid, g, &old, out);
                st.bounces = 0;
                st.bounced = [0; WORDS];
                st.moved = [0; WORDS];
                st.bytes = 0;
                st.first_ns = e.ts_ns;
                st.events.clear();
            }
            if st.dir != m.direction {
                let back = and(&st.moved, &bits);
                if any(&back) {
                    st.bounces += 1;
                    for (b, x) in st.bounced.iter_mut().zip(back) {
                        *b |= x;
                    }
                }
                st.moved = bits;
                st.dir = m.direction;
            } else {
                for (b, x) in st.moved.iter_mut().zip(bits) {
                    *b |= x;
                }
            }
            if m.pgmap_owner != 0 {
                st.owner = m.pgmap_owner;
            }
            st.last_ns = st.last_ns.max(e.ts_ns);
            st.bytes += moved_share(pages) * page;
            if st.events.len() < MAX_EVIDENCE_EVENTS {
                st.events.push(e.ts_ns);
            }
        }
    }

    /// `tgid`'s pages in `[start, end)` were unmapped: their storms end.
    fn unmap(&mut self, cx: &Context, tgid: u32, start: u64, end: u64, out: &mut Vec<Draft>) {
        let Some(map) = self.granules.as_mut() else {
            return;
        };
        let page = cx.page_size;
        let span = GRANULE_PAGES * page;
        let (g0, g1) = (start / span, end.saturating_sub(1) / span);
        let hit: Vec<(u32, u64)> = if g1 - g0 < MAX_GRANULES_PER_EVENT {
            (g0..=g1)
                .map(|g| (tgid, g))
                .filter(|k| map.contains_key(k))
                .collect()
        } else {
            // A whole address space (exit): look at what is kept instead.
            map.keys()
                .filter(|(t, g)| *t == tgid && (g0..=g1).contains(g))
                .copied()
                .collect()
        };
        for key in hit {
            if let Some(st) = map.remove(&key) {
                conclude(cx, key.0, key.1, &st, out);
            }
        }
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.granules.as_ref().map_or(0, |m| m.len())
    }

    /// Concludes the storms of granules quiet for longer than the lapse at `now`.
    pub(super) fn expire(&mut self, cx: &Context, now: u64, out: &mut Vec<Draft>) {
        let lapse = cx.config.thrash_lapse_ns;
        let Some(map) = self.granules.as_mut() else {
            return;
        };
        while let Some((_, st)) = map.front() {
            if now != u64::MAX && st.last_ns.saturating_add(lapse) >= now {
                break;
            }
            let ((tgid, g), st) = map.pop_front().expect("just seen");
            conclude(cx, tgid, g, &st, out);
        }
    }
}

/// A granule's storm as a finding, if it had enough round trips.
fn conclude(cx: &Context, tgid: u32, g: u64, st: &Granule, out: &mut Vec<Draft>) {
    let round_trips = st.bounces / 2;
    if round_trips < cx.config.thrash_round_trips || !any(&st.bounced) {
        return;
    }
    let page = cx.page_size;
    let base = g * GRANULE_PAGES * page;
    let lo = st
        .bounced
        .iter()
        .enumerate()
        .find(|(_, w)| **w != 0)
        .map(|(i, w)| i as u64 * 64 + u64::from(w.trailing_zeros()))
        .unwrap_or(0);
    let hi = st
        .bounced
        .iter()
        .enumerate()
        .rev()
        .find(|(_, w)| **w != 0)
        .map(|(i, w)| i as u64 * 64 + 64 - u64::from(w.leading_zeros()))
        .unwrap_or(0);
    let pages = count(&st.bounced);
    let range = (base + lo * page, base + hi * page);
    let to = if st.dir == DIRECTION_TO_DEVICE {
        "device"
    } else {
        "RAM"
    };
    out.push(Draft {
        kind: FindingKind::Thrashing,
        tgid,
        comm: st.comm,
        owner: st.owner,
        symbol: None,
        range: Some(range),
        first_ns: st.first_ns,
        last_ns: st.last_ns,
        counts: vec![
            ("round_trips", u64::from(round_trips)),
            ("bounces", u64::from(st.bounces)),
            ("pages", pages),
            ("bytes", st.bytes),
        ],
        events: st.events.clone(),
        message: format!(
            "{pages} pages at {:#x}..{:#x} went between device and RAM {round_trips} times \
             over, each move within {} of the last ({} moved; last to {to}): the workload \
             touches on the CPU what it just migrated to the device, or the reverse",
            range.0,
            range.1,
            crate::report::text::fmt_ns(cx.config.thrash_lapse_ns),
            crate::findings::bytes(st.bytes),
        ),
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_cover_exactly_the_pages_asked() {
        assert_eq!(count(&mask(0, 512)), 512);
        assert_eq!(count(&mask(3, 67)), 64);
        assert_eq!(mask(3, 4)[0], 1 << 3);
        assert_eq!(mask(64, 65)[1], 1);
        assert!(!any(&mask(5, 5)));
    }
}
