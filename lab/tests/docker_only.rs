//! The Docker-only path as the files describe it: the compose file builds the app image in
//! one service only and runs the lab from its own image in a profile; the Dockerfile has the
//! stages the compose file names; every `docker compose run --rm lab …` the README and the
//! handouts show is a command the lab has, with settings it knows. (CI's `make
//! smoke-container` runs the path itself.)

use clap::CommandFactory;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn compose() -> serde_yaml_ng::Value {
    let mut file: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&read("docker-compose.yml")).unwrap();
    file.apply_merge().unwrap(); // the `<<: *app` keys, as compose reads them
    file
}

#[test]
fn one_service_builds_the_app_image_and_the_others_run_its_tag() {
    let file = compose();
    let services = file["services"].as_mapping().unwrap();
    let app_image = "${APP_IMAGE:-scalelab/app:latest}";
    let mut builders = Vec::new();
    for (name, service) in services {
        let name = name.as_str().unwrap();
        // A profile's services (the lab itself, Prometheus) are not the stack's.
        if service.get("profiles").is_some() {
            continue;
        }
        if service.get("build").is_some() {
            builders.push(name.to_string());
        }
        // Postgres and Redis run their own images.
        if !matches!(name, "postgres" | "redis") {
            assert_eq!(service["image"].as_str(), Some(app_image), "{name}");
        }
    }
    assert_eq!(
        builders,
        vec![lab::runtime::compose::APP_BUILDER.to_string()]
    );
    assert_eq!(
        services[lab::runtime::compose::APP_BUILDER]["build"]["target"].as_str(),
        Some("app")
    );
    // The lab's list of the stack's services is the compose file's, the services of a
    // profile (the lab itself, Prometheus) aside: `up` never starts those.
    let mut listed: Vec<&str> = lab::runtime::compose::STACK_SERVICES.to_vec();
    let mut in_file: Vec<&str> = services
        .iter()
        .filter(|(_, service)| service.get("profiles").is_none())
        .filter_map(|(k, _)| k.as_str())
        .collect();
    listed.sort();
    in_file.sort();
    assert_eq!(listed, in_file);
}

#[test]
fn the_lab_service_runs_only_when_asked_with_the_checkout_and_the_socket() {
    let file = compose();
    let lab = &file["services"]["lab"];
    assert_eq!(
        lab["profiles"][0].as_str(),
        Some("lab"),
        "not started by `up`"
    );
    assert_eq!(lab["build"]["target"].as_str(), Some("lab"));
    let volumes: Vec<&str> = lab["volumes"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    assert!(volumes.contains(&".:/scalelab"), "{volumes:?}");
    assert!(
        volumes.contains(&"${DOCKER_SOCKET:-/var/run/docker.sock}:/var/run/docker.sock"),
        "{volumes:?}"
    );
    assert_eq!(lab["working_dir"].as_str(), Some("/scalelab"));
    // The offline override runs it on the offline lab image, with the offline images.
    let offline: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&read("docker-compose.offline.yml")).unwrap();
    assert_eq!(
        offline["services"]["lab"]["image"].as_str(),
        Some("scalelab/lab:offline")
    );
    assert_eq!(
        offline["services"]["lab"]["environment"]["IMAGES"].as_str(),
        Some("offline")
    );
}

#[test]
fn the_dockerfile_has_the_stages_compose_builds_and_marks_the_lab_image() {
    let dockerfile = read("Dockerfile");
    for stage in ["AS build", "AS lab", "AS app"] {
        assert!(
            dockerfile
                .lines()
                .any(|l| l.starts_with("FROM ") && l.ends_with(stage)),
            "{stage}"
        );
    }
    assert!(dockerfile.contains(&format!("ENV {}=1", lab::container::MARK)));
    assert!(
        read("docker/offline/lab.Dockerfile").contains(&format!("ENV {}=1", lab::container::MARK))
    );
    // Nothing tied to one architecture: the same file builds on amd64 and arm64.
    let instructions: String = dockerfile
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n");
    for arch in ["amd64", "x86_64", "aarch64", "arm64", "--platform"] {
        assert!(!instructions.contains(arch), "the Dockerfile names {arch}");
    }
    // Every crate of the workspace has its manifest copied for the dependency layer and is
    // in each list of crates (a new crate missing here breaks `docker compose build`).
    let manifest = read("Cargo.toml");
    let members = manifest
        .split("members = [")
        .nth(1)
        .and_then(|m| m.split(']').next())
        .expect("workspace members");
    for member in members.split(',').map(|m| m.trim().trim_matches('"')) {
        assert!(
            dockerfile.contains(&format!("COPY {member}/Cargo.toml {member}/")),
            "the Dockerfile does not copy {member}/Cargo.toml"
        );
        for line in dockerfile
            .lines()
            .filter(|l| l.contains("load_balancer microservice worker"))
        {
            assert!(
                line.split_whitespace()
                    .any(|w| w.trim_end_matches(';') == member),
                "{member} missing from: {line}"
            );
        }
    }
}

/// Every `docker compose run --rm lab CMD ARGS…` (or `docker-compose run …`) in a file.
fn lab_commands(text: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    for piece in text.split("run --rm").skip(1) {
        // A command ends with its line, or with the inline code it is in.
        let piece = piece.split(['\n', '`']).next().unwrap_or("");
        let words: Vec<String> = piece
            .split(|c: char| c.is_whitespace() || c == '`')
            .filter(|w| !w.is_empty())
            .map(String::from)
            .collect();
        // Options of `run` before the service name (`-e QUICK=1`, `--service-ports`).
        let mut i = 0;
        while i < words.len() && (words[i] == "-e" || words[i] == "--service-ports") {
            i += if words[i] == "-e" { 2 } else { 1 };
        }
        if words.get(i).map(String::as_str) != Some("lab") {
            continue;
        }
        let rest: Vec<String> = words[i + 1..]
            .iter()
            .take_while(|w| !w.starts_with('#') && !w.ends_with(')') && *w != "for" && *w != "…")
            .cloned()
            .collect();
        if !rest.is_empty() && !rest[0].starts_with('<') {
            out.push(rest);
        }
    }
    out
}

#[test]
fn every_docker_only_command_in_the_docs_is_one_the_lab_has() {
    let cli = lab::Cli::command();
    let mut seen = 0;
    // The README and every handout and teacher note (lab 0 gives each of its steps so).
    let mut files = vec!["README.md".to_string()];
    for dir in ["labs", "labs/teacher"] {
        let mut pages: Vec<String> = std::fs::read_dir(root().join(dir))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "md"))
            .map(|p| format!("{dir}/{}", p.file_name().unwrap().to_string_lossy()))
            .collect();
        pages.sort();
        files.extend(pages);
    }
    for file in &files {
        let file = file.as_str();
        for words in lab_commands(&read(file)) {
            let name = words[0].trim_end_matches([',', '.', ';']);
            assert!(
                cli.find_subcommand(name).is_some(),
                "{file}: `docker compose run --rm lab {}`: the lab has no command {name}",
                words.join(" ")
            );
            for arg in &words[1..] {
                let arg = arg.trim_end_matches([',', '.', ';']);
                if let Some((setting, _)) = arg.split_once('=') {
                    let known =
                        lab::settings::find(setting).is_some() || lab::VARIABLES.contains(&setting);
                    assert!(known, "{file}: {setting} in `{}`", words.join(" "));
                }
            }
            seen += 1;
        }
    }
    assert!(
        seen >= 5,
        "only {seen} Docker-only commands found in the docs"
    );
}
