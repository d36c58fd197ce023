use clap::Parser;

fn main() {
    // `make` exports its variables even when unset (QUICK=, RUNTIME=): empty means unset.
    // Done before any thread exists, the only time changing the environment is sound.
    for name in [
        "RUNTIME",
        "IMAGES",
        "BUILD",
        "QUICK",
        "SKIP_BUILD",
        "LAB_ROOT",
    ] {
        if std::env::var_os(name).is_some_and(|v| v.is_empty()) {
            std::env::remove_var(name);
        }
    }
    let cli = lab::Cli::parse();
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    if let Err(err) = runtime.block_on(lab::run(cli)) {
        eprintln!("lab: error: {err:#}");
        std::process::exit(1);
    }
}
