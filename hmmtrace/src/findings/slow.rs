//! Slow callbacks: a driver's `invalidate` (interval notifier) or `migrate_to_ram` callback
//! that runs longer than a threshold. Both run on the CPU's memory-management paths: an
//! `invalidate` inside `munmap`, `mprotect`, migration and reclaim of the process (and of
//! other processes sharing the pages), a `migrate_to_ram` while the faulting thread waits.
//!
//! Thresholds: [`Config::slow_invalidate_ns`] and [`Config::slow_fault_ns`]. One finding per
//! driver symbol and episode (slow calls closer than [`Config::episode_gap_ns`]), with how
//! many calls were slow and the slowest. Bounds: 1024 symbols × kinds open at once.
//!
//! [`Config::slow_invalidate_ns`]: super::Config::slow_invalidate_ns
//! [`Config::slow_fault_ns`]: super::Config::slow_fault_ns
//! [`Config::episode_gap_ns`]: super::Config::episode_gap_ns

use super::episodes::{Episode, Episodes};
use super::{Context, Draft, FindingKind};
use crate::event::{Body, Event};
use crate::report::text::fmt_ns;
use hmmtrace_common::INVALIDATE_CALLBACK;

/// Which callback, by name (the key holds the symbol so drivers are told apart).
type Key = (bool, String);

pub struct Slow {
    open: Episodes<Key>,
    closed: Vec<(Key, Episode)>,
}

impl Default for Slow {
    fn default() -> Slow {
        Slow {
            open: Episodes::new(1024),
            closed: Vec::new(),
        }
    }
}

impl Slow {
    pub(super) fn event(&mut self, cx: &Context, e: &Event, out: &mut Vec<Draft>) {
        let Some(d) = e.duration_ns else {
            return;
        };
        let (fault, limit, owner) = match &e.body {
            Body::Invalidation(i) if i.path == INVALIDATE_CALLBACK => {
                (false, cx.config.slow_invalidate_ns, 0)
            }
            Body::DeviceFault(f) => (true, cx.config.slow_fault_ns, f.pgmap_owner),
            _ => return,
        };
        if d <= limit {
            return;
        }
        // Only slow calls allocate the key.
        let key = (fault, cx.symbols.of(e).to_string());
        let ep = self
            .open
            .add(key, e, cx.config.episode_gap_ns, &mut self.closed);
        ep.max = ep.max.max(d);
        ep.sums[0] += d;
        ep.sums[1] = owner;
        self.conclude(cx, out);
    }

    pub(super) fn expire(&mut self, cx: &Context, now: u64, out: &mut Vec<Draft>) {
        self.open
            .expire(now, cx.config.episode_gap_ns, &mut self.closed);
        self.conclude(cx, out);
    }

    fn conclude(&mut self, cx: &Context, out: &mut Vec<Draft>) {
        for ((fault, symbol), ep) in self.closed.drain(..) {
            let (what, limit, why) = if fault {
                (
                    "migrate_to_ram",
                    cx.config.slow_fault_ns,
                    "the faulting thread waits for all of it",
                )
            } else {
                (
                    "invalidate",
                    cx.config.slow_invalidate_ns,
                    "munmap, mprotect, migration and reclaim of the range wait for it",
                )
            };
            out.push(Draft {
                kind: FindingKind::SlowCallback,
                tgid: ep.tgid,
                comm: ep.comm,
                owner: ep.sums[1],
                symbol: Some(symbol.clone()),
                range: ep.range,
                first_ns: ep.first_ns,
                last_ns: ep.last_ns,
                counts: vec![
                    ("slow_calls", ep.count),
                    ("max_ns", ep.max),
                    ("total_ns", ep.sums[0]),
                    ("threshold_ns", limit),
                ],
                message: format!(
                    "{symbol} ({what} callback) took longer than {} {} time(s), up to {}: {why}",
                    fmt_ns(limit),
                    ep.count,
                    fmt_ns(ep.max)
                ),
                events: ep.events,
            });
        }
    }
}
