use clap::Parser;

#[tokio::main]
async fn main() {
    let config = microservice::Config::parse();
    common::telemetry::init(&config.service.log_format);
    let result: anyhow::Result<()> = async {
        microservice::build(config).await?.run().await?;
        Ok(())
    }
    .await;
    common::exit_on_error("microservice", result);
}
