//! The figures every view shows, computed one way: [`Durations`] keeps the exact count, sum,
//! minimum and maximum of a set of durations beside an HdrHistogram, so that the same data gives
//! the same count, min, max and mean in the report, the TUI, the metrics and the exports, and
//! only percentiles carry the histogram's precision ([`SIGNIFICANT_DIGITS`]: within 0.1 %).

use hdrhistogram::Histogram;

/// Significant decimal digits of the histograms behind percentiles: within 1 part in 1000.
pub const SIGNIFICANT_DIGITS: u8 = 3;

/// Longest duration a histogram tracks (one hour); longer ones are recorded as this in the
/// histogram (the exact figures keep them as they are). Fixed bounds keep memory constant.
pub const MAX_TRACKABLE_NS: u64 = 3_600_000_000_000;

/// A set of durations in ns: exact count, sum, min, max, mean and standard deviation, and a
/// histogram for percentiles.
#[derive(Clone, Debug)]
pub struct Durations {
    histogram: Histogram<u64>,
    count: u64,
    sum: u128,
    min: u64,
    max: u64,
    /// For the standard deviation, exactly in integers: the sum and the sum of squares of
    /// the values' differences from the first value (centred, so the final subtraction loses
    /// nothing to cancellation; no division per value).
    origin: u64,
    dsum: i128,
    dsq: i128,
    /// False for figures read from in-kernel aggregates: no per-value differences were kept,
    /// so there is no standard deviation to give.
    spread: bool,
}

impl Default for Durations {
    fn default() -> Self {
        Durations::new(SIGNIFICANT_DIGITS)
    }
}

impl Durations {
    /// With a histogram of fixed range (1 ns to [`MAX_TRACKABLE_NS`]) at `digits` significant
    /// digits.
    pub fn new(digits: u8) -> Durations {
        Durations::with(
            Histogram::new_with_bounds(1, MAX_TRACKABLE_NS, digits).expect("valid bounds"),
        )
    }

    /// With a histogram that grows only as far as the largest value recorded: for the many
    /// small sets of a grouped report.
    pub fn growing() -> Durations {
        let mut h = Histogram::new(SIGNIFICANT_DIGITS).expect("valid precision");
        h.auto(true);
        Durations::with(h)
    }

    fn with(histogram: Histogram<u64>) -> Durations {
        Durations {
            histogram,
            count: 0,
            sum: 0,
            min: u64::MAX,
            max: 0,
            origin: 0,
            dsum: 0,
            dsq: 0,
            spread: true,
        }
    }

    /// From in-kernel aggregates: the exact count, sum, minimum and maximum, and a histogram of
    /// `(value, count)`, each value a bucket's midpoint (`aggregate::bucket_mid`: percentiles
    /// are then within half a bucket). No standard deviation.
    pub fn from_aggregate(
        count: u64,
        sum: u128,
        min: u64,
        max: u64,
        buckets: impl Iterator<Item = (u64, u64)>,
    ) -> Durations {
        let mut d = Durations::growing();
        for (value, n) in buckets {
            let _ = d.histogram.record_n(value, n);
        }
        d.count = count;
        d.sum = sum;
        d.min = if count > 0 { min } else { u64::MAX };
        d.max = max;
        d.spread = false;
        d
    }

    pub fn record(&mut self, ns: u64) {
        self.count += 1;
        self.sum += u128::from(ns);
        self.min = self.min.min(ns);
        self.max = self.max.max(ns);
        if self.count == 1 {
            self.origin = ns;
        }
        let d = i128::from(ns) - i128::from(self.origin);
        self.dsum += d;
        self.dsq += d * d;
        // The histogram's lowest bucket is 1 ns; beyond its top it saturates (a growing one
        // grows instead).
        let v = ns.clamp(1, MAX_TRACKABLE_NS);
        if self.histogram.is_auto_resize() {
            let _ = self.histogram.record(v);
        } else {
            self.histogram.saturating_record(v);
        }
    }

