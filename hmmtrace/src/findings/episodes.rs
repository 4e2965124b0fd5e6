//! Episodes: events of one key (a process and device, a driver symbol, ...) close together in
//! time are one finding, not one finding per event. An episode ends when its key has been
//! quiet for a gap, when the map is full (the least recently active key ends first), or at the
//! end of the stream.
//!
//! Bounded: at most `cap` keys are open; each keeps [`MAX_EVIDENCE_EVENTS`] timestamps. One
//! map operation per event (a linked hash map keeps the keys in order of last activity).

use std::hash::Hash;

use hashlink::LinkedHashMap;
use rustc_hash::FxBuildHasher;

use super::MAX_EVIDENCE_EVENTS;
use crate::event::{Comm, Event};

/// What one key's events amounted to so far.
#[derive(Clone, Debug)]
pub(crate) struct Episode {
    pub tgid: u32,
    pub comm: Comm,
    pub first_ns: u64,
    pub last_ns: u64,
    pub count: u64,
    /// Detector-defined sums (pages asked, collected, moved; retries; ...).
    pub sums: [u64; 4],
    /// The largest value the detector recorded (a duration, a return code).
    pub max: u64,
    /// The union of the events' address ranges.
    pub range: Option<(u64, u64)>,
    pub events: Vec<u64>,
}

impl Episode {
    fn new(e: &Event) -> Episode {
        Episode {
            tgid: e.tgid,
            comm: e.comm,
            first_ns: e.ts_ns,
            last_ns: e.ts_ns,
            count: 0,
            sums: [0; 4],
            max: 0,
            range: None,
            events: Vec::new(),
        }
    }

    fn add(&mut self, e: &Event) {
        self.count += 1;
        self.first_ns = self.first_ns.min(e.ts_ns);
        self.last_ns = self.last_ns.max(e.ts_ns);
        if let Some((s, end)) = e.body.range() {
            self.range = Some(match self.range {
                Some((a, b)) => (a.min(s), b.max(end)),
                None => (s, end),
            });
        }
        if self.events.len() < MAX_EVIDENCE_EVENTS {
            self.events.push(e.ts_ns);
        }
    }
}

pub(crate) struct Episodes<K> {
    open: LinkedHashMap<K, Episode, FxBuildHasher>,
    cap: usize,
}

impl<K: Hash + Eq + Clone> Episodes<K> {
    pub fn new(cap: usize) -> Episodes<K> {
        Episodes {
            open: LinkedHashMap::with_hasher(FxBuildHasher),
            cap: cap.max(1),
        }
    }

    /// Adds `e` to `key`'s episode (a new one if the last ended more than `gap` ago, which goes
    /// to `closed`); returns it for the detector's own sums.
    pub fn add(
        &mut self,
        key: K,
        e: &Event,
        gap: u64,
        closed: &mut Vec<(K, Episode)>,
    ) -> &mut Episode {
        // to_back keeps the map in order of last activity.
        let stale = match self.open.to_back(&key) {
            Some(ep) => e.ts_ns.saturating_sub(ep.last_ns) > gap,
            None => {
                if self.open.len() >= self.cap {
                    if let Some(oldest) = self.open.pop_front() {
                        closed.push(oldest);
                    }
                }
                self.open.insert(key.clone(), Episode::new(e));
                false
            }
        };
        let ep = self.open.get_mut(&key).expect("present");
        if stale {
            closed.push((key, std::mem::replace(ep, Episode::new(e))));
        }
        ep.add(e);
        ep
    }

    /// Ends the episodes quiet for more than `gap` at `now` (all of them at `u64::MAX`).
    pub fn expire(&mut self, now: u64, gap: u64, closed: &mut Vec<(K, Episode)>) {
        while let Some((_, ep)) = self.open.front() {
            if now != u64::MAX && ep.last_ns.saturating_add(gap) >= now {
                break;
            }
            closed.push(self.open.pop_front().expect("just seen"));
        }
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.open.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(ts: u64) -> Event {
        crate::findings::tests::fault(ts, 0, 1)
    }

    #[test]
    fn quiet_keys_end_and_memory_is_bounded_by_the_cap() {
        let mut eps: Episodes<u32> = Episodes::new(2);
        let mut closed = Vec::new();
        eps.add(1, &ev(0), 10, &mut closed);
        eps.add(1, &ev(5), 10, &mut closed).sums[0] += 7;
        assert!(closed.is_empty());
        // Past the gap: the first episode ends, a second begins.
        eps.add(1, &ev(100), 10, &mut closed);
        assert_eq!(closed.len(), 1);
        assert_eq!((closed[0].1.count, closed[0].1.sums[0]), (2, 7));
        // A third key pushes out the least recently active.
        eps.add(2, &ev(101), 10, &mut closed);
        eps.add(3, &ev(102), 10, &mut closed);
        assert_eq!(eps.len(), 2);
        assert_eq!(closed.last().unwrap().0, 1);
        eps.expire(200, 10, &mut closed);
        assert_eq!(eps.len(), 0);
        // Evidence is bounded too.
        for t in 0..100 {
            eps.add(9, &ev(t), 10, &mut closed);
        }
        eps.expire(u64::MAX, 10, &mut closed);
        let last = &closed.last().unwrap().1;
        assert_eq!((last.count, last.events.len()), (100, MAX_EVIDENCE_EVENTS));
    }
}
