use clap::Parser;

#[tokio::main]
async fn main() {
    let options = loadtest::Options::parse();
    match loadtest::run(options).await {
        Ok(dir) => println!("run recorded in {}", dir.display()),
        Err(err) => {
            eprintln!("loadtest: {err:#}");
            std::process::exit(1);
        }
    }
}
