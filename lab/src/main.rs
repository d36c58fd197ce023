use clap::Parser;

#[tokio::main]
async fn main() {
    let cli = lab::Cli::parse();
    if let Err(err) = lab::run(cli).await {
        eprintln!("lab: error: {err:#}");
        std::process::exit(1);
    }
}
