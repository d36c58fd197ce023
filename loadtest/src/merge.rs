//! One run from several load generators (`GENERATORS=K`): each wrote its part in
//! `<run>/generators/<i>/` with its tally ([`crate::tally`]); [`merge`] writes the run's own
//! record in `<run>/`. Totals are sums; every percentile (the run's, each route's, each
//! second's) is that of the parts' histograms added together, the same as one tally of every
//! request would give, never an average of the parts' percentiles; the stack's counters are
//! the first generator's samples, taken until every part had ended.

use crate::tally::Tally;
use records::record::RunRecord;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The folder of generator `index`'s part of the run in `run`.
pub fn part_dir(run: &Path, index: usize) -> PathBuf {
    run.join("generators").join(index.to_string())
}

/// From a part's folder (`<run>/generators/0`), its peers' folders.
fn peers(part: &Path, generators: usize) -> Vec<PathBuf> {
    let parent = part.parent().unwrap_or(part);
    (0..generators)
        .map(|i| parent.join(i.to_string()))
        .collect()
}

/// Waits (at most `limit`) until every part of the run has its `run.json`: the first
/// generator samples the stack until the others' load has ended too.
pub async fn wait_for_parts(own: &Path, generators: usize, limit: Duration) {
    let deadline = tokio::time::Instant::now() + limit;
    let others: Vec<PathBuf> = peers(own, generators)
        .into_iter()
        .filter(|p| p != own)
        .collect();
    while !others.iter().all(|p| p.join("run.json").exists()) {
        if tokio::time::Instant::now() >= deadline {
            eprintln!(
                "loadtest: a generator's part has not ended within {limit:?}; sampling stops"
            );
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Merges the parts in `<run>/generators/*` into `<run>/run.json` and
/// `<run>/latency_per_second.json` (and the first part's `server.jsonl`). Returns the record.
pub fn merge(run: &Path) -> anyhow::Result<RunRecord> {
    let mut parts = Vec::new();
    for i in 0.. {
        let dir = part_dir(run, i);
        if !dir.exists() {
            break;
        }
        let record = RunRecord::read(&dir)
            .map_err(|e| anyhow::anyhow!("generator {i}'s part has no record: {e}"))?;
        parts.push((dir, record));
    }
    if parts.is_empty() {
        anyhow::bail!("{} holds no generators/0: nothing to merge", run.display());
    }
    let tallies = parts
        .iter()
        .map(|(dir, _)| Tally::read(dir))
        .collect::<anyhow::Result<Vec<Tally>>>()?;
    // Every part's clock starts at the one wall-clock time the lab gave (START_AT_MS): their
    // seconds line up. Parts started apart (by hand, without it) are lined up to the second.
    let t0 = tallies
        .iter()
        .map(|t| t.started_at)
        .fold(f64::INFINITY, f64::min);
    let offsets: Vec<f64> = tallies
        .iter()
        .map(|t| (t.started_at - t0) * 1000.0)
        .collect();
    let mut tally = Tally::new(false, t0);
    for (part, offset_ms) in tallies.iter().zip(&offsets) {
        tally.absorb(part, (offset_ms / 1000.0).round() as usize);
    }
    let series = tally.per_second();
    std::fs::write(
        run.join("latency_per_second.json"),
        serde_json::to_string(&series)?,
    )?;

    let (lead_dir, lead) = &parts[0];
    let mut out = lead.clone();
    out.run_id = run.file_name().and_then(|n| n.to_str()).map(String::from);
    out.load.users = parts.iter().map(|(_, r)| r.load.users).sum();
    out.load.rate = parts.iter().map(|(_, r)| r.load.rate).sum();
    // The merged logs' own window (first request sent by any generator to the last answer
    // any received), else the longest part's.
    out.duration_secs = series.window_secs().unwrap_or_else(|| {
        parts
            .iter()
            .map(|(_, r)| r.duration_secs)
            .fold(0.0, f64::max)
    });
    out.requests = tally.requests();
    out.failures = tally.failures();
    out.error_pct = if out.requests > 0 {
        100.0 * out.failures as f64 / out.requests as f64
    } else {
        0.0
    };
    out.rps = records::record::per_second(out.requests as f64, out.duration_secs);
    out.by_route = tally.by_route();
    out.latency_ms = tally.all(false).summary();
    out.arrivals = out.arrivals.is_some().then(|| {
        let scheduled = parts
            .iter()
            .filter_map(|(_, r)| Some(r.arrivals.as_ref()?.scheduled))
            .sum();
        let sent = parts
            .iter()
            .filter_map(|(_, r)| Some(r.arrivals.as_ref()?.sent))
            .sum();
        crate::record::arrivals(&tally, scheduled, sent)
    });
    out.cache_seen_by_client.hit = parts.iter().map(|(_, r)| r.cache_seen_by_client.hit).sum();
    out.cache_seen_by_client.miss = parts.iter().map(|(_, r)| r.cache_seen_by_client.miss).sum();
    out.relogins = parts.iter().map(|(_, r)| r.relogins).sum();
    out.shed.answers_503 = parts.iter().map(|(_, r)| r.shed.answers_503).sum();
    out.shed.without_retry_after = parts.iter().map(|(_, r)| r.shed.without_retry_after).sum();
    out.longtask = merge_longtask(parts.iter().map(|(_, r)| r));
    out.started = parts
        .iter()
        .map(|(_, r)| r.started.clone())
        .min()
        .unwrap_or_default();
    out.ended = parts
        .iter()
        .map(|(_, r)| r.ended.clone())
        .max()
        .unwrap_or_default();
    let cpu: f64 = parts.iter().map(|(_, r)| r.generator.cpu_seconds).sum();
    out.generator.cpu_seconds = cpu;
    out.generator.cpu_per_request_us = if out.requests > 0 {
        cpu * 1e6 / out.requests as f64
    } else {
        0.0
    };
    out.generator.share_of_machine = parts
        .iter()
        .map(|(_, r)| r.generator.share_of_machine)
        .sum();
    out.generator.saturated = parts.iter().any(|(_, r)| r.generator.saturated);
    out.generators = parts
        .iter()
        .zip(&offsets)
        .enumerate()
        .map(|(i, ((_, r), off))| {
            // Each part recorded itself; only its start relative to the others is new.
            let mut p = r.generators.first().cloned().unwrap_or_default();
            p.index = i;
            p.start_offset_ms = *off;
            p
        })
        .collect();
    // The SLA verdict again, on the merged figures, with the rules the parts were judged by.
    let texts: Vec<String> = out.sla.rules.iter().map(|c| c.rule.clone()).collect();
    let rules = if texts.is_empty() {
        records::sla::defaults(
            out.sla.p95_ms.unwrap_or(500.0),
            out.sla.error_pct.unwrap_or(1.0),
        )
    } else {
        records::sla::parse(&texts.join(",")).map_err(|e| anyhow::anyhow!(e))?
    };
    records::sla::judge(&mut out, &rules);
    if lead_dir.join("server.jsonl").exists() {
        std::fs::copy(lead_dir.join("server.jsonl"), run.join("server.jsonl"))?;
    }
    out.write(run)?;
    Ok(out)
}

/// Long-task counts are sums; the end-to-end times' percentiles are not mergeable from the
/// parts' summaries, so the merged record keeps the worst (highest) of each.
fn merge_longtask<'a>(
    parts: impl Iterator<Item = &'a RunRecord>,
) -> Option<records::record::LongtaskSummary> {
    let mut out: Option<records::record::LongtaskSummary> = None;
    for p in parts.filter_map(|r| r.longtask.as_ref()) {
        let o = out.get_or_insert_with(Default::default);
        o.submitted += p.submitted;
        o.done += p.done;
        o.failed += p.failed;
        o.timed_out += p.timed_out;
        let worst = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        o.end_to_end_ms.p50 = worst(o.end_to_end_ms.p50, p.end_to_end_ms.p50);
        o.end_to_end_ms.p95 = worst(o.end_to_end_ms.p95, p.end_to_end_ms.p95);
        o.end_to_end_ms.max = worst(o.end_to_end_ms.max, p.end_to_end_ms.max);
    }
    out
}
