//! The TUI's state: everything the panels show, fed through the TUI's sink and only read by
//! the draw loop.
//!
//! # One clock
//! Rates and the rolling latency window are binned by each event's own timestamp, on the
//! source's clock (the kernel's CLOCK_MONOTONIC, the engine's simulated clock, a capture's
//! own), in bins of [`App::bin_ns`] (one second unless the source runs slower than its clock,
//! as the demo does); ticks move the clock on when nothing happens. So a rate here is the rate
//! a report computes for the same events.
//!
//! # Bounded memory
//! However long it runs, the state holds a fixed amount: per series, [`RATE_HISTORY`] bins of
//! counts; per class one since-start set of durations (exact count, min, max, mean, and a
//! histogram of the reports' precision) and [`WINDOW_BINS`] per-bin sets for the rolling
//! window (histograms of [`WINDOW_DIGITS`] significant digits: a tenth of the memory); the last
//! [`LOG_CAPACITY`] events, in timestamp order; and top tables capped at [`TOP_CAPACITY`]
//! keys, past which new keys are counted under "other".

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt::Write as _;

use hdrhistogram::Histogram;
use hmmtrace_common::DIRECTION_TO_DEVICE;

use crate::capture::{CaptureHeader, ClockKind};
use crate::event::{Body, Class, Event};
use crate::labels::{DeviceNames, Symbols};
use crate::pipeline::Status;
pub use crate::pipeline::{Diagnostic, ProgramCost, ReplayPosition};
use crate::probe::PlanEntry;
use crate::stats::{Durations, MAX_TRACKABLE_NS};

/// Bins of rate history kept for the sparklines.
pub const RATE_HISTORY: usize = 300;
/// Length of the rolling latency window, in bins.
pub const WINDOW_BINS: usize = 10;
/// Significant digits of the rolling window's histograms (percentiles within 1 %).
pub const WINDOW_DIGITS: u8 = 2;
/// Events kept for the event log.
pub const LOG_CAPACITY: usize = 5000;
/// Keys per top table before new ones fold into "other".
pub const TOP_CAPACITY: usize = 1024;
/// eBPF diagnostics kept for the status panel.
pub const DIAGNOSTICS_CAPACITY: usize = 8;
/// The default bin: one second of the source's clock.
pub const SECOND: u64 = 1_000_000_000;

/// The rate series the TUI shows: the classes, with migrations split by direction, and the
/// `-EBUSY` retries of range faults.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Series {
    ToDevice,
    ToRam,
    DeviceFault,
    PageFree,
    Invalidation,
    IntervalInvalidate,
    RangeFault,
    /// `-EBUSY` retries before range faults (a count of retries, not of events).
    Retries,
    SystemMigration,
    Lost,
}

impl Series {
    pub const ALL: [Series; 10] = [
        Series::ToDevice,
        Series::ToRam,
        Series::DeviceFault,
        Series::PageFree,
        Series::Invalidation,
        Series::IntervalInvalidate,
        Series::RangeFault,
        Series::Retries,
        Series::SystemMigration,
        Series::Lost,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Series::ToDevice => "migrate → device",
            Series::ToRam => "migrate → RAM",
            Series::DeviceFault => "device faults",
            Series::PageFree => "page frees",
            Series::Invalidation => "invalidations",
            Series::IntervalInvalidate => "invalidate callbacks",
            Series::RangeFault => "range faults",
            Series::Retries => "-EBUSY retries",
            Series::SystemMigration => "system migrations",
            Series::Lost => "lost",
        }
    }

    /// The series an event counts in (besides [`Series::Retries`] for a range fault's
    /// retries).
    pub fn of(e: &Event) -> Series {
        let direction = match &e.body {
            Body::Migration(m) => m.direction,
            _ => 0,
        };
        Series::of_class(e.class(), direction)
    }

    /// The series of a class of events (for migrations, of their direction).
    pub fn of_class(class: Class, direction: u8) -> Series {
        match class {
            Class::Migration if direction == DIRECTION_TO_DEVICE => Series::ToDevice,
            Class::Migration => Series::ToRam,
            Class::DeviceFault => Series::DeviceFault,
            Class::PageFree => Series::PageFree,
            Class::Invalidation => Series::Invalidation,
            Class::IntervalInvalidate => Series::IntervalInvalidate,
            Class::RangeFault => Series::RangeFault,
            Class::SystemMigration => Series::SystemMigration,
            Class::Lost => Series::Lost,
        }
    }
}

