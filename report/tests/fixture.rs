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
    assert_eq!(outcome.runs, 8);
    let md = std::fs::read_to_string(&outcome.summary).unwrap();

    // Summary rows: requests = rps × 60, error % = 12 / 9000; ok req/s leaves out failures
    // ((9000 − 12) / 60 = 149.8) and logins ((39400 − 1000) / 60 = 640).
    assert!(md.contains("| `f-1gw-miss` | miss | classic | native | 1 | 1000 | 3600 | 60.0 | 60.0 | 1080.0 | 900 | 2000 | 3000 | 4000 | 0 | 0.00 | 0.0 % | **missed** |"), "{md}");
    assert!(
        md.contains("| `f-3gw-miss` | miss | classic | native | 3 | 1000 | 9000 | 150.0 | 149.8 |"),
        "{md}"
    );
    assert!(md.contains("| 12 | 0.13 |"), "{md}");
    assert!(md.contains("| `f-1gw-hit` | hit | classic | native | 1 | 1000 | 39400 | 656.7 | 640.0 | 7.2 | 6 | 20 | 30 | 40 | 0 | 0.00 | 99.0 % | met |"), "{md}");

    // The recorded knobs: f-3gw-hit's gateways are limited to half a CPU each.
    assert!(
        md.contains(
            "| `f-3gw-hit` | 4 | – | 0.5 CPU | – | 10 | 50 | 1500 | closed | `0123456789` |"
        ),
        "{md}"
    );
    // Ratios of ok req/s: 149.8 / 60 = 2.50×; latency as the two figures and the larger over
    // the smaller (2000 → 20 ms is 100× lower, never "−99 %").
    assert!(
        md.contains("3 gateways miss against 1 gateway miss: 2.50× the throughput; p95 2000 → 1000 ms (2.00× lower)"),
        "{md}"
    );
    assert!(
        md.contains("1 gateway hit against 1 gateway miss: 10.67× the throughput; p95 2000 → 20 ms (100× lower)"),
        "{md}"
    );
    // Both hit runs recorded their successful requests' latencies: p95 18 → 9 ms (Goose's
    // whole-run figures, 20 → 15, would say less).
    assert!(
        md.contains(
            "3 gateways hit against 1 gateway hit: 0.62× the throughput; p95 of successful requests 18 → 9.0 ms (2.00× lower)"
        ),
        "{md}"
    );
    assert!(!md.contains("−100 %") && !md.contains("−99 %"), "{md}");
    // Words from the model: what bound each run and what would move it; why 3 gateways are
    // not 3×; what failed and why.
    assert!(md.contains("- `f-1gw-miss` (1 gateway miss): 1 gateway serves 4 requests at once (MAX_IN_FLIGHT 4); at 60 ms each that is 66.7 requests per second; it served 60.0 ok req/s (90 % of that). More gateways or a higher MAX_IN_FLIGHT would raise it, up to the next bound: the microservice pool at 166.7/s."), "{md}");
    assert!(md.contains("The bottleneck moved from the gateway slots (66.7/s) to the machine CPU (157.7/s), so the model expects 2.37×, not 3×: 3× the gateways raise the slot bound to 193.5/s, but the machine CPU binds first."), "{md}");
    assert!(
        md.contains("spent 12.7 ms of CPU per successful request (95 % of 2 cores busy)"),
        "{md}"
    );
    assert!(md.contains("`f-3gw-miss` (3 gateways miss) failed 12 of 9000 requests (0.1 %). **No answer**: 2 on `GET /data` (0.0 % of its requests). Why: no answer at all"), "{md}");
    assert!(md.contains("**503**: 4 on `GET /data` (0.1 % of its requests), 6 on `GET /process` (0.1 % of its requests). Why: unavailable"), "{md}");
    assert!(
        md.contains("| 1 gateway hit (`f-1gw-hit`) | 640.0 | 5 | 18 | 28 | 0.00 |"),
        "{md}"
    );

    // Predictions. Miss service time = min p50 of the miss routes = 60 ms:
    // offered 1000 / 1.56 = 641.0, slots 1 × 4 / 0.06 = 66.7, pool 10 / 0.06 = 166.7.
    assert!(
        md.contains(
            "| `f-1gw-miss` | 60.0 | 641.0 | 66.7 | 166.7 | – | – | gateway slots | 66.7 | 60.0 | −10 % |"
        ),
        "{md}"
    );
    // Three gateways, with their own calibrated 62 ms: offered 1000 / 1.562 = 640.2, slots
    // 3 × 4 / 0.062 = 193.5 > pool 10 / 0.062 = 161.3; but the machine's 2 cores were 95 %
    // busy: 0.95 × 2 / 149.8 = 12.7 ms of CPU per successful request, 2 / 0.0127 = 157.7/s,
    // the real bottleneck.
    assert!(md.contains("| `f-3gw-miss` | 62.0 | 640.2 | 193.5 | 161.3 | – | 157.7 | machine CPU | 157.7 | 149.8 | −5 % | 95 % |"), "{md}");
    // Hits (4 ms): offered 1000 / 1.504 = 664.9 bounds one gateway; three gateways of
    // 0.5 CPU at 4 ms of CPU per request: 1.5 / 0.004 = 375 req/s, the CPU bound.
    assert!(
        md.contains(
            "| `f-1gw-hit` | 4.0 | 664.9 | 1000.0 | – | – | – | offered load | 664.9 | 640.0 | −4 % |"
        ),
        "{md}"
    );
    assert!(
        md.contains(
            "| `f-3gw-hit` | 4.0 | 664.9 | 3000.0 | – | 375.0 | – | gateway CPU | 375.0 | 400.0 | +7 % |"
        ),
        "{md}"
    );
    // A burst of 100 users ran 100 req/s against an offered 100 / 1.504 = 66.5: flagged.
    assert!(md.contains("| `f-burst-hit` | 4.0 | 66.5 | 1000.0 | – | – | – | offered load | 66.5 | 100.0 | +50 % ⚠ |"), "{md}");
    // Long tasks are not the read path's model.
    assert!(!md.contains("| `f-longtask` | 550.0"), "{md}");

    // Burst vs ramp: worst per-second p95 300 (second 1) vs 60 (second 3).
    // First 5 s: burst p95 250, 300, 150, 20, 20 → median 150; ramp 20, 30, 50, 60, 40 → 40.
    assert!(md.contains("The burst's worst second (p95 300 ms at second 1) is 5.0× the ramp's (60 ms at second 3); over the first 5 seconds the median per-second p95 is 150 ms against 40 ms; whole-run p95 200 vs 50 ms."), "{md}");
    // Stages: users 50 | 100 ×5 | 50, 0. Hold: mean of 60, 70, 70, 80, 80 req/s = 72;
    // median of p95 20, 30, 40, 50, 60 = 40. Ramp-down's second 7 has no p95.
    assert!(
        md.contains("| ramp-up | 0–0 | 50 → 50 | 30.0 | 10.0 |"),
        "{md}"
    );
    assert!(
        md.contains("| hold | 1–5 | 100 → 100 | 72.0 | 40.0 |"),
        "{md}"
    );
    assert!(
        md.contains("| ramp-down | 6–7 | 50 → 0 | 35.0 | 20.0 |"),
        "{md}"
    );
    // Breakpoint: 20 users was the last step within the SLA.
    assert!(md.contains("The highest load that met the SLA: 20 users, 12.8 req/s (p95 310 ms). At 30 users it broke: p95 1900 ms, 2.50 % errors."), "{md}");

    // Skipped folders are named; run warnings are there.
    for w in [
        "f-corrupt/run.json: not JSON",
        "f-partial/run.json: no `latency_ms`",
        "f-empty: no run.json",
        "f-bad-breakpoint/breakpoint.json: not JSON",
        "f-3gw-miss: 12 failed requests",
        "f-3gw-miss: the machine's CPUs were 95 % busy on average",
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
        "compare-throughput-f-native".to_string(),
        "compare-p95-f-native".into(),
        "percentiles-miss-f-native".into(),
        "percentiles-hit-f-native".into(),
    ];
    for id in [
        "f-1gw-miss",
        "f-1gw-hit",
        "f-3gw-miss",
        "f-3gw-hit",
        "f-burst-hit",
        "f-ramp-hit",
        "f-stages-hit",
    ] {
        for kind in ["timeline", "latency", "gateways"] {
            expected.push(format!("{kind}-{id}"));
        }
    }
    // The long-task run has no Goose series, but its worker was sampled.
    expected.push("queue-f-longtask".into());
    expected.push("gateways-f-longtask".into());
    for name in [
        "shape-users-1gw-hit-native",
        "shape-latency-1gw-hit-native",
        "breakpoint-p95-f-search-breakpoint",
        "breakpoint-rps-f-search-breakpoint",
    ] {
        expected.push(name.into());
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
    // Percentiles per second, with the gap where no request finished.
    assert_eq!(
        run.series.p95_ms,
        vec![Some(400.0), Some(450.0), Some(500.0), None, Some(550.0)]
    );
    assert_eq!(run.goodput, 60.0);
}

