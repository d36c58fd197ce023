//! The HTTP client the lab's tools call the stack with.

/// The HTTP client the lab's tools use to call the stack (metrics, `/config`, controls): every
/// request bounded by `timeout`, so a silent service cannot hang a run.
pub fn client(timeout: std::time::Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(timeout)
        .build()
        .expect("a client with a timeout only builds on any platform reqwest supports")
}

/// `POST {base}/login` as a lab user; the token, or an error naming the status.
pub async fn log_in(
    client: &reqwest::Client,
    base: &str,
    login: &records::wire::Login,
) -> anyhow::Result<String> {
    let answer = client
        .post(format!("{}/login", base.trim_end_matches('/')))
        .json(login)
        .send()
        .await?;
    if !answer.status().is_success() {
        anyhow::bail!("login as {} answered {}", login.username, answer.status());
    }
    Ok(answer
        .json::<records::wire::LoginAnswer>()
        .await
        .map_err(|e| anyhow::anyhow!("the login answer is not the expected JSON: {e}"))?
        .token)
}
