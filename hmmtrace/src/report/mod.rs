//! Latency and count reports over any stream of events. [`Summary`] is a sink that aggregates;
//! [`text`] and [`json`] render it. Memory does not grow with the number of events: one
//! histogram per kind.

pub mod json;
pub mod text;

use std::collections::BTreeMap;

use hdrhistogram::Histogram;

use crate::event::{Body, Event, EventKind, Sink};

/// Significant decimal digits the histograms keep: values are exact to 1 part in 1000.
pub const SIGNIFICANT_DIGITS: u8 = 3;

/// Longest duration a histogram tracks exactly (one hour); longer ones are recorded as this.
/// Fixed bounds keep each histogram's memory constant.
pub const MAX_TRACKABLE_NS: u64 = 3_600_000_000_000;

/// Aggregates of one event kind.
pub struct KindStats {
    pub count: u64,
    /// Pages the events of this kind concern: migrated pages, range-faulted pages, freed pages,
    /// faults (one page each), dropped records for `lost`.
    pub pages: u64,
    pub first_ts: u64,
    pub last_ts: u64,
    /// Entry-to-exit durations in ns, for the events that have one.
    pub latency: Histogram<u64>,
}

impl KindStats {
    fn new() -> KindStats {
        KindStats {
            count: 0,
            pages: 0,
            first_ts: u64::MAX,
            last_ts: 0,
            latency: Histogram::new_with_bounds(1, MAX_TRACKABLE_NS, SIGNIFICANT_DIGITS)
                .expect("bounds and precision are valid"),
        }
    }
}

/// The aggregate of a stream of events.
pub struct Summary {
    pub kinds: BTreeMap<EventKind, KindStats>,
    pub events: u64,
    pub first_ts: u64,
    pub last_ts: u64,
    /// `Lost` records' counts, by probe name.
    pub lost: BTreeMap<String, u64>,
}

impl Default for Summary {
    fn default() -> Self {
        Summary {
            kinds: BTreeMap::new(),
            events: 0,
            first_ts: u64::MAX,
            last_ts: 0,
            lost: BTreeMap::new(),
        }
    }
}

impl Summary {
    pub fn add(&mut self, e: &Event) {
        self.events += 1;
        self.first_ts = self.first_ts.min(e.ts_ns);
        let end = e.ts_ns + e.duration_ns.unwrap_or(0);
        self.last_ts = self.last_ts.max(end);
        let k = self.kinds.entry(e.kind()).or_insert_with(KindStats::new);
        k.count += 1;
        k.first_ts = k.first_ts.min(e.ts_ns);
        k.last_ts = k.last_ts.max(end);
        k.pages += e.pages();
        if let Body::Lost(l) = &e.body {
            let name = hmmtrace_common::ProbeId::from_u32(l.probe).map_or("unknown", |p| p.name());
            *self.lost.entry(name.to_string()).or_default() += l.count;
        }
        if let Some(d) = e.duration_ns {
            // Saturates at MAX_TRACKABLE_NS; a zero duration counts as 1 ns (the lowest bucket).
            k.latency.saturating_record(d.max(1));
        }
    }

    /// Time the events span, in ns (0 for fewer than two instants).
    pub fn span_ns(&self) -> u64 {
        self.last_ts.saturating_sub(self.first_ts)
    }

    /// Events per second over the whole stream's span.
    pub fn rate(&self, kind: EventKind) -> f64 {
        let span = self.span_ns();
        match self.kinds.get(&kind) {
            Some(k) if span > 0 => k.count as f64 * 1e9 / span as f64,
            _ => 0.0,
        }
    }

    pub fn count(&self, kind: EventKind) -> u64 {
        self.kinds.get(&kind).map_or(0, |k| k.count)
    }

    pub fn total_lost(&self) -> u64 {
        self.lost.values().sum()
    }
}

impl Sink for Summary {
    fn event(&mut self, event: &Event) -> anyhow::Result<()> {
        self.add(event);
        Ok(())
    }
}

/// The percentiles every report shows, as (label, quantile).
pub const PERCENTILES: [(&str, f64); 5] = [
    ("p50", 0.50),
    ("p90", 0.90),
    ("p99", 0.99),
    ("p99.9", 0.999),
    ("max", 1.0),
];
