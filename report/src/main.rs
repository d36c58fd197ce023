//! `report [RESULTS_DIR] [REPORT_DIR]` (defaults tests/results, tests/reports).

fn main() {
    let mut args = std::env::args().skip(1);
    let results = args
        .next()
        .or_else(|| std::env::var("RESULTS_DIR").ok())
        .unwrap_or_else(|| "tests/results".into());
    let out = args
        .next()
        .or_else(|| std::env::var("REPORT_DIR").ok())
        .unwrap_or_else(|| "tests/reports".into());
    match report::generate(results.as_ref(), out.as_ref()) {
        Ok(outcome) => {
            for w in &outcome.warnings {
                eprintln!("report: warning: {w}");
            }
            println!(
                "report: {} runs → {} ({} charts)",
                outcome.runs,
                outcome.summary.display(),
                outcome.charts.len()
            );
        }
        Err(err) => {
            eprintln!("report: error: {err:#}");
            std::process::exit(1);
        }
    }
}
