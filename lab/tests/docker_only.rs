//! The Docker-only path as the files describe it: the compose file builds the app image in
//! one service only and runs the lab from its own image in a profile; the Dockerfile has the
//! stages the compose file names; every `docker compose run --rm lab …` the README and the
//! handouts show is a command the lab has, with settings it knows. (CI's `make
//! smoke-registry` runs the path itself, pulling from a registry.)

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

/// A compose file with its `<<: *app` keys merged, as compose reads it.
fn compose_file(rel: &str) -> serde_yaml_ng::Value {
    let mut file: serde_yaml_ng::Value = serde_yaml_ng::from_str(&read(rel)).unwrap();
    file.apply_merge().unwrap();
    file
}

#[test]
fn the_class_path_pulls_every_image_from_the_projects_namespace_and_builds_none() {
    let file = compose();
    let services = file["services"].as_mapping().unwrap();
    let version = env!("CARGO_PKG_VERSION");
    let ours = "${IMAGE_REGISTRY:-ghcr.io/scalelab}/".to_string();
    for (name, service) in services {
        let name = name.as_str().unwrap();
        assert!(
            service.get("build").is_none(),
            "{name} builds: the class path never does"
        );
        assert_eq!(
            service["pull_policy"].as_str(),
            Some("if_not_present"),
            "{name}: pull_policy"
        );
        let image = service["image"].as_str().unwrap();
        assert!(
            image.starts_with(&ours),
            "{name}: {image} is not under IMAGE_REGISTRY"
        );
        // The project's own images carry the checkout's version as their default tag.
        if image.contains("/scalelab-") {
            assert!(
                image.ends_with(&format!(":${{IMAGE_TAG:-{version}}}")),
                "{name}: {image}"
            );
        }
    }
    // The stack's services run one app image.
    let app = format!("{ours}scalelab-app:${{IMAGE_TAG:-{version}}}");
    for service in ["microservice", "worker", "gateway", "load_balancer"] {
        assert_eq!(
            services[service]["image"].as_str(),
            Some(app.as_str()),
            "{service}"
        );
    }
    // Redis of the release carries the fix of CVE-2025-49844 (7.4.6 and later).
    let redis = services["redis"]["image"].as_str().unwrap();
    let minor: u32 = redis
        .split(":7.4.")
        .nth(1)
        .and_then(|t| t.split('-').next())
        .and_then(|p| p.parse().ok())
        .expect("redis 7.4.x");
    assert!(minor >= 6, "{redis}");
    // The lab's list of the stack's services is the compose file's, the services of a
    // profile (the lab itself, Prometheus) aside: `up` never starts those.
    let mut listed: Vec<&str> = stack::runtime::compose::STACK_SERVICES.to_vec();
    let mut in_file: Vec<&str> = services
        .iter()
        .filter(|(_, service)| service.get("profiles").is_none())
        .filter_map(|(k, _)| k.as_str())
        .collect();
    listed.sort();
    in_file.sort();
    assert_eq!(listed, in_file);
    // The images a lab needs are services of the file.
    for service in stack::runtime::images::NEEDED {
        assert!(services.contains_key(service), "{service}");
    }
}

#[test]
fn building_is_a_separate_path_that_never_pulls_what_it_builds() {
    let build = compose_file("docker-compose.build.yml");
    for (service, target) in [("microservice", "app"), ("lab", "lab")] {
        let s = &build["services"][service];
        assert_eq!(s["build"]["target"].as_str(), Some(target), "{service}");
        assert_eq!(s["pull_policy"].as_str(), Some("build"), "{service}");
        assert!(
            s["build"]["args"]["VERSION"].as_str().is_some(),
            "{service}"
        );
    }
    // The offline images are never looked up on a registry either.
    let offline = compose_file("docker-compose.offline.yml");
    for (name, service) in offline["services"].as_mapping().unwrap() {
        assert_eq!(service["pull_policy"].as_str(), Some("never"), "{name:?}");
    }
}

