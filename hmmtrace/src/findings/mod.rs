//! Findings: answers derived from events, for the questions no single event answers. Is this
//! workload ping-ponging pages between device and RAM? Is a driver breaking HMM's contract?
//! Why does `hmm_range_fault` spin? Are device pages leaking?
//!
//! A [`Finding`] is a typed record: its kind, a severity, the process, device and address
//! range it concerns, its time span, the evidence (counts, and the timestamps of some of the
//! events behind it) and one sentence a driver developer understands. The [`Detectors`] make
//! them from the one event stream; [`crate::pipeline::detect::Detect`] runs them in a pipeline
//! and hands each finding to the sinks (`Sink::finding`), so the TUI, reports and metrics show
//! the same findings.
//!
//! One module per detector, each O(1) per event (a few map operations; the thrashing detector
//! one per 2 MiB an event's range covers) with memory bounded by its own documented cap, state
//! evicted by age (on ticks of the source's clock) and by size:
//! - [`thrashing`]: the same pages migrating device → RAM → device (or the reverse) again and
//!   again;
//! - [`contract`]: migrations that never finished, `migrate_to_ram` returning an error,
//!   `hmm_range_fault` failing, device pages still held after their process exited;
//! - [`retry`]: `hmm_range_fault` retry storms, with the invalidations that caused them;
//! - [`slow`]: driver callbacks (`invalidate`, `migrate_to_ram`) slower than a threshold;
//! - [`partial`]: migrations that collected or moved fewer pages than asked.
//!
//! [`pages`] keeps the device page accounting and page lifetimes that reports and the TUI show
//! beside the findings.

pub mod contract;
mod episodes;
pub mod pages;
pub mod partial;
pub mod retry;
pub mod slow;
pub mod thrashing;

use serde::Serialize;

use crate::capture::CaptureHeader;
use crate::event::{Comm, Event};
use crate::labels::{DeviceNames, Symbols};

/// How much a finding matters. `report --check --fail-on` gates on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth knowing; HMM allows it (a partial migration of pinned pages).
    Info,
    /// Costs performance or hides a problem (thrashing, retry storms, slow callbacks).
    Warn,
    /// Breaks HMM's contract (a fault that signals the process, leaked device pages).
    Error,
}

impl Severity {
    pub const ALL: [Severity; 3] = [Severity::Info, Severity::Warn, Severity::Error];

    pub const fn name(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warn => "warn",
            Severity::Error => "error",
        }
    }
}

impl std::fmt::Display for Severity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// What a finding is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    Thrashing,
    UnfinishedMigration,
    FaultError,
    RangeFaultError,
    LeakedDevicePages,
    RetryStorm,
    SlowCallback,
    PartialMigration,
}

impl FindingKind {
    pub const ALL: [FindingKind; 8] = [
        FindingKind::Thrashing,
        FindingKind::UnfinishedMigration,
        FindingKind::FaultError,
        FindingKind::RangeFaultError,
        FindingKind::LeakedDevicePages,
        FindingKind::RetryStorm,
        FindingKind::SlowCallback,
        FindingKind::PartialMigration,
    ];

    pub const fn name(self) -> &'static str {
        match self {
            FindingKind::Thrashing => "thrashing",
            FindingKind::UnfinishedMigration => "unfinished_migration",
            FindingKind::FaultError => "fault_error",
            FindingKind::RangeFaultError => "range_fault_error",
            FindingKind::LeakedDevicePages => "leaked_device_pages",
            FindingKind::RetryStorm => "retry_storm",
            FindingKind::SlowCallback => "slow_callback",
            FindingKind::PartialMigration => "partial_migration",
        }
    }

    /// Each kind's severity (a kind always has the same).
    pub const fn severity(self) -> Severity {
        match self {
            FindingKind::UnfinishedMigration
            | FindingKind::FaultError
            | FindingKind::LeakedDevicePages => Severity::Error,
            FindingKind::Thrashing
            | FindingKind::RangeFaultError
            | FindingKind::RetryStorm
            | FindingKind::SlowCallback => Severity::Warn,
            FindingKind::PartialMigration => Severity::Info,
        }
    }
}

