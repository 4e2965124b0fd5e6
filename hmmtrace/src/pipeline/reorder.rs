//! Timestamp order for the sinks that show events one by one (exports): a sink adapter that
//! holds events back and hands them on in order of their timestamps.
//!
//! Sources yield events in the order their calls *ended* (a probe writes its record at the
//! exit), stamped with the time they *began*: a device fault's record comes after the
//! migration it ran, though it began first. [`Reorder`] keeps a window of the source's clock:
//! an event is handed on once an event [`Reorder::window_ns`] later has been seen (or a tick
//! says the clock passed it), and at the end all are. Memory is bounded by
//! [`Reorder::max_held`] events; past it the oldest goes on at once. An event older than one
//! already handed on cannot be put in order: it goes on where it arrived and is counted
//! ([`Reorder::late`]), never dropped.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use crate::capture::CaptureHeader;
use crate::event::Event;

use super::{Sink, Status};

/// Ten seconds of the source's clock: longer than any HMM call hmmtrace has seen take.
pub const DEFAULT_WINDOW_NS: u64 = 10_000_000_000;
/// Events held at most (about 100 MB).
pub const DEFAULT_MAX_HELD: usize = 1 << 20;

/// An event held back, ordered by timestamp, then by arrival.
struct Held {
    ts: u64,
    seq: u64,
    event: Event,
}

impl PartialEq for Held {
    fn eq(&self, other: &Held) -> bool {
        (self.ts, self.seq) == (other.ts, other.seq)
    }
}

impl Eq for Held {}

impl PartialOrd for Held {
    fn partial_cmp(&self, other: &Held) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Held {
    fn cmp(&self, other: &Held) -> std::cmp::Ordering {
        (self.ts, self.seq).cmp(&(other.ts, other.seq))
    }
}

pub struct Reorder<S> {
    inner: S,
    held: BinaryHeap<Reverse<Held>>,
    window_ns: u64,
    max_held: usize,
    /// The latest timestamp seen.
    newest: u64,
    /// The timestamp of the last event handed on.
    released: Option<u64>,
    late: u64,
    seq: u64,
}

impl<S: Sink> Reorder<S> {
    pub fn new(inner: S) -> Reorder<S> {
        Reorder::with_window(inner, DEFAULT_WINDOW_NS, DEFAULT_MAX_HELD)
    }

    pub fn with_window(inner: S, window_ns: u64, max_held: usize) -> Reorder<S> {
        Reorder {
            inner,
            held: BinaryHeap::new(),
            window_ns,
            max_held: max_held.max(1),
            newest: 0,
            released: None,
            late: 0,
            seq: 0,
        }
    }

    pub fn window_ns(&self) -> u64 {
        self.window_ns
    }

    pub fn max_held(&self) -> usize {
        self.max_held
    }

    /// Events that came later than the window allowed and went on out of order.
    pub fn late(&self) -> u64 {
        self.late
    }

    /// Hands on every held event at or before `upto`.
    fn release(&mut self, upto: u64) -> anyhow::Result<()> {
        while self.held.peek().is_some_and(|h| h.0.ts <= upto) {
            self.pop()?;
        }
        Ok(())
    }

    fn pop(&mut self) -> anyhow::Result<()> {
        if let Some(Reverse(h)) = self.held.pop() {
            self.released = Some(h.ts);
            self.inner.event(&h.event)?;
        }
        Ok(())
    }

    fn drain(&mut self) -> anyhow::Result<()> {
        while !self.held.is_empty() {
            self.pop()?;
        }
        Ok(())
    }
}

impl<S: Sink> Sink for Reorder<S> {
    fn begin(&mut self, header: &CaptureHeader) -> anyhow::Result<()> {
        self.inner.begin(header)
    }

    fn event(&mut self, event: &Event) -> anyhow::Result<()> {
        if self.released.is_some_and(|r| event.ts_ns < r) {
            self.late += 1;
            return self.inner.event(event);
        }
        self.seq += 1;
        self.newest = self.newest.max(event.ts_ns);
        self.held.push(Reverse(Held {
            ts: event.ts_ns,
            seq: self.seq,
            event: *event,
        }));
        if self.held.len() > self.max_held {
            self.pop()?;
        }
        self.release(self.newest.saturating_sub(self.window_ns))
    }

    fn status(&mut self, status: &Status) -> anyhow::Result<()> {
        // What ends or restarts the stream comes after every event of it.
        if matches!(status, Status::Finished(_) | Status::Restart) {
            self.drain()?;
        }
        if *status == Status::Restart {
            self.released = None;
            self.newest = 0;
        }
        self.inner.status(status)
    }

    fn tick(&mut self, now_ns: u64) -> anyhow::Result<()> {
        let upto = now_ns.saturating_sub(self.window_ns);
        self.release(upto)?;
        self.inner.tick(upto)
    }

    fn finding(&mut self, finding: &crate::findings::Finding) -> anyhow::Result<()> {
        self.inner.finding(finding)
    }

    fn finish(&mut self) -> anyhow::Result<()> {
        self.drain()?;
        self.inner.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Body;
    use crate::pipeline::from_fn;

    fn at(ts: u64) -> Event {
        crate::fixtures::event(ts, None, 1, Body::Lost(Default::default()))
    }

    fn run(window: u64, max_held: usize, ts: &[u64]) -> (Vec<u64>, u64) {
        let mut out = Vec::new();
        let late = {
            let mut r = Reorder::with_window(
                from_fn(|e| {
                    out.push(e.ts_ns);
                    Ok(())
                }),
                window,
                max_held,
            );
            for t in ts {
                r.event(&at(*t)).unwrap();
            }
            r.finish().unwrap();
            r.late()
        };
        (out, late)
    }

    #[test]
    fn events_within_the_window_come_out_in_timestamp_order() {
        let (out, late) = run(100, 1000, &[50, 10, 30, 200, 150, 400, 390, 1000]);
        assert_eq!(out, [10, 30, 50, 150, 200, 390, 400, 1000]);
        assert_eq!(late, 0);
    }

    #[test]
    fn an_event_later_than_the_window_is_kept_and_counted_not_dropped() {
        // 10 arrives after 500 moved the window past it and 50 went on.
        let (out, late) = run(100, 1000, &[50, 500, 10]);
        assert_eq!(out, [50, 10, 500]);
        assert_eq!(late, 1);
    }

    #[test]
    fn memory_is_bounded_by_max_held() {
        let ts: Vec<u64> = (0..100).rev().collect();
        let (out, _) = run(u64::MAX, 10, &ts);
        assert_eq!(out.len(), 100, "every event comes out");
    }
}
