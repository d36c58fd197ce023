use clap::Parser;

// glibc's malloc/free were ~14% of the proxy's CPU under load (perf, bench/lb-compare);
// mimalloc's per-thread free lists make the per-request buffers cheap. See BENCHMARKS.md.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let config = load_balancer::Config::parse();
    common::telemetry::init(&config.service.log_format);
    // One socket per user for the whole run (each user keeps its connection open): with
    // Linux's usual soft limit of 1024, 1100 users were refused (BENCHMARKS.md).
    let open_files = common::host::raise_open_files(None);
    tracing::info!(?open_files, "open files allowed (soft, hard)");
    let result = load_balancer::build(config).and_then(|lb| lb.run());
    common::exit_on_error("load_balancer", result);
    // Pingora's runtimes may still be finishing their grace period: nothing is left to serve.
    std::process::exit(0);
}
