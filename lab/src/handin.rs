//! Handing a lab in: `make answers N=k` writes the lab's answer sheet (its predictions and
//! analysis questions from the handout, each with a place for the student's answer, and the
//! figures to copy from the student's own report), and `make handin N=k STUDENT=…` bundles
//! the filled sheet, the run folders the lab made and the report into one archive a teacher
//! grades. A sheet still holding a placeholder, or a lab with no runs, is refused in one line.

use crate::labs::{Lab, Run};
use anyhow::{bail, Context};
use std::path::{Path, PathBuf};

/// What the student replaces on the sheet; the hand-in refuses a sheet that still holds it.
pub const PLACEHOLDER: &str = "(your answer)";
const NAME_PLACEHOLDER: &str = "(your name)";

/// Where a lab's sheet lives: `answers/<the handout's file name>`.
pub fn sheet_path(root: &Path, lab: &Lab) -> PathBuf {
    let file = Path::new(lab.handout)
        .file_name()
        .map(|f| f.to_owned())
        .unwrap_or_default();
    root.join("answers").join(file)
}

/// The numbered items of a handout's section (`## Predict first …`), each with its
/// continuation lines joined.
fn items(handout: &str, heading: &str) -> Vec<String> {
    let Some(start) = handout.find(heading) else {
        return Vec::new();
    };
    let section = &handout[start + heading.len()..];
    let section = section.split("\n## ").next().unwrap_or_default();
    let mut out: Vec<String> = Vec::new();
    for line in section.lines() {
        let trimmed = line.trim_start();
        let numbered = trimmed
            .split_once(". ")
            .is_some_and(|(n, _)| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()));
        if numbered && line.len() - trimmed.len() == 0 {
            let (_, text) = trimmed.split_once(". ").unwrap_or_default();
            out.push(text.trim().to_string());
        } else if let Some(last) = out.last_mut().filter(|_| line.starts_with("   ")) {
            last.push(' ');
            last.push_str(line.trim());
        }
    }
    out
}

/// The answer sheet of a lab, from its handout: the predictions (before the run), the
/// figures read from the student's report, the analysis answers.
pub fn sheet(lab: &Lab, handout: &str) -> String {
    let mut out = format!(
        "# Lab {}: answer sheet\n\n{}\n\nStudent: {NAME_PLACEHOLDER}\n\n",
        lab.n, lab.question
    );
    out.push_str("## Predictions (written before the run)\n\n");
    for (i, q) in items(handout, "## Predict first").iter().enumerate() {
        out.push_str(&format!(
            "{}. {q}\n\n   **Prediction:** {PLACEHOLDER}\n\n",
            i + 1
        ));
    }
    if lab.run == Run::Tour {
        // Lab 0 records no run: the figures are what the lab printed and the student saw.
        out.push_str(&format!(
            "## Seen (what the lab printed, and what your own requests answered)\n\nWhere: {}\n\n\
             **The figures your predictions are about:** {PLACEHOLDER}\n\n",
            lab.look
        ));
    } else {
        out.push_str(&format!(
            "## Measured (read from your own `tests/reports/summary.md`)\n\nWhere: {}\n\n\
             **The runs the report names:** {PLACEHOLDER}\n\n\
             **The figures your predictions are about, as the report gives them:** {PLACEHOLDER}\n\n",
            lab.look
        ));
    }
    out.push_str("## Analysis\n\n");
    for (i, q) in items(handout, "## Analysis questions").iter().enumerate() {
        out.push_str(&format!(
            "{}. {q}\n\n   **Answer:** {PLACEHOLDER}\n\n",
            i + 1
        ));
    }
    out
}

/// `make answers N=k`: writes the sheet, never over one that exists (it may hold answers).
pub fn write_sheet(root: &Path, lab: &Lab) -> anyhow::Result<PathBuf> {
    let path = sheet_path(root, lab);
    if path.exists() {
        bail!(
            "{} exists already: fill it in, or move it away for a fresh one",
            path.display()
        );
    }
    let handout = std::fs::read_to_string(root.join(lab.handout))
        .with_context(|| format!("cannot read {}", lab.handout))?;
    std::fs::create_dir_all(path.parent().expect("answers/"))?;
    std::fs::write(&path, sheet(lab, &handout))?;
    Ok(path)
}

/// What a lab's run folders are called: the part of their id after the batch's stamp.
fn marks(lab: &Lab) -> Vec<String> {
    match lab.run {
        Run::Experiment(e) => vec![format!("-{e}-")],
        Run::Faults => vec!["-fault-".into()],
        Run::Stall => vec!["-fault-lb-stall".into()],
        Run::Autoscale => vec!["-autoscale-".into()],
        Run::Loads(_) => vec![format!("-lab{}-", lab.n)],
        Run::Benchmark { .. } => vec!["gw-hit".into(), "gw-miss".into()],
        Run::Tour => Vec::new(),
    }
}

