//! The report's exports on the committed fixture: `summary.html` is one file that a real
//! browser (headless Chromium, Debian's `chromium`) renders with every chart drawn and
//! nothing fetched; `runs.csv` and each run's `csv/<run>.csv` have a header with units and
//! the figures of the summary.

use std::path::{Path, PathBuf};
use std::process::Command;

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/results")
}

fn report(name: &str) -> (PathBuf, report::Outcome) {
    let out = std::env::temp_dir().join(format!("scalelab-exports-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let outcome = report::generate(&fixture(), &out).unwrap();
    (out, outcome)
}

fn chromium() -> &'static str {
    for name in ["chromium", "chromium-browser"] {
        if Command::new(name)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
        {
            return name;
        }
    }
    panic!("headless Chromium is needed for this test: sudo apt-get install -y chromium");
}

#[test]
fn the_html_summary_is_one_file_a_browser_renders_with_every_chart() {
    let (out, outcome) = report("html");
    let html = std::fs::read_to_string(&outcome.html).unwrap();
    // Self-contained: nothing to fetch, no script.
    for outside in ["<link", "<script", "src=\"http", "href=\"http", "graphs/"] {
        assert!(!html.contains(outside), "summary.html holds {outside}");
    }
    let charts = outcome.charts.len();
    assert!(charts >= 10, "{charts} charts");
    let dom = Command::new(chromium())
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--dump-dom"])
        .arg(format!("file://{}", outcome.html.display()))
        .output()
        .expect("chromium runs");
    let dom = String::from_utf8_lossy(&dom.stdout);
    // Every chart is an SVG the browser parsed, with its lines drawn.
    assert_eq!(
        dom.matches("<svg").count(),
        charts,
        "charts in the rendered page"
    );
    assert!(dom.matches("<polyline").count() + dom.matches("<path").count() >= charts);
    assert!(dom.contains("<table>"), "the tables are tables");
    assert!(dom.contains("f-3gw-miss"));
    // And a picture of it, to look at.
    let png = out.join("summary.png");
    let shot = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--window-size=1200,3000",
        ])
        .arg(format!("--screenshot={}", png.display()))
        .arg(format!("file://{}", outcome.html.display()))
        .output()
        .expect("chromium runs");
    assert!(shot.status.success());
    assert!(
        std::fs::metadata(&png).unwrap().len() > 50_000,
        "a blank screenshot"
    );
    std::fs::remove_dir_all(&out).unwrap();
}

#[test]
fn the_csv_files_hold_the_summary_figures_with_units() {
    let (out, outcome) = report("csv");
    let runs = std::fs::read_to_string(out.join("runs.csv")).unwrap();
    let mut lines = runs.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    for column in [
        "run",
        "req_per_s",
        "ok_req_per_s",
        "p95_ms",
        "error_pct",
        "duration_s",
    ] {
        assert!(header.contains(&column), "{column} in {header:?}");
    }
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), outcome.runs);
    assert!(rows.iter().all(|r| r.len() == header.len()));
    // The summary's figures: f-3gw-miss made 9000 requests, 12 failed, 149.8 ok req/s.
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let miss3 = rows.iter().find(|r| r[0] == "f-3gw-miss").unwrap();
    assert_eq!(miss3[col("requests")], "9000");
    assert_eq!(miss3[col("failures")], "12");
    assert_eq!(miss3[col("ok_req_per_s")], "149.80");
    // One file per run, one row per second after its header.
    assert_eq!(outcome.csv.len(), outcome.runs + 1);
    let per_second = std::fs::read_to_string(out.join("csv/f-3gw-miss.csv")).unwrap();
    let mut lines = per_second.lines();
    assert!(lines
        .next()
        .unwrap()
        .starts_with("second_s,users,req_per_s,failed_per_s,avg_ms,p50_ms,p95_ms,p99_ms"));
    // The fixture's goose.json holds 5 seconds: 500 then 1000 users, 150 req/s, one failure
    // in second 2.
    let rows: Vec<&str> = lines.collect();
    assert_eq!(rows.len(), 5, "a row per second: {rows:?}");
    assert_eq!(rows[0], "0,500,150.00,0.00,175.00,,,");
    assert_eq!(rows[2], "2,1000,150.00,1.00,175.00,,,");
    std::fs::remove_dir_all(&out).unwrap();
}
