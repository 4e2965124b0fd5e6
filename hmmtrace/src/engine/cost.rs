//! The engine's simulated clock and what each operation costs on it.
//!
//! Every duration the engine reports is the sum of the costs below for the work the operation
//! actually did (pages collected, copied, cleared, faulted), stretched by a seeded jitter so that
//! histograms have a shape. None of it is measured: the engine exists to reproduce HMM's event
//! *stream*; for real latencies, record a kernel.

use rand::{Rng as _, SeedableRng as _};
use rand_chacha::ChaCha8Rng;
use serde::Deserialize;

/// Nanosecond costs. Defaults are round figures of the order a PCIe GPU driver sees; a scenario's
/// `[cost]` table overrides any of them.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct CostModel {
    /// `migrate_vma_setup`: fixed part (notifier, page walk setup).
    pub setup_base_ns: u64,
    /// `migrate_vma_setup`: per page collected and unmapped.
    pub setup_per_page_ns: u64,
    /// Driver copy between setup and `migrate_vma_pages` (DMA), per page.
    pub copy_per_page_ns: u64,
    /// `migrate_vma_pages`: fixed part.
    pub pages_base_ns: u64,
    /// `migrate_vma_pages`: per page moved.
    pub pages_per_page_ns: u64,
    /// `migrate_vma_finalize`: fixed part.
    pub finalize_base_ns: u64,
    /// `migrate_vma_finalize`: per page remapped.
    pub finalize_per_page_ns: u64,
    /// `migrate_to_ram`: the callback's own overhead around its migration.
    pub fault_base_ns: u64,
    /// The core free path of a device page, around the driver's callback.
    pub page_free_ns: u64,
    /// The driver's `page_free` callback (returning the page to its allocator).
    pub page_free_callback_ns: u64,
    /// `__mmu_notifier_invalidate_range_start`: fixed part beyond its callbacks.
    pub invalidate_base_ns: u64,
    /// A driver's interval `invalidate` callback: fixed part.
    pub callback_base_ns: u64,
    /// A driver's interval `invalidate` callback: per mirrored page it clears.
    pub callback_per_page_ns: u64,
    /// `hmm_range_fault`: fixed part.
    pub range_fault_base_ns: u64,
    /// `hmm_range_fault`: per page walked.
    pub range_fault_per_page_ns: u64,
    /// A CPU page fault that allocates or copies (COW) a system page.
    pub cpu_fault_ns: u64,
    /// Relative jitter: each cost is multiplied by `1 + jitter * u`, u uniform in [0, 1).
    pub jitter: f64,
    /// Probability that an operation lands in the slow tail (lock contention, preemption).
    pub tail_probability: f64,
    /// Multiplier for an operation in the tail.
    pub tail_factor: f64,
}

impl Default for CostModel {
    fn default() -> Self {
        CostModel {
            setup_base_ns: 2_000,
            setup_per_page_ns: 150,
            copy_per_page_ns: 1_000,
            pages_base_ns: 500,
            pages_per_page_ns: 120,
            finalize_base_ns: 800,
            finalize_per_page_ns: 100,
            fault_base_ns: 3_000,
            page_free_ns: 100,
            page_free_callback_ns: 60,
            invalidate_base_ns: 300,
            callback_base_ns: 250,
            callback_per_page_ns: 20,
            range_fault_base_ns: 1_000,
            range_fault_per_page_ns: 80,
            cpu_fault_ns: 600,
            jitter: 0.25,
            tail_probability: 0.005,
            tail_factor: 8.0,
        }
    }
}

impl CostModel {
    /// Checks the values make sense; the error names the field.
    pub fn validate(&self) -> Result<(), String> {
        if !(0.0..=10.0).contains(&self.jitter) {
            return Err(format!(
                "cost.jitter must be within 0..=10, not {}",
                self.jitter
            ));
        }
        if !(0.0..=1.0).contains(&self.tail_probability) {
            return Err(format!(
                "cost.tail_probability must be within 0..=1, not {}",
                self.tail_probability
            ));
        }
        if !(1.0..=1000.0).contains(&self.tail_factor) {
            return Err(format!(
                "cost.tail_factor must be within 1..=1000, not {}",
                self.tail_factor
            ));
        }
        Ok(())
    }
}