/// The run folders of the lab's latest batch under `results` (a batch: the stamp
/// `YYYYMMDD-HHMMSS` the folders' names start with).
pub fn latest_runs(results: &Path, lab: &Lab) -> Vec<PathBuf> {
    let marks = marks(lab);
    let mut ours: Vec<(String, PathBuf)> = std::fs::read_dir(results)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        // A link is never followed: it could point anywhere on this disk.
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.path())
        .filter_map(|p| {
            let name = p.file_name()?.to_string_lossy().into_owned();
            // `20261207-110702-…`: the batch stamp (a name with a multibyte character there
            // is no lab's).
            let stamp = name
                .get(..15)
                .filter(|s| s.as_bytes().get(8) == Some(&b'-'))?;
            (name.len() > 15 && marks.iter().any(|m| name.contains(m.as_str())))
                .then(|| (stamp.to_string(), p))
        })
        .collect();
    let Some(latest) = ours.iter().map(|(b, _)| b.clone()).max() else {
        return Vec::new();
    };
    ours.retain(|(b, _)| *b == latest);
    let mut dirs: Vec<PathBuf> = ours.into_iter().map(|(_, p)| p).collect();
    dirs.sort();
    dirs
}

/// A student's name as it goes into the archive's name: letters, digits and `-`.
fn slug(student: &str) -> String {
    let s: String = student
        .trim()
        .chars()
        .map(|c| {
            if c.is_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    s.split('-')
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join("-")
}

/// `make handin N=k STUDENT=…`: `handin/lab<k>-<student>.tar.gz` holding the sheet, the
/// lab's latest run folders and the report (`summary.md`, `summary.html`).
pub fn handin(root: &Path, lab: &Lab, student: &str) -> anyhow::Result<PathBuf> {
    let who = slug(student);
    if who.is_empty() {
        bail!("make handin: set STUDENT=<your name> (or STUDENT=… in .env)");
    }
    let sheet = sheet_path(root, lab);
    let text = std::fs::read_to_string(&sheet).map_err(|_| {
        anyhow::anyhow!(
            "no answer sheet {}: make answers N={} writes it, then fill it in",
            sheet.display(),
            lab.n
        )
    })?;
    let left = text.matches(PLACEHOLDER).count() + text.matches(NAME_PLACEHOLDER).count();
    if left > 0 {
        bail!(
            "{} still holds {left} placeholder(s) \"{PLACEHOLDER}\": answer every question first",
            sheet.display()
        );
    }
    let runs = latest_runs(&root.join("tests/results"), lab);
    // Lab 0 records no run: its sheet is what is handed in.
    if runs.is_empty() && lab.run != Run::Tour {
        bail!(
            "no runs of lab {} in tests/results: make lab N={} first",
            lab.n,
            lab.n
        );
    }
    let out_dir = root.join("handin");
    std::fs::create_dir_all(&out_dir)?;
    let path = out_dir.join(format!("lab{}-{who}.tar.gz", lab.n));
    let file = std::fs::File::create(&path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    let gz = flate2::write::GzEncoder::new(file, flate2::Compression::default());
    let mut tar = tar::Builder::new(gz);
    let top = format!("lab{}-{who}", lab.n);
    tar.append_path_with_name(&sheet, format!("{top}/answers.md"))?;
    for run in &runs {
        let name = run.file_name().expect("a run folder").to_string_lossy();
        tar.append_dir_all(format!("{top}/runs/{name}"), run)?;
    }
    let reports = root.join("tests/reports");
    for report in ["summary.md", "summary.html"] {
        if reports.join(report).exists() {
            tar.append_path_with_name(reports.join(report), format!("{top}/report/{report}"))?;
        }
    }
    tar.into_inner()?.finish()?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lab14() -> &'static Lab {
        crate::labs::find(14).unwrap()
    }

    fn root() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
    }

    #[test]
    fn every_lab_has_a_sheet_with_its_predictions_and_questions() {
        for lab in crate::labs::ALL {
            let handout = std::fs::read_to_string(root().join(lab.handout)).unwrap();
            let s = sheet(lab, &handout);
            let asked = items(&handout, "## Predict first").len();
            let analysed = items(&handout, "## Analysis questions").len();
            assert!(
                asked >= 2 && analysed >= 2,
                "lab {}: {asked}, {analysed}",
                lab.n
            );
            assert_eq!(s.matches("**Prediction:**").count(), asked, "lab {}", lab.n);
            assert_eq!(s.matches("**Answer:**").count(), analysed, "lab {}", lab.n);
        }
        let handout = std::fs::read_to_string(root().join(lab14().handout)).unwrap();
        let s = sheet(lab14(), &handout);
        assert!(s.contains("1. How many tasks per second can side A do (4 slots, 500 ms each)? Side B (4 at once in the worker)?"), "{s}");
    }

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("handin-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("labs")).unwrap();
        std::fs::copy(root().join(lab14().handout), dir.join(lab14().handout)).unwrap();
        dir
    }

    #[test]
    fn an_unfilled_sheet_or_missing_runs_are_refused_in_one_line() {
        let dir = scratch("refused");
        let e = handin(&dir, lab14(), "Ada").unwrap_err().to_string();
        assert!(e.contains("make answers N=14"), "{e}");
        let sheet = write_sheet(&dir, lab14()).unwrap();
        let e = write_sheet(&dir, lab14()).unwrap_err().to_string();
        assert!(e.contains("exists already"), "{e}");
        let e = handin(&dir, lab14(), "Ada").unwrap_err().to_string();
        assert!(e.contains("placeholder") && !e.contains('\n'), "{e}");
        let filled = std::fs::read_to_string(&sheet)
            .unwrap()
            .replace(PLACEHOLDER, "8 per second")
            .replace(NAME_PLACEHOLDER, "Ada");
        std::fs::write(&sheet, filled).unwrap();
        let e = handin(&dir, lab14(), "Ada").unwrap_err().to_string();
        assert!(e.contains("make lab N=14 first"), "{e}");
        let e = handin(&dir, lab14(), "  ").unwrap_err().to_string();
        assert!(e.contains("STUDENT="), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_filled_sheet_goes_out_with_the_latest_runs_and_the_report() {
        let dir = scratch("built");
        let sheet = write_sheet(&dir, lab14()).unwrap();
        let filled = std::fs::read_to_string(&sheet)
            .unwrap()
            .replace(PLACEHOLDER, "8 per second")
            .replace(NAME_PLACEHOLDER, "Ada Lovelace");
        std::fs::write(&sheet, filled).unwrap();
        let results = dir.join("tests/results");
        for id in [
            "20261201-100000-offload-A",
            "20261202-014316-offload-A",
            "20261202-014316-offload-B",
            "20261202-020000-index-A",
        ] {
            std::fs::create_dir_all(results.join(id)).unwrap();
            std::fs::write(results.join(id).join("run.json"), "{}").unwrap();
        }
        std::fs::create_dir_all(dir.join("tests/reports")).unwrap();
        std::fs::write(dir.join("tests/reports/summary.md"), "# Summary").unwrap();
        let archive = handin(&dir, lab14(), "Ada Lovelace").unwrap();
        assert_eq!(archive, dir.join("handin/lab14-ada-lovelace.tar.gz"));
        let file = std::fs::File::open(&archive).unwrap();
        let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(file));
        let mut names: Vec<String> = tar
            .entries()
            .unwrap()
            .map(|e| e.unwrap())
            .filter(|e| e.header().entry_type().is_file())
            .map(|e| e.path().unwrap().display().to_string())
            .collect();
        names.sort();
        assert_eq!(
            names,
            vec![
                "lab14-ada-lovelace/answers.md",
                "lab14-ada-lovelace/report/summary.md",
                "lab14-ada-lovelace/runs/20261202-014316-offload-A/run.json",
                "lab14-ada-lovelace/runs/20261202-014316-offload-B/run.json",
            ]
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Lab 0 records no run: its filled sheet alone is handed in, and says where its
    /// figures come from (what the lab printed), not the report.
    #[test]
    fn lab_0_hands_in_its_sheet_without_runs() {
        let lab0 = crate::labs::find(0).unwrap();
        let dir = std::env::temp_dir().join(format!("handin-lab0-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("labs")).unwrap();
        std::fs::copy(root().join(lab0.handout), dir.join(lab0.handout)).unwrap();
        let sheet = write_sheet(&dir, lab0).unwrap();
        let text = std::fs::read_to_string(&sheet).unwrap();
        assert!(text.contains("## Seen (what the lab printed") && !text.contains("summary.md"));
        let e = handin(&dir, lab0, "Ada").unwrap_err().to_string();
        assert!(e.contains("placeholder"), "{e}");
        let filled = text
            .replace(PLACEHOLDER, "a miss, then a hit")
            .replace(NAME_PLACEHOLDER, "Ada");
        std::fs::write(&sheet, filled).unwrap();
        let archive = handin(&dir, lab0, "Ada").unwrap();
        let file = std::fs::File::open(&archive).unwrap();
        let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(file));
        let names: Vec<String> = tar
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect();
        assert_eq!(names, vec!["lab0-ada/answers.md"]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
