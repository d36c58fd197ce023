//! The small pieces every experiment's and fault's words are made of: a side-by-side row,
//! numbers as the report prints them, ratios that never read −100 %.

use records::names::MetricName;

use crate::record::ExperimentRecord;
use crate::run::Run;

/// One row of a side-by-side table: a value per side, printed with `decimals`.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub label: String,
    pub values: Vec<Option<f64>>,
    pub decimals: usize,
}

pub fn row(label: &str, values: Vec<Option<f64>>, decimals: usize) -> Row {
    Row {
        label: label.into(),
        values,
        decimals,
    }
}

/// A figure with `decimals`, or "–" where there is none.
pub fn fmt(v: Option<f64>, decimals: usize) -> String {
    v.filter(|v| v.is_finite())
        .map_or("–".into(), |v| format!("{v:.decimals$}"))
}

/// "3.1× higher" / "624× lower": the larger over the smaller, so a fall never reads −100 %.
pub fn ratio_words(a: f64, b: f64, up: &str, down: &str) -> String {
    let (hi, lo, word) = if b >= a { (b, a, up) } else { (a, b, down) };
    if lo <= 0.0 {
        return format!("{word}, from under the figures' resolution");
    }
    let r = hi / lo;
    if r >= 10.0 {
        format!("{r:.0}× {word}")
    } else {
        format!("{r:.2}× {word}")
    }
}

/// The successful requests' p50 (ms), or every request's where the run did not tell them
/// apart.
pub fn p50(r: &Run) -> f64 {
    r.ok_latency.map_or(r.latency.p50, |l| l.0)
}

pub fn p95(r: &Run) -> f64 {
    r.ok_latency.map_or(r.latency.p95, |l| l.1)
}

/// Per second of the side's run.
pub fn rate(m: &ExperimentRecord, v: f64) -> Option<f64> {
    (m.seconds > 0.0).then(|| v / m.seconds)
}

pub fn ratio(a: f64, b: f64) -> Option<f64> {
    (b > 0.0).then(|| a / b)
}

/// Requests the microservice answered on its slow routes over the run.
pub fn ms_requests(m: &ExperimentRecord) -> f64 {
    m.delta(
        "microservice",
        MetricName::HttpRequestsTotal,
        &[("route", "/data/{key}")],
    ) + m.delta(
        "microservice",
        MetricName::HttpRequestsTotal,
        &[("route", "/process/{key}")],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_and_ratios_as_printed() {
        assert_eq!(fmt(Some(f64::NAN), 1), "–");
        assert_eq!(fmt(Some(1.25), 1), "1.2");
        assert_eq!(ratio_words(2828.6, 38.0, "higher", "lower"), "74× lower");
        assert_eq!(ratio_words(1.0, 3.1, "higher", "lower"), "3.10× higher");
        assert_eq!(
            ratio_words(0.0, 3.0, "higher", "lower"),
            "higher, from under the figures' resolution"
        );
        assert_eq!(ratio(1.0, 0.0), None);
    }
}
