//! The machine-readable report (`--format json`).

use serde::Serialize;

use super::{Summary, PERCENTILES};

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
pub struct Report {
    pub source: String,
    pub events: u64,
    pub span_ns: u64,
    /// Histogram precision: significant decimal digits.
    pub significant_digits: u8,
    pub kinds: Vec<KindReport>,
    pub lost: std::collections::BTreeMap<String, u64>,
    pub dropped_bytes: u64,
}

pub fn build(s: &Summary, source: &str, dropped_bytes: u64) -> Report {
    let kinds = s
        .kinds
        .iter()
        .map(|(kind, k)| {
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
                rate_per_s: s.rate(*kind),
                pages: k.pages,
                latency_ns,
            }
        })
        .collect();
    Report {
        source: source.to_string(),
        events: s.events,
        span_ns: s.span_ns(),
        significant_digits: super::SIGNIFICANT_DIGITS,
        kinds,
        lost: s.lost.clone(),
        dropped_bytes,
    }
}

pub fn render(s: &Summary, source: &str, dropped_bytes: u64) -> String {
    serde_json::to_string_pretty(&build(s, source, dropped_bytes)).expect("report serialises")
}