/// Counts of one series per bin of the source's clock, over the last [`RATE_HISTORY`] bins.
#[derive(Clone, Debug, Default)]
pub struct Rate {
    /// Per-bin counts, oldest first; the last entry is the current (partial) bin.
    pub bins: VecDeque<u64>,
    /// The highest complete-bin count seen since start.
    pub peak: u64,
    /// Counted since start.
    pub total: u64,
}

impl Rate {
    /// The last complete bin's count (the current one is still filling).
    pub fn current(&self) -> u64 {
        let n = self.bins.len();
        if n >= 2 {
            self.bins[n - 2]
        } else {
            0
        }
    }
}

/// The exact figures of some durations, and a histogram for their percentiles.
#[derive(Clone, Copy, Debug)]
pub struct LatencyView<'a> {
    pub histogram: &'a Histogram<u64>,
    pub count: u64,
    pub min: u64,
    pub max: u64,
}

impl LatencyView<'_> {
    /// The exact max at 1, the histogram's value below (never outside the exact extremes).
    pub fn quantile(&self, q: f64) -> u64 {
        if q >= 1.0 {
            self.max
        } else {
            self.histogram
                .value_at_quantile(q)
                .clamp(self.min, self.max)
        }
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }
}

/// Latency of one class: since start, and over the rolling window.
pub struct Latency {
    pub since_start: Durations,
    /// The window's bins, oldest first; the last is the current bin.
    bins: VecDeque<Durations>,
    /// The union of `bins`' histograms, kept by adding and subtracting.
    window: Histogram<u64>,
}

impl Latency {
    fn new() -> Latency {
        Latency {
            since_start: Durations::default(),
            bins: VecDeque::from([Durations::new(WINDOW_DIGITS)]),
            window: window_histogram(),
        }
    }

    /// Records `ns`, `back` bins before the current one (beyond the window: since start only).
    fn record(&mut self, ns: u64, back: usize) {
        self.since_start.record(ns);
        if back < self.bins.len() {
            let i = self.bins.len() - 1 - back;
            self.bins[i].record(ns);
            self.window.saturating_record(ns.clamp(1, MAX_TRACKABLE_NS));
        }
    }

    /// A new bin began: the oldest leaves the window.
    fn tick(&mut self) {
        self.bins.push_back(Durations::new(WINDOW_DIGITS));
        while self.bins.len() > WINDOW_BINS {
            if let Some(old) = self.bins.pop_front() {
                // Same bounds and precision, and every value of `old` is in `window`.
                let _ = self.window.subtract(old.histogram());
            }
        }
    }

    pub fn since_start(&self) -> LatencyView<'_> {
        let d = &self.since_start;
        LatencyView {
            histogram: d.histogram(),
            count: d.count(),
            min: d.min().unwrap_or(0),
            max: d.max().unwrap_or(0),
        }
    }

    pub fn window(&self) -> LatencyView<'_> {
        let present = self.bins.iter().filter(|b| !b.is_empty());
        LatencyView {
            histogram: &self.window,
            count: self.bins.iter().map(Durations::count).sum(),
            min: present
                .clone()
                .filter_map(Durations::min)
                .min()
                .unwrap_or(0),
            max: present.filter_map(Durations::max).max().unwrap_or(0),
        }
    }
}

fn window_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_TRACKABLE_NS, WINDOW_DIGITS).expect("valid bounds")
}

/// One row of a top table.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TopRow {
    pub events: u64,
    /// Events per class, indexed by [`Class::index`].
    pub by_class: [u64; Class::COUNT],
    /// Pages the events concern (as in reports).
    pub pages: u64,
    /// Sum of the events' durations.
    pub time_ns: u64,
    /// The longest duration (exact).
    pub max_ns: u64,
}