    /// Records `n` durations of `ns` (pages that lived equally long), in O(1).
    pub fn record_n(&mut self, ns: u64, n: u64) {
        if n == 0 {
            return;
        }
        if self.count == 0 {
            self.origin = ns;
        }
        let d = i128::from(ns) - i128::from(self.origin);
        self.dsum += d * i128::from(n);
        self.dsq += d * d * i128::from(n);
        self.count += n;
        self.sum += u128::from(ns) * u128::from(n);
        self.min = self.min.min(ns);
        self.max = self.max.max(ns);
        let v = ns.clamp(1, MAX_TRACKABLE_NS);
        if self.histogram.is_auto_resize() {
            let _ = self.histogram.record_n(v, n);
        } else {
            self.histogram.saturating_record_n(v, n);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    pub fn sum(&self) -> u128 {
        self.sum
    }

    pub fn min(&self) -> Option<u64> {
        (self.count > 0).then_some(self.min)
    }

    pub fn max(&self) -> Option<u64> {
        (self.count > 0).then_some(self.max)
    }

    /// The exact mean.
    pub fn mean(&self) -> Option<f64> {
        (self.count > 0).then(|| self.sum as f64 / self.count as f64)
    }

    /// The population standard deviation.
    pub fn stddev(&self) -> Option<f64> {
        (self.count > 0 && self.spread).then(|| {
            // n·Σd² − (Σd)², over n²: the population variance of the values.
            let n = self.count as f64;
            let var = (self.dsq as f64 - (self.dsum as f64) * (self.dsum as f64) / n) / n;
            var.max(0.0).sqrt()
        })
    }

    /// The value at quantile `q`: the exact min and max at 0 and 1, the histogram's value in
    /// between (within its precision, and never outside the exact extremes). `None` between
    /// the extremes when the histogram holds nothing (aggregates kept no histogram for them).
    pub fn quantile(&self, q: f64) -> Option<u64> {
        if self.count == 0 {
            return None;
        }
        if q > 0.0 && q < 1.0 && self.histogram.is_empty() {
            return None;
        }
        Some(if q >= 1.0 {
            self.max
        } else if q <= 0.0 {
            self.min
        } else {
            self.histogram
                .value_at_quantile(q)
                .clamp(self.min, self.max)
        })
    }

    pub fn histogram(&self) -> &Histogram<u64> {
        &self.histogram
    }

    /// Adds `other`'s durations (histograms of the same precision).
    pub fn merge(&mut self, other: &Durations) {
        if other.count == 0 {
            return;
        }
        if self.count == 0 {
            self.origin = other.origin;
        }
        // Other's differences moved to this origin: d' = d + (o' − o).
        let shift = i128::from(other.origin) - i128::from(self.origin);
        let m = i128::from(other.count);
        self.dsq += other.dsq + 2 * shift * other.dsum + shift * shift * m;
        self.dsum += other.dsum + shift * m;
        self.count += other.count;
        self.sum += other.sum;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        self.spread &= other.spread;
        let _ = self.histogram.add(&other.histogram);
    }
}

/// Events per second: `count` over `span_ns`, 0 for an empty span.
pub fn rate(count: u64, span_ns: u64) -> f64 {
    if span_ns == 0 {
        0.0
    } else {
        count as f64 * 1e9 / span_ns as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_duration_is_its_own_min_max_and_every_percentile() {
        // The histogram alone says min 109.0us, max 109.1us for one value of 109,038 ns.
        let mut d = Durations::default();
        d.record(109_038);
        assert_eq!(d.min(), Some(109_038));
        assert_eq!(d.max(), Some(109_038));
        assert_eq!(d.quantile(0.5), Some(109_038));
        assert_eq!(d.quantile(0.999), Some(109_038));
        assert_eq!(d.mean(), Some(109_038.0));
        assert_eq!(d.stddev(), Some(0.0));
    }

    #[test]
    fn merged_and_repeated_records_give_the_figures_of_one_set() {
        // Values far from 0 with a small spread: no cancellation in the standard deviation.
        let values: Vec<u64> = (0..500).map(|i| 1_000_000_000_000 + (i % 7) * 3).collect();
        let mut all = Durations::default();
        let (mut a, mut b) = (Durations::default(), Durations::default());
        for (i, v) in values.iter().enumerate() {
            all.record(*v);
            if i % 3 == 0 {
                a.record(*v)
            } else {
                b.record(*v)
            }
        }
        a.merge(&b);
        let mean = values.iter().map(|v| *v as f64).sum::<f64>() / 500.0;
        let exact = (values
            .iter()
            .map(|v| (*v as f64 - mean).powi(2))
            .sum::<f64>()
            / 500.0)
            .sqrt();
        for d in [&all, &a] {
            assert_eq!(
                (d.count(), d.sum(), d.min(), d.max()),
                (
                    500,
                    values.iter().map(|v| u128::from(*v)).sum(),
                    Some(1_000_000_000_000),
                    Some(1_000_000_000_018)
                )
            );
            assert!(
                (d.stddev().unwrap() - exact).abs() < 1e-9 * exact.max(1.0),
                "{:?} vs {exact}",
                d.stddev()
            );
        }
        let mut n = Durations::default();
        n.record_n(700, 3);
        n.record(100);
        let mut one = Durations::default();
        for v in [700, 700, 700, 100] {
            one.record(v);
        }
        assert_eq!(
            (n.count(), n.sum(), n.stddev()),
            (one.count(), one.sum(), one.stddev())
        );
    }

    #[test]
    fn exact_figures_beside_percentiles_within_the_precision() {
        let mut d = Durations::default();
        let values: Vec<u64> = (1..=1000).map(|i| i * 1_403).collect();
        for v in &values {
            d.record(*v);
        }
        assert_eq!(d.count(), 1000);
        assert_eq!(d.sum(), values.iter().map(|v| u128::from(*v)).sum());
        assert_eq!(d.max(), Some(1_403_000));
        let p50 = d.quantile(0.5).unwrap() as f64;
        assert!((p50 - 701_500.0).abs() / 701_500.0 < 0.002, "{p50}");
        let sd = d.stddev().unwrap();
        let mean = d.mean().unwrap();
        let exact = (values
            .iter()
            .map(|v| (*v as f64 - mean).powi(2))
            .sum::<f64>()
            / 1000.0)
            .sqrt();
        assert!((sd - exact).abs() < 1e-6 * exact, "{sd} vs {exact}");
    }

    #[test]
    fn merged_sets_are_the_set_of_both() {
        let (mut a, mut b, mut all) = (
            Durations::default(),
            Durations::default(),
            Durations::default(),
        );
        for v in [5, 900, 12_000] {
            a.record(v);
            all.record(v);
        }
        for v in [7, 3_000_000] {
            b.record(v);
            all.record(v);
        }
        a.merge(&b);
        assert_eq!(
            (a.count(), a.sum(), a.min(), a.max()),
            (all.count(), all.sum(), all.min(), all.max())
        );
        assert!((a.stddev().unwrap() - all.stddev().unwrap()).abs() < 1e-6);
        assert_eq!(a.quantile(0.5), all.quantile(0.5));
    }
}
