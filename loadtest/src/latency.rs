//! Latency percentiles per second of the run, from its request log (one JSON line per
//! request): Goose's own per-second graphs only carry the average, and an average hides the
//! tail that an SLA is about. Logins are left out: they are the set-up, not the scenario.

use serde::Deserialize;
use std::io::BufRead;
use std::path::Path;

/// The fields of a request-log line that the series needs (Goose's names).
#[derive(Deserialize)]
struct Line {
    /// Milliseconds since the load test started.
    elapsed: u64,
    name: String,
    response_time: u64,
    #[serde(default)]
    response_time_fraction_us: u16,
    success: bool,
    /// 0 when no answer came (connection refused or reset, timeout).
    #[serde(default)]
    status_code: u16,
    /// A later correction of a request already logged (e.g. marked failed): not a request.
    #[serde(default)]
    update: bool,
    #[serde(default)]
    raw: Raw,
}

#[derive(Deserialize, Default)]
struct Raw {
    /// `Get`, `Post`: Goose's route key is `GET /data`.
    #[serde(default)]
    method: String,
}

/// Every request's latency in ms by Goose's route key (`GET /data`), logins included, as
/// Goose's own per-route and aggregate figures count them.
pub type ByRoute = std::collections::BTreeMap<String, Vec<f64>>;

/// Per-second series and the successful requests' percentiles: the shared record type.
pub use records::record::{LatencyPerSecond as PerSecond, OkLatency as Overall};

/// Nearest-rank percentile of sorted values (`p` in 0..=1): the one definition, in common.
pub use records::stats::percentile;

/// Reads a JSON request log. Lines that are not requests (or not JSON) are skipped.
pub fn per_second(log: &Path) -> anyhow::Result<PerSecond> {
    Ok(read_logs(&[(log.to_path_buf(), 0)])?.0)
}

