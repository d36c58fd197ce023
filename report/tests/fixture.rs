//! The report on a committed fixture of run folders whose numbers were chosen by hand, so
//! every figure below can be checked with a pocket calculator.

use std::path::{Path, PathBuf};

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/results")
}

fn out_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("scalelab-report-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// Width and height from a PNG's IHDR chunk.
fn png_size(path: &Path) -> (u32, u32) {
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(&bytes[1..4], b"PNG", "{} is not a PNG", path.display());
    let be = |at: usize| u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap());
    (be(16), be(20))
}

#[test]
fn the_summary_holds_the_tables_comparisons_and_predictions() {
    let out = out_dir("summary");
    let outcome = report::generate(&fixture(), &out).unwrap();
    assert_eq!(outcome.runs, 4);
    let md = std::fs::read_to_string(&outcome.summary).unwrap();

    // Summary rows: requests = rps × 60, error % = 12 / 9000.
    assert!(md.contains("| `f-1gw-miss` | miss | classic | native | 1 | 1000 | 3600 | 60.0 | 1080.0 | 900 | 2000 | 3000 | 4000 | 0 | 0.00 | 0.0 % | **missed** |"), "{md}");
    assert!(
        md.contains("| `f-3gw-miss` | miss | classic | native | 3 | 1000 | 9000 | 150.0 |"),
        "{md}"
    );
    assert!(md.contains("| 12 | 0.13 |"), "{md}");
    assert!(md.contains("| `f-1gw-hit` | hit | classic | native | 1 | 1000 | 38400 | 640.0 | 7.2 | 6 | 20 | 30 | 40 | 0 | 0.00 | 99.0 % | met |"), "{md}");

    // Ratios: 150 / 60 = 2.50×, p95 1000 / 2000 − 1 = −50 %; 640 / 60 = 10.67×, 20 / 2000 − 1 = −99 %.
    assert!(
        md.contains("3 gateways miss: 2.50× the throughput of 1 gateway miss, p95 −50 %"),
        "{md}"
    );
    assert!(
        md.contains("1 gateway hit: 10.67× the throughput of 1 gateway miss, p95 −99 %"),
        "{md}"
    );
    assert!(
        md.contains("3 gateways hit: 0.62× the throughput of 1 gateway hit, p95 −25 %"),
        "{md}"
    );

    // Predictions. Miss service time = min p50 of the miss routes = 60 ms:
    // offered 1000 / 1.56 = 641.0, slots 1 × 4 / 0.06 = 66.7, pool 10 / 0.06 = 166.7.
    assert!(
        md.contains(
            "| `f-1gw-miss` | 60.0 | 641.0 | 66.7 | 166.7 | gateway slots | 66.7 | 60.0 | −10 % |"
        ),
        "{md}"
    );
    // Three gateways: slots 200 > pool 166.7, which becomes the bottleneck.
    assert!(md.contains("| `f-3gw-miss` | 60.0 | 641.0 | 200.0 | 166.7 | microservice pool | 166.7 | 150.0 | −10 % |"), "{md}");
    // Hits (4 ms): offered 1000 / 1.504 = 664.9 bounds both; 400 is 40 % short: flagged.
    assert!(
        md.contains(
            "| `f-1gw-hit` | 4.0 | 664.9 | 1000.0 | – | offered load | 664.9 | 640.0 | −4 % |"
        ),
        "{md}"
    );
    assert!(
        md.contains(
            "| `f-3gw-hit` | 4.0 | 664.9 | 3000.0 | – | offered load | 664.9 | 400.0 | −40 % ⚠ |"
        ),
        "{md}"
    );

    // Skipped folders are named; run warnings are there.
    for w in [
        "f-corrupt/run.json: not JSON",
        "f-partial/run.json: no `latency_ms`",
        "f-empty: no run.json",
        "f-3gw-miss: 12 failed requests",
    ] {
        assert!(
            outcome.warnings.iter().any(|x| x.contains(w)),
            "{w} in {:?}",
            outcome.warnings
        );
        assert!(md.contains(w), "{w}");
    }
    let _ = std::fs::remove_dir_all(out);
}

#[test]
fn every_expected_chart_is_written_as_png_and_svg_of_the_same_size() {
    let out = out_dir("charts");
    let outcome = report::generate(&fixture(), &out).unwrap();
    let mut expected = vec![
        "compare-throughput".to_string(),
        "compare-p95".into(),
        "percentiles-miss".into(),
        "percentiles-hit".into(),
    ];
    for id in ["f-1gw-miss", "f-1gw-hit", "f-3gw-miss", "f-3gw-hit"] {
        for kind in ["timeline", "latency", "gateways"] {
            expected.push(format!("{kind}-{id}"));
        }
    }
    assert_eq!(outcome.charts.len(), expected.len());
    let md = std::fs::read_to_string(&outcome.summary).unwrap();
    for name in expected {
        let png = out.join("graphs").join(format!("{name}.png"));
        assert_eq!(png_size(&png), report::charts::SIZE, "{name}");
        let svg = std::fs::read_to_string(out.join("graphs").join(format!("{name}.svg"))).unwrap();
        assert!(
            svg.contains("<svg") && svg.contains("width=\"900\""),
            "{name}"
        );
        assert!(
            md.contains(&format!("(graphs/{name}.png)")),
            "{name} linked"
        );
    }
    let _ = std::fs::remove_dir_all(out);
}

#[test]
fn per_second_series_sum_the_routes_and_weight_latency_by_requests() {
    let run = report::runs::load_run(&fixture().join("f-1gw-miss")).unwrap();
    // /data 30 + /process 30 per second; logins are not the scenario's traffic.
    assert_eq!(run.series.rps, vec![60.0; 5]);
    // 10 requests at 100 ms and 30 at 200 ms: (1000 + 6000) / 40 = 175 ms.
    assert_eq!(run.series.avg_ms, vec![175.0; 5]);
    // Errors start at second 2 (origin 2).
    assert_eq!(run.series.errors, vec![0.0, 0.0, 1.0, 0.0]);
    assert_eq!(run.percentiles.first(), Some(&(50.0, 900.0)));
    assert_eq!(run.think_ms, 1500.0);
}

#[test]
fn no_runs_is_a_clear_error() {
    let empty = out_dir("empty-results");
    std::fs::create_dir_all(&empty).unwrap();
    let err = report::generate(&empty, &out_dir("none"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("no runs to report on"), "{err}");
    let missing = report::generate(Path::new("/nonexistent/results"), &out_dir("none2"))
        .unwrap_err()
        .to_string();
    assert!(
        missing.contains("no runs") && missing.contains("cannot be read"),
        "{missing}"
    );
    let _ = std::fs::remove_dir_all(empty);
}
