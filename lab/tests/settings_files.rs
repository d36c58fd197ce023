//! The settings table is the only place a lab default is written: `.env.example` is generated
//! from it, and every `${NAME...}` in `docker-compose.yml` must be a setting of the table
//! with the table's default, set on exactly the services the table names.

use stack::settings::{Scope, Service, TABLE};
use std::path::PathBuf;

fn repo(file: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(file);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn env_example_is_generated_from_the_table() {
    assert_eq!(
        repo(".env.example"),
        stack::settings::env_example(),
        ".env.example differs from the table: run `make env-example`"
    );
}

/// Every `${NAME:-default}` / `${NAME-default}` / `${NAME:?message}` / `${NAME}` in the text:
/// (name, default).
fn interpolations(text: &str) -> Vec<(String, Option<String>)> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        let after = &rest[start + 2..];
        let end = after.find('}').expect("closed ${");
        let inner = &after[..end];
        let (name, default) = if let Some((n, d)) = inner.split_once(":-") {
            (n, Some(d.to_string()))
        } else if let Some((n, _)) = inner.split_once(":?") {
            (n, None)
        } else if let Some((n, d)) = inner.split_once('-') {
            // `${NAME-default}`: the default for an unset name only (an empty one stays empty).
            (n, Some(d.to_string()))
        } else {
            (inner, None)
        };
        out.push((name.to_string(), default));
        rest = &after[end..];
    }
    out
}

/// The lines of one top-level service block of the compose file.
fn service_block<'a>(text: &'a str, service: &str) -> Vec<&'a str> {
    let header = format!("  {service}:");
    let mut lines = text.lines().skip_while(|l| *l != header);
    let mut block = vec![lines.next().expect("service block")];
    block.extend(lines.take_while(|l| l.is_empty() || l.starts_with("   ")));
    block
}

#[test]
fn compose_uses_the_table_names_and_defaults() {
    let compose = repo("docker-compose.yml");
    // With the ports only a lab on the host publishes (the lab adds that file itself).
    let uses = interpolations(&(compose.clone() + &repo("docker-compose.host.yml")));
    assert!(!uses.is_empty());
    for (name, default) in &uses {
        let setting = stack::settings::find(name).unwrap_or_else(|| {
            panic!("docker-compose.yml uses ${{{name}}}, which is not in the settings table")
        });
        match default {
            Some(d) => assert_eq!(
                d, setting.default,
                "default of {name} in docker-compose.yml"
            ),
            None => assert!(
                setting.secret,
                "{name} has no default in docker-compose.yml"
            ),
        }
    }
    // The environment every app service merges, and each service's own block.
    let shared: Vec<&str> = compose
        .lines()
        .skip_while(|l| !l.starts_with("x-env:"))
        .take_while(|l| !l.is_empty())
        .collect();
    for setting in TABLE {
        let needle = format!("{}: ${{{}", setting.name, setting.name);
        match setting.scope {
            Scope::Services(services) => {
                for service in Service::ALL {
                    let block = service_block(&compose, service.name());
                    let here = block
                        .iter()
                        .chain(shared.iter())
                        .any(|l| l.contains(&needle));
                    assert_eq!(
                        here,
                        services.contains(&service),
                        "{} on {} in docker-compose.yml",
                        setting.name,
                        service.name()
                    );
                }
            }
            Scope::Lab => assert!(
                !uses.iter().any(|(n, _)| n == setting.name.as_str()),
                "{} is the lab's own, yet docker-compose.yml passes it",
                setting.name
            ),
            Scope::Compose | Scope::HostPort => assert!(
                uses.iter().any(|(n, _)| n == setting.name.as_str()),
                "{} is never used in docker-compose.yml",
                setting.name
            ),
        }
    }
}

#[test]
fn the_old_gateway_aliases_are_gone_everywhere() {
    for file in [
        "docker-compose.yml",
        ".env.example",
        "Makefile",
        "README.md",
    ] {
        let text = repo(file);
        for alias in [
            "GATEWAY_MAX_IN_FLIGHT",
            "GATEWAY_MAX_QUEUE",
            "GATEWAY_QUEUE_TIMEOUT_MS",
            "MICROSERVICE_DB_POOL_SIZE",
        ] {
            assert!(!text.contains(alias), "{file} still says {alias}");
        }
    }
}
