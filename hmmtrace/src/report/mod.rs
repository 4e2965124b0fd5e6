//! Latency and count reports over any stream of events. [`Summary`] is a sink that aggregates;
//! [`text`], [`json`], [`hgrm`] and [`html`] render it, [`compare`] sets two side by side and
//! [`hdrlog`] writes interval histograms as they go by; [`live`] redraws a summary as a source
//! runs.
//!
//! Rows are per [`Class`] (an invalidation apart from the driver callbacks it runs). Counts,
//! pages, min, max and mean are exact ([`Durations`]); percentiles come from the histogram,
//! within [`SIGNIFICANT_DIGITS`].
//!
//! Memory does not grow with the number of events: one histogram per class, per group at most
//! [`GROUP_CAPACITY`] groups (then "(other)"), and per class a rate series of at most
//! [`MAX_BINS`] bins whose width doubles as a capture grows longer.

pub mod compare;
pub mod hdrlog;
pub mod heat;
pub mod hgrm;
pub mod html;
pub mod json;
pub mod live;
pub mod text;

use std::collections::BTreeMap;

use crate::capture::{CaptureHeader, ClockKind};
use crate::event::{Body, Class, Event};
use crate::findings::pages::Pages;
use crate::findings::{Finding, FindingList};
use crate::labels::{DeviceNames, Symbols};
use crate::pipeline::{Sink, Status};
pub use crate::stats::{Durations, MAX_TRACKABLE_NS, SIGNIFICANT_DIGITS};

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
    /// Migrations by direction (to the device, to RAM); other events as "(none)".
    Direction,
    /// Migrations by API (migrate_vma, migrate_device); other events as "(none)".
    Api,
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
        // Fine to start with (an engine scenario can span 300 us); bins double as needed.
        RateSeries {
            start_ns,
            bin_ns: 1_000,
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

/// Aggregates of one class of events.
#[derive(Clone, Default)]
pub struct KindStats {
    pub count: u64,
    /// Pages the events concern ([`Event::pages`]).
    pub pages: u64,
    /// `-EBUSY` retries of range faults before their call.
    pub retries: u64,
    pub first_ts: Option<u64>,
    pub last_ts: u64,
    /// Entry-to-exit durations, for the events that have one.
    pub latency: Durations,
}

impl KindStats {
    fn add(&mut self, e: &Event) {
        let end = e.ts_ns + e.duration_ns.unwrap_or(0);
        self.count += 1;
        self.first_ts = Some(self.first_ts.map_or(e.ts_ns, |t| t.min(e.ts_ns)));
        self.last_ts = self.last_ts.max(end);
        self.pages += e.pages();
        self.retries += e.retries();
        if let Some(d) = e.duration_ns {
            self.latency.record(d);
        }
    }

    /// Like the default, with a histogram that grows only as far as its largest value: groups
    /// are many, and most see short latencies only.
    fn growing() -> KindStats {
        KindStats {
            latency: Durations::growing(),
            ..KindStats::default()
        }
    }
}

/// The aggregate of a stream of events.
pub struct Summary {
    pub kinds: BTreeMap<Class, KindStats>,
    /// With a grouping other than by kind: the same per group.
    pub by: GroupBy,
    pub groups: BTreeMap<String, BTreeMap<Class, KindStats>>,
    pub events: u64,
    pub first_ts: u64,
    pub last_ts: u64,
    /// `Lost` records' counts, by probe name.
    pub lost: BTreeMap<String, u64>,
    /// Events over time, per class.
    pub series: BTreeMap<Class, RateSeries>,
    /// The clock the events' times are on (from the source's header; `None` before `begin`).
    pub clock: Option<ClockKind>,
    /// Bytes of incomplete last blocks the capture source left unread.
    pub dropped_bytes: u64,
    /// What the detectors found (when the pipeline runs them: `pipeline::detect`).
    pub findings: FindingList,
    /// Device pages and their lifetimes, per device.
    pub pages: Pages,
    /// Device names for the device table (from the header at `begin`).
    pub device_names: Option<DeviceNames>,
    /// Where in their address spaces processes migrated and faulted, when (the HTML heat map).
    pub heat: heat::Heat,
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
            clock: None,
            dropped_bytes: 0,
            findings: FindingList::default(),
            pages: Pages::new(4096),
            device_names: None,
            heat: heat::Heat::default(),
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
        let class = e.class();
        self.kinds.entry(class).or_default().add(e);
        self.pages.event(e);
        self.heat.add(e);
        let origin = *self.origin.get_or_insert(e.ts_ns);
        self.series
            .entry(class)
            .or_insert_with(|| RateSeries::new(origin))
            .add(e.ts_ns);
        if let Body::Lost(l) = &e.body {
            let name = hmmtrace_common::ProbeId::from_u32(l.probe).map_or("unknown", |p| p.name());
            *self.lost.entry(name.to_string()).or_default() += l.count;
        }
        if self.by == GroupBy::Kind {
            return;
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
                .entry(class)
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
            GroupBy::Direction => match &e.body {
                Body::Migration(m) if m.direction == hmmtrace_common::DIRECTION_TO_DEVICE => {
                    "to_device".into()
                }
                Body::Migration(_) => "to_ram".into(),
                _ => "(none)".into(),
            },
            GroupBy::Api => match &e.body {
                Body::Migration(m) if m.api == hmmtrace_common::API_MIGRATE_DEVICE => {
                    "migrate_device".into()
                }
                Body::Migration(_) => "migrate_vma".into(),
                _ => "(none)".into(),
            },
        })
    }

    /// Time the events span, in ns (0 for fewer than two instants).
    pub fn span_ns(&self) -> u64 {
        self.last_ts.saturating_sub(self.first_ts)
    }

    /// Events per second over the whole stream's span.
    pub fn rate(&self, class: Class) -> f64 {
        crate::stats::rate(self.count(class), self.span_ns())
    }

    pub fn count(&self, class: Class) -> u64 {
        self.kinds.get(&class).map_or(0, |k| k.count)
    }

    pub fn total_lost(&self) -> u64 {
        self.lost.values().sum()
    }

    /// The devices' page accounting, each with its name, in order of first appearance.
    pub fn devices(&self) -> Vec<(String, &crate::findings::pages::DevicePages)> {
        let mut names = self
            .device_names
            .clone()
            .unwrap_or_else(|| DeviceNames::empty(false));
        self.pages
            .devices
            .iter()
            .map(|(owner, d)| (names.name(*owner).unwrap_or("?").to_string(), d))
            .collect()
    }
}

