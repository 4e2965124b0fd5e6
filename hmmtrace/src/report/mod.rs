//! Latency and count reports over any stream of events. [`Summary`] is a sink that aggregates;
//! [`text`], [`json`], [`hgrm`] and [`html`] render it, [`compare`] sets two side by side and
//! [`hdrlog`] writes interval histograms as they go by; [`live`] redraws a summary as a source
//! runs.
//!
//! Memory does not grow with the number of events: one histogram per kind, per group at most
//! [`GROUP_CAPACITY`] groups (then "(other)"), and per kind a rate series of at most
//! [`MAX_BINS`] bins whose width doubles as a capture grows longer.

pub mod compare;
pub mod hdrlog;
pub mod hgrm;
pub mod html;
pub mod json;
pub mod live;
pub mod text;

use std::collections::BTreeMap;

use hdrhistogram::Histogram;

use crate::capture::CaptureHeader;
use crate::event::{Body, Event, EventKind};
use crate::labels::{DeviceNames, Symbols};
use crate::pipeline::{Sink, Status};

/// How `report --by` groups rows (always per kind within a group).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum GroupBy {
    #[default]
    Kind,
    /// By process: `comm [tgid]`.
    Pid,
    Comm,
    /// By pgmap owner (named as in the TUI: the engine's names, else dev1, dev2, ...).
    Device,
    /// By the kernel function or driver callback the event was seen at.
    Symbol,
}

/// Groups a grouped report keeps before the rest are counted as "(other)".
pub const GROUP_CAPACITY: usize = 256;

/// Most bins a rate series keeps; past it, bins double in width.
pub const MAX_BINS: usize = 2048;

/// Events per time bin, from the first event on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RateSeries {
    pub start_ns: u64,
    pub bin_ns: u64,
    pub counts: Vec<u64>,
}

impl RateSeries {
    fn new(start_ns: u64) -> RateSeries {
        RateSeries {
            start_ns,
            bin_ns: 1_000_000,
            counts: Vec::new(),
        }
    }

    fn add(&mut self, ts: u64) {
        let mut i = (ts.saturating_sub(self.start_ns) / self.bin_ns) as usize;
        while i >= MAX_BINS {
            // Halve the resolution: pairs of bins become one.
            self.counts = self.counts.chunks(2).map(|c| c.iter().sum()).collect();
            self.bin_ns *= 2;
            i = (ts.saturating_sub(self.start_ns) / self.bin_ns) as usize;
        }
        if self.counts.len() <= i {
            self.counts.resize(i + 1, 0);
        }
        self.counts[i] += 1;
    }
}

/// What naming groups needs from the capture.
struct Namer {
    devices: DeviceNames,
    symbols: Symbols,
}

/// Significant decimal digits the histograms keep: values are exact to 1 part in 1000.
pub const SIGNIFICANT_DIGITS: u8 = 3;

/// Longest duration a histogram tracks exactly (one hour); longer ones are recorded as this.
/// Fixed bounds keep each histogram's memory constant.
pub const MAX_TRACKABLE_NS: u64 = 3_600_000_000_000;

/// Aggregates of one event kind.
#[derive(Clone)]
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

impl Default for KindStats {
    fn default() -> Self {
        KindStats::new()
    }
}

impl KindStats {
    fn add(&mut self, e: &Event) {
        let end = e.ts_ns + e.duration_ns.unwrap_or(0);
        self.count += 1;
        self.first_ts = self.first_ts.min(e.ts_ns);
        self.last_ts = self.last_ts.max(end);
        self.pages += e.pages();
        if let Some(d) = e.duration_ns {
            // Saturates at MAX_TRACKABLE_NS; a zero duration counts as 1 ns (the lowest bucket).
            let v = d.clamp(1, MAX_TRACKABLE_NS);
            // A growing histogram must grow, not saturate at its current top.
            if self.latency.is_auto_resize() {
                let _ = self.latency.record(v);
            } else {
                self.latency.saturating_record(v);
            }
        }
    }

    /// Like [`KindStats::new`], with a histogram that grows only as far as the largest value
    /// recorded: groups are many, and most see short latencies only.
    fn growing() -> KindStats {
        let mut latency = Histogram::new(SIGNIFICANT_DIGITS).expect("precision is valid");
        latency.auto(true);
        KindStats::with(latency)
    }

