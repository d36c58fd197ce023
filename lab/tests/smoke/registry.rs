//! The class path: the images pulled from a registry, nothing built.

use super::{bin, compose_words, root, run, say, text};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// The PATH of a student's laptop here: no Rust.
const NO_RUST: &str = "/usr/local/bin:/usr/bin:/bin";

/// A registry on loopback (Debian's docker-registry), stopped when dropped.
struct Registry(std::process::Child);

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The stack a class run started from `clone`, taken down when dropped.
struct ClassStack(PathBuf);

impl Drop for ClassStack {
    fn drop(&mut self) {
        let words = compose_words();
        let _ = Command::new(words[0])
            .args(&words[1..])
            .args(["--profile", "lab", "run", "--rm", "lab", "down"])
            .env("PATH", NO_RUST)
            .current_dir(&self.0)
            .output();
    }
}

/// `docker compose …` in the clone, with Rust off PATH; its output, not checked.
fn in_clone(clone: &Path, args: &[&str]) -> Output {
    let words = compose_words();
    Command::new(words[0])
        .args(&words[1..])
        .args(args)
        .env("PATH", NO_RUST)
        .current_dir(clone)
        .output()
        .unwrap_or_else(|e| panic!("compose {args:?}: {e}"))
}

fn image_ids() -> String {
    let out = run(Command::new("docker").args(["images", "-q", "--no-trunc"]));
    let mut ids: Vec<String> = text(&out).lines().map(str::to_string).collect();
    ids.sort();
    ids.dedup();
    ids.join(" ")
}

