//! The lab must build and run wherever Docker runs (macOS, Windows, Linux). Nothing here can
//! compile for macOS or Windows, so this test reads the sources instead: every Linux-only
//! call (`/proc`, `sched_setaffinity`, `cpu_set_t`, `taskset`, `ss`) in any crate's `src/`
//! must sit in a function marked `#[cfg(target_os = "linux")]`, which has a portable twin.

use std::path::{Path, PathBuf};

/// The crates whose `src/` is read: every member of the workspace.
fn crates() -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
    let members = manifest
        .split("members = [")
        .nth(1)
        .and_then(|m| m.split(']').next())
        .expect("workspace members");
    members
        .split(',')
        .map(|m| m.trim().trim_matches('"').to_string())
        .filter(|m| !m.is_empty())
        .collect()
}

const LINUX_ONLY: [&str; 6] = [
    "\"/proc/",
    "/proc/{",
    "sched_setaffinity",
    "cpu_set_t",
    "\"taskset\"",
    "\"ss\"",
];

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The attribute lines right above the function that holds line `at`.
fn attributes_of_enclosing_fn(lines: &[&str], at: usize) -> Option<Vec<String>> {
    let is_fn = |l: &str| {
        let l = l.trim_start();
        [
            "fn ",
            "pub fn ",
            "pub(crate) fn ",
            "async fn ",
            "pub async fn ",
        ]
        .iter()
        .any(|p| l.starts_with(p))
    };
    let start = (0..=at).rev().find(|&i| is_fn(lines[i]))?;
    Some(
        lines[..start]
            .iter()
            .rev()
            .map(|l| l.trim())
            .take_while(|l| l.starts_with("#[") || l.starts_with("///"))
            .map(String::from)
            .collect(),
    )
}

/// Every Linux-only call outside a `cfg(target_os = "linux")` function, as `file:line`.
fn unguarded(root: &Path) -> Vec<String> {
    let mut files = Vec::new();
    for krate in crates() {
        sources(&root.join(krate).join("src"), &mut files);
    }
    let mut found = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            if line.trim_start().starts_with("//") || !LINUX_ONLY.iter().any(|p| line.contains(p)) {
                continue;
            }
            let guarded = attributes_of_enclosing_fn(&lines, i)
                .is_some_and(|attrs| attrs.iter().any(|a| a == "#[cfg(target_os = \"linux\")]"));
            if !guarded {
                found.push(format!("{}:{}: {}", file.display(), i + 1, line.trim()));
            }
        }
    }
    found
}

#[test]
fn linux_only_calls_are_behind_cfg_linux() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let found = unguarded(root);
    assert!(
        found.is_empty(),
        "Linux-only calls outside cfg(target_os = \"linux\"):\n{}",
        found.join("\n")
    );
}

#[test]
fn the_check_finds_an_unguarded_call() {
    // The check itself must be able to fail: an unguarded /proc read in a scratch crate.
    let root = std::env::temp_dir().join(format!("scalelab-portability-{}", std::process::id()));
    let src = root.join("lab/src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(
        src.join("bad.rs"),
        "/// Doc.\npub fn cores() -> usize {\n    std::fs::read_to_string(\"/proc/cpuinfo\").map_or(1, |t| t.len())\n}\n\n#[cfg(target_os = \"linux\")]\nfn fine() {\n    let _ = std::fs::read(\"/proc/stat\");\n}\n",
    )
    .unwrap();
    for krate in crates() {
        std::fs::create_dir_all(root.join(krate).join("src")).unwrap();
    }
    let found = unguarded(&root);
    std::fs::remove_dir_all(&root).unwrap();
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].ends_with(
            "bad.rs:3: std::fs::read_to_string(\"/proc/cpuinfo\").map_or(1, |t| t.len())"
        ),
        "{found:?}"
    );
}
