use clap::Parser;

fn main() {
    let config = gateway::Config::parse();
    common::telemetry::init(&config.service.log_format);
    let result: anyhow::Result<()> = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(config.threads())
        .enable_all()
        .build()
        .map_err(anyhow::Error::from)
        .and_then(|runtime| {
            runtime.block_on(async {
                gateway::build(config).await?.run().await?;
                Ok(())
            })
        });
    common::exit_on_error("gateway", result);
}
