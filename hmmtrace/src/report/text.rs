//! The human-readable report: one row per event kind, and with `--by`, one per group and kind.
//! Latencies come from the histograms, exact to 3 significant digits (see `SIGNIFICANT_DIGITS`).

use std::fmt::Write as _;

use super::{KindStats, Summary, PERCENTILES};

/// Formats nanoseconds with a unit that keeps three significant digits readable.
pub fn fmt_ns(ns: u64) -> String {
    match ns {
        0..=9_999 => format!("{ns}ns"),
        10_000..=9_999_999 => format!("{:.1}us", ns as f64 / 1e3),
        10_000_000..=9_999_999_999 => format!("{:.1}ms", ns as f64 / 1e6),
        _ => format!("{:.2}s", ns as f64 / 1e9),
    }
}

fn header(out: &mut String, first: &str, width: usize) {
    let _ = write!(
        out,
        "{first:<width$} {:>9} {:>10} {:>9} {:>9}",
        "count", "rate/s", "pages", "min"
    );
    for (label, _) in PERCENTILES {
        let _ = write!(out, " {label:>9}");
    }
    let _ = writeln!(out, " {:>9} {:>9}", "mean", "stddev");
}

fn row(out: &mut String, first: &str, width: usize, k: &KindStats, rate: f64) {
    let _ = write!(
        out,
        "{first:<width$} {:>9} {:>10.1} {:>9}",
        k.count, rate, k.pages
    );
    let h = &k.latency;
    if h.is_empty() {
        for _ in 0..PERCENTILES.len() + 3 {
            let _ = write!(out, " {:>9}", "-");
        }
    } else {
        let _ = write!(out, " {:>9}", fmt_ns(h.min()));
        for (_, q) in PERCENTILES {
            let _ = write!(out, " {:>9}", fmt_ns(h.value_at_quantile(q)));
        }
        let _ = write!(
            out,
            " {:>9} {:>9}",
            fmt_ns(h.mean().round() as u64),
            fmt_ns(h.stdev().round() as u64)
        );
    }
    out.push('\n');
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
    header(&mut out, "kind", 17);
    for (kind, k) in &s.kinds {
        row(&mut out, kind.name(), 17, k, s.rate(*kind));
    }
    if !s.groups.is_empty() {
        let width = s
            .groups
            .keys()
            .map(|g| g.chars().count() + 2 + 13)
            .max()
            .unwrap_or(17)
            .max(17);
        let _ = writeln!(out, "\nby {:?}:", s.by);
        header(&mut out, "group / kind", width);
        let span = s.span_ns();
        for (group, kinds) in &s.groups {
            for (kind, k) in kinds {
                let rate = rate(k.count, span);
                row(
                    &mut out,
                    &format!("{group}  {}", kind.name()),
                    width,
                    k,
                    rate,
                );
            }
        }
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

/// Events per second over `span` ns.
pub fn rate(count: u64, span: u64) -> f64 {
    if span == 0 {
        0.0
    } else {
        count as f64 * 1e9 / span as f64
    }
}
