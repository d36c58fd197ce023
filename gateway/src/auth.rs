//! Login (argon2id against the `lab_users` table) and the Bearer-token guard (JWT HS256).

use crate::{AppState, St};
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::Json;
use clap::Args;
use common::ApiError;
use jsonwebtoken::{DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::Semaphore;

/// The secret must be at least this long: a short HS256 key can be brute-forced offline.
const MIN_SECRET_LEN: usize = 16;

/// Argon2id's memory (KiB), iterations and lanes by default: OWASP's minimum.
pub const ARGON2_DEFAULTS: (u32, u32, u32) = (19_456, 2, 1);

#[derive(Debug, Clone, Args, Serialize)]
pub struct AuthConfig {
    /// HS256 signing key; required (at least 16 characters). Never logged or shown in /config.
    #[arg(long, env = "JWT_SECRET", hide_env_values = true)]
    #[serde(skip)]
    pub jwt_secret: Option<String>,
    /// Lifetime of an issued token.
    #[arg(long, env = "JWT_TTL_SECS", default_value_t = 3600)]
    pub jwt_ttl_secs: u64,
    /// Argon2id memory per hash (KiB). The defaults are OWASP's minimum for argon2id
    /// (19 MiB, 2 iterations, 1 lane): about 16 ms of one core per check (BENCHMARKS.md).
    #[arg(long, env = "ARGON2_MEMORY_KIB", default_value_t = ARGON2_DEFAULTS.0)]
    pub argon2_memory_kib: u32,
    #[arg(long, env = "ARGON2_ITERATIONS", default_value_t = ARGON2_DEFAULTS.1)]
    pub argon2_iterations: u32,
    #[arg(long, env = "ARGON2_PARALLELISM", default_value_t = ARGON2_DEFAULTS.2)]
    pub argon2_parallelism: u32,
    /// Password checks run at once (0 = one per gateway thread, GATEWAY_THREADS). Bounds a login storm's CPU and
    /// memory: the rest wait their turn instead of each taking ARGON2_MEMORY_KIB at once.
    #[arg(long, env = "LOGIN_CONCURRENCY", default_value_t = 0)]
    pub login_concurrency: usize,
    /// Lab users seeded at start.
    #[command(flatten)]
    #[serde(flatten)]
    pub lab: common::config::LabUsers,
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    iat: u64,
    exp: u64,
}

pub struct Keys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    ttl: Duration,
}

impl Keys {
    pub fn from_config(config: &AuthConfig) -> anyhow::Result<Self> {
        let secret = config.jwt_secret.as_deref().unwrap_or("");
        if secret.is_empty() {
            anyhow::bail!(
                "JWT_SECRET is not set: the gateway signs tokens with it. Set it in the environment \
                 (e.g. JWT_SECRET=$(openssl rand -hex 32)); compose reads it from .env"
            );
        }
        if secret.len() < MIN_SECRET_LEN {
            anyhow::bail!("JWT_SECRET is too short: use at least {MIN_SECRET_LEN} characters");
        }
        // Only HS256 is accepted: `alg: none` and every other algorithm are rejected.
        let mut validation = Validation::new(jsonwebtoken::Algorithm::HS256);
        validation.set_required_spec_claims(&["exp", "iat", "sub"]);
        validation.leeway = 5;
        Ok(Self {
            encoding: EncodingKey::from_secret(secret.as_bytes()),
            decoding: DecodingKey::from_secret(secret.as_bytes()),
            validation,
            ttl: Duration::from_secs(config.jwt_ttl_secs),
        })
    }

    fn issue(&self, username: &str) -> Result<String, ApiError> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let claims = Claims {
            sub: username.to_string(),
            iat: now,
            exp: now + self.ttl.as_secs(),
        };
        jsonwebtoken::encode(&Header::default(), &claims, &self.encoding)
            .map_err(|e| ApiError::internal(format!("cannot sign token: {e}")))
    }
}

