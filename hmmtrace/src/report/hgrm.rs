//! `--format hgrm`: HdrHistogram's percentile distribution output, the text other HdrHistogram
//! tools print and plot (the HdrHistogram plotter, wrk2, ...): per kind, rows of value,
//! percentile, total count and 1/(1-percentile), with 5 ticks per half distance, values in
//! microseconds, then the mean, standard deviation, max and count.

use std::fmt::Write as _;

use hdrhistogram::Histogram;

use super::Summary;

/// Values are printed in microseconds (HdrHistogram's usual unit for latencies).
pub const UNIT_SCALING: f64 = 1000.0;
/// Percentile ticks per half distance to 100 %.
pub const TICKS_PER_HALF_DISTANCE: u32 = 5;

/// One histogram's distribution, exactly as HdrHistogram's `outputPercentileDistribution`.
pub fn distribution(h: &Histogram<u64>) -> String {
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
        h.mean() / UNIT_SCALING,
        h.stdev() / UNIT_SCALING
    );
    let _ = writeln!(
        out,
        "#[Max     = {:>12.digits$}, Total count    = {:>12}]",
        h.max() as f64 / UNIT_SCALING,
        h.len()
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

/// Every kind with latencies, each preceded by a comment line naming it.
pub fn render(s: &Summary) -> String {
    let mut out = String::new();
    for (kind, k) in &s.kinds {
        if k.latency.is_empty() {
            continue;
        }
        let _ = writeln!(
            out,
            "# {}: entry-to-exit latency, microseconds ({} events)",
            kind.name(),
            k.latency.len()
        );
        out.push_str(&distribution(&k.latency));
        out.push('\n');
    }
    out
}
