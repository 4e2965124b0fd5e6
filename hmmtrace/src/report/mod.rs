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

pub mod by_class;
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
pub use by_class::ByClass;

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
        self.add_n(ts, 1);
    }

    /// The bin of `ts`. Bins are 1000 ns doubled k times, so this is a shift and a division by
    /// the constant 1000, which compiles to a multiplication: a division by a variable was a
    /// tenth of the userspace pipeline's time (one per event).
    fn bin(&self, ts: u64) -> usize {
        let since = ts.saturating_sub(self.start_ns);
        let k = self.bin_ns.trailing_zeros().saturating_sub(3);
        if self.bin_ns == 1_000 << k {
            ((since >> k) / 1_000) as usize
        } else {
            (since / self.bin_ns) as usize
        }
    }

    fn add_n(&mut self, ts: u64, n: u64) {
        let mut i = self.bin(ts);
        while i >= MAX_BINS {
            // Halve the resolution: pairs of bins become one.
            self.counts = self.counts.chunks(2).map(|c| c.iter().sum()).collect();
            self.bin_ns *= 2;
            i = self.bin(ts);
        }
        if self.counts.len() <= i {
            self.counts.resize(i + 1, 0);
        }
        self.counts[i] += n;
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
    pub kinds: ByClass<KindStats>,
    /// With a grouping other than by kind: the same per group.
    pub by: GroupBy,
    pub groups: BTreeMap<String, ByClass<KindStats>>,
    pub events: u64,
    pub first_ts: u64,
    pub last_ts: u64,
    /// `Lost` records' counts, by probe name.
    pub lost: BTreeMap<String, u64>,
    /// Events over time, per class.
    pub series: ByClass<RateSeries>,
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
    /// `--aggregate`: the last in-kernel snapshot, which stands for the events the kernel did
    /// not send (see [`Summary::aggregate`]).
    pub aggregate: Option<std::sync::Arc<crate::aggregate::Snapshot>>,
    /// How the attach plan changed during the recording (driver modules loaded or unloaded,
    /// callbacks discovered): when, on the events' clock, and what.
    pub plan_changes: Vec<(u64, Vec<String>)>,
    /// `hmmtrace census`: who consumes HMM's exports.
    pub census: Option<std::sync::Arc<crate::census::Census>>,
}

impl Default for Summary {
    fn default() -> Self {
        Summary {
            kinds: ByClass::new(),
            by: GroupBy::Kind,
            groups: BTreeMap::new(),
            events: 0,
            first_ts: u64::MAX,
            last_ts: 0,
            lost: BTreeMap::new(),
            series: ByClass::new(),
            clock: None,
            dropped_bytes: 0,
            findings: FindingList::default(),
            pages: Pages::new(4096),
            device_names: None,
            heat: heat::Heat::default(),
            origin: None,
            namer: None,
            aggregate: None,
            plan_changes: Vec::new(),
            census: None,
        }
    }
}

