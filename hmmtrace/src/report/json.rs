//! The machine-readable report (`--format json`): the text report's figures, unrounded.

use serde::Serialize;

use super::{KindStats, Summary};
use crate::event::Class;

/// Durations of one class: count, min, max, mean exact; percentiles from the histogram.
#[derive(Serialize)]
pub struct Latency {
    pub min: u64,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
    pub mean: f64,
    pub stddev: f64,
    /// How many events had a duration.
    pub samples: u64,
}

#[derive(Serialize)]
pub struct KindReport {
    pub kind: &'static str,
    pub count: u64,
    pub rate_per_s: f64,
    pub pages: u64,
    /// `-EBUSY` retries before the calls (range faults only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retries: Option<u64>,
    /// Nanoseconds; absent when no event of the kind has a duration.
    pub latency_ns: Option<Latency>,
}

#[derive(Serialize)]
pub struct GroupReport {
    pub group: String,
    pub kinds: Vec<KindReport>,
}

#[derive(Serialize)]
pub struct Report {
    pub source: String,
    /// The clock of the events' times: `monotonic` (the traced machine's) or `simulated`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clock: Option<crate::capture::ClockKind>,
    pub events: u64,
    /// True when the figures are in-kernel aggregates (`--aggregate`): percentiles within
    /// 0.8 % and only by kind and by device, no findings.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub aggregated: bool,
    pub span_ns: u64,
    /// Histogram precision: significant decimal digits.
    pub significant_digits: u8,
    pub kinds: Vec<KindReport>,
    /// With `--by`: the grouping and its rows.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<GroupReport>,
    pub lost: std::collections::BTreeMap<String, u64>,
    pub dropped_bytes: u64,
    /// Device pages per device (when any event concerned a device).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<DeviceReport>,
    /// The findings (absent when the detectors did not run), with totals by severity.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub findings: Option<FindingsReport>,
    /// How the attach plan changed during the recording (driver modules loaded or unloaded,
    /// callbacks discovered).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub plan_changes: Vec<PlanChangeReport>,
    /// `hmmtrace census`: who consumes HMM's exports.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub census: Option<crate::census::Census>,
}

#[derive(Serialize)]
pub struct PlanChangeReport {
    /// On the events' clock.
    pub at_ns: u64,
    pub changes: Vec<String>,
}

#[derive(Serialize)]
pub struct DeviceReport {
    pub device: String,
    #[serde(flatten)]
    pub pages: crate::findings::pages::DevicePages,
    pub held: u64,
    /// Time on the device of the pages measured, ns.
    pub lifetime_ns: Option<Latency>,
}

#[derive(Serialize)]
pub struct FindingsReport {
    pub total: u64,
    pub info: u64,
    pub warn: u64,
    pub error: u64,
    /// The first `findings::MAX_KEPT`, in the order they were concluded.
    pub list: Vec<crate::findings::Finding>,
}

fn latency(d: &crate::stats::Durations) -> Option<Latency> {
    (!d.is_empty()).then(|| {
        let q = |q: f64| d.quantile(q).unwrap_or(0);
        Latency {
            min: q(0.0),
            p50: q(0.50),
            p90: q(0.90),
            p99: q(0.99),
            p999: q(0.999),
            max: q(1.0),
            mean: d.mean().unwrap_or(0.0),
            stddev: d.stddev().unwrap_or(0.0),
            samples: d.count(),
        }
    })
}

/// One class's row.
pub fn kind_report(class: Class, k: &KindStats, rate_per_s: f64) -> KindReport {
    let latency_ns = latency(&k.latency);
    KindReport {
        kind: class.name(),
        count: k.count,
        rate_per_s,
        pages: k.pages,
        retries: (class == Class::RangeFault).then_some(k.retries),
        latency_ns,
    }
}

pub fn build(s: &Summary, source: &str) -> Report {
    let kinds = s
        .kinds
        .iter()
        .map(|(class, k)| kind_report(*class, k, s.rate(*class)))
        .collect();
    let groups = s
        .groups
        .iter()
        .map(|(group, kinds)| GroupReport {
            group: group.clone(),
            kinds: kinds
                .iter()
                .map(|(class, k)| kind_report(*class, k, crate::stats::rate(k.count, s.span_ns())))
                .collect(),
        })
        .collect();
    Report {
        source: source.to_string(),
        clock: s.clock,
        events: s.events,
        aggregated: s.aggregate.is_some(),
        span_ns: s.span_ns(),
        significant_digits: super::SIGNIFICANT_DIGITS,
        kinds,
        by: (s.by != super::GroupBy::Kind).then(|| format!("{:?}", s.by).to_lowercase()),
        groups,
        lost: s.lost.clone(),
        dropped_bytes: s.dropped_bytes,
        census: s.census.as_deref().cloned(),
        plan_changes: s
            .plan_changes
            .iter()
            .map(|(at_ns, changes)| PlanChangeReport {
                at_ns: *at_ns,
                changes: changes.clone(),
            })
            .collect(),
        devices: s
            .devices()
            .into_iter()
            .map(|(device, d)| DeviceReport {
                device,
                held: d.held(),
                lifetime_ns: latency(&d.lifetime),
                pages: d.clone(),
            })
            .collect(),
        findings: (s.findings.checked || !s.findings.is_empty()).then(|| {
            use crate::findings::Severity;
            FindingsReport {
                total: s.findings.len(),
                info: s.findings.of_severity(Severity::Info),
                warn: s.findings.of_severity(Severity::Warn),
                error: s.findings.of_severity(Severity::Error),
                list: s.findings.kept.clone(),
            }
        }),
    }
}

pub fn render(s: &Summary, source: &str) -> String {
    serde_json::to_string_pretty(&build(s, source)).expect("report serialises")
}
