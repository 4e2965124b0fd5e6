//! `report FILE --compare BASELINE`: the two summaries side by side per kind, with the change
//! of FILE against BASELINE, and `--fail-if` thresholds that a CI job can gate on.
//!
//! A threshold is `[KIND.]METRIC OP CHANGE`: METRIC is one of count, rate, p50, p90, p99,
//! p99.9, max, mean; OP is `>` (fail when FILE exceeds BASELINE by more than CHANGE) or `<`
//! (fail when it falls short by more); CHANGE is a percentage (`+10%`) or an amount, in
//! ns/us/ms/s for latencies (`+2ms`) or plain for counts and rates. Without KIND it applies to
//! every kind both captures have.

use std::fmt::Write as _;
use std::str::FromStr;

use super::text::fmt_ns;
use super::{KindStats, Summary};
use crate::event::Class;
use crate::stats::rate;

/// What a threshold or a comparison row measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Metric {
    Count,
    Rate,
    Quantile(u32),
    Mean,
}

impl Metric {
    const ALL: [(&'static str, Metric); 8] = [
        ("count", Metric::Count),
        ("rate", Metric::Rate),
        ("p50", Metric::Quantile(500)),
        ("p90", Metric::Quantile(900)),
        ("p99", Metric::Quantile(990)),
        ("p99.9", Metric::Quantile(999)),
        ("max", Metric::Quantile(1000)),
        ("mean", Metric::Mean),
    ];

    pub fn name(self) -> &'static str {
        Metric::ALL
            .iter()
            .find(|(_, m)| *m == self)
            .map_or("?", |(n, _)| n)
    }

