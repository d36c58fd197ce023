//! Comparing two runs honestly: a change is written as the two figures and a ratio ("p95
//! 1248 → 2 ms, 624× lower"), never a percentage that rounds to −100 %, and a difference
//! inside the runs' own noise is written "no measurable difference".
//!
//! A run's noise is taken from its own seconds: the spread of its per-second figures over
//! the square root of their number (the standard error of their mean), and for latency the
//! resolution of the figures themselves. Two figures differ measurably when they are more
//! than two combined standard errors apart (about 95 % confidence for independent seconds).

use crate::runs::Run;

/// A figure of a run and its standard error.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Figure {
    pub value: f64,
    pub error: f64,
}

/// Mean and standard error of the mean of `v` (None for fewer than two values).
pub fn mean_and_error(v: &[f64]) -> Option<(f64, f64)> {
    if v.len() < 2 {
        return None;
    }
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
    Some((mean, (var / n).sqrt()))
}

/// Seconds of the run where the load was steady: the first and last tenth left out (users
/// arriving, the last second cut short).
fn steady<T: Copy>(v: &[T]) -> &[T] {
    let cut = v.len() / 10;
    if v.len() > 2 * cut + 1 {
        &v[cut..v.len() - cut.max(1)]
    } else {
        v
    }
}

/// The run's successful requests per second of the scenario, with its noise from the
/// per-second count of 2xx answers (the whole-run figure when the seconds are not recorded).
pub fn goodput(r: &Run) -> Figure {
    let per_second: Vec<f64> = r
        .status_classes
        .get("2xx")
        .map(|v| steady(v).iter().map(|n| *n as f64).collect())
        .unwrap_or_default();
    let error = mean_and_error(&per_second).map_or(0.0, |(_, e)| e);
    Figure {
        value: r.goodput,
        error,
    }
}

/// A latency percentile of the run (`value`, ms) with its noise: the standard error of the
/// per-second values of the same percentile, and never less than the figure's resolution
/// (Goose's whole-run percentiles are whole milliseconds).
pub fn latency(value: f64, per_second: &[Option<f64>], whole_ms: bool) -> Figure {
    let seconds: Vec<f64> = steady(per_second).iter().flatten().copied().collect();
    let spread = mean_and_error(&seconds).map_or(0.0, |(_, e)| e);
    let resolution = if whole_ms { 0.5 } else { 0.05 };
    Figure {
        value,
        error: spread.max(resolution),
    }
}

/// A figure measured over repeated runs: mean, spread and a 95 % confidence interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Repeated {
    pub n: usize,
    pub mean: f64,
    /// Coefficient of variation: standard deviation over the mean.
    pub cv: f64,
    /// 95 % confidence interval of the mean (Student's t with n − 1 degrees of freedom).
    pub ci: (f64, f64),
}

/// Student's t for a two-sided 95 % interval with `df` degrees of freedom.
fn t95(df: usize) -> f64 {
    const T: [f64; 10] = [
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
    ];
    T.get(df.saturating_sub(1)).copied().unwrap_or(1.96)
}

/// The repeats' figure (None for fewer than two runs).
pub fn repeated(values: &[f64]) -> Option<Repeated> {
    let (mean, error) = mean_and_error(values)?;
    let sd = error * (values.len() as f64).sqrt();
    let half = t95(values.len() - 1) * error;
    Some(Repeated {
        n: values.len(),
        mean,
        cv: if mean != 0.0 { sd / mean.abs() } else { 0.0 },
        ci: (mean - half, mean + half),
    })
}

impl Repeated {
    /// As a figure to compare: the mean with its standard error.
    pub fn figure(&self) -> Figure {
        Figure {
            value: self.mean,
            error: (self.ci.1 - self.mean) / t95(self.n - 1),
        }
    }

    pub fn overlaps(&self, other: &Repeated) -> bool {
        self.ci.0 <= other.ci.1 && other.ci.0 <= self.ci.1
    }
}

/// Whether `a` and `b` differ by more than their noise (two combined standard errors).
pub fn measurable(a: Figure, b: Figure) -> bool {
    (b.value - a.value).abs() > 2.0 * (a.error.powi(2) + b.error.powi(2)).sqrt()
}

