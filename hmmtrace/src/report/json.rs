//! The machine-readable report (`--format json`).

use serde::Serialize;

use super::{KindStats, Summary, PERCENTILES};
use crate::event::EventKind;

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
    pub events: u64,
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
}

/// One kind's row.
pub fn kind_report(kind: EventKind, k: &KindStats, rate_per_s: f64) -> KindReport {
    let h = &k.latency;
    let latency_ns = (!h.is_empty()).then(|| {
        let q: Vec<u64> = PERCENTILES
            .iter()
            .map(|(_, q)| h.value_at_quantile(*q))
            .collect();
        Latency {
            min: h.min(),
            p50: q[0],
            p90: q[1],
            p99: q[2],
            p999: q[3],
            max: q[4],
            mean: h.mean(),
            stddev: h.stdev(),
            samples: h.len(),
        }
    });
    KindReport {
        kind: kind.name(),
        count: k.count,
        rate_per_s,
        pages: k.pages,
        latency_ns,
    }
}

pub fn build(s: &Summary, source: &str) -> Report {
    let kinds = s
        .kinds
        .iter()
        .map(|(kind, k)| kind_report(*kind, k, s.rate(*kind)))
        .collect();
    let groups = s
        .groups
        .iter()
        .map(|(group, kinds)| GroupReport {
            group: group.clone(),
            kinds: kinds
                .iter()
                .map(|(kind, k)| kind_report(*kind, k, super::text::rate(k.count, s.span_ns())))
                .collect(),
        })
        .collect();
    Report {
        source: source.to_string(),
        events: s.events,
        span_ns: s.span_ns(),
        significant_digits: super::SIGNIFICANT_DIGITS,
        kinds,
        by: (s.by != super::GroupBy::Kind).then(|| format!("{:?}", s.by).to_lowercase()),
        groups,
        lost: s.lost.clone(),
        dropped_bytes: s.dropped_bytes,
    }
}

pub fn render(s: &Summary, source: &str) -> String {
    serde_json::to_string_pretty(&build(s, source)).expect("report serialises")
}
