//! The classroom handouts (`labs/`) against the code: every lab of the table has its handout
//! and teacher notes and is listed in `labs/README.md`; every `make` target a handout names
//! exists; every report section and chart a handout sends students to is one the report
//! writes. A handout that drifts from the code fails here.

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every Markdown file under `labs/`.
fn handouts() -> Vec<PathBuf> {
    let mut out = Vec::new();
    for dir in [root().join("labs"), root().join("labs/teacher")] {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let p = entry.unwrap().path();
            if p.extension().is_some_and(|e| e == "md") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// The report's source text, where its section headings and chart names are written.
fn report_source() -> String {
    let mut all = String::new();
    for entry in std::fs::read_dir(root().join("report/src")).unwrap() {
        all.push_str(&read(&entry.unwrap().path()));
    }
    all
}

#[test]
fn every_lab_has_its_handout_teacher_notes_and_a_line_in_the_sequence() {
    let index = read(&root().join("labs/README.md"));
    for lab in lab::labs::ALL {
        assert!(root().join(lab.handout).exists(), "{}", lab.handout);
        assert!(root().join(lab.teacher).exists(), "{}", lab.teacher);
        let file = lab.handout.trim_start_matches("labs/");
        assert!(
            index.contains(&format!("[{}]({file})", lab.n)),
            "labs/README.md does not list lab {} ({file})",
            lab.n
        );
        for page in [lab.handout, lab.teacher] {
            let text = read(&root().join(page));
            assert!(
                !text.contains("@@") && !text.contains("TODO") && !text.contains("TBD"),
                "{page} still has a placeholder"
            );
        }
        let handout = read(&root().join(lab.handout));
        assert!(
            handout.contains(&format!("make lab N={}", lab.n)),
            "{} does not give its command",
            lab.handout
        );
    }
}

/// The `make` commands in a handout's code (inline or fenced): the `NAME=value` words before
/// and after `make`, and the target.
fn make_commands(text: &str) -> Vec<(Vec<String>, String)> {
    let mut out = Vec::new();
    for (k, _) in text.match_indices("make ") {
        // What precedes `make` on its line or in its inline code: only assignments.
        let line_start = text[..k].rfind(['\n', '`']).map_or(0, |i| i + 1);
        let before: Vec<&str> = text[line_start..k].split_whitespace().collect();
        if !before.iter().all(|w| w.contains('=')) {
            continue; // prose ("make sure"), not a command
        }
        let rest = &text[k + 5..];
        let end = rest.find(['\n', '`']).unwrap_or(rest.len());
        let mut words = rest[..end].split_whitespace();
        let target = words.next().unwrap_or("").to_string();
        if target.is_empty()
            || !target
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-')
        {
            continue;
        }
        let names = before
            .into_iter()
            .chain(words.filter(|w| w.contains('=')))
            .map(|w| w.split('=').next().unwrap().to_string())
            .collect();
        out.push((names, target));
    }
    out
}

#[test]
fn every_make_command_a_handout_gives_names_a_target_and_settings_that_exist() {
    let makefile = read(&root().join("Makefile"));
    let targets: Vec<&str> = makefile
        .lines()
        .filter_map(|l| l.split_once(':').map(|(t, _)| t))
        .filter(|t| !t.is_empty() && !t.contains(' ') && !t.starts_with('.'))
        .collect();
    // What a command may set: a lab setting, a load generator option, or a Makefile variable.
    let known = |name: &str| {
        lab::settings::TABLE.iter().any(|s| s.name == name)
            // The lab hands these to the load generator (as LOADTEST_<name>).
            || common::load::ENV_NAMES.contains(&name)
            || makefile.contains(&format!("$({name})"))
            || makefile
                .lines()
                .filter_map(|l| l.strip_prefix("export "))
                .any(|names| names.split_whitespace().any(|n| n == name))
    };
    let mut seen = 0;
    for path in handouts() {
        let text = read(&path);
        for (names, target) in make_commands(&text) {
            seen += 1;
            assert!(
                targets.contains(&target.as_str()),
                "{} names `make {target}`, which the Makefile does not have",
                path.display()
            );
            for name in names {
                assert!(
                    known(&name),
                    "{} sets {name} for `make {target}`, which neither the lab's settings, the \
                     load generator nor the Makefile knows",
                    path.display()
                );
            }
        }
    }
    assert!(
        seen > 20,
        "only {seen} commands found: the parser lost them"
    );
}

#[test]
fn commands_are_told_from_prose() {
    let text =
        "To make sure, run\n\n```\nLISTING_TTL_SECS=2 make lab N=8\n```\nand `make report`; \
                `QUICK=1 make load GATEWAYS=3 START_USERS=20`.";
    assert_eq!(
        make_commands(text),
        vec![
            (vec!["LISTING_TTL_SECS".into(), "N".into()], "lab".into()),
            (vec![], "report".into()),
            (
                vec!["QUICK".into(), "GATEWAYS".into(), "START_USERS".into()],
                "load".into()
            ),
        ]
    );
}

#[test]
fn every_report_section_and_chart_a_handout_names_is_written_by_the_report() {
    let source = report_source();
    for path in handouts() {
        let text = read(&path);
        // Sections: the bold names under "## Read the answer".
        if let Some(start) = text.find("## Read the answer") {
            let part = &text[start..];
            let part = &part[..part[3..].find("\n## ").map_or(part.len(), |e| e + 3)];
            for bold in part.split("**").skip(1).step_by(2) {
                let bold = bold.split_whitespace().collect::<Vec<_>>().join(" ");
                assert!(
                    source.contains(&format!("## {bold}")),
                    "{} sends students to the section {bold:?}, which the report does not write",
                    path.display()
                );
            }
        }
        // Charts: `name-*.png` or `name-<run>.png`.
        for chunk in text.split('`').skip(1).step_by(2) {
            if let Some(name) = chunk.strip_suffix(".png") {
                let prefix = name
                    .split(['*', '<'])
                    .next()
                    .unwrap()
                    .trim_start_matches("graphs/");
                // A name built with a placeholder (`"percentiles-{scenario}-{slug}"`) counts
                // up to the placeholder.
                let written = source.contains(&format!("\"{prefix}"))
                    || prefix
                        .match_indices('-')
                        .any(|(i, _)| source.contains(&format!("\"{}{{", &prefix[..=i])));
                assert!(
                    written,
                    "{} names the chart {chunk}, which the report does not draw",
                    path.display()
                );
            }
        }
    }
}

/// A course maps labs to its syllabus by the tactics' names: each handout names its tactics
/// and patterns in its first lines, and the README's tactic map has a row for every lab.
#[test]
fn every_handout_names_its_tactics_and_the_map_lists_every_lab() {
    let index = read(&root().join("labs/README.md"));
    let map = index
        .split("## Tactics")
        .nth(1)
        .and_then(|m| m.split("\n## ").next())
        .expect("labs/README.md has a Tactics section");
    for lab in lab::labs::ALL {
        let handout = read(&root().join(lab.handout));
        let head: String = handout.lines().take(4).collect::<Vec<_>>().join("\n");
        assert!(
            head.contains("**Tactics:**") && head.contains("**Patterns:**"),
            "{} does not name its tactics in its first lines",
            lab.handout
        );
        let file = lab.handout.trim_start_matches("labs/");
        assert!(
            map.contains(&format!("| [{}]({file}) |", lab.n)),
            "the tactic map has no row for lab {}",
            lab.n
        );
    }
}
