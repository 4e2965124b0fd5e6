//! Prometheus metrics of an event stream (`hmmtrace serve`): a sink that counts and times
//! events into a registry of the `prometheus` crate, and renders the text exposition format
//! (0.0.4), which Prometheus scrapes and `promtool check metrics` lints.
//!
//! # Series and their bounds
//! - `hmmtrace_events_total{kind}`, `hmmtrace_pages_total{kind}`: per kind, the kinds a report
//!   counts ([`Class`]: a range's invalidation and each driver callback are separate kinds;
//!   a system migration's pages are the pages it moved).
//! - `hmmtrace_range_fault_retries_total`: `hmm_range_fault` calls that returned `-EBUSY` and
//!   were retried (the report's retries column).
//! - `hmmtrace_latency_seconds{kind}`: a histogram per kind with [`latency_buckets`]:
//!   powers of two from 250 ns to about 1 s, which spans a page free (hundreds of ns) up to an
//!   eviction of a large chunk (milliseconds) with a bucket every factor of two.
//! - `hmmtrace_device_events_total{device,kind}` and `hmmtrace_process_events_total{process,kind}`:
//!   label cardinality is bounded: the first [`TOP_DEVICES`] devices and [`TOP_PROCESSES`]
//!   processes (`comm`, not pid, so restarts reuse a series) seen keep their own series; later
//!   ones are counted under `"other"`. (Re-ranking a top-N would make counters go backwards,
//!   which Prometheus reads as a reset.)
//! - `hmmtrace_lost_events_total{probe}`: records the ring buffer had no room for.
//! - `hmmtrace_findings_total{kind,severity}`: findings the detectors concluded (8 kinds, each
//!   with its one severity).
//! - `hmmtrace_probe_attached{probe,symbol,mechanism}`: 1 for each attach-plan row that
//!   attached, 0 for the others.
//! - `hmmtrace_bpf_program_runs_total{program}`, `hmmtrace_bpf_program_run_seconds_total{program}`:
//!   each eBPF program's own run count and run time (kernel statistics).
//! - `hmmtrace_build_info{version,source}`: 1.
//!
//! [`server`] publishes the exposition and serves it over HTTP (the pipeline's view).

pub mod server;

use std::collections::HashMap;