impl Sink for Summary {
    fn begin(&mut self, header: &CaptureHeader) -> anyhow::Result<()> {
        self.clock = Some(header.clock);
        self.pages = Pages::new(header.page_size);
        self.device_names = Some(DeviceNames::new(header, false));
        Ok(())
    }

    fn finding(&mut self, finding: &Finding) -> anyhow::Result<()> {
        self.findings.add(finding);
        Ok(())
    }

    fn event(&mut self, event: &Event) -> anyhow::Result<()> {
        self.add(event);
        Ok(())
    }

    fn status(&mut self, status: &Status) -> anyhow::Result<()> {
        match status {
            Status::Truncated { dropped_bytes, .. } => self.dropped_bytes += dropped_bytes,
            Status::Detecting => self.findings.checked = true,
            _ => {}
        }
        Ok(())
    }
}

/// A device's row of the device-pages table, as every format prints it: pages in, back,
/// evicted, freed, held, the lifetime's p50, p90, p99 and max, and the unmeasured pages.
pub fn device_cells(d: &crate::findings::pages::DevicePages) -> [String; 10] {
    let q = |q: f64| d.lifetime.quantile(q).map_or("-".to_string(), text::fmt_ns);
    [
        d.to_device.to_string(),
        d.back.to_string(),
        d.evicted.to_string(),
        d.freed.to_string(),
        d.held().to_string(),
        q(0.5),
        q(0.9),
        q(0.99),
        q(1.0),
        d.unmeasured.to_string(),
    ]
}

/// The percentiles every report shows, as (label, quantile); `max` is the exact maximum.
pub const PERCENTILES: [(&str, f64); 5] = [
    ("p50", 0.50),
    ("p90", 0.90),
    ("p99", 0.99),
    ("p99.9", 0.999),
    ("max", 1.0),
];
