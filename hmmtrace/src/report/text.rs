//! The human-readable report: one row per class, and with `--by`, one per group and class.
//! Count, pages, min, max and mean are exact; percentiles come from the histograms, within
//! their precision (see `SIGNIFICANT_DIGITS`). Rates are events per second of the source's
//! clock, over the span from the first event to the last.

use std::fmt::Write as _;

use super::{KindStats, Summary, PERCENTILES, SIGNIFICANT_DIGITS};
use crate::event::Class;

/// Formats nanoseconds in the unit that keeps the value between 1 and 1000, with four
/// significant digits: `950ns`, `5.748us`, `109.0us`, `2.374ms`, `1.250s`. Every view prints
/// durations with this, so the same value reads the same everywhere.
pub fn fmt_ns(ns: u64) -> String {
    if ns < 1_000 {
        return format!("{ns}ns");
    }
    // Four significant digits: 1.234, 12.34, 123.4 (and 1234.5s beyond); a value that rounds
    // up to 1000 of a unit is shown in the next one (999,999 ns is 1.000ms, not 1000.0us).
    let digits = |v: f64| {
        if v < 9.9995 {
            format!("{v:.3}")
        } else if v < 99.995 {
            format!("{v:.2}")
        } else {
            format!("{v:.1}")
        }
    };
    for (scale, unit) in [(1e3, "us"), (1e6, "ms")] {
        let v = ns as f64 / scale;
        if v < 999.95 {
            return format!("{}{unit}", digits(v));
        }
    }
    format!("{}s", digits(ns as f64 / 1e9))
}

fn header(out: &mut String, first: &str, width: usize) {
    let _ = write!(
        out,
        "{first:<width$} {:>9} {:>10} {:>9} {:>8} {:>9}",
        "count", "rate/s", "pages", "retries", "min"
    );
    for (label, _) in PERCENTILES {
        let _ = write!(out, " {label:>9}");
    }
    let _ = writeln!(out, " {:>9} {:>9}", "mean", "stddev");
}

fn row(out: &mut String, first: &str, width: usize, class: Class, k: &KindStats, rate: f64) {
    let retries = if class == Class::RangeFault {
        k.retries.to_string()
    } else {
        "-".into()
    };
    let _ = write!(
        out,
        "{first:<width$} {:>9} {:>10.1} {:>9} {retries:>8}",
        k.count, rate, k.pages
    );
    let d = &k.latency;
    match (d.min(), d.mean(), d.stddev()) {
        (Some(min), Some(mean), Some(sd)) => {
            let _ = write!(out, " {:>9}", fmt_ns(min));
            for (_, q) in PERCENTILES {
                let _ = write!(out, " {:>9}", fmt_ns(d.quantile(q).unwrap_or(0)));
            }
            let _ = write!(
                out,
                " {:>9} {:>9}",
                fmt_ns(mean.round() as u64),
                fmt_ns(sd.round() as u64)
            );
        }
        _ => {
            for _ in 0..PERCENTILES.len() + 3 {
                let _ = write!(out, " {:>9}", "-");
            }
        }
    }
    out.push('\n');
}

