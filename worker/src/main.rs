use clap::Parser;

#[tokio::main]
async fn main() {
    let config = worker::Config::parse();
    common::telemetry::init(&config.service.log_format);
    let result: anyhow::Result<()> = async {
        worker::build(config).await?.run().await?;
        Ok(())
    }
    .await;
    common::exit_on_error("worker", result);
}