/// `base × factor` rounded half away from zero, as `f64::round` would (a libm call on baseline
/// x86-64, and this runs several times per page), saturating at `u64::MAX`: the fraction of a
/// non-negative float is exact. Below 2^63 the conversions go through i64, one instruction
/// each where u64's take a dozen on baseline x86-64; the values are the same.
#[inline]
fn stretch(base: u64, factor: f64) -> u64 {
    const I64_LIMIT: f64 = 9_223_372_036_854_775_808.0;
    let x = if base < 1 << 62 {
        (base as i64 as f64) * factor
    } else {
        (base as f64) * factor
    };
    if x < I64_LIMIT {
        let whole = x as i64;
        (whole + i64::from(x - whole as f64 >= 0.5)) as u64
    } else {
        let whole = x as u64;
        whole.saturating_add(u64::from(x - whole as f64 >= 0.5))
    }
}

/// The simulated clock plus the seeded randomness that stretches costs.
pub struct Clock {
    now_ns: u64,
    rng: ChaCha8Rng,
    pub model: CostModel,
}

impl Clock {
    pub fn new(model: CostModel, seed: u64) -> Clock {
        Clock {
            now_ns: 0,
            rng: ChaCha8Rng::seed_from_u64(seed),
            model,
        }
    }

    pub fn now(&self) -> u64 {
        self.now_ns
    }

    /// Advances the clock by `base` ns stretched by jitter and tail; returns the time spent.
    pub fn spend(&mut self, base: u64) -> u64 {
        if base == 0 {
            return 0;
        }
        let m = &self.model;
        let mut factor = 1.0 + m.jitter * self.rng.random::<f64>();
        if m.tail_probability > 0.0 && self.rng.random::<f64>() < m.tail_probability {
            factor *= m.tail_factor;
        }
        let spent = stretch(base, factor).max(1);
        // A scenario may declare costs near 2^64: the clock stops there rather than wrap.
        self.now_ns = self.now_ns.saturating_add(spent);
        spent
    }

    /// Idle time between operations (not attributed to any event).
    pub fn idle(&mut self, ns: u64) {
        self.now_ns = self.now_ns.saturating_add(ns);
    }

    /// A deterministic choice in `0..n`.
    pub fn pick(&mut self, n: u32) -> u32 {
        if n <= 1 {
            0
        } else {
            self.rng.random_range(0..n)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::stretch;

    /// The i64 shortcut gives what `f64::round` gives, at random values and at the edges of
    /// each conversion's range.
    #[test]
    fn stretch_rounds_as_f64_round_does() {
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let edges = [
            0,
            1,
            (1 << 53) - 1,
            1 << 53,
            (1 << 62) - 1,
            1 << 62,
            (1 << 63) - 1,
            1 << 63,
            u64::MAX,
        ];
        let factors = [
            1.0,
            1.5,
            0.5,
            2.0,
            8.0,
            1.000_000_000_000_000_2,
            1000.0,
            11.0,
        ];
        let mut cases: Vec<(u64, f64)> = edges
            .iter()
            .flat_map(|&b| factors.iter().map(move |&f| (b, f)))
            .collect();
        for _ in 0..200_000 {
            let r = next();
            let base = r >> (r % 64);
            let factor = 1.0 + (next() >> 11) as f64 / (1u64 << 53) as f64 * 10.0;
            cases.push((base, factor));
        }
        for (base, factor) in cases {
            let want = ((base as f64) * factor).round() as u64;
            assert_eq!(stretch(base, factor), want, "{base} × {factor}");
        }
    }
}