impl TopRow {
    fn add(&mut self, e: &Event) {
        self.events += 1;
        self.by_class[e.class().index()] += 1;
        self.pages += e.pages();
        let d = e.duration_ns.unwrap_or(0);
        self.time_ns = self.time_ns.saturating_add(d);
        self.max_ns = self.max_ns.max(d);
    }
}

/// A top table: rows by key, at most [`TOP_CAPACITY`] of them plus "other".
#[derive(Clone, Debug, Default)]
pub struct Top {
    pub rows: HashMap<String, TopRow>,
    pub other: TopRow,
}

impl Top {
    fn add(&mut self, key: &str, e: &Event) {
        if let Some(r) = self.rows.get_mut(key) {
            r.add(e);
        } else if self.rows.len() < TOP_CAPACITY {
            self.rows.entry(key.to_string()).or_default().add(e);
        } else {
            self.other.add(e);
        }
    }
}

/// An event in the log, with what the log shows beside it.
#[derive(Clone, Debug)]
pub struct LogEntry {
    /// 1 for the first event ingested, then +1.
    pub seq: u64,
    pub event: Event,
    pub device: Option<std::sync::Arc<str>>,
}

/// What a source tells the TUI about itself.
#[derive(Clone, Debug, Default)]
pub struct SourceInfo {
    /// One line: "kernel 6.12.0 (live)", "engine: gpu-stream", "replay: run.hmt".
    pub title: String,
    /// The attach plan (kernel sources), as captures record it.
    pub probes: Vec<PlanEntry>,
    /// The clock of the events' times.
    pub clock: Option<ClockKind>,
}

pub struct App {
    pub source: SourceInfo,
    devices: DeviceNames,
    /// Events and pages per class, indexed by [`Class::index`].
    pub totals: [u64; Class::COUNT],
    pub pages: [u64; Class::COUNT],
    pub events: u64,
    /// Width of a rate bin and of a window bin, ns of the source's clock.
    pub bin_ns: u64,
    pub rates: BTreeMap<Series, Rate>,
    pub latency: BTreeMap<Class, Latency>,
    pub by_process: Top,
    pub by_device: Top,
    pub by_symbol: Top,
    /// The most recent events, in timestamp order.
    pub log: VecDeque<LogEntry>,
    /// `Lost` counts per probe name.
    pub lost: BTreeMap<String, u64>,
    pub costs: Vec<ProgramCost>,
    /// Why there are no program costs, when the source said.
    pub notice: Option<String>,
    /// Ring-buffer records that did not decode.
    pub malformed: u64,
    /// The last eBPF diagnostics (`--ebpf-log`), oldest first.
    pub diagnostics: VecDeque<Diagnostic>,
    /// Set when the source has no more events (a replay or a scenario ended, a command exited).
    pub finished: Option<String>,
    /// What the detectors found (when the pipeline runs them).
    pub findings: crate::findings::FindingList,
    /// Device pages and their lifetimes.
    pub device_pages: crate::findings::pages::Pages,
    pub replay: Option<ReplayPosition>,
    /// The newest bin on the source's clock (see [`App::advance`]).
    bin: Option<u64>,
    /// The earliest and latest event timestamps.
    pub first_ts: Option<u64>,
    pub last_ts: u64,
    symbols: Symbols,
    /// Device labels by owner, shared with the log's entries.
    device_labels: HashMap<u64, std::sync::Arc<str>>,
    /// Scratch for the process table's key.
    key: String,
    /// Bumped by every change to what the panels show: the draw loop redraws only when it
    /// moved (or the viewer pressed a key), so an idle TUI costs next to nothing.
    pub generation: u64,
    /// `--aggregate`: the last in-kernel snapshot (the next one's rates are the difference).
    pub aggregate: Option<std::sync::Arc<crate::aggregate::Snapshot>>,
}

impl App {
    /// An empty state titled `title`; [`App::begin`] takes the source's header.
    pub fn new(title: String, show_pointers: bool) -> App {
        App::fresh(
            SourceInfo {
                title,
                ..SourceInfo::default()
            },
            DeviceNames::empty(show_pointers),
            Symbols::default(),
            SECOND,
        )
    }