impl std::fmt::Display for FindingKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Bytes for people: 4096 → "4.0 KiB", 37748736 → "36.0 MiB".
pub fn bytes(n: u64) -> String {
    let (v, unit) = match n {
        0..=1023 => return format!("{n} B"),
        1024..=1_048_575 => (n as f64 / 1024.0, "KiB"),
        1_048_576..=1_073_741_823 => (n as f64 / 1_048_576.0, "MiB"),
        _ => (n as f64 / 1_073_741_824.0, "GiB"),
    };
    format!("{v:.1} {unit}")
}

/// Timestamps of the events behind a finding kept at most (the first ones).
pub const MAX_EVIDENCE_EVENTS: usize = 16;

/// One answer.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Finding {
    pub kind: FindingKind,
    pub severity: Severity,
    pub tgid: u32,
    pub comm: String,
    /// The device, named as every view names it (`dev1`, the engine's name, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    /// The driver callback or kernel function concerned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub symbol: Option<String>,
    /// Address range `[start, end)` concerned (user addresses).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub range: Option<(u64, u64)>,
    /// The span of the events behind it, ns on the source's clock.
    pub first_ns: u64,
    pub last_ns: u64,
    /// The evidence: named counts (`round_trips`, `bytes`, `retries`, ...).
    #[serde(serialize_with = "counts_as_map")]
    pub counts: Vec<(&'static str, u64)>,
    /// Entry timestamps of the first [`MAX_EVIDENCE_EVENTS`] events behind it.
    pub events: Vec<u64>,
    /// One sentence.
    pub message: String,
}

