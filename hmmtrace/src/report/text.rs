//! The human-readable report: one row per event kind.

use std::fmt::Write as _;

use super::{Summary, PERCENTILES};

/// Formats nanoseconds with a unit that keeps three significant digits readable.
pub fn fmt_ns(ns: u64) -> String {
    match ns {
        0..=9_999 => format!("{ns}ns"),
        10_000..=9_999_999 => format!("{:.1}us", ns as f64 / 1e3),
        10_000_000..=9_999_999_999 => format!("{:.1}ms", ns as f64 / 1e6),
        _ => format!("{:.2}s", ns as f64 / 1e9),
    }
}

/// The table, with a heading line. `title` says what the events came from.
pub fn render(s: &Summary, title: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{title}: {} events over {}",
        s.events,
        fmt_ns(s.span_ns())
    );
    let _ = write!(
        out,
        "{:<17} {:>9} {:>10} {:>9} {:>9}",
        "kind", "count", "rate/s", "pages", "min"
    );
    for (label, _) in PERCENTILES {
        let _ = write!(out, " {label:>9}");
    }
    out.push('\n');
    for (kind, k) in &s.kinds {
        let _ = write!(
            out,
            "{:<17} {:>9} {:>10.1} {:>9}",
            kind.name(),
            k.count,
            s.rate(*kind),
            k.pages
        );
        if k.latency.is_empty() {
            let _ = write!(out, " {:>9}", "-");
            for _ in PERCENTILES {
                let _ = write!(out, " {:>9}", "-");
            }
        } else {
            let _ = write!(out, " {:>9}", fmt_ns(k.latency.min()));
            for (_, q) in PERCENTILES {
                let _ = write!(out, " {:>9}", fmt_ns(k.latency.value_at_quantile(q)));
            }
        }
        out.push('\n');
    }
    if s.total_lost() > 0 {
        let _ = writeln!(
            out,
            "LOST EVENTS: {} (the ring buffer was full):",
            s.total_lost()
        );
        for (probe, n) in &s.lost {
            let _ = writeln!(out, "  {probe}: {n}");
        }
    }
    out
}