/// Password hashing with bounded concurrency.
pub struct Login {
    argon2: Argon2<'static>,
    slots: Arc<Semaphore>,
    /// Verified against when the user does not exist, so that "unknown user" and "wrong
    /// password" take the same time and cannot be told apart.
    dummy_hash: String,
    lab_users: u32,
    lab_password: String,
}

impl Login {
    /// `threads`: the gateway's runtime threads, the default number of checks at once.
    pub fn new(config: &AuthConfig, threads: usize) -> anyhow::Result<Self> {
        let params = Params::new(
            config.argon2_memory_kib,
            config.argon2_iterations,
            config.argon2_parallelism,
            None,
        )
        .map_err(|e| anyhow::anyhow!("invalid ARGON2_* settings: {e}"))?;
        let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
        let slots = match config.login_concurrency {
            0 => threads.max(1),
            n => n,
        };
        let dummy_hash = hash(&argon2, "not a real password")?;
        Ok(Self {
            argon2,
            slots: Arc::new(Semaphore::new(slots)),
            dummy_hash,
            lab_users: config.lab.lab_users,
            lab_password: config.lab.lab_password.clone(),
        })
    }

    /// Adds the missing lab users (user1..userN), and hashes the present ones again when
    /// their hashes no longer match `LAB_PASSWORD` or the argon2 settings (a changed password
    /// takes effect on the next start). Idempotent; replicas may run it together.
    pub async fn seed_lab_users(&self, pool: &deadpool_postgres::Pool) -> anyhow::Result<()> {
        let wanted: Vec<String> = (1..=self.lab_users).map(|i| format!("user{i}")).collect();
        let client = pool.get().await?;
        let present: std::collections::HashMap<String, String> = client
            .query(
                "SELECT username, password_hash FROM lab_users WHERE username = ANY($1)",
                &[&wanted],
            )
            .await?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        let missing: Vec<String> = wanted
            .iter()
            .filter(|u| !present.contains_key(*u))
            .cloned()
            .collect();
        // Every lab user has the same password: a present hash that is stale (another
        // password, or other argon2 settings) means they all are.
        let stale = match present.values().next() {
            Some(sample) => !self.is_current(sample.clone()).await?,
            None => false,
        };
        let rehashed: Vec<String> = if stale {
            present.keys().cloned().collect()
        } else {
            Vec::new()
        };
        if missing.is_empty() && rehashed.is_empty() {
            return Ok(());
        }
        let (argon2, password) = (self.argon2.clone(), self.lab_password.clone());
        let count = missing.len() + rehashed.len();
        let hashes = tokio::task::spawn_blocking(move || {
            (0..count)
                .map(|_| hash(&argon2, &password))
                .collect::<anyhow::Result<Vec<_>>>()
        })
        .await??;
        let (for_missing, for_rehashed) = hashes.split_at(missing.len());
        client
            .execute(
                "INSERT INTO lab_users (username, password_hash)
                 SELECT * FROM unnest($1::text[], $2::text[])
                 ON CONFLICT (username) DO NOTHING",
                &[&missing, &for_missing],
            )
            .await?;
        client
            .execute(
                "UPDATE lab_users SET password_hash = t.hash
                 FROM unnest($1::text[], $2::text[]) AS t(username, hash)
                 WHERE lab_users.username = t.username",
                &[&rehashed, &for_rehashed],
            )
            .await?;
        tracing::info!(
            added = missing.len(),
            rehashed = rehashed.len(),
            "lab users seeded"
        );
        Ok(())
    }

    /// Whether a stored hash is of `LAB_PASSWORD` with this gateway's argon2 settings.
    async fn is_current(&self, stored: String) -> anyhow::Result<bool> {
        let (argon2, password) = (self.argon2.clone(), self.lab_password.clone());
        Ok(tokio::task::spawn_blocking(move || {
            let Ok(parsed) = PasswordHash::new(&stored) else {
                return false;
            };
            let params = argon2.params();
            let same_settings = Params::try_from(&parsed).is_ok_and(|p| {
                p.m_cost() == params.m_cost()
                    && p.t_cost() == params.t_cost()
                    && p.p_cost() == params.p_cost()
            });
            same_settings && argon2.verify_password(password.as_bytes(), &parsed).is_ok()
        })
        .await?)
    }

