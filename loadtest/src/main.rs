use clap::Parser;

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

#[tokio::main]
async fn main() {
    // Set before Goose's own logger, which then stays out of the way.
    if log::set_logger(&GooseLog).is_ok() {
        log::set_max_level(log::LevelFilter::Warn);
    }
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("merge") {
        let Some(dir) = args.get(2) else {
            eprintln!("loadtest: usage: loadtest merge RUN_DIR");
            std::process::exit(2);
        };
        match loadtest::merge::merge(std::path::Path::new(dir)) {
            Ok(r) => println!(
                "merged {} generators into {dir}: {} requests",
                r.generators.len(),
                r.requests
            ),
            Err(err) => {
                eprintln!("loadtest: {err:#}");
                std::process::exit(1);
            }
        }
        return;
    }
    let options = loadtest::Options::parse();
    match loadtest::run(options).await {
        Ok(dir) => println!("run recorded in {}", dir.display()),
        Err(err) => {
            eprintln!("loadtest: {err:#}");
            std::process::exit(1);
        }
    }
}