/// Counts as a JSON object, in their order.
fn counts_as_map<S: serde::Serializer>(
    counts: &[(&'static str, u64)],
    s: S,
) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let mut m = s.serialize_map(Some(counts.len()))?;
    for (k, v) in counts {
        m.serialize_entry(k, v)?;
    }
    m.end()
}

impl Finding {
    /// The named count, or 0.
    pub fn count(&self, name: &str) -> u64 {
        self.counts
            .iter()
            .find(|(n, _)| *n == name)
            .map_or(0, |(_, v)| *v)
    }

    /// Whether `e` is one of the events behind this finding as far as its evidence tells:
    /// same process, within its span and, where it has one, overlapping its range: what the
    /// TUI's log filter of a finding (`tui::filter::Filter::text_of`) selects, which a test
    /// holds to this.
    pub fn covers(&self, e: &Event) -> bool {
        if e.tgid != self.tgid || e.ts_ns < self.first_ns || e.ts_ns > self.last_ns {
            return false;
        }
        match (self.range, e.body.range()) {
            (Some((s, end)), Some((a, b))) => a < end && s < b,
            _ => true,
        }
    }
}

/// Findings a sink keeps to show; past it only counts grow.
pub const MAX_KEPT: usize = 10_000;

/// The findings of a stream as a sink keeps them: the first [`MAX_KEPT`], and counts of all.
#[derive(Clone, Debug, Default)]
pub struct FindingList {
    pub kept: Vec<Finding>,
    /// Every finding, by kind and severity.
    pub total: std::collections::BTreeMap<(FindingKind, Severity), u64>,
    /// Whether the detectors ran on the stream (`Status::Detecting`): only then does an
    /// empty list mean none were found.
    pub checked: bool,
}

impl FindingList {
    pub fn add(&mut self, f: &Finding) {
        *self.total.entry((f.kind, f.severity)).or_default() += 1;
        if self.kept.len() < MAX_KEPT {
            self.kept.push(f.clone());
        }
    }

    pub fn len(&self) -> u64 {
        self.total.values().sum()
    }

    pub fn is_empty(&self) -> bool {
        self.total.is_empty()
    }

    /// Findings at `severity` or above.
    pub fn at_least(&self, severity: Severity) -> u64 {
        self.total
            .iter()
            .filter(|((_, s), _)| *s >= severity)
            .map(|(_, n)| n)
            .sum()
    }

    pub fn of_severity(&self, severity: Severity) -> u64 {
        self.total
            .iter()
            .filter(|((_, s), _)| *s == severity)
            .map(|(_, n)| n)
            .sum()
    }

    /// "3 (1 info, 2 warn)".
    pub fn summary(&self) -> String {
        let parts: Vec<String> = Severity::ALL
            .iter()
            .map(|s| (s, self.of_severity(*s)))
            .filter(|(_, n)| *n > 0)
            .map(|(s, n)| format!("{n} {s}"))
            .collect();
        if parts.is_empty() {
            "none".into()
        } else {
            format!("{} ({})", self.len(), parts.join(", "))
        }
    }
}

/// The detectors' thresholds. Defaults are documented on each field and in docs/findings.md.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// Thrashing: round trips (device → RAM → device, or the reverse) of the same pages
    /// before it is a finding. Default 3 (NVIDIA UVM's thrashing threshold is 3 migrations).
    pub thrash_round_trips: u32,
    /// Thrashing: the most time between a page's migration and its migration back for the two
    /// to count as a bounce. Default 20 ms: a CPU touching pages it just migrated (a loop) is
    /// within it; a stream that comes back to its pages each pass of a long loop is not.
    /// (UVM's lapse is 500 µs, for hardware where a round trip takes microseconds.)
    pub thrash_lapse_ns: u64,
    /// Retry storms: `-EBUSY` and `mmu_interval_read_retry` retries of one range in a row.
    /// Default 8.
    pub retry_storm: u64,
    /// Retry storms: the most time between one call's exit and the next call's entry for them
    /// to be in a row. Default 100 ms.
    pub retry_window_ns: u64,
    /// Slow callbacks: an `invalidate` callback longer than this. Default 1 ms (it runs
    /// inside `munmap`, `mprotect`, migrations and reclaim).
    pub slow_invalidate_ns: u64,
    /// Slow callbacks: a `migrate_to_ram` longer than this. Default 10 ms (the faulting thread
    /// waits for all of it).
    pub slow_fault_ns: u64,
    /// Leaks: how long after its process exited (`MMU_NOTIFY_RELEASE`) a device page may still
    /// be held before it counts as leaked. Default 2 s (the exit's own unmap and file release
    /// free them first).
    pub leak_grace_ns: u64,
    /// Aggregation: events of one kind and key closer than this are one finding. Default 1 s.
    pub episode_gap_ns: u64,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            thrash_round_trips: 3,
            thrash_lapse_ns: 20_000_000,
            retry_storm: 8,
            retry_window_ns: 100_000_000,
            slow_invalidate_ns: 1_000_000,
            slow_fault_ns: 10_000_000,
            leak_grace_ns: 2_000_000_000,
            episode_gap_ns: 1_000_000_000,
        }
    }
}

/// What every detector needs to describe what it found: device names, symbols, page size.
pub struct Context {
    pub devices: DeviceNames,
    pub symbols: Symbols,
    pub page_size: u64,
    pub config: Config,
}

impl Context {
    /// Before `begin`: no names, 4 KiB pages.
    fn empty(config: Config) -> Context {
        Context {
            devices: DeviceNames::empty(false),
            symbols: Symbols::default(),
            page_size: 4096,
            config,
        }
    }

    fn new(header: &CaptureHeader, config: Config) -> Context {
        Context {
            devices: DeviceNames::new(header, false),
            symbols: Symbols::new(header),
            page_size: header.page_size.max(1),
            config,
        }
    }

    /// The device's name as every view prints it.
    pub fn device(&mut self, owner: u64) -> Option<String> {
        (owner != 0).then(|| self.devices.name(owner).unwrap_or("?").to_string())
    }
}