    async fn verify(&self, stored: Option<String>, password: String) -> Result<bool, ApiError> {
        let _slot = self
            .slots
            .acquire()
            .await
            .map_err(|_| ApiError::unavailable("shutting down"))?;
        let known = stored.is_some();
        let stored = stored.unwrap_or_else(|| self.dummy_hash.clone());
        let argon2 = self.argon2.clone();
        let matches = tokio::task::spawn_blocking(move || {
            PasswordHash::new(&stored)
                .map(|parsed| argon2.verify_password(password.as_bytes(), &parsed).is_ok())
                .unwrap_or(false)
        })
        .await
        .map_err(|e| ApiError::internal(format!("password check failed: {e}")))?;
        Ok(known && matches)
    }
}

fn hash(argon2: &Argon2<'_>, password: &str) -> anyhow::Result<String> {
    let salt = SaltString::generate(&mut OsRng);
    Ok(argon2
        .hash_password(password.as_bytes(), &salt)
        .map_err(|e| anyhow::anyhow!("argon2: {e}"))?
        .to_string())
}

pub async fn login(
    State(state): St,
    common::JsonObject(req): common::JsonObject<records::wire::Login>,
) -> Result<Json<records::wire::LoginAnswer>, ApiError> {
    if req.username.is_empty() || req.username.len() > 64 || req.password.len() > 1024 {
        return Err(ApiError::bad_request(
            "username must be 1-64 characters and password at most 1024",
        ));
    }
    // A NUL would reach Postgres, which refuses the byte (a 500); no lab user has any.
    if req.username.chars().any(char::is_control) {
        return Err(ApiError::bad_request(
            "username must not contain control characters",
        ));
    }
    let stored: Option<String> = {
        let client = state.pool.get().await.map_err(common::db::pool_error)?;
        client
            .query_opt(
                "SELECT password_hash FROM lab_users WHERE username = $1",
                &[&req.username],
            )
            .await
            .map_err(common::db::query_error)?
            .map(|row| row.get(0))
    };
    if !state.login.verify(stored, req.password).await? {
        state.metrics.logins.with_label_values(&["rejected"]).inc();
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "invalid username or password",
        ));
    }
    state.metrics.logins.with_label_values(&["ok"]).inc();
    let token = state.keys.issue(&req.username)?;
    Ok(Json(records::wire::LoginAnswer {
        token,
        token_type: "Bearer".into(),
        expires_in: state.keys.ttl.as_secs(),
    }))
}

/// The authenticated user of a protected route. Rejects with 401 + `WWW-Authenticate: Bearer`.
pub struct User(#[allow(dead_code)] pub String);

impl FromRequestParts<AppState> for User {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let value = parts
            .headers
            .get(header::AUTHORIZATION)
            .ok_or_else(|| ApiError::unauthorized("missing Authorization: Bearer token"))?
            .to_str()
            .map_err(|_| ApiError::unauthorized("malformed Authorization header"))?;
        let (scheme, token) = value
            .split_once(' ')
            .ok_or_else(|| ApiError::unauthorized("malformed Authorization header"))?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(ApiError::unauthorized(
                "Authorization scheme must be Bearer",
            ));
        }
        let data = jsonwebtoken::decode::<Claims>(
            token.trim(),
            &state.keys.decoding,
            &state.keys.validation,
        )
        .map_err(|e| {
            use jsonwebtoken::errors::ErrorKind;
            ApiError::unauthorized(match e.kind() {
                ErrorKind::ExpiredSignature => "token expired",
                ErrorKind::InvalidSignature => "token signature invalid",
                ErrorKind::InvalidAlgorithm => "token algorithm not accepted (HS256 only)",
                ErrorKind::MissingRequiredClaim(_) => "token lacks a required claim",
                _ => "token malformed",
            })
        })?;
        Ok(User(data.claims.sub))
    }
}
