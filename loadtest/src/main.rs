use clap::{Parser, Subcommand};

/// Goose's warnings and errors on standard error, except its per-rule threshold lines: a
/// missed SLA is the run's verdict (printed by the run and written to run.json), not an error
/// of the tool.
struct GooseLog;

impl log::Log for GooseLog {
    fn enabled(&self, meta: &log::Metadata) -> bool {
        meta.level() <= log::Level::Warn
    }

    fn log(&self, record: &log::Record) {
        let text = record.args().to_string();
        if self.enabled(record.metadata()) && !text.starts_with("threshold ") {
            eprintln!("goose: {}: {text}", record.level().as_str().to_lowercase());
        }
    }

    fn flush(&self) {}
}

/// The load generator: one recorded run (its settings from flags or the environment), or
/// `merge` of a run that several generators made.
#[derive(Parser)]
#[command(
    name = "loadtest",
    version,
    about = "Drive scalelab with Goose and record the run (exit 0: recorded; 1: error; 2: bad arguments)",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Sub>,
    /// Run the plan in this file (a run folder's `plan.json`, or the one the lab writes)
    /// instead of the other options; the password still comes from LAB_PASSWORD.
    #[arg(long, env = "LOADTEST_PLAN")]
    plan: Option<std::path::PathBuf>,
    #[command(flatten)]
    options: loadtest::Options,
}

#[derive(Subcommand)]
enum Sub {
    /// Merge the parts several generators wrote (`RUN_DIR/generators/<i>/`) into the run's
    /// record: sums, and percentiles of the merged raw request logs.
    Merge { run_dir: std::path::PathBuf },
}

/// The unprefixed environment names of the last release still work, for this release, with
/// a one-line notice: `USERS` is read as `LOADTEST_USERS` when that is not set.
fn deprecated_names() {
    let mut old = Vec::new();
    for name in records::load::ENV_NAMES {
        let new = format!("{}{name}", records::load::ENV_PREFIX);
        if let (Some(value), None) = (std::env::var_os(name), std::env::var_os(&new)) {
            // SAFETY: called from main before the runtime, while this is the only thread.
            std::env::set_var(&new, value);
            old.push(name);
        }
    }
    if !old.is_empty() {
        eprintln!(
            "loadtest: deprecated: {} without the {} prefix (use {}{}); the old names go in the next release",
            old.join(", "),
            records::load::ENV_PREFIX,
            records::load::ENV_PREFIX,
            old[0]
        );
    }
}

fn main() {
    // Before the runtime exists: the only time changing the environment is sound.
    deprecated_names();
    // One thread: a generator is one core's load (GENERATORS=K runs K of them). On two
    // worker threads each request woke the idle one (a futex call and a context switch per
    // request), about a fifth more CPU per request (BENCHMARKS.md, "The load generator's
    // cost"); `run.json`'s `generator.saturated` says when the one core was not enough.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(run());
}

async fn run() {
    // Set before Goose's own logger, which then stays out of the way.
    if log::set_logger(&GooseLog).is_ok() {
        log::set_max_level(log::LevelFilter::Warn);
    }
    let cli = Cli::parse();
    if let Some(Sub::Merge { run_dir }) = cli.command {
        match loadtest::merge::merge(&run_dir) {
            Ok(r) => {
                println!(
                    "merged {} generators into {}: {} requests",
                    r.generators.len(),
                    run_dir.display(),
                    r.requests
                );
                loadtest::print_verdict(&r);
            }
            Err(err) => {
                eprintln!("loadtest: {err:#}");
                std::process::exit(1);
            }
        }
        return;
    }
    let mut options = match &cli.plan {
        Some(file) => match loadtest::Options::read(file) {
            Ok(mut plan) => {
                plan.lab.lab_password = cli.options.lab.lab_password.clone();
                plan
            }
            Err(err) => {
                eprintln!("loadtest: {err}");
                std::process::exit(2);
            }
        },
        None => cli.options,
    };
    options.fix_run_id();
    let folder = options.folder();
    match loadtest::run(options).await {
        Ok(dir) => println!("run recorded in {}", dir.display()),
        Err(err) => {
            // A run that failed before it began leaves no folder holding only its plan.
            if folder.exists() && records::plan::unused(&folder) {
                let _ = std::fs::remove_dir_all(&folder);
            }
            eprintln!("loadtest: {err:#}");
            std::process::exit(1);
        }
    }
}
