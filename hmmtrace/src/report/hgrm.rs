//! `--format hgrm`: HdrHistogram's percentile distribution output, the text other HdrHistogram
//! tools print and plot (the HdrHistogram plotter, wrk2, ...): per kind (and with `--by`, per
//! group and kind), rows of value, percentile, total count and 1/(1-percentile), with 5 ticks
//! per half distance, values in microseconds, then the mean, standard deviation, max and count
//! (exact, as every view prints them).

use std::fmt::Write as _;

use super::{Durations, KindStats, Summary};
use crate::event::Class;

/// Values are printed in microseconds (HdrHistogram's usual unit for latencies).
pub const UNIT_SCALING: f64 = 1000.0;
/// Percentile ticks per half distance to 100 %.
pub const TICKS_PER_HALF_DISTANCE: u32 = 5;

/// One set's distribution, as HdrHistogram's `outputPercentileDistribution` prints its
/// histogram (the footer's mean, deviation and max are the exact ones).
pub fn distribution(d: &Durations) -> String {
    let h = d.histogram();
    let digits = h.sigfig() as usize;
    let mut out = String::new();
    let _ = write!(
        out,
        "{:>12} {:>14} {:>10} {:>14}\n\n",
        "Value", "Percentile", "TotalCount", "1/(1-Percentile)"
    );
    let mut total = 0u64;
    for v in h.iter_quantiles(TICKS_PER_HALF_DISTANCE) {
        total += v.count_since_last_iteration();
        let value = v.value_iterated_to() as f64 / UNIT_SCALING;
        let q = v.quantile_iterated_to();
        if q < 1.0 {
            let _ = writeln!(
                out,
                "{value:>12.digits$} {q:>2.12} {total:>10} {:>14.2}",
                1.0 / (1.0 - q)
            );
        } else {
            let _ = writeln!(out, "{value:>12.digits$} {q:>2.12} {total:>10}");
        }
    }
    let _ = writeln!(
        out,
        "#[Mean    = {:>12.digits$}, StdDeviation   = {:>12.digits$}]",
        d.mean().unwrap_or(0.0) / UNIT_SCALING,
        d.stddev().unwrap_or(0.0) / UNIT_SCALING
    );
    let _ = writeln!(
        out,
        "#[Max     = {:>12.digits$}, Total count    = {:>12}]",
        d.max().unwrap_or(0) as f64 / UNIT_SCALING,
        d.count()
    );
    let _ = writeln!(
        out,
        "#[Buckets = {:>12}, SubBuckets     = {:>12}]",
        h.buckets(),
        // HdrHistogram's sub-bucket count: 2^ceil(log2(2 * 10^digits)).
        1u64 << (2.0 * 10f64.powi(i32::from(h.sigfig()))).log2().ceil() as u32
    );
    out
}

/// Every kind with latencies (and with `--by`, every group's), each preceded by a comment
/// line naming it. An error when nothing has a latency: an hgrm would be empty.
pub fn render(s: &Summary) -> anyhow::Result<String> {
    let mut out = String::new();
    let mut section = |group: Option<&str>, class: Class, k: &KindStats| {
        if k.latency.is_empty() {
            return;
        }
        let name = match group {
            Some(g) => format!("{:?} {g} / {}", s.by, class.name()).to_lowercase(),
            None => class.name().to_string(),
        };
        let _ = writeln!(
            out,
            "# {name}: entry-to-exit latency, microseconds ({} events)",
            k.latency.count()
        );
        out.push_str(&distribution(&k.latency));
        out.push('\n');
    };
    for (class, k) in &s.kinds {
        section(None, *class, k);
    }
    for (group, kinds) in &s.groups {
        for (class, k) in kinds {
            section(Some(group), *class, k);
        }
    }
    if out.is_empty() {
        anyhow::bail!(
            "no event has a latency (kinds: {}): an hgrm would be empty; use --format text or json",
            s.kinds
                .keys()
                .map(|c| c.name())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(out)
}