/// The table, with a heading line. `title` says what the events came from.
pub fn render(s: &Summary, title: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{title}: {} events over {}{}",
        s.events,
        fmt_ns(s.span_ns()),
        s.clock
            .map_or(String::new(), |c| format!(" of {}", c.describe()))
    );
    if s.aggregate.is_some() {
        let _ = writeln!(
            out,
            "counted in the kernel (--aggregate): no single events, so no findings, page lifetimes \
             or heat map; percentiles within 0.8 %, only by kind and by device"
        );
    }
    header(&mut out, "kind", 19);
    for (class, k) in &s.kinds {
        row(&mut out, class.name(), 19, *class, k, s.rate(*class));
    }
    if !s.groups.is_empty() {
        let width = s
            .groups
            .keys()
            .map(|g| g.chars().count() + 2 + 19)
            .max()
            .unwrap_or(19)
            .max(19);
        let _ = writeln!(out, "\nby {:?}:", s.by);
        header(&mut out, "group / kind", width);
        let span = s.span_ns();
        for (group, kinds) in &s.groups {
            for (class, k) in kinds {
                let rate = crate::stats::rate(k.count, span);
                row(
                    &mut out,
                    &format!("{group}  {}", class.name()),
                    width,
                    *class,
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
    if s.kinds.values().any(|k| !k.latency.is_empty()) {
        let _ = writeln!(
            out,
            "(count, pages, min, max and mean exact; percentiles within {} %; rates per \
             second of the clock over the span)",
            100.0 / 10f64.powi(i32::from(SIGNIFICANT_DIGITS))
        );
    }
    devices(&mut out, s);
    findings(&mut out, s);
    let changes = s.plan_change_lines();
    if !changes.is_empty() {
        let _ = writeln!(out, "\nattach plan changes during the recording:");
        for c in changes {
            let _ = writeln!(out, "  {c}");
        }
    }
    if let Some(c) = &s.census {
        let _ = write!(out, "\n{}", crate::census::render::text(c));
    }
    out
}

/// Device pages: where they went, and how long they lived on the device.
fn devices(out: &mut String, s: &Summary) {
    let devices = s.devices();
    if devices.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "\n{:<12} {:>9} {:>9} {:>9} {:>9} {:>9}   {:>9} {:>9} {:>9} {:>9} {:>10}",
        "device pages",
        "in",
        "back",
        "evicted",
        "freed",
        "held",
        "lived p50",
        "p90",
        "p99",
        "max",
        "unmeasured"
    );
    for (name, d) in devices {
        let c = super::device_cells(d);
        let _ = writeln!(
            out,
            "{name:<12} {:>9} {:>9} {:>9} {:>9} {:>9}   {:>9} {:>9} {:>9} {:>9} {:>10}",
            c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7], c[8], c[9]
        );
    }
    let _ = writeln!(
        out,
        "(held: migrated in and not freed; lived: time on the device of pages that left it \
         by migration back or unmap; unmeasured: pages resident while the device evicted by pfn)"
    );
}

/// The findings, worst first, each with its evidence.
pub fn findings(out: &mut String, s: &Summary) {
    let f = &s.findings;
    if !f.checked && f.is_empty() {
        return;
    }
    let _ = writeln!(out, "\nfindings: {}", f.summary());
    let mut kept: Vec<&crate::findings::Finding> = f.kept.iter().collect();
    kept.sort_by_key(|x| (std::cmp::Reverse(x.severity), x.first_ns));
    let t0 = if s.events > 0 { s.first_ts } else { 0 };
    for x in kept {
        let mut what = format!("{} [{}]", x.comm, x.tgid);
        if let Some(d) = &x.device {
            what.push_str(&format!(" {d}"));
        }
        if let Some(sym) = &x.symbol {
            what.push_str(&format!(" {sym}"));
        }
        if let Some((a, b)) = x.range {
            what.push_str(&format!(" {a:#x}..{b:#x}"));
        }
        let _ = writeln!(
            out,
            "  {:<5} {:<20} {what} at {}..{}",
            x.severity.name().to_uppercase(),
            x.kind.name(),
            fmt_ns(x.first_ns.saturating_sub(t0)),
            fmt_ns(x.last_ns.saturating_sub(t0))
        );
        let _ = writeln!(out, "        {}", x.message);
        let counts: Vec<String> = x.counts.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let _ = writeln!(out, "        {}", counts.join(" "));
    }
    if f.kept.len() as u64 > 0 && (f.kept.len() as u64) < f.len() {
        let _ = writeln!(
            out,
            "  ({} more not listed: the first {} are kept)",
            f.len() - f.kept.len() as u64,
            f.kept.len()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::fmt_ns;

    #[test]
    fn durations_have_four_significant_digits_in_the_unit_their_size_needs() {
        for (ns, shown) in [
            (999, "999ns"),
            (1_000, "1.000us"),
            (1_234, "1.234us"),
            (9_999, "9.999us"),
            (99_994, "99.99us"),
            (99_996, "100.0us"),
            (109_038, "109.0us"),
            (999_949, "999.9us"),
            (999_999, "1.000ms"),
            (2_373_600, "2.374ms"),
            (999_960_000, "1.000s"),
            (4_194_270_000_000, "4194.3s"),
        ] {
            assert_eq!(fmt_ns(ns), shown, "{ns} ns");
        }
    }
}