/// What a finding is made from, before the context names its device.
pub(crate) struct Draft {
    /// Its severity is the kind's ([`FindingKind::severity`]).
    pub kind: FindingKind,
    pub tgid: u32,
    pub comm: Comm,
    pub owner: u64,
    pub symbol: Option<String>,
    pub range: Option<(u64, u64)>,
    pub first_ns: u64,
    pub last_ns: u64,
    pub counts: Vec<(&'static str, u64)>,
    pub events: Vec<u64>,
    pub message: String,
}

impl Draft {
    fn finish(self, cx: &mut Context) -> Finding {
        Finding {
            kind: self.kind,
            severity: self.kind.severity(),
            tgid: self.tgid,
            comm: self.comm.to_string(),
            device: cx.device(self.owner),
            symbol: self.symbol,
            range: self.range,
            first_ns: self.first_ns,
            last_ns: self.last_ns,
            counts: self.counts,
            events: self.events,
            message: self.message,
        }
    }
}

/// Every detector, fed one event stream.
pub struct Detectors {
    cx: Option<Context>,
    config: Config,
    thrashing: thrashing::Thrashing,
    contract: contract::Contract,
    retry: retry::Retry,
    slow: slow::Slow,
    partial: partial::Partial,
    drafts: Vec<Draft>,
    /// The source's clock, as far as events and ticks have moved it.
    now_ns: u64,
}

impl Detectors {
    pub fn new(config: Config) -> Detectors {
        Detectors {
            cx: None,
            thrashing: thrashing::Thrashing::default(),
            contract: contract::Contract::default(),
            retry: retry::Retry::default(),
            slow: slow::Slow::default(),
            partial: partial::Partial::default(),
            config,
            drafts: Vec::new(),
            now_ns: 0,
        }
    }

    pub fn begin(&mut self, header: &CaptureHeader) {
        self.cx = Some(Context::new(header, self.config.clone()));
    }

    fn context(&mut self) -> &mut Context {
        let config = &self.config;
        self.cx
            .get_or_insert_with(|| Context::empty(config.clone()))
    }

    fn flush(&mut self, out: &mut Vec<Finding>) {
        if self.drafts.is_empty() {
            return;
        }
        let drafts = std::mem::take(&mut self.drafts);
        let cx = self.context();
        out.extend(drafts.into_iter().map(|d| d.finish(cx)));
    }

    /// Runs every detector on `e`; what they found goes to `out`.
    pub fn event(&mut self, e: &Event, out: &mut Vec<Finding>) {
        self.now_ns = self.now_ns.max(e.ts_ns);
        self.context();
        let cx = self.cx.as_ref().expect("just made");
        let drafts = &mut self.drafts;
        self.thrashing.event(cx, e, drafts);
        self.contract.event(cx, e, drafts);
        self.retry.event(cx, e, drafts);
        self.slow.event(cx, e, drafts);
        self.partial.event(cx, e, drafts);
        self.flush(out);
    }

    /// The source's clock reached `now_ns`: state older than the detectors keep ends, and what
    /// it amounted to goes to `out`.
    pub fn tick(&mut self, now_ns: u64, out: &mut Vec<Finding>) {
        self.now_ns = self.now_ns.max(now_ns);
        let now = self.now_ns;
        self.context();
        let cx = self.cx.as_ref().expect("just made");
        let drafts = &mut self.drafts;
        self.thrashing.expire(cx, now, drafts);
        self.contract.expire(cx, now, drafts);
        self.retry.expire(cx, now, drafts);
        self.slow.expire(cx, now, drafts);
        self.partial.expire(cx, now, drafts);
        self.flush(out);
    }

    /// No more events: everything still open is concluded.
    pub fn finish(&mut self, out: &mut Vec<Finding>) {
        self.context();
        let cx = self.cx.as_ref().expect("just made");
        let drafts = &mut self.drafts;
        self.thrashing.expire(cx, u64::MAX, drafts);
        self.contract.finish(cx, drafts);
        self.retry.expire(cx, u64::MAX, drafts);
        self.slow.expire(cx, u64::MAX, drafts);
        self.partial.expire(cx, u64::MAX, drafts);
        self.flush(out);
    }
}

#[cfg(test)]
impl Detectors {
    fn thrashing_granules(&self) -> usize {
        self.thrashing.len()
    }

    fn retry_rows(&self) -> usize {
        self.retry.open_rows()
    }
}

#[cfg(test)]
pub(crate) mod tests;