/// [`per_second`] of several generators' logs as one, and every latency by route: each log's
/// clock shifted by its offset (milliseconds its load started after the first one's), every
/// percentile taken over the merged raw latencies. One pass over each log.
pub fn read_logs(logs: &[(std::path::PathBuf, u64)]) -> anyhow::Result<(PerSecond, ByRoute)> {
    let mut by_route = ByRoute::new();
    let mut buckets: Vec<Vec<f64>> = Vec::new();
    let mut failures: Vec<u64> = Vec::new();
    let mut ok: Vec<f64> = Vec::new();
    let mut classes: std::collections::BTreeMap<String, Vec<u64>> = Default::default();
    let mut statuses: std::collections::BTreeMap<u16, Vec<u64>> = Default::default();
    let mut first_login_ms: Option<u64> = None;
    let mut window: Option<[f64; 2]> = None;
    for (log, offset) in logs {
        let file = std::fs::File::open(log)
            .map_err(|e| anyhow::anyhow!("cannot read the request log {}: {e}", log.display()))?;
        for line in std::io::BufReader::new(file).lines() {
            let Ok(mut line) = serde_json::from_str::<Line>(&line?) else {
                continue;
            };
            line.elapsed += offset;
            let ms = line.response_time as f64 + f64::from(line.response_time_fraction_us) / 1000.0;
            if !line.update {
                let (sent, answered) = (line.elapsed as f64, line.elapsed as f64 + ms);
                window = Some(window.map_or([sent, answered], |[a, b]: [f64; 2]| {
                    [a.min(sent), b.max(answered)]
                }));
                by_route
                    .entry(format!("{} {}", line.raw.method.to_uppercase(), line.name))
                    .or_default()
                    .push(ms);
            }
            let login = records::record::is_login(&line.name);
            if login && !line.update {
                first_login_ms = Some(first_login_ms.map_or(line.elapsed, |f| f.min(line.elapsed)));
            }
            if line.update || login {
                continue;
            }
            // The second the answer came (Goose's `elapsed` is when the request was sent): a
            // request sent before a fault that fails after it counts after it.
            let second = ((line.elapsed + line.response_time) / 1000) as usize;
            if buckets.len() <= second {
                buckets.resize_with(second + 1, Vec::new);
                failures.resize(second + 1, 0);
            }
            buckets[second].push(ms);
            let class = match line.status_code {
                0 => "none".to_string(),
                code => format!("{}xx", code / 100),
            };
            let count = |v: &mut Vec<u64>| {
                if v.len() <= second {
                    v.resize(second + 1, 0);
                }
                v[second] += 1;
            };
            count(classes.entry(class).or_default());
            count(statuses.entry(line.status_code).or_default());
            if line.success {
                ok.push(ms);
            } else {
                failures[second] += 1;
            }
        }
    }
    ok.sort_by(f64::total_cmp);
    // Every series as long as the run, so that second k lines up across them.
    for v in classes.values_mut().chain(statuses.values_mut()) {
        v.resize(buckets.len(), 0);
    }
    let mut out = PerSecond {
        first_login_ms,
        window_ms: window,
        failures,
        status_classes: classes,
        statuses,
        ok: Overall {
            requests: ok.len() as u64,
            p50_ms: percentile(&ok, 0.50),
            p95_ms: percentile(&ok, 0.95),
            p99_ms: percentile(&ok, 0.99),
            curve: Overall::CURVE
                .iter()
                .filter_map(|p| Some((*p, percentile(&ok, p / 100.0)?)))
                .collect(),
        },
        ..PerSecond::default()
    };
    for mut b in buckets {
        b.sort_by(f64::total_cmp);
        out.requests.push(b.len() as u64);
        out.p50_ms.push(percentile(&b, 0.50));
        out.p95_ms.push(percentile(&b, 0.95));
        out.p99_ms.push(percentile(&b, 0.99));
    }
    Ok((out, by_route))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn line(elapsed: u64, name: &str, ms: u64, us: u16, success: bool, update: bool) -> String {
        let status = if success { 200 } else { 503 };
        coded(elapsed, name, ms, us, success, update, status)
    }

    fn coded(
        elapsed: u64,
        name: &str,
        ms: u64,
        us: u16,
        success: bool,
        update: bool,
        status: u16,
    ) -> String {
        format!(
            r#"{{"elapsed":{elapsed},"scenario_index":0,"name":"{name}","response_time":{ms},"response_time_fraction_us":{us},"success":{success},"update":{update},"status_code":{status},"user":0}}"#
        )
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 0.50), Some(50.0));
        assert_eq!(percentile(&v, 0.95), Some(95.0));
        assert_eq!(percentile(&v, 0.99), Some(99.0));
        assert_eq!(percentile(&[7.0], 0.99), Some(7.0));
        assert_eq!(percentile(&[], 0.5), None);
    }

    #[test]
    fn a_log_becomes_per_second_percentiles() {
        let dir = std::env::temp_dir().join(format!("scalelab-latency-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("requests.json");
        let mut f = std::fs::File::create(&path).unwrap();
        // Second 0: 1..=20 ms; second 2: one failed 0.25 ms request; second 1: only a login,
        // an update and a line that is not JSON, none of which count.
        for ms in 1..=20u64 {
            writeln!(f, "{}", line(ms * 10, "/data", ms, 0, true, false)).unwrap();
        }
        writeln!(f, "{}", line(1500, "/login", 900, 0, true, false)).unwrap();
        writeln!(f, "{}", line(1600, "/data", 5, 0, false, true)).unwrap();
        writeln!(f, "not json").unwrap();
        writeln!(f, "{}", line(2100, "/process", 0, 250, false, false)).unwrap();
        writeln!(f, "{}", coded(2200, "/data", 1, 0, false, false, 0)).unwrap();
        // Sent in second 1, answered in second 2: it counts in second 2.
        writeln!(f, "{}", coded(1900, "/data", 300, 0, true, false, 200)).unwrap();
        drop(f);
        let s = per_second(&path).unwrap();
        assert_eq!(s.requests, vec![20, 0, 3]);
        assert_eq!(s.failures, vec![0, 0, 2]);
        assert_eq!(s.p50_ms, vec![Some(10.0), None, Some(1.0)]);
        assert_eq!(s.p95_ms, vec![Some(19.0), None, Some(300.0)]);
        assert_eq!(s.p99_ms, vec![Some(20.0), None, Some(300.0)]);
        // Status classes per second, as long as the run: no answer at all is `none`.
        assert_eq!(s.status_classes["2xx"], vec![20, 0, 1]);
        assert_eq!(s.status_classes["5xx"], vec![0, 0, 1]);
        assert_eq!(s.status_classes["none"], vec![0, 0, 1]);
        assert_eq!(s.statuses[&503], vec![0, 0, 1]);
        assert_eq!(s.first_login_ms, Some(1500));
        // The failed 0.25 ms request is left out of the successful requests' percentiles.
        assert_eq!(s.ok.requests, 21);
        assert_eq!(
            (s.ok.p50_ms, s.ok.p95_ms, s.ok.p99_ms),
            (Some(11.0), Some(20.0), Some(300.0))
        );
        assert_eq!(s.ok.curve.first(), Some(&(50.0, 11.0)));
        assert_eq!(s.ok.curve.last(), Some(&(100.0, 300.0)));
        assert_eq!(s.ok.curve.len(), Overall::CURVE.len());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_missing_log_is_a_clear_error() {
        let err = per_second(Path::new("/nonexistent/requests.json")).unwrap_err();
        assert!(err.to_string().contains("cannot read the request log"));
    }
}
