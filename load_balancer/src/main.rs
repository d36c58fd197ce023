use clap::Parser;

// glibc's malloc/free were ~14% of the proxy's CPU under load (perf, bench/lb-compare);
// mimalloc's per-thread free lists make the per-request buffers cheap. See BENCHMARKS.md.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let config = load_balancer::Config::parse();
    common::telemetry::init(&config.service.log_format);
    let result = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(config.worker_threads())
        .enable_all()
        .build()
        .map_err(anyhow::Error::from)
        .and_then(|runtime| {
            runtime.block_on(async { load_balancer::build(config).await?.run().await })
        });
    common::exit_on_error("load_balancer", result);
}