impl Summary {
    /// The plan changes as every format prints them: seconds from the first event (or the
    /// change's own clock reading before any), and what changed.
    pub fn plan_change_lines(&self) -> Vec<String> {
        let origin = if self.first_ts == u64::MAX {
            0
        } else {
            self.first_ts
        };
        self.plan_changes
            .iter()
            .flat_map(|(at, changes)| {
                let t = at.saturating_sub(origin) as f64 / 1e9;
                changes.iter().map(move |c| format!("+{t:.3}s {c}"))
            })
            .collect()
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
        self.kinds.or_default(class).add(e);
        self.pages.event(e);
        self.heat.add(e);
        let origin = *self.origin.get_or_insert(e.ts_ns);
        self.series
            .get_or_insert_with(class, || RateSeries::new(origin))
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
                .get_or_insert_with(class, KindStats::growing)
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

    /// Takes an in-kernel snapshot (cumulative): the classes it has are its figures (exact
    /// counts, pages, retries, min, max, mean; percentiles from its buckets), as are the
    /// groups of a grouped report (percentiles only by kind and by device, which the kernel
    /// keeps histograms for). What it added since the previous one goes in the rate series at
    /// its time.
    pub fn aggregate(&mut self, snap: &std::sync::Arc<crate::aggregate::Snapshot>) {
        use crate::aggregate::Group;
        let prev = self.aggregate.replace(snap.clone());
        // Detectors need single events: none were checked, whatever the pipeline ran.
        self.findings.checked = false;
        let before = prev.as_ref().map_or(0, |p| p.events());
        self.events = self.events - before + snap.events();
        let origin = *self.origin.get_or_insert(
            snap.groups
                .iter()
                .filter(|g| g.count > 0)
                .map(|g| g.first_ns)
                .min()
                .unwrap_or(snap.at_ns),
        );
        for class in Class::ALL.into_iter().filter(|c| *c != Class::Lost) {
            let (count, pages, retries) = snap.totals(class);
            if count == 0 {
                continue;
            }
            let mine = |g: &Group| g.class == class;
            let first = snap
                .groups
                .iter()
                .filter(|g| mine(g))
                .map(|g| g.first_ns)
                .min();
            let last = snap
                .groups
                .iter()
                .filter(|g| mine(g))
                .map(|g| g.last_ns)
                .max();
            self.first_ts = self.first_ts.min(first.unwrap_or(u64::MAX));
            self.last_ts = self.last_ts.max(last.unwrap_or(0));
            let had = prev.as_ref().map_or(0, |p| p.totals(class).0);
            self.series
                .get_or_insert_with(class, || RateSeries::new(origin))
                .add_n(snap.at_ns, count.saturating_sub(had));
            self.kinds.insert(
                class,
                KindStats {
                    count,
                    pages,
                    retries,
                    first_ts: first,
                    last_ts: last.unwrap_or(0),
                    latency: snap.durations(mine, |h| h.class == class),
                },
            );
        }
        if self.by == GroupBy::Kind {
            return;
        }
        let Some(namer) = self.namer.as_mut() else {
            return;
        };
        let mut groups: BTreeMap<String, ByClass<KindStats>> = BTreeMap::new();
        for g in &snap.groups {
            let key = match self.by {
                GroupBy::Kind => unreachable!("returned above"),
                GroupBy::Pid => format!("{} [{}]", g.comm, g.tgid),
                GroupBy::Comm => g.comm.clone(),
                GroupBy::Device => (g.owner != 0)
                    .then(|| namer.devices.name(g.owner))
                    .flatten()
                    .unwrap_or("(none)")
                    .to_string(),
                GroupBy::Symbol => "(aggregated: no symbols)".into(),
                GroupBy::Direction | GroupBy::Api if g.class != Class::Migration => "(none)".into(),
                GroupBy::Direction if g.direction == hmmtrace_common::DIRECTION_TO_DEVICE => {
                    "to_device".into()
                }
                GroupBy::Direction => "to_ram".into(),
                GroupBy::Api if g.api == hmmtrace_common::API_MIGRATE_DEVICE => {
                    "migrate_device".into()
                }
                GroupBy::Api => "migrate_vma".into(),
            };
            let by_device = self.by == GroupBy::Device;
            let k = groups.entry(key.clone()).or_default();
            if k.contains_key(&g.class) {
                continue;
            }
            let (class, owner) = (g.class, g.owner);
            let same_key = |x: &Group| x.class == class && group_key_eq(self.by, x, g);
            let members = snap.groups.iter().filter(|x| same_key(x));
            let (count, pages, retries) = members.clone().fold((0, 0, 0), |(c, p, r), x| {
                (c + x.count, p + x.pages, r + x.retries)
            });
            k.insert(
                class,
                KindStats {
                    count,
                    pages,
                    retries,
                    first_ts: members.clone().map(|x| x.first_ns).min(),
                    last_ts: members.map(|x| x.last_ns).max().unwrap_or(0),
                    // Histograms are per class and device: percentiles only by device.
                    latency: snap.durations(same_key, |h| {
                        by_device && h.class == class && h.owner == owner
                    }),
                },
            );
        }
        // Lost records are events, not aggregates: their groups stay.
        for (key, classes) in &self.groups {
            if let Some(lost) = classes.get(&Class::Lost) {
                groups
                    .entry(key.clone())
                    .or_default()
                    .insert(Class::Lost, lost.clone());
            }
        }
        self.groups = groups;
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
            Status::Aggregate(s) => self.aggregate(s),
            Status::Plan(p) => self.plan_changes.push((p.at_ns, p.changes.clone())),
            Status::Census(c) => self.census = Some(std::sync::Arc::clone(c)),
            _ => {}
        }
        Ok(())
    }
}

/// Whether two aggregate groups fall in the same row of a report grouped `by`.
fn group_key_eq(by: GroupBy, a: &crate::aggregate::Group, b: &crate::aggregate::Group) -> bool {
    match by {
        GroupBy::Kind | GroupBy::Symbol => true,
        GroupBy::Pid => (a.tgid, &a.comm) == (b.tgid, &b.comm),
        GroupBy::Comm => a.comm == b.comm,
        GroupBy::Device => a.owner == b.owner,
        GroupBy::Direction => a.direction == b.direction,
        GroupBy::Api => a.api == b.api,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bin_is_the_time_since_the_start_over_the_bin_width() {
        let mut r = RateSeries::new(7);
        let times = [
            0,
            7,
            8,
            1_006,
            1_007,
            123_456_789_012,
            u64::MAX / 3,
            u64::MAX,
        ];
        // Widths the series takes (1000 ns doubled) and others (set by hand): the same bins.
        let widths = (0..40)
            .map(|k| 1_000u64 << k)
            .chain([1, 3, 1_500, 1_000_000]);
        for w in widths {
            r.bin_ns = w;
            for ts in times {
                assert_eq!(
                    r.bin(ts),
                    (ts.saturating_sub(7) / w) as usize,
                    "{ts} in {w}"
                );
            }
        }
    }
}
