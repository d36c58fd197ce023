//! The open model's arrival schedule: when each request of a run is meant to be sent,
//! computed in advance from the rate, whatever the answers take (the idea of wrk2 and of k6's
//! constant- and ramping-arrival-rate executors). A request is then timed from its intended
//! send time, so a stall shows as the latency its users would have felt instead of as
//! requests never sent.
//!
//! The rate may ramp linearly from `rate` to `target_rate` over the run: the expected number
//! of arrivals by time t is Λ(t) = r₀·t + (r₁ − r₀)·t² / 2T, and arrival n is sent at
//! Λ⁻¹(uₙ), where uₙ = n for constant spacing and a sum of n + 1 standard exponential draws
//! (seeded) for Poisson arrivals, the time change that turns a unit-rate Poisson process into
//! one of the ramp's rate. Every generator of a run computes the same arrivals and sends its
//! share, arrival n going to generator n mod K, so their sends interleave.

use rand::{rngs::StdRng, Rng, SeedableRng};
use std::time::Duration;

/// How arrivals are spaced: one definition with the plan's.
pub use records::load::Spacing;

/// One generator's share of a run's arrivals.
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    /// Arrivals per second at the start and at the end of the run (a ramp when they differ).
    rate: f64,
    target_rate: f64,
    duration_secs: f64,
    spacing: Spacing,
    seed: u64,
    generators: usize,
    index: usize,
}

impl Schedule {
    /// The whole run's schedule, for generator `index` of `generators`; a rate that is not a
    /// positive number of requests per second (or a ramp ending below zero) is an error.
    pub fn new(
        rate: f64,
        target_rate: Option<f64>,
        duration: Duration,
        spacing: Spacing,
        seed: u64,
        (generators, index): (usize, usize),
    ) -> Result<Self, String> {
        let target_rate = target_rate.unwrap_or(rate);
        if !(rate.is_finite() && rate > 0.0) {
            return Err(format!(
                "ARRIVAL_RATE must be above 0 requests per second, not {rate}"
            ));
        }
        if !(target_rate.is_finite() && target_rate >= 0.0) {
            return Err(format!(
                "the target arrival rate must be 0 or more requests per second, not {target_rate}"
            ));
        }
        if duration.is_zero() {
            return Err("an arrival schedule needs a duration above 0 s".into());
        }
        if generators == 0 || index >= generators {
            return Err(format!(
                "generator {index} of {generators}: the index must be below the count"
            ));
        }
        Ok(Self {
            rate,
            target_rate,
            duration_secs: duration.as_secs_f64(),
            spacing,
            seed,
            generators,
            index,
        })
    }

    /// A plan's schedule (its open profile's settings), this generator's share of it.
    pub fn of(plan: &records::plan::Plan) -> Result<Self, String> {
        Self::new(
            plan.arrival_rate,
            plan.target_arrival_rate,
            Duration::from_secs(plan.load().duration_secs),
            plan.arrivals,
            plan.arrival_seed,
            (plan.generators, plan.generator_index),
        )
    }

    /// Λ(t): the arrivals the whole run expects by `t` seconds.
    fn expected_by(&self, t: f64) -> f64 {
        let slope = (self.target_rate - self.rate) / self.duration_secs;
        self.rate * t + slope * t * t / 2.0
    }

    /// The arrivals the whole run expects (every generator's).
    pub fn expected_total(&self) -> f64 {
        self.expected_by(self.duration_secs)
    }

    /// Λ⁻¹(u): the second by which the run expects `u` arrivals, if within the run (its
    /// end excluded: a run of T seconds at r per second sends r·T arrivals).
    fn time_of(&self, u: f64) -> Option<f64> {
        if u >= self.expected_total() {
            return None;
        }
        let half_slope = (self.target_rate - self.rate) / self.duration_secs / 2.0;
        let t = if half_slope.abs() < 1e-12 {
            u / self.rate
        } else {
            let discriminant = (self.rate * self.rate + 4.0 * half_slope * u).max(0.0);
            (discriminant.sqrt() - self.rate) / (2.0 * half_slope)
        };
        (t < self.duration_secs).then_some(t.max(0.0))
    }

