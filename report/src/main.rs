//! `report [RESULTS_DIR] [REPORT_DIR]` (defaults tests/results, tests/reports).
//! `report --check-faults RUN_DIR…`: each fault run's promise, PASS or FAIL; exit status 1
//! when one is broken (what `make fault` ends with).

fn main() {
    let mut args = std::env::args().skip(1).peekable();
    if args.peek().map(String::as_str) == Some("--check-faults") {
        args.next();
        std::process::exit(check_faults(args.collect()));
    }
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

fn check_faults(dirs: Vec<String>) -> i32 {
    let mut status = 0;
    for dir in dirs {
        let run = match report::runs::load_run(dir.as_ref()) {
            Ok(run) => run,
            Err(e) => {
                eprintln!("report: {dir}: {e}");
                status = 1;
                continue;
            }
        };
        let checks = report::faults::checks(&run);
        if checks.is_empty() {
            eprintln!("report: {dir}: not a fault run (no fault.json)");
            status = 1;
        }
        for c in checks {
            println!(
                "{}: {} {}: {}",
                run.id,
                if c.passed { "PASS" } else { "FAIL" },
                c.promise,
                c.observed
            );
            if !c.passed {
                status = 1;
            }
        }
    }
    status
}