    /// Rates and windows in bins of `bin_ns` of the source's clock instead of one second (for
    /// a source that runs slower than its clock, so that a bin still closes every second).
    pub fn with_bin(mut self, bin_ns: u64) -> App {
        self.bin_ns = bin_ns.max(1);
        self
    }

    /// The source's header: its device names, its plan, how its events are named by symbol,
    /// its clock.
    pub fn begin(&mut self, header: &CaptureHeader) {
        self.generation += 1;
        self.devices = DeviceNames::new(header, self.devices.shows_pointers());
        self.symbols = Symbols::new(header);
        self.device_pages = crate::findings::pages::Pages::new(header.page_size);
        self.source.probes = header.probe_plan.clone();
        self.source.clock = Some(header.clock);
        self.device_labels.clear();
    }

    /// A source's status message.
    pub fn status(&mut self, status: &Status) {
        self.generation += 1;
        match status {
            Status::ProgramCosts(c) => self.costs = c.clone(),
            Status::NoProgramCosts(why) => self.notice = Some(format!("no program costs: {why}")),
            Status::Malformed(n) => self.malformed = *n,
            Status::Diagnostic(d) => {
                if self.diagnostics.len() == DIAGNOSTICS_CAPACITY {
                    self.diagnostics.pop_front();
                }
                self.diagnostics.push_back(d.clone());
            }
            Status::Truncated { dropped_bytes, .. } => {
                self.notice = Some(format!(
                    "{dropped_bytes} bytes of an incomplete last block dropped"
                ))
            }
            Status::Replay(p) => self.replay = Some(*p),
            Status::Restart => self.clear(),
            Status::Finished(f) => self.finished = Some(f.to_string()),
            Status::Detecting => self.findings.checked = true,
            Status::Aggregate(s) => self.aggregate(s),
            Status::Census(_) => {}
            Status::Plan(p) => {
                self.source.probes = p.plan.clone();
                if let Some(last) = p.changes.last() {
                    self.notice = Some(last.clone());
                }
            }
        }
    }

    /// Device names as every view shows them.
    pub fn device_names(&self) -> DeviceNames {
        self.devices.clone()
    }

    /// A finding the detectors concluded.
    pub fn finding(&mut self, f: &crate::findings::Finding) {
        self.generation += 1;
        self.findings.add(f);
    }

    fn fresh(source: SourceInfo, devices: DeviceNames, symbols: Symbols, bin_ns: u64) -> App {
        App {
            source,
            devices,
            totals: [0; Class::COUNT],
            pages: [0; Class::COUNT],
            events: 0,
            bin_ns,
            rates: Series::ALL.iter().map(|s| (*s, Rate::default())).collect(),
            latency: Class::TIMED.iter().map(|c| (*c, Latency::new())).collect(),
            by_process: Top::default(),
            by_device: Top::default(),
            by_symbol: Top::default(),
            log: VecDeque::with_capacity(LOG_CAPACITY),
            lost: BTreeMap::new(),
            costs: Vec::new(),
            notice: None,
            malformed: 0,
            diagnostics: VecDeque::new(),
            finished: None,
            findings: crate::findings::FindingList::default(),
            device_pages: crate::findings::pages::Pages::new(4096),
            replay: None,
            bin: None,
            first_ts: None,
            last_ts: 0,
            symbols,
            device_labels: HashMap::new(),
            key: String::new(),
            generation: 0,
            aggregate: None,
        }
    }