    /// This generator's intended send times, from the run's start, in order.
    pub fn intended(&self) -> impl Iterator<Item = Duration> + '_ {
        let mut rng = StdRng::seed_from_u64(self.seed);
        let mut unit_time = 0.0;
        let mut n = 0usize;
        std::iter::from_fn(move || loop {
            let u = match self.spacing {
                Spacing::Constant => n as f64,
                Spacing::Poisson => {
                    // A standard exponential draw: −ln(1 − U), U in [0, 1).
                    unit_time += -(1.0 - rng.random::<f64>()).ln();
                    unit_time
                }
            };
            let mine = n % self.generators == self.index;
            n += 1;
            let t = self.time_of(u)?;
            if mine {
                return Some(Duration::from_secs_f64(t));
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schedule(rate: f64, target: Option<f64>, secs: u64, spacing: Spacing) -> Schedule {
        Schedule::new(rate, target, Duration::from_secs(secs), spacing, 7, (1, 0)).unwrap()
    }

    #[test]
    fn a_constant_schedule_sends_every_one_over_rate_seconds() {
        let times: Vec<Duration> = schedule(2000.0, None, 1, Spacing::Constant)
            .intended()
            .collect();
        assert_eq!(times.len(), 2000, "from 0 s, up to 1 s");
        assert_eq!(times[0], Duration::ZERO);
        for pair in times.windows(2) {
            let gap = (pair[1] - pair[0]).as_secs_f64();
            assert!((gap - 0.0005).abs() < 1e-9, "{gap}");
        }
    }

    #[test]
    fn generators_share_the_arrivals_interleaved_and_disjoint() {
        let one = schedule(300.0, Some(900.0), 2, Spacing::Poisson);
        let all: Vec<Duration> = one.intended().collect();
        let mut shared: Vec<Duration> = (0..3)
            .flat_map(|i| {
                let part = Schedule {
                    generators: 3,
                    index: i,
                    ..one.clone()
                };
                part.intended().collect::<Vec<_>>()
            })
            .collect();
        shared.sort();
        assert_eq!(shared, all);
        let second: Vec<Duration> = Schedule {
            generators: 3,
            index: 1,
            ..one.clone()
        }
        .intended()
        .collect();
        assert_eq!(
            second[0], all[1],
            "generator 1 sends the run's second arrival first"
        );
    }

    #[test]
    fn a_ramp_sends_what_its_rate_integrates_to() {
        let ramp = schedule(10.0, Some(100.0), 10, Spacing::Constant);
        let times: Vec<f64> = ramp.intended().map(|d| d.as_secs_f64()).collect();
        // Λ(10) = 10·10 + 90·10/2 = 550 arrivals.
        assert_eq!(ramp.expected_total(), 550.0);
        assert_eq!(times.len(), 550);
        let last_second = times.iter().filter(|t| **t >= 9.0).count();
        // Λ(10) − Λ(9) = 550 − (90 + 364.5) = 95.5.
        assert!((95..=96).contains(&last_second), "{last_second}");
        assert!(times.windows(2).all(|w| w[0] <= w[1]));
        let down = schedule(100.0, Some(0.0), 10, Spacing::Constant);
        assert_eq!(down.intended().count(), 500);
    }

    /// Kolmogorov–Smirnov distance between the gaps and an exponential of `rate`.
    fn ks_distance(gaps: &mut [f64], rate: f64) -> f64 {
        gaps.sort_by(f64::total_cmp);
        let n = gaps.len() as f64;
        gaps.iter()
            .enumerate()
            .map(|(i, g)| {
                let cdf = 1.0 - (-rate * g).exp();
                (cdf - i as f64 / n)
                    .abs()
                    .max(((i + 1) as f64 / n - cdf).abs())
            })
            .fold(0.0, f64::max)
    }

    #[test]
    fn poisson_gaps_pass_a_goodness_of_fit_test_and_are_seeded() {
        let poisson = schedule(500.0, None, 10, Spacing::Poisson);
        let times: Vec<f64> = poisson.intended().map(|d| d.as_secs_f64()).collect();
        let mut gaps: Vec<f64> = times.windows(2).map(|w| w[1] - w[0]).collect();
        let critical = 1.63 / (gaps.len() as f64).sqrt(); // α = 1 %
        let fit = ks_distance(&mut gaps, 500.0);
        assert!(fit < critical, "D = {fit:.4}, critical {critical:.4}");
        // The test can fail: the same gaps are no exponential of another rate, and evenly
        // spaced arrivals are no Poisson process.
        assert!(ks_distance(&mut gaps, 650.0) > critical);
        let even = schedule(500.0, None, 10, Spacing::Constant);
        let even: Vec<f64> = even.intended().map(|d| d.as_secs_f64()).collect();
        let mut even_gaps: Vec<f64> = even.windows(2).map(|w| w[1] - w[0]).collect();
        assert!(ks_distance(&mut even_gaps, 500.0) > critical);
        // Seeded: the same seed draws the same arrivals, another seed others.
        let again: Vec<f64> = poisson.intended().map(|d| d.as_secs_f64()).collect();
        assert_eq!(again, times);
        let other = Schedule {
            seed: 8,
            ..poisson.clone()
        };
        let other: Vec<f64> = other.intended().map(|d| d.as_secs_f64()).collect();
        assert_ne!(other[..10], again[..10]);
        assert!(
            (times.len() as f64 - 5000.0).abs() < 4.0 * 5000f64.sqrt(),
            "{}",
            times.len()
        );
    }

    #[test]
    fn a_schedule_that_cannot_be_sent_is_refused_in_one_line() {
        let new = |rate, target, secs, generators: (usize, usize)| {
            Schedule::new(
                rate,
                target,
                Duration::from_secs(secs),
                Spacing::Constant,
                0,
                generators,
            )
        };
        for (rate, target, secs, generators) in [
            (0.0, None, 10, (1, 0)),
            (f64::NAN, None, 10, (1, 0)),
            (10.0, Some(-1.0), 10, (1, 0)),
            (10.0, Some(f64::INFINITY), 10, (1, 0)),
            (10.0, None, 0, (1, 0)),
            (10.0, None, 10, (2, 2)),
            (10.0, None, 10, (0, 0)),
        ] {
            let e = new(rate, target, secs, generators).unwrap_err();
            assert!(!e.contains('\n'), "{e}");
        }
    }
}
