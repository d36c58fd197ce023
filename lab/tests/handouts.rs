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
        let handout = read(&root().join(lab.handout));
        assert!(
            handout.contains(&format!("make lab N={}", lab.n)),
            "{} does not give its command",
            lab.handout
        );
    }
}

#[test]
fn every_make_target_a_handout_names_exists() {
    let makefile = read(&root().join("Makefile"));
    let targets: Vec<&str> = makefile
        .lines()
        .filter_map(|l| l.split_once(':').map(|(t, _)| t))
        .filter(|t| !t.is_empty() && !t.contains(' ') && !t.starts_with('.'))
        .collect();
    for path in handouts() {
        let text = read(&path);
        for (k, _) in text.match_indices("make ") {
            let target: String = text[k + 5..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
                .collect();
            // Prose ("make sure") is not a command: commands are in code.
            let in_code = text[..k].ends_with('`') || text[..k].ends_with('\n');
            if in_code && !target.is_empty() {
                assert!(
                    targets.contains(&target.as_str()),
                    "{} names `make {target}`, which the Makefile does not have",
                    path.display()
                );
            }
        }
    }
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
