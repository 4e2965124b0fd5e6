//! The TUI's state: everything the panels show, fed by any source through [`App::ingest`] and
//! only read by the draw loop.
//!
//! # Bounded memory
//! However long it runs, the state holds a fixed amount: per kind, a per-second count ring of
//! [`RATE_HISTORY`] seconds; one since-start histogram (the reports' precision, 3 significant
//! digits) and [`WINDOW_SECS`] one-second histograms for the rolling window (2 significant
//! digits: 1 % buckets, a tenth of the memory); the last [`LOG_CAPACITY`] events; and top
//! tables capped at [`TOP_CAPACITY`] keys, past which new keys are counted under "other".

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt::Write as _;

use hdrhistogram::Histogram;
use hmmtrace_common::DIRECTION_TO_DEVICE;

use crate::capture::CaptureHeader;
use crate::event::{Body, Event, EventKind};
use crate::labels::{DeviceNames, Symbols};
use crate::pipeline::Status;
pub use crate::pipeline::{Diagnostic, ProgramCost, ReplayPosition};
use crate::probe::PlanEntry;
use crate::report::{MAX_TRACKABLE_NS, SIGNIFICANT_DIGITS};

/// Seconds of rate history kept for the sparklines.
pub const RATE_HISTORY: usize = 300;
/// Length of the rolling latency window, in seconds of the source's timeline.
pub const WINDOW_SECS: usize = 10;
/// Events kept for the event log.
pub const LOG_CAPACITY: usize = 5000;
/// Keys per top table before new ones fold into "other".
pub const TOP_CAPACITY: usize = 1024;
/// eBPF diagnostics kept for the status panel.
pub const DIAGNOSTICS_CAPACITY: usize = 8;

/// The rate series the TUI shows: the event kinds, with migrations split by direction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Series {
    ToDevice,
    ToRam,
    DeviceFault,
    PageFree,
    Invalidation,
    RangeFault,
    SystemMigration,
    Lost,
}

impl Series {
    pub const ALL: [Series; 8] = [
        Series::ToDevice,
        Series::ToRam,
        Series::DeviceFault,
        Series::PageFree,
        Series::Invalidation,
        Series::RangeFault,
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
            Series::RangeFault => "range faults",
            Series::SystemMigration => "system migrations",
            Series::Lost => "lost",
        }
    }

    /// The series of an event.
    pub fn of(e: &Event) -> Series {
        match &e.body {
            Body::Migration(m) if m.direction == DIRECTION_TO_DEVICE => Series::ToDevice,
            Body::Migration(_) => Series::ToRam,
            Body::DeviceFault(_) => Series::DeviceFault,
            Body::PageFree(_) => Series::PageFree,
            Body::Invalidation(_) => Series::Invalidation,
            Body::RangeFault(_) => Series::RangeFault,
            Body::SystemMigration(_) => Series::SystemMigration,
            Body::Lost(_) => Series::Lost,
        }
    }
}

/// Events per second of one series over the last [`RATE_HISTORY`] seconds.
#[derive(Clone, Debug, Default)]
pub struct Rate {
    /// Per-second counts, oldest first; the last entry is the current (partial) second.
    pub seconds: VecDeque<u64>,
    /// The highest complete-second count seen since start.
    pub peak: u64,
    /// Events since start.
    pub total: u64,
}

impl Rate {
    /// The last complete second's count (the current one is still filling).
    pub fn current(&self) -> u64 {
        let n = self.seconds.len();
        if n >= 2 {
            self.seconds[n - 2]
        } else {
            0
        }
    }
}

/// Latency of one kind: since start, and over the rolling window.
pub struct Latency {
    pub since_start: Histogram<u64>,
    pub window: Histogram<u64>,
    /// The window's one-second histograms, oldest first; the last is the current second.
    seconds: VecDeque<Histogram<u64>>,
}

impl Latency {
    fn new() -> Latency {
        Latency {
            since_start: Histogram::new_with_bounds(1, MAX_TRACKABLE_NS, SIGNIFICANT_DIGITS)
                .expect("valid bounds"),
            window: window_histogram(),
            seconds: VecDeque::from([window_histogram()]),
        }
    }

    fn record(&mut self, ns: u64) {
        let v = ns.max(1);
        self.since_start.saturating_record(v);
        self.window.saturating_record(v);
        if let Some(h) = self.seconds.back_mut() {
            h.saturating_record(v);
        }
    }

    /// A new second began: the oldest second leaves the window.
    fn tick(&mut self) {
        self.seconds.push_back(window_histogram());
        while self.seconds.len() > WINDOW_SECS {
            if let Some(old) = self.seconds.pop_front() {
                // Same bounds and precision, and every value of `old` is in `window`.
                let _ = self.window.subtract(&old);
            }
        }
    }
}

fn window_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_TRACKABLE_NS, 2).expect("valid bounds")
}

/// One row of a top table.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TopRow {
    pub events: u64,
    /// Events per kind, indexed by `EventKind as usize - 1`.
    pub by_kind: [u64; 7],
    /// Pages the events concern (as in reports).
    pub pages: u64,
    /// Sum of the events' durations.
    pub time_ns: u64,
    pub max_ns: u64,
}