/// "1248 → 2 ms (624× lower)", "60 → 75 ms (1.25× higher)", or "3 → 4 ms: no measurable
/// difference" when inside the noise. Never a percentage.
pub fn latency_change(what: &str, a: Figure, b: Figure) -> String {
    let figures = format!("{what} {} → {} ms", ms(a.value), ms(b.value));
    if !measurable(a, b) {
        return format!("{figures}: no measurable difference");
    }
    format!(
        "{figures} ({})",
        ratio_words(a.value, b.value, "higher", "lower")
    )
}

/// "2.50× the throughput", or "the same throughput within noise".
pub fn throughput_change(a: Figure, b: Figure) -> String {
    if !measurable(a, b) {
        return format!(
            "no measurable difference in throughput ({:.1} vs {:.1} ok req/s)",
            a.value, b.value
        );
    }
    if a.value <= 0.0 {
        return format!("{:.1} ok req/s where the other served none", b.value);
    }
    format!("{:.2}× the throughput", b.value / a.value)
}

pub use catalogue::words::ratio_words;

/// Milliseconds as a reader wants them: whole above 10, one decimal below, "<0.1" near 0.
pub fn ms(v: f64) -> String {
    if v < 0.1 {
        "<0.1".into()
    } else if v < 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.0}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fig(value: f64, error: f64) -> Figure {
        Figure { value, error }
    }

    #[test]
    fn a_fall_is_a_ratio_never_minus_100_percent() {
        let s = latency_change("p95", fig(1248.0, 20.0), fig(2.0, 0.5));
        assert_eq!(s, "p95 1248 → 2.0 ms (624× lower)");
        for a in [0.2, 1.0, 3.0, 50.0, 1248.0, 9999.0] {
            for b in [0.0, 0.2, 1.0, 3.0, 50.0, 1248.0] {
                let s = latency_change("p95", fig(a, 0.5), fig(b, 0.5));
                assert!(!s.contains('%'), "{s}");
                let t = throughput_change(fig(a, 0.1), fig(b, 0.1));
                assert!(!t.contains('%'), "{t}");
            }
        }
    }

    #[test]
    fn a_difference_inside_the_noise_is_worded_as_such() {
        // 3 ms vs 4 ms with whole-millisecond figures and seconds that wander by ±1 ms.
        let s = latency_change("p95", fig(3.0, 0.6), fig(4.0, 0.6));
        assert_eq!(s, "p95 3.0 → 4.0 ms: no measurable difference");
        assert_eq!(
            throughput_change(fig(61.2, 0.8), fig(60.8, 0.7)),
            "no measurable difference in throughput (61.2 vs 60.8 ok req/s)"
        );
        assert_eq!(
            throughput_change(fig(60.0, 0.8), fig(150.0, 1.0)),
            "2.50× the throughput"
        );
        assert_eq!(
            latency_change("p95", fig(60.0, 1.0), fig(75.0, 1.0)),
            "p95 60 → 75 ms (1.25× higher)"
        );
    }

    #[test]
    fn repeats_give_mean_cv_and_a_t_interval() {
        let r = repeated(&[100.0, 110.0, 90.0]).unwrap();
        assert_eq!(r.n, 3);
        assert!((r.mean - 100.0).abs() < 1e-9);
        assert!((r.cv - 0.1).abs() < 1e-9, "{r:?}");
        // sd 10, se 10/√3, t(2) = 4.303: ± 24.84.
        assert!((r.ci.1 - 124.843).abs() < 0.01, "{r:?}");
        let far = repeated(&[200.0, 205.0, 195.0]).unwrap();
        assert!(!r.overlaps(&far) && r.overlaps(&r));
        assert!(repeated(&[1.0]).is_none());
    }

    #[test]
    fn the_noise_of_a_mean_is_its_spread_over_root_n() {
        let (m, e) = mean_and_error(&[9.0, 11.0, 9.0, 11.0]).unwrap();
        assert_eq!(m, 10.0);
        assert!((e - (4.0f64 / 3.0).sqrt() / 2.0).abs() < 1e-12);
        assert_eq!(mean_and_error(&[1.0]), None);
    }
}