use prometheus::{
    Encoder as _, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

use crate::capture::CaptureHeader;
use crate::event::{Body, Class, Event};
use crate::labels::DeviceNames;
use crate::pipeline::{ProgramCost, Sink, Status};
use crate::probe::PlanEntry;

/// Devices that keep their own series.
pub const TOP_DEVICES: usize = 16;
/// Processes (by comm) that keep their own series.
pub const TOP_PROCESSES: usize = 32;

/// Upper bounds of the latency histogram's buckets, in seconds: 250 ns × 2^k, k = 0..=22.
pub fn latency_buckets() -> Vec<f64> {
    (0..23).map(|k| 250e-9 * f64::powi(2.0, k)).collect()
}

/// The content type of [`Metrics::encode`]'s text.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Gives each key a label value once: its own name for the first `cap` keys, "other" after.
/// The per-event path is one map lookup, with no string built.
struct Bounded<K> {
    cap: usize,
    kept: usize,
    labels: HashMap<K, String>,
}

impl<K: std::hash::Hash + Eq + Copy> Bounded<K> {
    fn new(cap: usize) -> Bounded<K> {
        Bounded {
            cap,
            kept: 0,
            labels: HashMap::new(),
        }
    }

    fn label(&mut self, key: K, name: impl FnOnce() -> String) -> &str {
        let (cap, kept) = (self.cap, &mut self.kept);
        self.labels.entry(key).or_insert_with(|| {
            if *kept < cap {
                *kept += 1;
                name()
            } else {
                "other".to_string()
            }
        })
    }
}

/// The metrics of one event stream.
pub struct Metrics {
    registry: Registry,
    events: IntCounterVec,
    pages: IntCounterVec,
    retries: prometheus::IntCounter,
    latency: HistogramVec,
    devices: IntCounterVec,
    processes: IntCounterVec,
    lost: IntCounterVec,
    findings: IntCounterVec,
    attached: IntGaugeVec,
    runs: IntCounterVec,
    run_seconds: prometheus::CounterVec,
    /// The last program statistics seen, to turn the kernel's totals into increments.
    last_costs: HashMap<String, (u64, u64)>,
    names: DeviceNames,
    device_bound: Bounded<u64>,
    process_bound: Bounded<crate::event::Comm>,
    /// `--aggregate`: the last in-kernel snapshot, to turn its totals into increments.
    last_snapshot: Option<std::sync::Arc<crate::aggregate::Snapshot>>,
}

fn counter(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
    r.register(Box::new(c.clone())).expect("registered once");
    c
}

impl Metrics {
    /// Metrics of a source labelled `source` in `hmmtrace_build_info`. Devices are named from
    /// the source's header at `begin` (its device table; kernel owners become dev1, dev2, ...
    /// as in every other sink).
    pub fn new(source: &str) -> Metrics {
        let registry = Registry::new_custom(Some("hmmtrace".into()), None).expect("valid prefix");
        let events = counter(
            &registry,
            "events_total",
            "HMM events seen, by kind",
            &["kind"],
        );
        let pages = counter(
            &registry,
            "pages_total",
            "Pages the events concern (migrated, range-faulted, freed, faulted), by kind",
            &["kind"],
        );
        let retries = prometheus::IntCounter::new(
            "range_fault_retries_total",
            "hmm_range_fault calls that returned -EBUSY and were retried",
        )
        .expect("valid metric");
        registry
            .register(Box::new(retries.clone()))
            .expect("registered once");
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "latency_seconds",
                "Entry-to-exit time of the traced call, by kind",
            )
            .buckets(latency_buckets()),
            &["kind"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(latency.clone()))
            .expect("registered once");
        let devices = counter(
            &registry,
            "device_events_total",
            "Events by device (pgmap owner) and kind; devices past the first 16 count as other",
            &["device", "kind"],
        );
        let processes = counter(
            &registry,
            "process_events_total",
            "Events by process (comm) and kind; processes past the first 32 count as other",
            &["process", "kind"],
        );
        let lost = counter(
            &registry,
            "lost_events_total",
            "Records dropped because the ring buffer was full, by probe",
            &["probe"],
        );
        let findings = counter(
            &registry,
            "findings_total",
            "Findings the detectors concluded (thrashing, contract breaks, retry storms, ...), by kind and severity",
            &["kind", "severity"],
        );
        for k in crate::findings::FindingKind::ALL {
            findings.with_label_values(&[k.name(), k.severity().name()]);
        }
        let attached = IntGaugeVec::new(
            Opts::new(
                "probe_attached",
                "1 for each attach-plan row that attached, 0 for those that did not",
            ),
            &["probe", "symbol", "mechanism"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(attached.clone()))
            .expect("registered once");
        let runs = counter(
            &registry,
            "bpf_program_runs_total",
            "Runs of each eBPF program (kernel statistics)",
            &["program"],
        );
        let run_seconds = prometheus::CounterVec::new(
            Opts::new(
                "bpf_program_run_seconds_total",
                "Time spent in each eBPF program (kernel statistics)",
            ),
            &["program"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(run_seconds.clone()))
            .expect("registered once");
        let build = IntGaugeVec::new(
            Opts::new(
                "build_info",
                "hmmtrace's version and event source (always 1)",
            ),
            &["version", "source"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(build.clone()))
            .expect("registered once");
        build
            .with_label_values(&[env!("CARGO_PKG_VERSION"), source])
            .set(1);
        // Every kind and probe is exported from the start, at 0: a rate of something that has
        // not happened yet is 0, not absent, and 0 lost is worth showing.
        for k in Class::ALL {
            events.with_label_values(&[k.name()]);
            pages.with_label_values(&[k.name()]);
        }
        for p in hmmtrace_common::ProbeId::ALL {
            lost.with_label_values(&[p.name()]);
        }
        Metrics {
            registry,
            events,
            pages,
            retries,
            latency,
            devices,
            processes,
            lost,
            findings,
            attached,
            runs,
            run_seconds,
            last_costs: HashMap::new(),
            names: DeviceNames::empty(false),
            device_bound: Bounded::new(TOP_DEVICES),
            process_bound: Bounded::new(TOP_PROCESSES),
            last_snapshot: None,
        }
    }

    /// An in-kernel snapshot (cumulative): what it added since the last one goes into the
    /// same series events feed; a duration is observed at its bucket's midpoint (within 0.8 %,
    /// far inside the exposition's factor-of-two buckets).
    pub fn aggregate(&mut self, snap: &std::sync::Arc<crate::aggregate::Snapshot>) {
        let prev = self.last_snapshot.replace(snap.clone());
        for (g, gained) in snap.gained(prev.as_deref()) {
            let kind = g.class.name();
            let n = gained.count;
            self.events.with_label_values(&[kind]).inc_by(n);
            self.pages.with_label_values(&[kind]).inc_by(gained.pages);
            self.retries.inc_by(gained.retries);
            if g.owner != 0 {
                let names = &mut self.names;
                let device = self
                    .device_bound
                    .label(g.owner, || names.name(g.owner).unwrap_or("?").to_string());
                self.devices.with_label_values(&[device, kind]).inc_by(n);
            }
            let comm = crate::event::Comm::new(&g.comm);
            let process = self.process_bound.label(comm, || g.comm.clone());
            self.processes.with_label_values(&[process, kind]).inc_by(n);
        }
        for (class, mid_ns, n) in snap.durations_gained(prev.as_deref()) {
            let latency = self.latency.with_label_values(&[class.name()]);
            for _ in 0..n {
                latency.observe(mid_ns as f64 / 1e9);
            }
        }
    }

    /// The attach plan's rows.
    pub fn set_probes(&mut self, plan: &[PlanEntry]) {
        for p in plan {
            let mechanism = p.status.attached().map_or("-".into(), |m| m.to_string());
            self.attached
                .with_label_values(&[p.probe().name(), &p.symbol, &mechanism])
                .set(i64::from(p.status.is_attached()));
        }
    }

    /// The programs' run statistics, as totals (the kernel's).
    pub fn set_costs(&mut self, costs: &[ProgramCost]) {
        for c in costs {
            let (cnt0, ns0) = self
                .last_costs
                .insert(c.name.clone(), (c.run_cnt, c.run_time_ns))
                .unwrap_or((0, 0));
            self.runs
                .with_label_values(&[&c.name])
                .inc_by(c.run_cnt.saturating_sub(cnt0));
            self.run_seconds
                .with_label_values(&[&c.name])
                .inc_by(c.run_time_ns.saturating_sub(ns0) as f64 / 1e9);
        }
    }

    /// The text exposition of everything so far.
    pub fn encode(&self) -> String {
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .expect("writing to a Vec does not fail");
        String::from_utf8(out).expect("the text format is UTF-8")
    }
}

impl Sink for Metrics {
    fn begin(&mut self, header: &CaptureHeader) -> anyhow::Result<()> {
        self.names = DeviceNames::new(header, false);
        self.set_probes(&header.probe_plan);
        Ok(())
    }

    fn status(&mut self, status: &Status) -> anyhow::Result<()> {
        match status {
            Status::ProgramCosts(costs) => self.set_costs(costs),
            Status::Aggregate(snap) => self.aggregate(snap),
            _ => {}
        }
        Ok(())
    }

    fn finding(&mut self, f: &crate::findings::Finding) -> anyhow::Result<()> {
        self.findings
            .with_label_values(&[f.kind.name(), f.severity.name()])
            .inc();
        Ok(())
    }

    fn event(&mut self, e: &Event) -> anyhow::Result<()> {
        let kind = e.class().name();
        self.events.with_label_values(&[kind]).inc();
        self.pages.with_label_values(&[kind]).inc_by(e.pages());
        self.retries.inc_by(e.retries());
        if let Some(d) = e.duration_ns {
            self.latency
                .with_label_values(&[kind])
                .observe(d as f64 / 1e9);
        }
        if let Some(owner) = e.body.device() {
            let names = &mut self.names;
            let device = self
                .device_bound
                .label(owner, || names.name(owner).unwrap_or("?").to_string());
            self.devices.with_label_values(&[device, kind]).inc();
        }
        let process = self.process_bound.label(e.comm, || e.comm.to_string());
        self.processes.with_label_values(&[process, kind]).inc();
        if let Body::Lost(x) = &e.body {
            let probe = hmmtrace_common::ProbeId::from_u32(x.probe).map_or("unknown", |p| p.name());
            self.lost.with_label_values(&[probe]).inc_by(x.count);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Comm;

    fn event(comm: &str, owner: u64) -> Event {
        Event {
            ts_ns: 0,
            duration_ns: Some(1_500),
            cpu: 0,
            tgid: 1,
            pid: 1,
            comm: Comm::new(comm),
            unknown: 0,
            body: Body::DeviceFault(hmmtrace_common::DeviceFault {
                pgmap_owner: owner,
                ..Default::default()
            }),
        }
    }

    #[test]
    fn label_cardinality_is_bounded_by_first_seen() {
        let mut m = Metrics::new("test");
        for i in 0..TOP_PROCESSES + 5 {
            m.event(&event(&format!("p{i}"), 0x1000 + i as u64))
                .unwrap();
        }
        let text = m.encode();
        let series = |name: &str| text.lines().filter(|l| l.starts_with(name)).count();
        assert_eq!(series("hmmtrace_process_events_total{"), TOP_PROCESSES + 1);
        assert!(
            text.contains(
                "hmmtrace_process_events_total{kind=\"device_fault\",process=\"other\"} 5"
            ),
            "{text}"
        );
        assert_eq!(series("hmmtrace_device_events_total{"), TOP_DEVICES + 1);
        // 1.5 us falls in the 2 us bucket (250 ns × 2^3) and not the 1 us one.
        assert!(
            text.contains(
                "hmmtrace_latency_seconds_bucket{kind=\"device_fault\",le=\"0.000001\"} 0"
            ),
            "{text}"
        );
        assert!(
            text.contains(&format!(
                "hmmtrace_latency_seconds_bucket{{kind=\"device_fault\",le=\"0.000002\"}} {}",
                TOP_PROCESSES + 5
            )),
            "{text}"
        );
        assert!(text.contains("hmmtrace_lost_events_total{probe=\"migration\"} 0"));
    }

    #[test]
    fn findings_are_counted_by_kind_and_severity_from_zero() {
        let mut m = Metrics::new("test");
        let text = m.encode();
        assert!(
            text.contains("hmmtrace_findings_total{kind=\"thrashing\",severity=\"warn\"} 0"),
            "{text}"
        );
        let (_, events) = crate::fixtures::scenario("driver_leak", 1);
        let mut d = crate::findings::Detectors::new(crate::findings::Config::default());
        let mut found = Vec::new();
        for e in &events {
            d.event(e, &mut found);
        }
        d.finish(&mut found);
        for f in &found {
            m.finding(f).unwrap();
        }
        let text = m.encode();
        assert!(
            text.contains(
                "hmmtrace_findings_total{kind=\"leaked_device_pages\",severity=\"error\"} 1"
            ),
            "{text}"
        );
    }

    #[test]
    fn program_costs_become_increments_of_the_kernels_totals() {
        let mut m = Metrics::new("test");
        let cost = |cnt, ns| ProgramCost {
            name: "tracepoint_x".into(),
            run_cnt: cnt,
            run_time_ns: ns,
        };
        m.set_costs(&[cost(10, 5_000)]);
        m.set_costs(&[cost(30, 20_000)]);
        let text = m.encode();
        assert!(
            text.contains("hmmtrace_bpf_program_runs_total{program=\"tracepoint_x\"} 30"),
            "{text}"
        );
        assert!(
            text.contains(
                "hmmtrace_bpf_program_run_seconds_total{program=\"tracepoint_x\"} 0.00002"
            ),
            "{text}"
        );
    }
}