#[test]
fn worker_samples_and_breakpoint_steps_are_read() {
    let run = report::runs::load_run(&fixture().join("f-longtask")).unwrap();
    // Five samples; the one whose scrape failed is left out.
    assert_eq!(run.queue.len(), 5);
    assert_eq!(run.queue[2].waiting, 12.0);
    assert_eq!(run.queue[2].in_progress, 2.0);
    let (found, warnings) = report::runs::load_breakpoints(&fixture());
    assert_eq!(found.len(), 1, "{warnings:?}");
    let knee = found[0].knee().unwrap();
    assert_eq!((knee.users, knee.rps), (20.0, 12.8));
    assert!(found[0].broken().is_some());
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

/// Copies fixture run `f-<kind>` into `results/<id>`, named `id`, with `edit` applied.
fn copy_run(results: &Path, kind: &str, id: &str, edit: impl FnOnce(&mut serde_json::Value)) {
    let dir = results.join(id);
    std::fs::create_dir_all(&dir).unwrap();
    for file in std::fs::read_dir(fixture().join(format!("f-{kind}"))).unwrap() {
        let file = file.unwrap().path();
        std::fs::copy(&file, dir.join(file.file_name().unwrap())).unwrap();
    }
    let mut run: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("run.json")).unwrap()).unwrap();
    run["run_id"] = serde_json::json!(id);
    edit(&mut run);
    std::fs::write(dir.join("run.json"), run.to_string()).unwrap();
}

