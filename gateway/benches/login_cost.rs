//! What one login costs with the gateway's argon2id settings: wall time of one password check
//! (median of many), and the memory each concurrent check holds. Run with
//! `cargo bench -p gateway --bench login_cost` (ARGON2_* variables override the defaults).

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use std::time::Instant;

fn env(name: &str, default: u32) -> u32 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let (m, t, p) = gateway::ARGON2_DEFAULTS;
    let (m, t, p) = (
        env("ARGON2_MEMORY_KIB", m),
        env("ARGON2_ITERATIONS", t),
        env("ARGON2_PARALLELISM", p),
    );
    let argon2 = Argon2::new(
        Algorithm::Argon2id,
        Version::V0x13,
        Params::new(m, t, p, None).unwrap(),
    );
    let hash = argon2
        .hash_password(b"scalelab", &SaltString::generate(&mut OsRng))
        .unwrap()
        .to_string();
    let parsed = PasswordHash::new(&hash).unwrap();
    for _ in 0..5 {
        argon2.verify_password(b"scalelab", &parsed).unwrap();
    }
    let mut samples: Vec<f64> = (0..101)
        .map(|_| {
            let started = Instant::now();
            argon2.verify_password(b"scalelab", &parsed).unwrap();
            started.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    samples.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let median = samples[50];
    println!("argon2id m={m} KiB t={t} p={p}");
    println!(
        "  one password check: median {median:.2} ms, p90 {:.2} ms (101 runs)",
        samples[90]
    );
    println!(
        "  with LOGIN_CONCURRENCY={cores} (one per core): at most {:.0} logins/s per gateway, {:.1} MiB held by hashing",
        cores as f64 * 1000.0 / median,
        cores as f64 * m as f64 / 1024.0
    );
    println!(
        "  a 1000-user login storm: ~{:.1} s of CPU in all",
        1000.0 * median / 1000.0
    );
}