    /// An in-kernel snapshot (`--aggregate`, cumulative): totals, pages, the process and
    /// device tables and the latencies since start are the snapshot's; what it added since
    /// the previous one counts in the current rate bin and latency window. No event log, no
    /// per-symbol table: aggregates keep no single event.
    fn aggregate(&mut self, snap: &std::sync::Arc<crate::aggregate::Snapshot>) {
        self.advance(snap.at_ns);
        let prev = self.aggregate.replace(snap.clone());
        // Detectors need single events: the findings panel must not say "none".
        self.findings.checked = false;
        let lost = self.totals[Class::Lost.index()];
        let lost_pages = self.pages[Class::Lost.index()];
        self.totals = [0; Class::COUNT];
        self.pages = [0; Class::COUNT];
        self.totals[Class::Lost.index()] = lost;
        self.pages[Class::Lost.index()] = lost_pages;
        self.by_process = Top::default();
        self.by_device = Top::default();
        for (g, gained) in snap.gained(prev.as_deref()) {
            let i = g.class.index();
            self.totals[i] += g.count;
            self.pages[i] += g.pages;
            let series = Series::of_class(g.class, g.direction);
            for (series, n) in [(series, gained.count), (Series::Retries, gained.retries)] {
                let rate = self.rates.get_mut(&series).expect("every series");
                rate.total += n;
                if let Some(last) = rate.bins.back_mut() {
                    *last += n;
                }
            }
            let row = TopRow {
                events: g.count,
                by_class: {
                    let mut c = [0; Class::COUNT];
                    c[i] = g.count;
                    c
                },
                pages: g.pages,
                time_ns: g.sum_ns,
                max_ns: g.max_ns,
            };
            let merge = |top: &mut Top, key: String| {
                let r = if top.rows.contains_key(&key) || top.rows.len() < TOP_CAPACITY {
                    top.rows.entry(key).or_default()
                } else {
                    &mut top.other
                };
                r.events += row.events;
                r.by_class[i] += row.events;
                r.pages += row.pages;
                r.time_ns = r.time_ns.saturating_add(row.time_ns);
                r.max_ns = r.max_ns.max(row.max_ns);
            };
            merge(&mut self.by_process, format!("{} [{}]", g.comm, g.tgid));
            if g.owner != 0 {
                let name = self.devices.name(g.owner).unwrap_or("?").to_string();
                merge(&mut self.by_device, name);
            }
            if g.count > 0 {
                self.first_ts = Some(self.first_ts.map_or(g.first_ns, |t| t.min(g.first_ns)));
                self.last_ts = self.last_ts.max(g.last_ns);
            }
        }
        self.events = self.totals.iter().sum();
        for (class, l) in &mut self.latency {
            l.since_start = snap.durations(|g| g.class == *class, |h| h.class == *class);
        }
        // What the histograms gained since the last snapshot goes in the window.
        for (class, mid, n) in snap.durations_gained(prev.as_deref()) {
            if let Some(l) = self.latency.get_mut(&class) {
                if let Some(bin) = l.bins.back_mut() {
                    bin.record_n(mid, n);
                }
                let _ = l.window.record_n(mid, n);
            }
        }
    }

    /// Takes a batch of events; the source's clock has reached `now_ns`.
    pub fn ingest(&mut self, events: &[Event], now_ns: u64) {
        if !events.is_empty() {
            self.generation += 1;
        }
        for e in events {
            self.add(e);
        }
        self.advance(now_ns);
    }

    /// Moves the clock to `now_ns`, opening new bins as needed (never backwards).
    pub fn advance(&mut self, now_ns: u64) {
        let bin = now_ns / self.bin_ns;
        let prev = *self.bin.get_or_insert(bin);
        if self.rates.values().all(|r| r.bins.is_empty()) {
            for r in self.rates.values_mut() {
                r.bins.push_back(0);
            }
        }
        if bin <= prev {
            return;
        }
        // A bin closed: the rates and the window move.
        self.generation += 1;
        let gap = (bin - prev).min(RATE_HISTORY as u64 + WINDOW_BINS as u64);
        for _ in 0..gap {
            for r in self.rates.values_mut() {
                if let Some(&last) = r.bins.back() {
                    r.peak = r.peak.max(last);
                }
                r.bins.push_back(0);
                while r.bins.len() > RATE_HISTORY {
                    r.bins.pop_front();
                }
            }
            for l in self.latency.values_mut() {
                l.tick();
            }
        }
        self.bin = Some(bin);
    }