#[test]
fn two_batches_and_two_runtimes_give_a_comparison_section_each() {
    let results = out_dir("batches");
    // The four classic fixture runs as two batches: one native, one under compose.
    for (batch, runtime) in [
        ("20261123-100000", "native"),
        ("20261123-120000", "compose"),
    ] {
        for kind in ["1gw-miss", "3gw-miss", "1gw-hit", "3gw-hit"] {
            copy_run(&results, kind, &format!("{batch}-{kind}"), |run| {
                run["runtime"] = serde_json::json!(runtime);
            });
        }
    }
    assert_eq!(
        report::batch_of("20261123-100000-3gw-miss"),
        "20261123-100000"
    );
    assert_eq!(report::batch_of("f-1gw-hit"), "f");
    assert_eq!(report::batch_of("smoke"), "smoke");
    let out = results.join("out");
    let outcome = report::generate(&results, &out).unwrap();
    let md = std::fs::read_to_string(outcome.summary).unwrap();
    for heading in [
        "### Comparisons: batch `20261123-100000`, native",
        "### Comparisons: batch `20261123-120000`, compose",
    ] {
        assert_eq!(md.matches(heading).count(), 1, "{heading}\n{md}");
    }
    // Each batch's charts are its own, named for it.
    for slug in ["20261123-100000-native", "20261123-120000-compose"] {
        assert!(out.join(format!("graphs/compare-p95-{slug}.png")).exists());
    }
    let _ = std::fs::remove_dir_all(&results);
}

