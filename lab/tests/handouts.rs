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
        stack::settings::find(name).is_some()
            // The lab hands these to the load generator (as LOADTEST_<name>).
            || records::load::ENV_NAMES.contains(&name)
            // What the lab's commands read from the environment (NAME, N, GATEWAYS, ...).
            || lab::VARIABLES.contains(&name)
            || makefile.contains(&format!("$({name})"))
            || makefile.contains(&format!("$${{{name}"))
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

/// Lab 0's handout gives, verbatim, every line the lab's tour sends (`lab::tour`), in both
/// shells and in the Docker-only form of the lab's commands, for the default settings.
#[test]
fn lab_0_gives_every_line_of_the_tour_in_both_shells() {
    use lab::tour::{docker_only, fill, setup, Item, STEPS};
    let secrets = stack::settings::GENERATED.map(|name| {
        (
            name.to_string(),
            "a-test-secret-of-enough-length".to_string(),
        )
    });
    let settings = stack::settings::Settings::resolve(None, secrets).unwrap();
    let handout = read(&root().join("labs/00-meet-the-stack.md"));
    let mut lines = vec![
        setup(true, &settings, "ada-1"),
        setup(false, &settings, "ada-1"),
    ];
    for step in STEPS {
        for item in step.items {
            lines.push(fill(&item.posix(), &settings));
            lines.push(fill(&item.powershell(), &settings));
            if let Item::Lab(args) = item {
                lines.push(docker_only(args));
            }
        }
    }
    for line in &lines {
        assert!(
            handout.contains(line.as_str()),
            "labs/00-meet-the-stack.md lacks the tour's line\n{line}"
        );
    }
    // Every curl or PowerShell request line of the handout is one of the tour's.
    for line in handout.lines() {
        let request = line.contains("curl ") || line.contains("Invoke-");
        assert!(
            !request || lines.iter().any(|l| l == line),
            "labs/00-meet-the-stack.md has a request the tour does not send\n{line}"
        );
    }
}

/// A handout without its fenced code blocks (what a student reads, not what they type).
fn prose(text: &str) -> String {
    text.split("```")
        .enumerate()
        .filter(|(i, _)| i % 2 == 0)
        .map(|(_, part)| part)
        .collect()
}

/// The numbered items (`1. …`) of a handout's section whose heading starts with `heading`.
fn numbered(text: &str, heading: &str) -> Vec<u32> {
    let section = text
        .split("\n## ")
        .find(|s| s.starts_with(heading))
        .unwrap_or_else(|| panic!("no section {heading}"));
    section
        .lines()
        .filter_map(|l| l.split_once(". ").and_then(|(n, _)| n.parse().ok()))
        .collect()
}

/// The sequence table's reading and answering time is the README's rule applied to the
/// handout: a minute per 150 words of prose, 2 per prediction, 3 per analysis question,
/// rounded up to 5.
#[test]
fn each_labs_reading_and_answering_time_follows_the_rule() {
    let index = read(&root().join("labs/README.md"));
    for lab in lab::labs::ALL {
        let text = prose(&read(&root().join(lab.handout)));
        let words = text.split_whitespace().count();
        let predictions = numbered(&text, "Predict").len();
        let questions = numbered(&text, "Analysis").len();
        let minutes = words.div_ceil(150) + 2 * predictions + 3 * questions;
        let rounded = minutes.div_ceil(5) * 5;
        let file = lab.handout.trim_start_matches("labs/");
        let row = index
            .lines()
            .find(|l| l.starts_with(&format!("| [{}]({file}) | {}", lab.n, lab.question)))
            .unwrap_or_else(|| panic!("no sequence row for lab {}", lab.n));
        assert!(
            row.ends_with(&format!("| {rounded} min |")),
            "lab {}: {words} words, {predictions} predictions, {questions} questions give \
             {rounded} min: {row}",
            lab.n
        );
    }
}

/// Every teacher note ends with a rubric of 10 points whose rows cover each prediction and
/// each analysis question of the handout exactly once.
#[test]
fn every_teacher_note_has_a_rubric_covering_every_question() {
    for lab in lab::labs::ALL {
        let handout = prose(&read(&root().join(lab.handout)));
        let note = read(&root().join(lab.teacher));
        let rubric = note
            .split("\n## Rubric (10 points)")
            .nth(1)
            .unwrap_or_else(|| panic!("{} has no rubric", lab.teacher));
        let mut points = 0;
        let mut covered: Vec<(String, u32)> = Vec::new();
        for row in rubric.lines().filter(|l| l.starts_with("| ")).skip(1) {
            let cells: Vec<&str> = row.split('|').map(str::trim).collect();
            if cells.len() < 5 || cells[1].starts_with("---") {
                continue;
            }
            points += cells[2]
                .parse::<u32>()
                .unwrap_or_else(|_| panic!("{}: points {:?}", lab.teacher, cells[2]));
            let (kind, range) = cells[1]
                .split_once(' ')
                .unwrap_or_else(|| panic!("{}: {:?}", lab.teacher, cells[1]));
            let (from, to) = range.split_once('–').unwrap_or((range, range));
            let (from, to): (u32, u32) = (from.parse().unwrap(), to.parse().unwrap());
            for n in from..=to {
                covered.push((kind.to_string(), n));
            }
        }
        assert_eq!(points, 10, "{}: the rubric's points", lab.teacher);
        for (kind, heading) in [("prediction", "Predict"), ("analysis", "Analysis")] {
            for n in numbered(&handout, heading) {
                let times = covered.iter().filter(|c| c.0 == kind && c.1 == n).count();
                assert_eq!(
                    times, 1,
                    "{}: {kind} {n} is covered {times} times",
                    lab.teacher
                );
            }
        }
        assert_eq!(
            covered.len(),
            numbered(&handout, "Predict").len() + numbered(&handout, "Analysis").len(),
            "{}: the rubric names a question the handout does not have",
            lab.teacher
        );
    }
}

/// `labs/extend.md`'s worked examples are the code as it is: each snippet under a
/// `` `path`: `` line appears verbatim in that file.
#[test]
fn the_extension_pages_snippets_are_in_the_files_they_name() {
    let page = read(&root().join("labs/extend.md"));
    let mut checked = 0;
    let parts: Vec<&str> = page.split("```").collect();
    for (i, code) in parts.iter().enumerate().skip(1).step_by(2) {
        let before = parts[i - 1].trim_end();
        let Some(named) = before
            .lines()
            .last()
            .and_then(|l| l.strip_prefix('`'))
            .and_then(|l| l.strip_suffix("`:"))
        else {
            continue;
        };
        let snippet = code.strip_prefix("rust").unwrap_or(code).trim_matches('\n');
        let file = read(&root().join(named));
        assert!(
            file.contains(snippet),
            "labs/extend.md: {named} no longer holds\n{snippet}"
        );
        checked += 1;
    }
    assert!(checked >= 6, "only {checked} snippets found");
}
