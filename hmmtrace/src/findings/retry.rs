//! Retry storms: a range a driver mirrors with `hmm_range_fault` that keeps being retried,
//! with the invalidations that caused it.
//!
//! Two retries are visible in events: `-EBUSY` returns (an invalidation landed during the walk;
//! the probe folds them into the call's `retries`), and a driver calling `hmm_range_fault`
//! again on the same range because `mmu_interval_read_retry` said it changed (an invalidation
//! landed after the walk): seen as another call on the range with an invalidation of the same
//! process overlapping it between the two calls. Calls of one range are *in a row* while each
//! has a retry and begins within [`Config::retry_window_ns`] of the last one's end, with no
//! unmap of the whole range in between (after which a call is a new request); a row of
//! at least [`Config::retry_storm`] retries is a finding, with the invalidations that
//! overlapped the range during it, by `MMU_NOTIFY_*` event.
//!
//! Bounds: [`MAX_RANGES`] ranges in a row at once (least recently called concluded first), and
//! per process the last [`RECENT_INVALIDATIONS`] invalidations for at most [`MAX_PROCESSES`]
//! processes; a call looks at those (a fixed number).
//!
//! [`Config::retry_window_ns`]: super::Config::retry_window_ns
//! [`Config::retry_storm`]: super::Config::retry_storm

use std::collections::VecDeque;

use hashlink::LinkedHashMap;
use rustc_hash::FxBuildHasher;

use super::{Context, Draft, FindingKind, MAX_EVIDENCE_EVENTS};
use crate::event::{Body, Comm, Event};
use hmmtrace_common::{mmu_notify_name, INVALIDATE_CALLBACK, MMU_NOTIFY_RELEASE, MMU_NOTIFY_UNMAP};

pub const MAX_RANGES: usize = 4096;
pub const RECENT_INVALIDATIONS: usize = 64;
pub const MAX_PROCESSES: usize = 1024;

#[derive(Clone, Copy)]
struct Inval {
    ts: u64,
    end_ns: u64,
    start: u64,
    end: u64,
    event: u32,
    /// Seen at a notifier's callback (no range start record for it yet).
    callback: bool,
}

#[derive(Clone)]
struct Row {
    comm: Comm,
    owner: u64,
    first_ns: u64,
    /// The last call's exit.
    last_end_ns: u64,
    calls: u64,
    retries: u64,
    busy: u64,
    read_retry: u64,
    /// Invalidations behind the retries, by `MMU_NOTIFY_*` event.
    causes: [u64; 8],
    events: Vec<u64>,
}

pub struct Retry {
    rows: LinkedHashMap<(u32, u64, u64), Row, FxBuildHasher>,
    recent: LinkedHashMap<u32, VecDeque<Inval>, FxBuildHasher>,
    /// The last process's invalidations, out of `recent`: events come in runs of one process,
    /// so most need no map operation at all.
    current: Option<(u32, VecDeque<Inval>)>,
}

impl Default for Retry {
    fn default() -> Retry {
        Retry {
            rows: LinkedHashMap::with_hasher(FxBuildHasher),
            recent: LinkedHashMap::with_hasher(FxBuildHasher),
            current: None,
        }
    }
}

impl Retry {
    /// `tgid`'s recent invalidations, made the current ones (`create`: an empty list if none).
    fn recent(&mut self, tgid: u32, create: bool) -> Option<&mut VecDeque<Inval>> {
        if self.current.as_ref().is_some_and(|(t, _)| *t == tgid) {
            return self.current.as_mut().map(|(_, q)| q);
        }
        let q = match self.recent.remove(&tgid) {
            Some(q) => q,
            None if create => VecDeque::new(),
            None => return None,
        };
        if let Some((t, old)) = self.current.take() {
            if self.recent.len() >= MAX_PROCESSES {
                self.recent.pop_front();
            }
            self.recent.insert(t, old);
        }
        self.current = Some((tgid, q));
        self.current.as_mut().map(|(_, q)| q)
    }