    pub fn new() -> KindStats {
        KindStats::with(
            Histogram::new_with_bounds(1, MAX_TRACKABLE_NS, SIGNIFICANT_DIGITS)
                .expect("bounds and precision are valid"),
        )
    }

    fn with(latency: Histogram<u64>) -> KindStats {
        KindStats {
            count: 0,
            pages: 0,
            first_ts: u64::MAX,
            last_ts: 0,
            latency,
        }
    }
}

/// The aggregate of a stream of events.
pub struct Summary {
    pub kinds: BTreeMap<EventKind, KindStats>,
    /// With a grouping other than by kind: the same per group.
    pub by: GroupBy,
    pub groups: BTreeMap<String, BTreeMap<EventKind, KindStats>>,
    pub events: u64,
    pub first_ts: u64,
    pub last_ts: u64,
    /// `Lost` records' counts, by probe name.
    pub lost: BTreeMap<String, u64>,
    /// Events over time, per kind.
    pub series: BTreeMap<EventKind, RateSeries>,
    /// Bytes of incomplete last blocks the capture source left unread.
    pub dropped_bytes: u64,
    origin: Option<u64>,
    namer: Option<Namer>,
}

impl Default for Summary {
    fn default() -> Self {
        Summary {
            kinds: BTreeMap::new(),
            by: GroupBy::Kind,
            groups: BTreeMap::new(),
            events: 0,
            first_ts: u64::MAX,
            last_ts: 0,
            lost: BTreeMap::new(),
            series: BTreeMap::new(),
            dropped_bytes: 0,
            origin: None,
            namer: None,
        }
    }
}

impl Summary {
    /// A summary that also groups by `by`, naming devices and symbols from `header`.
    pub fn grouped(by: GroupBy, header: &CaptureHeader, show_pointers: bool) -> Summary {
        Summary {
            by,
            namer: Some(Namer {
                devices: DeviceNames::new(header, show_pointers),
                symbols: Symbols::new(header),
            }),
            ..Summary::default()
        }
    }

    pub fn add(&mut self, e: &Event) {
        self.events += 1;
        self.first_ts = self.first_ts.min(e.ts_ns);
        let end = e.ts_ns + e.duration_ns.unwrap_or(0);
        self.last_ts = self.last_ts.max(end);
        self.kinds.entry(e.kind()).or_default().add(e);
        let origin = *self.origin.get_or_insert(e.ts_ns);
        self.series
            .entry(e.kind())
            .or_insert_with(|| RateSeries::new(origin))
            .add(e.ts_ns);
        if let Body::Lost(l) = &e.body {
            let name = hmmtrace_common::ProbeId::from_u32(l.probe).map_or("unknown", |p| p.name());
            *self.lost.entry(name.to_string()).or_default() += l.count;
        }
        if let Some(key) = self.group_of(e) {
            let key = if self.groups.contains_key(&key) || self.groups.len() < GROUP_CAPACITY {
                key
            } else {
                "(other)".to_string()
            };
            self.groups
                .entry(key)
                .or_default()
                .entry(e.kind())
                .or_insert_with(KindStats::growing)
                .add(e);
        }
    }

    fn group_of(&mut self, e: &Event) -> Option<String> {
        let namer = self.namer.as_mut()?;
        Some(match self.by {
            GroupBy::Kind => return None,
            GroupBy::Pid => format!("{} [{}]", e.comm, e.tgid),
            GroupBy::Comm => e.comm.to_string(),
            GroupBy::Device => e
                .body
                .device()
                .and_then(|o| namer.devices.name(o))
                .unwrap_or("(none)")
                .to_string(),
            GroupBy::Symbol => namer.symbols.of(e).to_string(),
        })
    }

    /// Time the events span, in ns (0 for fewer than two instants).
    pub fn span_ns(&self) -> u64 {
        self.last_ts.saturating_sub(self.first_ts)
    }

    /// Events per second over the whole stream's span.
    pub fn rate(&self, kind: EventKind) -> f64 {
        text::rate(self.count(kind), self.span_ns())
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

    fn status(&mut self, status: &Status) -> anyhow::Result<()> {
        if let Status::Truncated { dropped_bytes, .. } = status {
            self.dropped_bytes += dropped_bytes;
        }
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