fn present(image: &str) -> bool {
    Command::new("docker")
        .args(["image", "inspect", image])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// The class path, as a student's laptop runs it: images are pulled from a registry,
/// nothing is compiled. A real registry runs on loopback and the images this checkout builds
/// from Debian packages are pushed to it under the release names (IMAGE_REGISTRY set to it,
/// the way a school mirror is). Then, in a fresh clone with Rust off PATH, no scalelab image
/// present and no way to build one (no Dockerfile): the README's pull; `benchmark-all
/// QUICK=1` in the lab container (4 runs and the report, the live page on the address it
/// printed, the image ids unchanged); only the load balancer and its metrics published; a
/// checkout of another version gets one line and runs nothing; `lab images save`, every
/// image removed, the registry stopped, a damaged copy refused, `lab images load`, lab 0
/// runs. What this cannot prove: the released lab image (Compose v2 inside) is built only by
/// the release workflow; here the lab image holds Debian's docker-compose v1.
#[tokio::test]
#[ignore = "needs Docker, docker-registry and the offline images: make smoke-registry"]
async fn a_class_pulls_the_images_and_runs_with_nothing_built() {
    let started = Instant::now();
    let smoke = "smoke-registry";
    let say = |what: &str| say(smoke, what, started);
    let port: u16 = std::env::var("REGISTRY_PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(5055);
    let work = root().join(".scalelab/smoke-registry");
    let lab = bin("lab");
    assert!(
        Command::new("docker-registry")
            .arg("--version")
            .output()
            .is_ok(),
        "docker-registry not found: sudo apt-get install -y docker-registry"
    );
    say("offline images with the lab image (target/debug)");
    run(Command::new(root().join("scripts/images-offline"))
        .env("BUILD", "debug")
        .env("WITH_LAB", "1"));

    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(work.join("storage")).unwrap();
    let config = format!(
        "version: 0.1\nlog: {{level: warn}}\nstorage:\n  filesystem: {{rootdirectory: {}}}\nhttp:\n  addr: 127.0.0.1:{port}\n",
        work.join("storage").display()
    );
    std::fs::write(work.join("config.yml"), config).unwrap();
    let log = std::fs::File::create(work.join("registry.log")).unwrap();
    let registry = Registry(
        Command::new("docker-registry")
            .arg("serve")
            .arg(work.join("config.yml"))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("docker-registry serve"),
    );
    let http = reqwest::Client::new();
    let v2 = format!("http://127.0.0.1:{port}/v2/");
    let answers = |http: reqwest::Client, url: String| async move {
        http.get(url)
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while !answers(http.clone(), v2.clone()).await {
        assert!(
            Instant::now() < deadline,
            "the registry did not answer (see {}/registry.log)",
            work.display()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    say(&format!("a registry on 127.0.0.1:{port}"));

    let mirror = format!("127.0.0.1:{port}/scalelab");
    // The release names, from the compose file through the lab (app, postgres, redis, lab).
    let listed = run(Command::new(&lab)
        .arg("--root")
        .arg(root())
        .args(["images", "list"])
        .env("IMAGE_REGISTRY", &mirror));
    let names: Vec<String> = String::from_utf8_lossy(&listed.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect();
    assert_eq!(
        names.len(),
        4,
        "expected 4 images, the lab listed: {names:?}"
    );
    let offline = [
        "scalelab/app:offline",
        "scalelab-offline/postgres:latest",
        "scalelab-offline/redis:latest",
        "scalelab/lab:offline",
    ];
    say(&format!(
        "push under the release names: {}",
        names.join(" ")
    ));
    let mut sizes = String::new();
    for (local, name) in offline.iter().zip(&names) {
        run(Command::new("docker").args(["tag", local, name]));
        run(Command::new("docker").args(["push", "-q", name]));
        let size = run(Command::new("docker").args(["image", "inspect", "-f", "{{.Size}}", name]));
        let mb = text(&size).trim().parse::<f64>().unwrap_or(0.0) / 1e6;
        sizes.push_str(&format!("{name} {mb:.0} MB; "));
    }
    say(&format!("pushed: {sizes}"));
    // No scalelab image left on this machine: every pull below is a real one.
    for image in names.iter().map(String::as_str).chain(offline) {
        let _ = Command::new("docker").args(["rmi", "-f", image]).output();
    }
    for image in &names {
        assert!(!present(image), "{image} is still present");
    }

    say("a fresh clone, Rust off PATH, no Dockerfile (nothing can be built)");
    let clone = work.join("scalelab");
    run(Command::new("git")
        .args(["clone", "-q"])
        .arg(root())
        .arg(&clone));
    for file in ["Dockerfile", "docker-compose.build.yml"] {
        let _ = std::fs::remove_file(clone.join(file));
    }
    // A school mirror is one line of .env; the lab adds the secret.
    std::fs::write(clone.join(".env"), format!("IMAGE_REGISTRY={mirror}\n")).unwrap();
    for tool in ["cargo", "rustc"] {
        let found = NO_RUST
            .split(':')
            .any(|dir| Path::new(dir).join(tool).exists());
        assert!(!found, "{tool} is still on PATH ({NO_RUST})");
    }
    let _class = ClassStack(clone.clone());
    let pull_started = Instant::now();
    say("compose --profile lab pull");
    let pulled = in_clone(&clone, &["--profile", "lab", "pull"]);
    assert!(pulled.status.success(), "pull: {}", text(&pulled));
    let pulled_secs = pull_started.elapsed().as_secs();
    let ids_before = image_ids();

    say("compose run --rm --service-ports lab benchmark-all QUICK=1");
    let log_path = work.join("benchmark-all.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let before = std::time::SystemTime::now();
    let words = compose_words();
    let mut bench = Command::new(words[0])
        .args(&words[1..])
        .args([
            "run",
            "--rm",
            "--service-ports",
            "lab",
            "benchmark-all",
            "QUICK=1",
        ])
        .env("PATH", NO_RUST)
        .current_dir(&clone)
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("compose run");
    // The live page, from the host, at the address the lab printed.
    let mut live = None;
    let status = loop {
        if let Some(status) = bench.try_wait().unwrap() {
            break status;
        }
        if live.is_none() {
            let printed = std::fs::read_to_string(&log_path).unwrap_or_default();
            if let Some(url) = printed
                .split("live page on ")
                .nth(1)
                .and_then(|r| r.split_whitespace().next())
            {
                let board = http.get(format!("{url}board.json")).send().await;
                if let Ok(answer) = board {
                    if answer
                        .text()
                        .await
                        .unwrap_or_default()
                        .contains("\"points\"")
                    {
                        live = Some(url.to_string());
                    }
                }
            }
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    };
    let printed = std::fs::read_to_string(&log_path).unwrap_or_default();
    eprintln!("{printed}");
    assert!(
        status.success(),
        "benchmark-all in the lab container failed"
    );
    let first_report = pull_started.elapsed().as_secs();
    let url = live.expect("the live page never answered on the address the lab printed");
    say(&format!("the live page answered on the host at {url}"));
    let summary = clone.join("tests/reports/summary.md");
    let written = std::fs::metadata(&summary);
    assert!(
        written.as_ref().is_ok_and(|m| m.len() > 0),
        "no {}",
        summary.display()
    );
    assert!(
        written
            .and_then(|m| m.modified())
            .is_ok_and(|t| t >= before),
        "{} was not written by this run",
        summary.display()
    );
    let runs = std::fs::read_dir(clone.join("tests/results"))
        .unwrap()
        .flatten()
        .filter(|e| {
            e.metadata()
                .is_ok_and(|m| m.is_dir() && m.modified().is_ok_and(|t| t >= before))
        })
        .filter(|e| {
            let name = e.file_name().to_string_lossy().to_string();
            ["gw-hit", "gw-miss"].iter().any(|end| {
                name.strip_suffix(end)
                    .is_some_and(|head| head.ends_with(|c: char| c.is_ascii_digit()))
            })
        })
        .count();
    assert_eq!(runs, 4, "benchmark-all made {runs} runs, not 4");
    assert_eq!(
        image_ids(),
        ids_before,
        "the image ids changed during the run: something was built or pulled"
    );
    let built = printed.lines().find(|l| {
        l.starts_with("Building ")
            || (l.starts_with("Step ") && l.contains('/'))
            || (l.starts_with('#') && l.contains(" ["))
    });
    assert!(built.is_none(), "the run built an image: {built:?}");
    say(&format!(
        "fresh clone to first report: {first_report} s (pull {pulled_secs} s); images: {sizes}"
    ));

    say("only the load balancer and its metrics are published, on 127.0.0.1");
    let up = in_clone(&clone, &["run", "--rm", "lab", "up", "GATEWAYS=1"]);
    assert!(up.status.success(), "lab up failed: {}", text(&up));
    let ps = run(Command::new("docker").args([
        "ps",
        "--filter",
        "label=com.docker.compose.project=scalelab",
        "--format",
        "{{.Ports}}",
    ]));
    let mut published: Vec<String> = text(&ps)
        .split([',', '\n'])
        .map(|p| p.replace(' ', ""))
        .filter(|p| p.contains("->"))
        .collect();
    published.sort();
    published.dedup();
    assert_eq!(
        published,
        ["127.0.0.1:8080->8080/tcp", "127.0.0.1:9100->9100/tcp"]
    );

    say("a checkout of another version: one line, nothing measured");
    let manifest = clone.join("Cargo.toml");
    let original = std::fs::read_to_string(&manifest).unwrap();
    // The `version = "…"` line of `[workspace.package]`, at the start of its line.
    let (head, tail) = original.split_once("[workspace.package]").unwrap();
    let (before_version, _) = tail.split_once("\nversion = \"").unwrap();
    let rest = tail[before_version.len() + "\nversion = \"".len()..]
        .split_once('"')
        .unwrap()
        .1;
    let other = format!("{head}[workspace.package]{before_version}\nversion = \"9.9.9\"{rest}");
    std::fs::write(&manifest, other).unwrap();
    let refused = in_clone(
        &clone,
        &["run", "--rm", "lab", "load", "GATEWAYS=1", "QUICK=1"],
    );
    let said = text(&refused);
    assert!(
        !refused.status.success(),
        "a load ran with images of another version"
    );
    // `… is scalelab 0.1.0 but this checkout is 9.9.9`, a version between them.
    let version_line = said.split("is scalelab ").nth(1).and_then(|after| {
        let (version, rest) = after.split_once(' ')?;
        let digits = !version.is_empty() && version.chars().all(|c| c.is_ascii_digit() || c == '.');
        (digits && rest.starts_with("but this checkout is 9.9.9")).then_some(version)
    });
    assert!(version_line.is_some(), "no version line: {said}");
    assert_eq!(
        said.matches("lab: error").count(),
        1,
        "not one line: {said}"
    );
    std::fs::write(&manifest, original).unwrap();

    say("lab images save, every scalelab image removed, the registry stopped");
    let down = in_clone(&clone, &["run", "--rm", "lab", "down"]);
    assert!(down.status.success(), "down: {}", text(&down));
    let archive = work.join("scalelab-images.tar");
    run(Command::new(&lab)
        .env("PATH", NO_RUST)
        .arg("--root")
        .arg(&clone)
        .args(["images", "save"])
        .arg(&archive));
    run(Command::new("sha256sum")
        .args(["-c", "--quiet", "scalelab-images.tar.sha256"])
        .current_dir(&work));
    drop(registry);
    for image in &names {
        run(Command::new("docker").args(["rmi", "-f", image]));
    }
    say("a damaged copy is refused before anything is loaded");
    let mut damaged = std::fs::read(&archive).unwrap();
    damaged[1000] ^= 0x55;
    std::fs::write(work.join("damaged.tar"), damaged).unwrap();
    let sums = std::fs::read_to_string(work.join("scalelab-images.tar.sha256")).unwrap();
    std::fs::write(
        work.join("damaged.tar.sha256"),
        sums.replace("scalelab-images.tar", "damaged.tar"),
    )
    .unwrap();
    let load = Command::new(&lab)
        .env("PATH", NO_RUST)
        .arg("--root")
        .arg(&clone)
        .args(["images", "load"])
        .arg(work.join("damaged.tar"))
        .output()
        .unwrap();
    assert!(!load.status.success(), "a damaged archive was loaded");
    assert!(
        text(&load).contains("is damaged or not the archive that was saved"),
        "unexpected answer to a damaged archive: {}",
        text(&load)
    );
    assert!(
        !present(&names[0]),
        "an image was loaded from a damaged archive"
    );
    say("lab images load");
    run(Command::new(&lab)
        .env("PATH", NO_RUST)
        .arg("--root")
        .arg(&clone)
        .args(["images", "load"])
        .arg(&archive));
    assert!(
        !answers(http.clone(), v2.clone()).await,
        "the registry still answers"
    );
    say("a lab with no registry: lab N=0 (the tour: every kind of request once)");
    let tour = in_clone(&clone, &["run", "--rm", "lab", "lab", "N=0"]);
    assert!(
        tour.status.success(),
        "lab 0 failed with no registry: {}",
        text(&tour)
    );
    let down = in_clone(&clone, &["run", "--rm", "lab", "down"]);
    assert!(down.status.success(), "down: {}", text(&down));
    let left = run(Command::new("docker").args([
        "ps",
        "-q",
        "--filter",
        "label=com.docker.compose.project=scalelab",
    ]));
    assert_eq!(
        text(&left).trim(),
        "",
        "containers of the stack still run after down"
    );
    say("ok: pulled from the registry, 4 runs and the report with nothing built, the version line, save/load with no registry");
}