#[test]
fn repeats_give_mean_spread_and_interval_and_the_comparison_uses_the_means() {
    let results = out_dir("repeats");
    for kind in ["1gw-miss", "3gw-miss", "1gw-hit", "3gw-hit"] {
        for k in 1..=3u64 {
            // Each repeat serves a little more than the one before: 99 %, 100 %, 101 %.
            let id = format!("20261123-140000-{kind}-r{k}");
            copy_run(&results, kind, &id, |run| {
                for route in run["by_route"].as_object_mut().unwrap().values_mut() {
                    let n = route["requests"].as_f64().unwrap();
                    route["requests"] =
                        serde_json::json!((n * (0.98 + 0.01 * k as f64)).round() as u64);
                }
            });
        }
    }
    let out = results.join("out");
    let md = std::fs::read_to_string(report::generate(&results, &out).unwrap().summary).unwrap();
    assert!(
        md.contains("Each configuration was run several times"),
        "{md}"
    );
    assert_eq!(
        md.matches("### Comparisons: batch `20261123-140000`, native")
            .count(),
        1,
        "{md}"
    );
    // 1 gateway miss: (1800 + 1800) × (0.99, 1.00, 1.01) / 60 → 59.4, 60.0, 60.6 ok req/s.
    assert!(
        md.contains("| 1 gateway miss | 3 | 60.0 | 1.0 % | 58.5 – 61.5 |"),
        "{md}"
    );
    assert!(
        md.contains(
            "3 gateways miss against 1 gateway miss, means of 3 and 3 runs: 2.50× the throughput"
        ),
        "{md}"
    );
    let _ = std::fs::remove_dir_all(&results);
}

#[test]
fn the_503s_are_told_apart_by_who_answered_them() {
    let results = out_dir("why-503");
    let id = "20261123-160000-1gw-miss";
    copy_run(&results, "1gw-miss", id, |run| {
        run["failures"] = serde_json::json!(300);
        let data = &mut run["by_route"]["GET /data"];
        data["failures"] = serde_json::json!(300);
        data["status_codes"] = serde_json::json!({"200": 1500, "503": 300});
    });
    // The gateways' limiter turned 200 away; the microservice answered 100 with 503.
    let lines: Vec<String> = (0..3)
        .map(|t| {
            serde_json::json!({
                "t": t as f64,
                "gateways": {"g1": {"limiter_rejected": 100.0 * t as f64,
                    "slot_seconds": 6.0 * t as f64, "slot_holds": 100.0 * t as f64}},
                "microservice": {"unavailable": 50.0 * t as f64},
            })
            .to_string()
        })
        .collect();
    std::fs::write(results.join(id).join("server.jsonl"), lines.join("\n")).unwrap();
    let out = results.join("out");
    let md = std::fs::read_to_string(report::generate(&results, &out).unwrap().summary).unwrap();
    assert!(
        md.contains("**503**: 300 on `GET /data` (16.7 % of its requests). Why: the gateways' limiter turned 200 away fast"),
        "{md}"
    );
    assert!(
        md.contains("; the microservice answered 100 with 503 (no database connection within its timeout), which the gateways passed on."),
        "{md}"
    );
    // The slots as the run used them: 12 s held over 200 holds, 60 ms each.
    assert!(
        md.contains("under this load a request held its slot 60 ms (60 ms one at a time)"),
        "{md}"
    );
    let _ = std::fs::remove_dir_all(&results);
}
