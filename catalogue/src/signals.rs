//! What the stack's own counters showed each second of a run (`server.jsonl`), moved onto
//! the clock of the per-second answer series: the mechanism behind a fault run's answers
//! (cache errors, requests waiting for a database connection, jobs taken over).

use crate::run::Run;
use records::record::{GatewaySample, ServerSample};

/// Unix time of second 0 of the per-second answer series (the attack's start; else the
/// first server sample, a second or two earlier).
pub fn t0(r: &Run) -> Option<f64> {
    r.series_t0.or(r.at0)
}

/// Seconds from second 0 of the per-second answer series to the first server sample.
pub fn shift(r: &Run) -> f64 {
    match (r.at0, t0(r)) {
        (Some(a), Some(t)) => a - t,
        _ => 0.0,
    }
}

/// A gauge at each sample: (seconds on the answers' clock, value).
pub fn gauge(r: &Run, read: impl Fn(&ServerSample) -> Option<f64>) -> Vec<(f64, f64)> {
    let s = shift(r);
    r.server
        .iter()
        .filter_map(|x| Some((x.t + s, read(x)?)))
        .collect()
}

/// How much a counter grew between consecutive samples, per second. A process that
/// restarted counts from zero again: its drop is not a negative rate.
pub fn rate(r: &Run, read: impl Fn(&ServerSample) -> Option<f64>) -> Vec<(f64, f64)> {
    let s = shift(r);
    r.server
        .windows(2)
        .filter_map(|w| {
            let dt = w[1].t - w[0].t;
            let (before, after) = (read(&w[0])?, read(&w[1])?);
            (dt > 0.0).then(|| (w[1].t + s, grew(before, after) / dt))
        })
        .collect()
}

/// How much a counter grew over the run, restarts included.
pub fn total(r: &Run, read: impl Fn(&ServerSample) -> Option<f64>) -> f64 {
    let v: Vec<f64> = r.server.iter().filter_map(read).collect();
    v.windows(2).map(|w| grew(w[0], w[1])).sum()
}

/// A counter's growth from `before` to `after`; a reset (the process restarted) counts from 0.
fn grew(before: f64, after: f64) -> f64 {
    if after >= before {
        after - before
    } else {
        after
    }
}

/// How much a gateway counter grew between consecutive samples, summed over the gateways
/// that answered both (a gateway that was down for one of them adds nothing rather than a
/// jump): (time of the later sample, seconds between them, growth).
fn gateway_growth(r: &Run, field: &impl Fn(&GatewaySample) -> f64) -> Vec<(f64, f64, f64)> {
    let s = shift(r);
    r.server
        .windows(2)
        .filter_map(|w| {
            let dt = w[1].t - w[0].t;
            let mut total = None;
            for (address, after) in &w[1].gateways {
                let before = w[0].gateways.get(address).and_then(|m| m.ok());
                if let (Some(b), Some(a)) = (before, after.ok()) {
                    *total.get_or_insert(0.0) += grew(field(b), field(a));
                }
            }
            (dt > 0.0).then_some((w[1].t + s, dt, total?))
        })
        .collect()
}

/// How much a gateway counter grew per second, summed over the gateways.
pub fn gateway_rate(r: &Run, field: impl Fn(&GatewaySample) -> f64) -> Vec<(f64, f64)> {
    gateway_growth(r, &field)
        .into_iter()
        .map(|(t, dt, g)| (t, g / dt))
        .collect()
}

/// How much a gateway counter grew over the run, summed over the gateways.
pub fn gateway_total(r: &Run, field: impl Fn(&GatewaySample) -> f64) -> f64 {
    gateway_growth(r, &field).iter().map(|(_, _, g)| g).sum()
}

/// The gateways' cache hit ratio each second (hits over hits, misses and errors), where the
/// gateways answered any cached request that second.
pub fn hit_ratio(r: &Run) -> Vec<(f64, f64)> {
    let hits = gateway_rate(r, |g| g.cache_hit);
    let all = gateway_rate(r, |g| g.cache_hit + g.cache_miss + g.cache_error);
    hits.iter()
        .zip(&all)
        .filter(|(_, (_, n))| *n > 0.0)
        .map(|((t, h), (_, n))| (*t, h / n))
        .collect()
}

/// The mean of the values whose time falls in `from..to`.
pub fn mean_over(points: &[(f64, f64)], from: f64, to: f64) -> Option<f64> {
    let v: Vec<f64> = points
        .iter()
        .filter(|(t, _)| *t >= from && *t < to)
        .map(|(_, v)| *v)
        .collect();
    (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
}

/// Seconds after `from` until the first point at or after it where `ok` holds.
pub fn first_after(points: &[(f64, f64)], from: f64, ok: impl Fn(f64) -> bool) -> Option<f64> {
    points
        .iter()
        .find(|(t, v)| *t >= from && ok(*v))
        .map(|(t, _)| t - from)
}

/// Every service process that restarted during the run, with how often: its start time
/// (`process_start_time_seconds`) changed between samples.
pub fn restarts(r: &Run) -> Vec<String> {
    let mut starts: std::collections::BTreeMap<String, Vec<f64>> = Default::default();
    let mut seen = |name: String, at: f64| {
        let v = starts.entry(name).or_default();
        if at > 0.0 && v.last() != Some(&at) {
            v.push(at);
        }
    };
    for x in &r.server {
        for (address, g) in &x.gateways {
            if let Some(g) = g.ok() {
                seen(format!("gateway {address}"), g.started_at);
            }
        }
        if let Some(m) = x.microservice.as_ref().and_then(|m| m.ok()) {
            seen("microservice".into(), m.started_at);
        }
        if let Some(w) = x.worker.as_ref().and_then(|w| w.ok()) {
            seen("worker".into(), w.started_at);
        }
    }
    starts
        .into_iter()
        .filter(|(_, v)| v.len() > 1)
        .map(|(name, v)| format!("{name} restarted {} time(s)", v.len() - 1))
        .collect()
}

/// Whether the run recorded process start times at all (older runs did not).
pub fn knows_restarts(r: &Run) -> bool {
    r.server.iter().any(|x| {
        x.gateways
            .values()
            .any(|g| g.ok().is_some_and(|g| g.started_at > 0.0))
            || x.microservice
                .as_ref()
                .and_then(|m| m.ok())
                .is_some_and(|m| m.started_at > 0.0)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_counter_reset_counts_from_zero_not_below() {
        assert_eq!(grew(10.0, 15.0), 5.0);
        assert_eq!(grew(1000.0, 7.0), 7.0);
    }

    #[test]
    fn first_after_and_mean_over_respect_their_window() {
        let p = [(1.0, 5.0), (2.0, 0.0), (3.0, 9.0), (4.0, 1.0)];
        assert_eq!(first_after(&p, 1.5, |v| v > 2.0), Some(1.5));
        assert_eq!(first_after(&p, 3.5, |v| v > 2.0), None);
        assert_eq!(mean_over(&p, 2.0, 4.0), Some(4.5));
        assert_eq!(mean_over(&p, 9.0, 10.0), None);
    }
}