    pub(super) fn event(&mut self, cx: &Context, e: &Event, out: &mut Vec<Draft>) {
        match &e.body {
            // Each invalidation once: a range start's record comes after those of the
            // callbacks it ran (records are written at exit), and repeats their range.
            Body::Invalidation(i) => {
                let q = self.recent(e.tgid, true).expect("created");
                let same = |x: &Inval| x.start == i.start && x.end == i.end && x.event == i.event;
                if i.path == INVALIDATE_CALLBACK {
                    // A callback of a range start already seen (its record came first).
                    if q.back()
                        .is_some_and(|x| same(x) && !x.callback && x.end_ns >= e.ts_ns)
                    {
                        return;
                    }
                } else {
                    let end_ns = e.ts_ns + e.duration_ns.unwrap_or(0);
                    while q
                        .back()
                        .is_some_and(|x| same(x) && x.callback && x.ts >= e.ts_ns && x.ts <= end_ns)
                    {
                        q.pop_back();
                    }
                }
                if q.len() >= RECENT_INVALIDATIONS {
                    q.pop_front();
                }
                q.push_back(Inval {
                    ts: e.ts_ns,
                    end_ns: e.ts_ns + e.duration_ns.unwrap_or(0),
                    start: i.start,
                    end: i.end,
                    event: i.event,
                    callback: i.path == INVALIDATE_CALLBACK,
                });
            }
            Body::RangeFault(r) => {
                let key = (e.tgid, r.start, r.end);
                let window = cx.config.retry_window_ns;
                let end_ns = e.ts_ns + e.duration_ns.unwrap_or(0);
                let busy = u64::from(r.retries);
                let mut read_retry = 0;
                let mut causes = [0u64; 8];
                let prev = self.rows.to_back(&key).map(|row| row.last_end_ns);
                let mut in_row = prev.is_some_and(|p| e.ts_ns.saturating_sub(p) <= window);
                // Invalidations of the range between the last call's exit and this one's
                // exit: the cause of a read_retry (before the entry) or of -EBUSY (during).
                // An unmap of the whole range before the entry means the range was mapped
                // anew: this call is a new request, not a retry (hmm-tests' loops of mmap,
                // mirror, munmap at the same address).
                if let Some(q) = self.recent(e.tgid, false) {
                    let from = prev.filter(|_| in_row).unwrap_or(e.ts_ns);
                    for x in q.iter().rev() {
                        if x.ts < from {
                            break;
                        }
                        let unmapped = matches!(x.event, MMU_NOTIFY_UNMAP | MMU_NOTIFY_RELEASE)
                            && x.start <= r.start
                            && r.end <= x.end;
                        if unmapped && x.ts < e.ts_ns {
                            in_row = false;
                            read_retry = 0;
                            causes = [0; 8];
                            break;
                        }
                        if x.ts <= end_ns && x.start < r.end && r.start < x.end {
                            causes[(x.event as usize).min(7)] += 1;
                            if x.ts < e.ts_ns {
                                read_retry = 1;
                            }
                        }
                    }
                }
                let retries = busy + read_retry;
                if !in_row || retries == 0 {
                    if let Some(row) = self.rows.remove(&key) {
                        conclude(cx, key, &row, out);
                    }
                }
                if self.rows.get(&key).is_none() {
                    if self.rows.len() >= MAX_RANGES {
                        if let Some((k, row)) = self.rows.pop_front() {
                            conclude(cx, k, &row, out);
                        }
                    }
                    self.rows.insert(
                        key,
                        Row {
                            comm: e.comm,
                            owner: r.dev_private_owner,
                            first_ns: e.ts_ns,
                            last_end_ns: end_ns,
                            calls: 0,
                            retries: 0,
                            busy: 0,
                            read_retry: 0,
                            causes: [0; 8],
                            events: Vec::new(),
                        },
                    );
                }
                let row = self.rows.get_mut(&key).expect("present");
                row.calls += 1;
                row.retries += retries;
                row.busy += busy;
                row.read_retry += read_retry;
                if retries > 0 {
                    for (c, n) in row.causes.iter_mut().zip(causes) {
                        *c += n;
                    }
                }
                row.last_end_ns = row.last_end_ns.max(end_ns);
                if row.events.len() < MAX_EVIDENCE_EVENTS {
                    row.events.push(e.ts_ns);
                }
            }
            _ => {}
        }
    }

    #[cfg(test)]
    pub(super) fn open_rows(&self) -> usize {
        self.rows.len()
    }

    pub(super) fn expire(&mut self, cx: &Context, now: u64, out: &mut Vec<Draft>) {
        let window = cx.config.retry_window_ns;
        while let Some((_, row)) = self.rows.front() {
            if now != u64::MAX && row.last_end_ns.saturating_add(window) >= now {
                break;
            }
            let (k, row) = self.rows.pop_front().expect("just seen");
            conclude(cx, k, &row, out);
        }
    }
}

fn conclude(cx: &Context, (tgid, start, end): (u32, u64, u64), row: &Row, out: &mut Vec<Draft>) {
    if row.retries < cx.config.retry_storm {
        return;
    }
    let caused: Vec<String> = row
        .causes
        .iter()
        .enumerate()
        .filter(|(_, n)| **n > 0)
        .map(|(ev, n)| format!("{n} {}", mmu_notify_name(ev as u32)))
        .collect();
    let invalidations: u64 = row.causes.iter().sum();
    let mut counts = vec![
        ("retries", row.retries),
        ("ebusy", row.busy),
        ("read_retry", row.read_retry),
        ("calls", row.calls),
        ("invalidations", invalidations),
    ];
    for (ev, n) in row.causes.iter().enumerate() {
        if *n > 0 {
            counts.push((notify_count_name(ev as u32), *n));
        }
    }
    out.push(Draft {
        kind: FindingKind::RetryStorm,
        tgid,
        comm: row.comm,
        owner: row.owner,
        symbol: Some("hmm_range_fault".into()),
        range: Some((start, end)),
        first_ns: row.first_ns,
        last_ns: row.last_end_ns,
        counts,
        events: row.events.clone(),
        message: format!(
            "hmm_range_fault on {start:#x}..{end:#x} was retried {} times in a row ({} -EBUSY, \
             {} after mmu_interval_read_retry) over {} calls: the process kept invalidating \
             the range while the device mirrored it ({})",
            row.retries,
            row.busy,
            row.read_retry,
            row.calls,
            if caused.is_empty() {
                "the invalidations were not seen: the invalidation probes are off, or they \
                 were older than the last 64"
                    .to_string()
            } else {
                format!("{invalidations} invalidations: {}", caused.join(", "))
            }
        ),
    });
}

/// The evidence count's name for invalidations of one `MMU_NOTIFY_*` event.
fn notify_count_name(event: u32) -> &'static str {
    match event {
        0 => "unmap",
        1 => "clear",
        2 => "protection_vma",
        3 => "protection_page",
        4 => "soft_dirty",
        5 => "release",
        6 => "migrate",
        _ => "exclusive",
    }
}