    fn add(&mut self, e: &Event) {
        // An event later than the clock moves it; an earlier one counts in its own bin.
        self.advance(e.ts_ns);
        let back = self
            .bin
            .map_or(0, |now| now.saturating_sub(e.ts_ns / self.bin_ns)) as usize;
        let class = e.class();
        self.events += 1;
        self.totals[class.index()] += 1;
        self.pages[class.index()] += e.pages();
        self.device_pages.event(e);
        self.first_ts = Some(self.first_ts.map_or(e.ts_ns, |t| t.min(e.ts_ns)));
        self.last_ts = self.last_ts.max(e.ts_ns);
        let mut count = |series: Series, n: u64| {
            let rate = self.rates.get_mut(&series).expect("every series");
            rate.total += n;
            if back < rate.bins.len() {
                let i = rate.bins.len() - 1 - back;
                rate.bins[i] += n;
                // A late event can raise a bin that already closed.
                if back > 0 {
                    rate.peak = rate.peak.max(rate.bins[i]);
                }
            }
        };
        count(Series::of(e), 1);
        if e.retries() > 0 {
            count(Series::Retries, e.retries());
        }
        if let (Some(d), Some(l)) = (e.duration_ns, self.latency.get_mut(&class)) {
            l.record(d, back);
        }
        if let Body::Lost(l) = &e.body {
            let name = hmmtrace_common::ProbeId::from_u32(l.probe).map_or("unknown", |p| p.name());
            *self.lost.entry(name.to_string()).or_default() += l.count;
        }
        // Keys are built in a reused buffer and device names shared: nothing per event
        // allocates once the tables have their rows.
        self.key.clear();
        let _ = write!(self.key, "{} [{}]", e.comm, e.tgid);
        self.by_process.add(&self.key, e);
        let device = e.body.device().map(|owner| {
            let names = &mut self.devices;
            self.device_labels
                .entry(owner)
                .or_insert_with(|| names.name(owner).unwrap_or("?").into())
                .clone()
        });
        if let Some(name) = &device {
            self.by_device.add(name, e);
        }
        let sym = self.symbols.of(e);
        self.by_symbol.add(sym, e);
        if self.log.len() == LOG_CAPACITY {
            self.log.pop_front();
        }
        let entry = LogEntry {
            seq: self.events,
            event: *e,
            device,
        };
        // In timestamp order: events arrive in the order their calls ended.
        let at = self.log.partition_point(|x| x.event.ts_ns <= e.ts_ns);
        self.log.insert(at, entry);
    }

    pub fn total(&self, class: Class) -> u64 {
        self.totals[class.index()]
    }

    pub fn total_lost(&self) -> u64 {
        self.lost.values().sum()
    }

    /// Events per second of the source's clock in `series`' last complete bin.
    pub fn current_rate(&self, series: Series) -> f64 {
        self.rates[&series].current() as f64 * SECOND as f64 / self.bin_ns as f64
    }

    /// The highest rate of a complete bin since start.
    pub fn peak_rate(&self, series: Series) -> f64 {
        let r = &self.rates[&series];
        r.peak.max(r.current()) as f64 * SECOND as f64 / self.bin_ns as f64
    }

    /// Events per second of the source's clock over everything seen: what a report says.
    pub fn average_rate(&self, series: Series) -> f64 {
        let span = self.last_ts.saturating_sub(self.first_ts.unwrap_or(0));
        crate::stats::rate(self.rates[&series].total, span)
    }

    /// Forgets every event (a replay seeking backwards starts over); keeps the source's
    /// description, device names and program costs.
    pub fn clear(&mut self) {
        let mut fresh = App::fresh(
            std::mem::take(&mut self.source),
            std::mem::take(&mut self.devices),
            std::mem::take(&mut self.symbols),
            self.bin_ns,
        );
        fresh.costs = std::mem::take(&mut self.costs);
        fresh.notice = self.notice.take();
        fresh.device_labels = std::mem::take(&mut self.device_labels);
        fresh.replay = self.replay;
        fresh.device_pages = crate::findings::pages::Pages::new(self.device_pages.page_size());
        fresh.generation = self.generation + 1;
        *self = fresh;
    }
}

#[cfg(test)]
mod tests;