#[test]
fn a_students_stack_publishes_only_what_the_student_opens_on_loopback() {
    let file = compose();
    let mut published = Vec::new();
    for (name, service) in file["services"].as_mapping().unwrap() {
        for port in service["ports"].as_sequence().into_iter().flatten() {
            let port = port.as_str().unwrap();
            assert!(port.starts_with("127.0.0.1:"), "{name:?}: {port}");
            published.push(format!("{}:{port}", name.as_str().unwrap()));
        }
    }
    published.sort();
    assert_eq!(
        published,
        [
            "lab:127.0.0.1:${LIVE_PORT:-8089}:8089",
            "load_balancer:127.0.0.1:${LB_METRICS_PORT:-9100}:9100",
            "load_balancer:127.0.0.1:${LB_PORT:-8080}:8080",
            "prometheus:127.0.0.1:${PROMETHEUS_PORT:-9090}:9090",
        ]
    );
    // What only a lab on the host reads is in its own file, on loopback too.
    let host = compose_file("docker-compose.host.yml");
    for (name, service) in host["services"].as_mapping().unwrap() {
        for port in service["ports"].as_sequence().unwrap() {
            assert!(port.as_str().unwrap().starts_with("127.0.0.1:"), "{name:?}");
        }
    }
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
    assert!(dockerfile.contains(&format!("ENV {}=1", stack::container::MARK)));
    assert!(read("docker/offline/lab.Dockerfile")
        .contains(&format!("ENV {}=1", stack::container::MARK)));
    // Nothing tied to one architecture: the same file builds on amd64 and arm64.
    let instructions: String = dockerfile
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n");
    for arch in ["amd64", "x86_64", "aarch64", "arm64", "--platform"] {
        assert!(!instructions.contains(arch), "the Dockerfile names {arch}");
    }
    // Every crate of the workspace is copied into the build, and nothing else reaches its
    // context: an answer sheet or a hand-in never rebuilds (or enters) an image.
    let manifest = read("Cargo.toml");
    let members = manifest
        .split("members = [")
        .nth(1)
        .and_then(|m| m.split(']').next())
        .expect("workspace members");
    let ignore = read(".dockerignore");
    for member in members.split(',').map(|m| m.trim().trim_matches('"')) {
        assert!(
            dockerfile.contains(&format!("COPY {member}/ {member}/")),
            "the Dockerfile does not copy {member}/"
        );
        assert!(
            ignore.lines().any(|l| l == format!("!{member}/")),
            "{member}"
        );
    }
    assert_eq!(ignore.lines().find(|l| !l.starts_with('#')), Some("*"));
    assert!(!dockerfile.contains("COPY . ."));
    // Base images by exact tag; the label is the version the build checked.
    for line in dockerfile
        .lines()
        .filter(|l| l.starts_with("FROM ") && l.contains(':'))
    {
        assert!(
            !line.contains(":latest") && !line.contains("bookworm-2025"),
            "{line}"
        );
    }
    assert!(dockerfile.contains("org.opencontainers.image.version=\"$VERSION\""));
    assert!(dockerfile.contains("--locked"));
    assert!(dockerfile.contains("--mount=type=cache"));
}

/// Every `docker compose run --rm lab CMD ARGS…` (or `docker-compose run …`) in a file, and
/// whether it publishes the lab's ports (`--service-ports`).
fn lab_commands(text: &str) -> Vec<(bool, Vec<String>)> {
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
        let mut service_ports = false;
        while i < words.len() && (words[i] == "-e" || words[i] == "--service-ports") {
            service_ports |= words[i] == "--service-ports";
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
            out.push((service_ports, rest));
        }
    }
    out
}

/// The lab's commands that drive load (`Command::drives_load`).
const DRIVES_LOAD: [&str; 10] = [
    "load",
    "benchmark-all",
    "smoke",
    "autoscale",
    "experiment",
    "experiments",
    "fault",
    "faults",
    "lab",
    "watch",
];

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
        for (service_ports, words) in lab_commands(&read(file)) {
            let name = words[0].trim_end_matches([',', '.', ';']);
            assert!(
                cli.find_subcommand(name).is_some(),
                "{file}: `docker compose run --rm lab {}`: the lab has no command {name}",
                words.join(" ")
            );
            // A command that drives load serves the live page: its port is published.
            assert!(
                service_ports || !DRIVES_LOAD.contains(&name),
                "{file}: `docker compose run --rm lab {}` drives load without --service-ports",
                words.join(" ")
            );
            for arg in &words[1..] {
                let arg = arg.trim_end_matches([',', '.', ';']);
                if let Some((setting, _)) = arg.split_once('=') {
                    let known = stack::settings::find(setting).is_some()
                        || lab::VARIABLES.contains(&setting);
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