    fn named(name: &str) -> Option<Metric> {
        Metric::ALL
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, m)| *m)
    }

    fn is_latency(self) -> bool {
        matches!(self, Metric::Quantile(_) | Metric::Mean)
    }

    /// The value in `k` (latencies in ns); `None` for a latency of a kind without durations.
    fn of(self, k: &KindStats, span_ns: u64) -> Option<f64> {
        let d = &k.latency;
        match self {
            Metric::Count => Some(k.count as f64),
            Metric::Rate => Some(rate(k.count, span_ns)),
            Metric::Quantile(q) => d.quantile(f64::from(q) / 1000.0).map(|v| v as f64),
            Metric::Mean => d.mean(),
        }
    }

    fn show(self, v: f64) -> String {
        match self {
            Metric::Count => format!("{v:.0}"),
            Metric::Rate => format!("{v:.1}/s"),
            _ => fmt_ns(v.round() as u64),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Change {
    Percent(f64),
    Amount(f64),
}

/// One `--fail-if`.
#[derive(Clone, Debug, PartialEq)]
pub struct Threshold {
    text: String,
    kind: Option<Class>,
    metric: Metric,
    greater: bool,
    change: Change,
}

impl FromStr for Threshold {
    type Err = String;

    fn from_str(s: &str) -> Result<Threshold, String> {
        let text = s.trim().to_string();
        let (lhs, greater, rhs) = match (text.find('>'), text.find('<')) {
            (Some(i), None) => (&text[..i], true, &text[i + 1..]),
            (None, Some(i)) => (&text[..i], false, &text[i + 1..]),
            _ => {
                return Err(format!(
                    "'{s}': expected METRIC>CHANGE or METRIC<CHANGE, e.g. 'p99>+10%'"
                ))
            }
        };
        let lhs = lhs.trim();
        // `p99.9` has a dot too: a kind prefix is what precedes a dot unless the whole is a
        // metric.
        let (kind, metric_name) = match lhs.split_once('.') {
            Some(_) if Metric::named(lhs).is_some() => (None, lhs),
            Some((k, m)) => match Class::from_name(k) {
                Some(c) => (Some(c), m),
                None => {
                    return Err(format!(
                        "'{s}': unknown kind '{k}' (one of: {})",
                        Class::ALL.map(|c| c.name()).join(", ")
                    ))
                }
            },
            None => (None, lhs),
        };
        let metric = Metric::named(metric_name).ok_or_else(|| {
            format!(
                "'{s}': unknown metric '{metric_name}' (one of: {})",
                Metric::ALL.map(|(n, _)| n).join(", ")
            )
        })?;
        let rhs = rhs.trim();
        let (number, unit) = match rhs.find(|c: char| c.is_ascii_alphabetic() || c == '%') {
            Some(i) => (&rhs[..i], &rhs[i..]),
            None => (rhs, ""),
        };
        let n: f64 = number
            .trim_start_matches('+')
            .parse()
            .map_err(|_| format!("'{s}': '{rhs}' is not a change such as +10% or +2ms"))?;
        let n = n.abs();
        let change = match unit {
            "%" => Change::Percent(n),
            "" if !metric.is_latency() => Change::Amount(n),
            "ns" | "us" | "ms" | "s" if metric.is_latency() => Change::Amount(
                n * match unit {
                    "ns" => 1.0,
                    "us" => 1e3,
                    "ms" => 1e6,
                    _ => 1e9,
                },
            ),
            _ => {
                return Err(format!(
                    "'{s}': a change of {} takes % or {}",
                    metric.name(),
                    if metric.is_latency() {
                        "a time unit (ns, us, ms, s)"
                    } else {
                        "a plain number"
                    }
                ))
            }
        };
        Ok(Threshold {
            text,
            kind,
            metric,
            greater,
            change,
        })
    }
}

impl Threshold {
    /// Whether FILE's `now` crosses the threshold against BASELINE's `base`.
    fn crossed(&self, base: f64, now: f64) -> bool {
        let limit = match self.change {
            Change::Percent(p) if self.greater => base * (1.0 + p / 100.0),
            Change::Percent(p) => base * (1.0 - p / 100.0),
            Change::Amount(a) if self.greater => base + a,
            Change::Amount(a) => base - a,
        };
        if self.greater {
            now > limit
        } else {
            now < limit
        }
    }
}

fn delta(base: f64, now: f64) -> String {
    if base == 0.0 {
        if now == 0.0 {
            "=".into()
        } else {
            "new".into()
        }
    } else {
        format!("{:+.1}%", (now - base) / base * 100.0)
    }
}

/// The side-by-side table: per kind, each metric in BASELINE and FILE and the change.
pub fn render(file: &Summary, base: &Summary, file_name: &str, base_name: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{file_name} against baseline {base_name}");
    let _ = writeln!(
        out,
        "{:<19} {:<7} {:>12} {:>12} {:>9}",
        "kind", "metric", "baseline", "this", "change"
    );
    let kinds: std::collections::BTreeSet<Class> = file
        .kinds
        .keys()
        .chain(base.kinds.keys())
        .copied()
        .collect();
    let empty = KindStats::default();
    for kind in kinds {
        let f = file.kinds.get(&kind).unwrap_or(&empty);
        let b = base.kinds.get(&kind).unwrap_or(&empty);
        for (_, m) in Metric::ALL {
            let (Some(bv), Some(fv)) = (m.of(b, base.span_ns()), m.of(f, file.span_ns())) else {
                continue;
            };
            let _ = writeln!(
                out,
                "{:<19} {:<7} {:>12} {:>12} {:>9}",
                kind.name(),
                m.name(),
                m.show(bv),
                m.show(fv),
                delta(bv, fv)
            );
        }
    }
    out
}

/// The thresholds FILE crosses against BASELINE, one line each.
pub fn check(thresholds: &[Threshold], file: &Summary, base: &Summary) -> Vec<String> {
    let mut crossed = Vec::new();
    for t in thresholds {
        for (kind, f) in &file.kinds {
            if t.kind.is_some_and(|k| k != *kind) {
                continue;
            }
            let Some(b) = base.kinds.get(kind) else {
                continue;
            };
            let m = t.metric;
            let (Some(bv), Some(fv)) = (m.of(b, base.span_ns()), m.of(f, file.span_ns())) else {
                continue;
            };
            if t.crossed(bv, fv) {
                crossed.push(format!(
                    "{}: {} {} went from {} to {} ({})",
                    t.text,
                    kind.name(),
                    m.name(),
                    m.show(bv),
                    m.show(fv),
                    delta(bv, fv)
                ));
            }
        }
    }
    crossed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_parse_with_kinds_units_and_clear_errors() {
        let t: Threshold = "p99>+10%".parse().unwrap();
        assert_eq!(
            (t.kind, t.metric, t.greater),
            (None, Metric::Quantile(990), true)
        );
        assert_eq!(t.change, Change::Percent(10.0));
        let t: Threshold = "migration.p99.9>2ms".parse().unwrap();
        assert_eq!(t.kind, Some(Class::Migration));
        assert_eq!(t.metric, Metric::Quantile(999));
        assert_eq!(t.change, Change::Amount(2e6));
        let t: Threshold = "count<-5%".parse().unwrap();
        assert!(!t.greater);
        assert!("p99=10%"
            .parse::<Threshold>()
            .unwrap_err()
            .contains("expected METRIC>CHANGE"));
        assert!("p42>1%"
            .parse::<Threshold>()
            .unwrap_err()
            .contains("unknown metric"));
        assert!("p99>10"
            .parse::<Threshold>()
            .unwrap_err()
            .contains("time unit"));
        assert!("count>3ms"
            .parse::<Threshold>()
            .unwrap_err()
            .contains("plain number"));
        assert!("p99>lots"
            .parse::<Threshold>()
            .unwrap_err()
            .contains("not a change"));
        // A misspelt kind is named as the kind, not blamed on the metric.
        let e = "migraton.p99>+1%".parse::<Threshold>().unwrap_err();
        assert!(
            e.contains("unknown kind 'migraton'") && e.contains("migration"),
            "{e}"
        );
        assert_eq!(
            "interval_invalidate.max>+1ms"
                .parse::<Threshold>()
                .unwrap()
                .kind,
            Some(Class::IntervalInvalidate)
        );
    }

    #[test]
    fn crossing_is_strict_and_directional() {
        let t: Threshold = "p99>+10%".parse().unwrap();
        assert!(!t.crossed(100.0, 110.0));
        assert!(t.crossed(100.0, 110.1));
        let t: Threshold = "rate<-20%".parse().unwrap();
        assert!(!t.crossed(100.0, 80.0));
        assert!(t.crossed(100.0, 79.9));
        let t: Threshold = "max>+1us".parse().unwrap();
        assert!(t.crossed(1000.0, 2001.0) && !t.crossed(1000.0, 2000.0));
    }
}