impl TopRow {
    fn add(&mut self, e: &Event) {
        self.events += 1;
        self.by_kind[e.kind() as usize - 1] += 1;
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
}

pub struct App {
    pub source: SourceInfo,
    devices: DeviceNames,
    /// Total events and pages per kind (indexed by `EventKind as usize - 1`).
    pub totals: [u64; 7],
    pub pages: [u64; 7],
    pub events: u64,
    pub rates: BTreeMap<Series, Rate>,
    pub latency: BTreeMap<EventKind, Latency>,
    pub by_process: Top,
    pub by_device: Top,
    pub by_symbol: Top,
    /// The most recent events, oldest first.
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
    pub replay: Option<ReplayPosition>,
    /// The source timeline's current second (see [`App::ingest`]).
    second: Option<u64>,
    /// Timestamp of the first event, for relative times in the log.
    pub first_ts: Option<u64>,
    symbols: Symbols,
    /// Device labels by owner, shared with the log's entries.
    device_labels: HashMap<u64, std::sync::Arc<str>>,
    /// Scratch for the process table's key.
    key: String,
}

impl App {
    /// An empty state titled `title`; [`App::begin`] takes the source's header.
    pub fn new(title: String, show_pointers: bool) -> App {
        App::fresh(
            SourceInfo {
                title,
                probes: Vec::new(),
            },
            DeviceNames::empty(show_pointers),
            Symbols::default(),
        )
    }

    /// The source's header: its device names, its plan, how its events are named by symbol.
    pub fn begin(&mut self, header: &CaptureHeader) {
        self.devices = DeviceNames::new(header, self.devices.shows_pointers());
        self.symbols = Symbols::new(header);
        self.source.probes = header.probe_plan.clone();
        self.device_labels.clear();
    }

    /// A source's status message.
    pub fn status(&mut self, status: &Status) {
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
        }
    }

    fn fresh(source: SourceInfo, devices: DeviceNames, symbols: Symbols) -> App {
        App {
            source,
            devices,
            totals: [0; 7],
            pages: [0; 7],
            events: 0,
            rates: Series::ALL.iter().map(|s| (*s, Rate::default())).collect(),
            latency: EventKind::ALL
                .iter()
                .map(|k| (*k, Latency::new()))
                .collect(),
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
            replay: None,
            second: None,
            first_ts: None,
            symbols,
            device_labels: HashMap::new(),
            key: String::new(),
        }
    }

    /// Takes a batch of events that happened by `timeline_ns` on the source's timeline
    /// (monotonic time for the kernel, the replay position, wall time for the demo): rates and
    /// the rolling window advance by it, so a replay at any speed shows the recorded rates.
    pub fn ingest(&mut self, events: &[Event], timeline_ns: u64) {
        self.advance(timeline_ns);
        for e in events {
            self.add(e);
        }
    }

    /// Moves the timeline to `timeline_ns`, opening new seconds as needed.
    pub fn advance(&mut self, timeline_ns: u64) {
        let sec = timeline_ns / 1_000_000_000;
        let prev = *self.second.get_or_insert(sec);
        if sec <= prev {
            if self.rates.values().all(|r| r.seconds.is_empty()) {
                for r in self.rates.values_mut() {
                    r.seconds.push_back(0);
                }
            }
            return;
        }
        let gap = (sec - prev).min(RATE_HISTORY as u64 + WINDOW_SECS as u64);
        for _ in 0..gap {
            for r in self.rates.values_mut() {
                if let Some(&last) = r.seconds.back() {
                    r.peak = r.peak.max(last);
                }
                r.seconds.push_back(0);
                while r.seconds.len() > RATE_HISTORY {
                    r.seconds.pop_front();
                }
            }
            for l in self.latency.values_mut() {
                l.tick();
            }
        }
        self.second = Some(sec);
    }

    fn add(&mut self, e: &Event) {
        let k = e.kind() as usize - 1;
        self.events += 1;
        self.totals[k] += 1;
        self.pages[k] += e.pages();
        self.first_ts = Some(self.first_ts.map_or(e.ts_ns, |t| t.min(e.ts_ns)));
        let rate = self.rates.get_mut(&Series::of(e)).expect("every series");
        rate.total += 1;
        match rate.seconds.back_mut() {
            Some(c) => *c += 1,
            None => rate.seconds.push_back(1),
        }
        if let Some(d) = e.duration_ns {
            self.latency
                .get_mut(&e.kind())
                .expect("every kind")
                .record(d);
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
        self.log.push_back(LogEntry {
            seq: self.events,
            event: *e,
            device,
        });
    }

    pub fn total(&self, kind: EventKind) -> u64 {
        self.totals[kind as usize - 1]
    }

    pub fn total_lost(&self) -> u64 {
        self.lost.values().sum()
    }

    /// Forgets every event (a replay seeking backwards starts over); keeps the source's
    /// description, device names and program costs.
    pub fn clear(&mut self) {
        let mut fresh = App::fresh(
            std::mem::take(&mut self.source),
            std::mem::take(&mut self.devices),
            std::mem::take(&mut self.symbols),
        );
        fresh.costs = std::mem::take(&mut self.costs);
        fresh.notice = self.notice.take();
        fresh.device_labels = std::mem::take(&mut self.device_labels);
        fresh.replay = self.replay;
        *self = fresh;
    }
}

#[cfg(test)]
mod tests;
