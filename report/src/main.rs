//! `report [RESULTS_DIR] [REPORT_DIR]` (defaults tests/results, tests/reports).
//! `report --check-faults RUN_DIR…`: each fault run's promise, PASS or FAIL; exit status 1
//! when one is broken (what `make fault` ends with).
//! `report --check-bounds [RUN_DIR…]`: each run's ok req/s against its smallest hard bound,
//! PASS or FAIL; exit status 1 when one is above it beyond noise. Without a folder, every
//! run folder in RESULTS_DIR (what `make check-bounds` runs: no folder name ever goes
//! through a shell).

use clap::Parser;
use std::path::PathBuf;

/// Turns the run folders into `summary.md` with its charts.
#[derive(Parser)]
#[command(
    name = "report",
    version,
    about = "Turn scalelab's run folders into tests/reports/summary.md and its charts",
    after_help = "Exit status: 0 written (or every promise kept); 1 an error (or a broken promise); 2 bad arguments."
)]
struct Cli {
    /// The run folders' parent.
    #[arg(env = "RESULTS_DIR", default_value = "tests/results")]
    results: PathBuf,
    /// Where summary.md and graphs/ go.
    #[arg(env = "REPORT_DIR", default_value = "tests/reports")]
    out: PathBuf,
    /// Instead of the report: check each fault run's promise (PASS or FAIL per line).
    #[arg(long, value_name = "RUN_DIR", num_args = 1..)]
    check_faults: Vec<String>,
    /// Instead of the report: check that each run's ok req/s stays under its smallest hard
    /// bound (PASS or FAIL per line; a run with no bound to check is said and passes).
    /// Without a folder: every run folder in RESULTS_DIR.
    #[arg(long, value_name = "RUN_DIR", num_args = 0.., conflicts_with = "check_faults")]
    check_bounds: Option<Vec<PathBuf>>,
}

fn main() {
    let cli = Cli::parse();
    if !cli.check_faults.is_empty() {
        std::process::exit(check_faults(cli.check_faults));
    }
    if let Some(dirs) = cli.check_bounds {
        let dirs = if dirs.is_empty() {
            match report::runs::run_folders(&cli.results) {
                Ok(found) if !found.is_empty() => found,
                Ok(_) => {
                    eprintln!(
                        "report: no run in {} (make load, make experiments)",
                        cli.results.display()
                    );
                    std::process::exit(1);
                }
                Err(e) => {
                    eprintln!("report: {e}");
                    std::process::exit(1);
                }
            }
        } else {
            dirs
        };
        std::process::exit(check_bounds(dirs));
    }
    match report::generate(&cli.results, &cli.out) {
        Ok(outcome) => {
            for w in &outcome.warnings {
                eprintln!("report: warning: {w}");
            }
            println!(
                "report: {} runs → {} ({} charts), {}, {} and {} per-run CSVs",
                outcome.runs,
                outcome.summary.display(),
                outcome.charts.len(),
                outcome.html.display(),
                outcome.csv[0].display(),
                outcome.csv.len() - 1
            );
        }
        Err(err) => {
            eprintln!("report: error: {err:#}");
            std::process::exit(1);
        }
    }
}

fn check_bounds(dirs: Vec<PathBuf>) -> i32 {
    let mut status = 0;
    for dir in dirs {
        match report::runs::load_run(&dir) {
            Ok(run) => match report::bounds::check(&run) {
                Some(c) => {
                    println!("{}: {}", run.id, c.line());
                    if !c.passed {
                        status = 1;
                    }
                }
                None => println!(
                    "{}: no hard bound to check (no limiter, pool or think time measured)",
                    run.id
                ),
            },
            Err(e) => {
                eprintln!("report: {}: {e}", dir.display());
                status = 1;
            }
        }
    }
    status
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
            eprintln!("report: {dir}: not a fault run (no fault.json that reads)");
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
