//! The HTTP client the lab's tools call the stack with.

/// The HTTP client the lab's tools use to call the stack (metrics, `/config`, controls): every
/// request bounded by `timeout`, so a silent service cannot hang a run.
pub fn client(timeout: std::time::Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(timeout)
        .build()
        .expect("a client with a timeout only builds on any platform reqwest supports")
}

/// Why a login gave no token.
#[derive(Debug)]
pub enum Refused {
    /// No answer, a 5xx (a full gateway's 503), or an answer that is not a token: may pass
    /// if tried again.
    ForNow(String),
    /// A 4xx: the user or the password is not the stack's; trying again will not help.
    Finally(String),
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refused::ForNow(why) | Refused::Finally(why) => f.write_str(why),
        }
    }
}

impl std::error::Error for Refused {}

/// `POST {base}/login` as a lab user; the token, or why not (the status when one came).
pub async fn log_in(
    client: &reqwest::Client,
    base: &str,
    login: &records::wire::Login,
) -> Result<String, Refused> {
    let answer = client
        .post(format!("{}/login", base.trim_end_matches('/')))
        .json(login)
        .send()
        .await
        .map_err(|e| Refused::ForNow(format!("login as {}: {e}", login.username)))?;
    let status = answer.status();
    let said = format!("login as {} answered {status}", login.username);
    if status.is_client_error() {
        return Err(Refused::Finally(said));
    }
    if !status.is_success() {
        return Err(Refused::ForNow(said));
    }
    Ok(answer
        .json::<records::wire::LoginAnswer>()
        .await
        .map_err(|e| Refused::ForNow(format!("the login answer is not the expected JSON: {e}")))?
        .token)
}
