//! "Experiments": each tactic of `make experiment NAME=…` as its sides side by side (the
//! latest batch of each): the client's view (ok req/s, p50, p95, failures), the mechanism the
//! stack's own counters show (`experiment.json`), what a simple model predicts where it can,
//! and why, in words with the run's numbers.

use crate::runs::Run;
use crate::Writer;
use catalogue::record::ExperimentRecord;
use catalogue::words::{fmt, p50, p95, row, Row};
use catalogue::Experiment;

/// The sides of the latest batch of one experiment, A first.
pub fn latest(runs: &[Run], experiment: Experiment) -> Vec<(Run, ExperimentRecord)> {
    let name = experiment.name();
    let ours: Vec<(&Run, &ExperimentRecord)> = runs
        .iter()
        .filter_map(|r| Some((r, r.measured.as_ref().filter(|m| m.name == experiment)?)))
        .collect();
    let batch = |r: &Run| {
        r.id.split(&format!("-{name}-"))
            .next()
            .unwrap_or("")
            .to_string()
    };
    let Some(last) = ours.iter().map(|(r, _)| batch(r)).max() else {
        return Vec::new();
    };
    let mut found: Vec<(Run, ExperimentRecord)> = ours
        .into_iter()
        .filter(|(r, _)| batch(r) == last)
        .map(|(r, m)| (r.clone(), m.clone()))
        .collect();
    found.sort_by(|a, b| a.1.side.cmp(&b.1.side));
    found
}

/// `B / A` (and `C / A`): the ratio column(s); none where A shows as 0 at the row's
/// precision (a ratio to a rounding error means nothing).
fn ratios(values: &[Option<f64>], decimals: usize) -> Vec<String> {
    let shown_zero = |a: f64| {
        fmt(Some(a.abs()), decimals)
            .trim_start_matches(['0', '.'])
            .is_empty()
    };
    let a = values.first().copied().flatten();
    values[1..]
        .iter()
        .map(|v| match (a, v) {
            // A fall as "74× lower" (honest.rs): 0.01× would hide the size of the change.
            (Some(a), Some(v)) if !shown_zero(a) && *v > 0.0 && v / a < 0.5 => {
                crate::honest::ratio_words(a, *v, "higher", "lower")
            }
            (Some(a), Some(v)) if !shown_zero(a) => format!("{:.2}×", v / a),
            _ => "–".into(),
        })
        .collect()
}

fn table(w: &mut Writer, sides: &[(Run, ExperimentRecord)], rows: &[Row]) {
    let heads: Vec<String> = sides
        .iter()
        .map(|(_, m)| format!("{}: {}={}", m.side, m.flipped, m.value))
        .collect();
    let ratio_heads: Vec<String> = sides[1..]
        .iter()
        .map(|(_, m)| format!("{} / A", m.side))
        .collect();
    w.line(&format!(
        "| | {} | {} |",
        heads.join(" | "),
        ratio_heads.join(" | ")
    ));
    w.line(&format!(
        "|---|{}{}",
        "--:|".repeat(heads.len()),
        "--:|".repeat(ratio_heads.len())
    ));
    for r in rows {
        let cells: Vec<String> = r.values.iter().map(|v| fmt(*v, r.decimals)).collect();
        w.line(&format!(
            "| {} | {} | {} |",
            r.label,
            cells.join(" | "),
            ratios(&r.values, r.decimals).join(" | ")
        ));
    }
    w.line("");
}

pub(crate) fn section(w: &mut Writer, runs: &[Run]) -> anyhow::Result<()> {
    let found: Vec<(Experiment, Vec<(Run, ExperimentRecord)>)> = Experiment::ALL
        .iter()
        .map(|e| (*e, latest(runs, *e)))
        .filter(|(_, s)| s.len() >= 2)
        .collect();
    if found.is_empty() {
        return Ok(());
    }
    w.line("## Experiments\n");
    w.line(
        "Each tactic as an A/B experiment (`make experiment NAME=…`): the same load on every \
         side, one setting flipped, each side on a freshly started stack. Ok req/s and \
         latencies are the client's (successful requests only); the rest is read from the \
         stack's own counters over the run (`experiment.json` in each run folder). Predict \
         before you read the numbers.\n",
    );
    for (name, sides) in &found {
        let question = &sides[0].1.question;
        w.line(&format!("### `{name}`: {question}\n"));
        let mut rows = vec![
            row(
                "ok req/s",
                sides.iter().map(|(r, _)| Some(r.goodput)).collect(),
                1,
            ),
            row(
                "p50 (ms)",
                sides.iter().map(|(r, _)| Some(p50(r))).collect(),
                1,
            ),
            row(
                "p95 (ms)",
                sides.iter().map(|(r, _)| Some(p95(r))).collect(),
                1,
            ),
            row(
                "failed requests",
                sides.iter().map(|(r, _)| Some(r.failures as f64)).collect(),
                0,
            ),
        ];
        let why = (name.spec().explain)(sides, &mut rows);
        table(w, sides, &rows);
        for paragraph in why {
            w.line(&paragraph);
            w.line("");
        }
        w.line(&format!(
            "Runs: {}.\n",
            sides
                .iter()
                .map(|(r, _)| format!("`{}`", r.id))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratios_are_against_side_a_and_dashes_where_undefined() {
        assert_eq!(
            ratios(&[Some(2.0), Some(5.0), None], 1),
            vec!["2.50×".to_string(), "–".to_string()]
        );
        assert_eq!(ratios(&[Some(0.0), Some(5.0)], 1), vec!["–".to_string()]);
        // 0.004 shows as 0.00: no ratio to it.
        assert_eq!(ratios(&[Some(0.004), Some(1.0)], 2), vec!["–".to_string()]);
        assert_eq!(
            ratios(&[Some(0.004), Some(1.0)], 3),
            vec!["250.00×".to_string()]
        );
        // A fall is written as the larger over the smaller.
        assert_eq!(
            ratios(&[Some(2828.6), Some(38.0)], 1),
            vec!["74× lower".to_string()]
        );
    }
}
