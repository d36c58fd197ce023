//! "Faults": each run of `make fault` as a timeline (answers per second by status class, p95,
//! gateways in rotation, the fault's window shaded), its promise checked PASS or FAIL with
//! what was observed, and why. The lab fails `make fault` on the same checks.

use crate::charts::LineChart;
use crate::runs::Run;
use crate::signals;
use crate::{points, some_points, Writer};

/// One promise of a fault experiment and what the run showed.
#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    pub promise: String,
    pub observed: String,
    pub passed: bool,
}

fn check(promise: &str, passed: bool, observed: String) -> Check {
    Check {
        promise: promise.into(),
        observed,
        passed,
    }
}

/// Seconds into the run's per-second series when the fault came and when it was repaired.
pub fn window(r: &Run) -> Option<(f64, f64)> {
    let f = r.fault.as_ref()?;
    let t0 = signals::t0(r)?;
    Some((f.at("fault")? - t0, f.at("repair")? - t0))
}

/// Gateways in rotation each second, on the per-second series' clock.
fn rotation(r: &Run) -> Vec<(f64, f64)> {
    let shift = signals::shift(r);
    r.in_rotation.iter().map(|(t, n)| (t + shift, *n)).collect()
}

/// "No service restarted", where the run recorded the processes' start times.
fn no_restart(r: &Run) -> Check {
    let restarts = signals::restarts(r);
    check(
        "no restart",
        signals::knows_restarts(r) && restarts.is_empty(),
        if !signals::knows_restarts(r) {
            "the run did not record the processes' start times".into()
        } else if restarts.is_empty() {
            "every gateway and the microservice kept their process".into()
        } else {
            restarts.join(", ")
        },
    )
}

/// The hit ratio over the 5 s before the outage and over the run's last 5 s.
fn hit_ratio_before_after(r: &Run, down: f64, len: usize) -> (Option<f64>, Option<f64>) {
    let ratio = signals::hit_ratio(r);
    (
        signals::mean_over(&ratio, down - 5.0, down),
        signals::mean_over(&ratio, len as f64 - 5.0, len as f64 + 1.0),
    )
}

/// Answers of these statuses over the seconds `from..to` of the run.
fn answers(r: &Run, matching: impl Fn(u16) -> bool, from: usize, to: usize) -> u64 {
    r.statuses
        .iter()
        .filter(|(s, _)| matching(**s))
        .map(|(_, v)| {
            v.iter()
                .skip(from)
                .take(to.saturating_sub(from))
                .sum::<u64>()
        })
        .sum()
}

use records::stats::median;

/// The median of the per-second p95s over seconds `from..to`.
fn p95_over(r: &Run, from: usize, to: usize) -> Option<f64> {
    median(
        r.series
            .p95_ms
            .iter()
            .skip(from)
            .take(to.saturating_sub(from))
            .flatten()
            .copied()
            .collect(),
    )
}

/// The first second at or after `from` where `ok` holds, as seconds after `from`.
fn first_second(from: f64, len: usize, ok: impl Fn(usize) -> bool) -> Option<f64> {
    (from.ceil() as usize..len)
        .find(|s| ok(*s))
        .map(|s| s as f64 - from)
}

/// Seconds after `from` until the first second whose answers are at least 90 % 2xx.
fn serving_again(r: &Run, from: f64, len: usize) -> Option<f64> {
    first_second(from, len, |s| {
        let total = answers(r, |_| true, s, s + 1);
        let ok = answers(r, |c| (200..300).contains(&c), s, s + 1);
        total > 0 && ok as f64 >= 0.9 * total as f64
    })
}

/// The highest p99 of any second of the run (ms).
fn worst_p99(r: &Run) -> f64 {
    r.series
        .p99_ms
        .iter()
        .flatten()
        .copied()
        .fold(0.0, f64::max)
}

/// The checks of the run's promise; none for a run that is not a fault experiment.
pub fn checks(r: &Run) -> Vec<Check> {
    let (Some(f), Some((down, up))) = (r.fault.as_ref(), window(r)) else {
        return Vec::new();
    };
    let len = r.statuses.values().map(Vec::len).max().unwrap_or(0);
    let fives = answers(r, |s| s >= 500, 0, len);
    let unanswered = answers(r, |s| s == 0, 0, len);
    match f.name.as_str() {
        "kill-gateway" => {
            let gateways = r.gateways as f64;
            let interval = f.health_interval_ms / 1000.0;
            let rotation = rotation(r);
            let out = rotation
                .iter()
                .find(|(t, n)| *t >= down && *n < gateways)
                .map(|(t, _)| t - down);
            let back = rotation
                .iter()
                .find(|(t, n)| *t >= up && *n >= gateways)
                .map(|(t, _)| t - up);
            vec![
                check(
                    "0 failed requests",
                    r.failures == 0,
                    format!("{} failed of {}", r.failures, r.requests),
                ),
                check(
                    "out of rotation within one health interval",
                    // Rotation is sampled once a second: one second of slack.
                    out.is_some_and(|s| s <= interval + 1.0),
                    out.map_or("never left the rotation".into(), |s| {
                        format!("{s:.1} s after the kill (interval {interval:.1} s, sampled each second)")
                    }),
                ),
                check(
                    "back in rotation once healthy",
                    back.is_some(),
                    back.map_or("not back before the run ended".into(), |s| {
                        format!("{s:.1} s after the restart")
                    }),
                ),
            ]
        }
        "redis-outage" => {
            let d = down.floor() as usize;
            let before = p95_over(r, d.saturating_sub(5), d);
            let after = p95_over(r, len.saturating_sub(5), len);
            let recovered = matches!((before, after), (Some(b), Some(a)) if a <= 2.0 * b + 5.0);
            let errors = signals::gateway_rate(r, |g| g.cache_error);
            let felt = signals::mean_over(&errors, down, up + 1.0).is_some_and(|e| e > 0.0);
            let (hits_before, hits_after) = hit_ratio_before_after(r, down, len);
            vec![
                check(
                    "the outage was felt (cache errors while Redis was away)",
                    felt,
                    format!(
                        "{} cache errors in the window",
                        errors
                            .iter()
                            .filter(|(t, _)| *t >= down && *t < up + 1.0)
                            .map(|(_, v)| v)
                            .sum::<f64>()
                            .round()
                    ),
                ),
                check(
                    "0 5xx",
                    fives == 0 && unanswered == 0,
                    format!("{fives} 5xx, {unanswered} without an answer"),
                ),
                check(
                    "latency back by itself",
                    recovered,
                    format!(
                        "p95 {} ms in the 5 s before the outage, {} ms in the last 5 s",
                        crate::experiments::fmt(before, 1),
                        crate::experiments::fmt(after, 1)
                    ),
                ),
                check(
                    "hit ratio back by itself",
                    matches!((hits_before, hits_after), (Some(b), Some(a)) if a >= 0.9 * b),
                    format!(
                        "{} in the 5 s before the outage, {} in the last 5 s",
                        crate::experiments::fmt(hits_before, 3),
                        crate::experiments::fmt(hits_after, 3)
                    ),
                ),
                no_restart(r),
            ]
        }
        "postgres-restart" => {
            let others = answers(r, |s| s >= 500 && s != 503, 0, len) + unanswered;
            let worst_p99 = worst_p99(r);
            let serving = serving_again(r, up, len);
            vec![
                check(
                    "only 503s while Postgres is away",
                    others == 0,
                    format!(
                        "{} 503s, {others} other 5xx or unanswered",
                        answers(r, |s| s == 503, 0, len)
                    ),
                ),
                check(
                    "no hang past the timeouts",
                    worst_p99 <= 5_500.0,
                    format!(
                        "worst p99 of a second {worst_p99:.0} ms (MICROSERVICE_TIMEOUT_MS 5000)"
                    ),
                ),
                check(
                    "503s say when to come back (Retry-After)",
                    r.shed.answers_503 > 0 && r.shed.without_retry_after == 0,
                    format!(
                        "{} of {} 503s without Retry-After",
                        r.shed.without_retry_after, r.shed.answers_503
                    ),
                ),
                check(
                    "serving again within 5 s of its return",
                    serving.is_some_and(|s| s <= 5.0),
                    serving.map_or("not serving by the end of the run".into(), |s| {
                        format!("{s:.0} s after Postgres returned")
                    }),
                ),
                no_restart(r),
            ]
        }
        "worker-crash" => {
            let Some(j) = f.jobs.as_ref() else {
                return vec![check(
                    "0 jobs lost",
                    false,
                    "the jobs were not followed".into(),
                )];
            };
            vec![
                check(
                    "0 jobs lost",
                    j.accepted == j.queued && j.unfinished == 0 && j.done + j.failed == j.accepted,
                    format!(
                        "{} queued, {} accepted, {} done, {} failed, {} unfinished; {} taken over from the killed worker",
                        j.queued, j.accepted, j.done, j.failed, j.unfinished, j.taken_over
                    ),
                ),
                check(
                    "0 jobs failed",
                    j.failed == 0,
                    format!("{} failed", j.failed),
                ),
            ]
        }
        "slow-microservice" => {
            let limit = |k: &str| f.settings.get(k).copied();
            let bound = limit("QUEUE_TIMEOUT_MS").zip(limit("MICROSERVICE_TIMEOUT_MS"));
            let worst_p99 = worst_p99(r);
            let others = answers(r, |s| s >= 500 && s != 503 && s != 504, 0, len) + unanswered;
            let (d, u) = (down.floor() as usize, up.ceil() as usize + 1);
            let timeouts = answers(r, |s| s == 504, d, u);
            let shed = answers(r, |s| s == 503, d, u);
            let serving = serving_again(r, up, len);
            vec![
                check(
                    "slowness becomes fast 504s and 503s",
                    timeouts > 0 && others == 0,
                    format!("{timeouts} 504s and {shed} 503s in the window, {others} other 5xx or unanswered"),
                ),
                check(
                    "no wait past the timeouts",
                    bound.is_some_and(|(q, m)| worst_p99 <= q + m + 500.0),
                    format!(
                        "worst p99 of a second {worst_p99:.0} ms (QUEUE_TIMEOUT_MS {} + MICROSERVICE_TIMEOUT_MS {})",
                        crate::experiments::fmt(bound.map(|b| b.0), 0),
                        crate::experiments::fmt(bound.map(|b| b.1), 0)
                    ),
                ),
                check(
                    "the load balancer does not multiply the load",
                    r.lb_retries == Some(0.0),
                    r.lb_retries.map_or("retries not recorded".into(), |n| {
                        format!("{n:.0} requests sent to a second gateway")
                    }),
                ),
                check(
                    "serving again after the repair",
                    serving.is_some_and(|s| s <= 10.0),
                    serving.map_or("not serving by the end of the run".into(), |s| {
                        format!("{s:.0} s after the delay came back")
                    }),
                ),
            ]
        }
        _ => Vec::new(),
    }
}

/// Non-2xx answers over the run by status, e.g. "503 × 1,204, 504 × 12" (`none`: no answer).
fn failed_by_status(r: &Run) -> String {
    let parts: Vec<String> = r
        .statuses
        .iter()
        .filter(|(s, _)| !(200..300).contains(*s))
        .map(|(s, v)| (s, v.iter().sum::<u64>()))
        .filter(|(_, n)| *n > 0)
        .map(|(s, n)| match s {
            0 => format!("no answer × {n}"),
            s => format!("{s} × {n}"),
        })
        .collect();
    if parts.is_empty() {
        "none".into()
    } else {
        parts.join(", ")
    }
}

fn secs(v: Option<f64>, what: &str) -> String {
    v.map_or("–".into(), |s| format!("{s:.0} s ({what})"))
}

/// One row of the fault's outcome: failed requests by status, time to detect, time to
/// recover, jobs lost or stored twice.
pub fn outcome(r: &Run) -> Option<[String; 4]> {
    let f = r.fault.as_ref()?;
    let (down, up) = window(r)?;
    let len = r.statuses.values().map(Vec::len).max().unwrap_or(0);
    let first_status =
        |m: &dyn Fn(u16) -> bool| first_second(down, len, |s| answers(r, m, s, s + 1) > 0);
    let (detect, recover) = match f.name.as_str() {
        "kill-gateway" => {
            let rot = rotation(r);
            let g = r.gateways as f64;
            (
                secs(
                    signals::first_after(&rot, down, |n| n < g),
                    "out of rotation",
                ),
                secs(
                    signals::first_after(&rot, up, |n| n >= g),
                    "back in rotation",
                ),
            )
        }
        "redis-outage" => {
            let errors = signals::gateway_rate(r, |g| g.cache_error);
            let (before, _) = hit_ratio_before_after(r, down, len);
            let ratio = signals::hit_ratio(r);
            (
                secs(
                    signals::first_after(&errors, down, |e| e > 0.0),
                    "first cache errors",
                ),
                secs(
                    before.and_then(|b| signals::first_after(&ratio, up, |h| h >= 0.9 * b)),
                    "hit ratio back to 90 % of before",
                ),
            )
        }
        "worker-crash" => {
            let reclaimed = signals::gauge(r, |x| Some(x.worker.as_ref()?.ok()?.jobs_reclaimed));
            let queued = signals::gauge(r, |x| {
                let w = x.worker.as_ref()?.ok()?;
                Some(w.queue_lag + w.queue_pending)
            });
            // The backlog may outlive the load: the lab followed every job to its end.
            let all_done = f.jobs.as_ref().and_then(|j| j.all_finished_at);
            let recover = match (all_done, f.at("repair")) {
                (Some(done), Some(at)) => secs(Some(done - at), "every queued job finished"),
                _ => secs(
                    signals::first_after(&queued, up, |n| n == 0.0),
                    "queue empty",
                ),
            };
            (
                secs(
                    signals::first_after(&reclaimed, down, |n| n > 0.0),
                    "first job taken over",
                ),
                recover,
            )
        }
        _ => (
            secs(
                first_status(&|s| !(200..300).contains(&s)),
                "first failed answer",
            ),
            secs(serving_again(r, up, len), "90 % answered 2xx again"),
        ),
    };
    let jobs = f.jobs.as_ref().map_or("–".into(), |j| {
        let absorbed = signals::total(r, |x| Some(x.worker.as_ref()?.ok()?.duplicates_absorbed));
        format!(
            "{} lost; {} ran again after the crash, {absorbed:.0} replays found their result \
             already stored and stored nothing",
            (j.queued - j.accepted.min(j.queued)) + j.unfinished,
            j.taken_over
        )
    });
    Some([failed_by_status(r), detect, recover, jobs])
}

/// A named line of a chart.
type Series = (String, Vec<(f64, f64)>);

/// The stack's own counters behind the fault's answers: what a student watches to see the
/// mechanism work (y label, series).
fn mechanism(r: &Run) -> Option<(&'static str, Vec<Series>)> {
    let name = r.fault.as_ref()?.name.as_str();
    let micro = |read: fn(&records::record::MicroserviceSample) -> f64| {
        signals::gauge(r, move |x| Some(read(x.microservice.as_ref()?.ok()?)))
    };
    let series = match name {
        "kill-gateway" => vec![
            ("gateways in rotation".to_string(), rotation(r)),
            (
                "requests sent to a second gateway per second".into(),
                signals::rate(r, |x| x.retries),
            ),
        ],
        "redis-outage" => vec![
            (
                "cache errors per second".into(),
                signals::gateway_rate(r, |g| g.cache_error),
            ),
            (
                "hit ratio (%)".into(),
                signals::hit_ratio(r)
                    .into_iter()
                    .map(|(t, h)| (t, h * 100.0))
                    .collect(),
            ),
        ],
        "postgres-restart" | "slow-microservice" => vec![
            (
                "requests waiting for a database connection".into(),
                micro(|m| m.pool_waiting),
            ),
            ("open database connections".into(), micro(|m| m.pool_open)),
            (
                "microservice 503s per second".into(),
                signals::rate(r, |x| Some(x.microservice.as_ref()?.ok()?.unavailable)),
            ),
            (
                "microservice requests per second".into(),
                signals::rate(r, |x| Some(x.microservice.as_ref()?.ok()?.requests)),
            ),
        ],
        "worker-crash" => {
            let worker = |read: fn(&records::record::WorkerSample) -> f64| {
                signals::gauge(r, move |x| Some(read(x.worker.as_ref()?.ok()?)))
            };
            vec![
                ("jobs waiting".into(), worker(|w| w.queue_lag)),
                (
                    "delivered, not acknowledged".into(),
                    worker(|w| w.queue_pending),
                ),
                ("taken over (total)".into(), worker(|w| w.jobs_reclaimed)),
            ]
        }
        _ => return None,
    };
    let series: Vec<_> = series.into_iter().filter(|(_, v)| !v.is_empty()).collect();
    let label = match name {
        "kill-gateway" => "gateways; requests per second",
        "redis-outage" => "errors per second; hit ratio (%)",
        "worker-crash" => "jobs (none drawn while the worker is down)",
        _ => "requests or connections",
    };
    (!series.is_empty()).then_some((label, series))
}

fn why(name: &str) -> &'static str {
    match name {
        "kill-gateway" => {
            "**Why.** A killed gateway refuses connections at once, so the load balancer takes \
             it out of rotation on the first refused connect and sends that request to the \
             next gateway (a refused connect is always safe to retry); requests already \
             inside the dead gateway are retried only because they are idempotent GETs. The \
             restarted gateway returns only after it passes a health check, so no request \
             meets it half-started."
        }
        "redis-outage" => {
            "**Why.** The cache is an accelerator, not a dependency: every Redis command is \
             bounded by REDIS_TIMEOUT_MS, a failure counts as a cache error, and the request \
             is served from the microservice instead. Latency rises to a miss's for the \
             outage (hits became misses) and falls back once the gateways reconnect and the \
             first miss refills the entry."
        }
        "postgres-restart" => {
            "**Why.** Without Postgres the microservice cannot get a connection: its pool \
             gives up after DB_CONNECT_TIMEOUT_MS and it answers 503 with Retry-After, which \
             the gateway passes on as an overload signal, never as a 500 and never by \
             waiting forever. The pool opens new connections on demand, so when Postgres \
             returns the next requests succeed without restarting anything."
        }
        "worker-crash" => {
            "**Why.** A job leaves the stream's pending list only after its result row is \
             committed. The killed worker's delivered-but-unacknowledged jobs stay pending; \
             once they are older than VISIBILITY_TIMEOUT_MS a live worker (here the restarted \
             one) claims them and runs them again (`attempts` > 1). The result is inserted \
             with the job id as its key and ON CONFLICT DO NOTHING, so a job that was \
             committed before the crash but not yet acknowledged is stored once, not twice. \
             The run's queue chart (under *Each run over time*) shows the backlog waiting \
             while no worker runs."
        }
        "slow-microservice" => {
            "**Why.** A slow dependency is worse than a dead one: it holds every caller's \
             resources. The gateway bounds it twice: it stops waiting for the microservice \
             after MICROSERVICE_TIMEOUT_MS (a 504, fast compared with the slowness), and its \
             limiter admits MAX_IN_FLIGHT requests at once and sheds the queue past \
             QUEUE_TIMEOUT_MS with 503s, so the gateway stays responsive. The load balancer \
             never re-sends a request that timed out or was shed: a second copy would only \
             double the load on the part that is already too slow."
        }
        _ => "",
    }
}

/// Second k's count drawn at k + 0.5: it covers [k, k+1), and the fault's window is drawn
/// on the same axis to the fraction of a second.
fn mid_second(points: Vec<(f64, f64)>) -> Vec<(f64, f64)> {
    points.into_iter().map(|(t, v)| (t + 0.5, v)).collect()
}

pub(crate) fn section(w: &mut Writer, runs: &[Run]) -> anyhow::Result<()> {
    // The latest run of each fault.
    let mut latest: Vec<&Run> = Vec::new();
    for r in runs.iter().filter(|r| r.fault.is_some()) {
        let name = &r.fault.as_ref().expect("filtered").name;
        latest.retain(|l| &l.fault.as_ref().expect("filtered").name != name);
        latest.push(r);
    }
    if latest.is_empty() {
        return Ok(());
    }
    w.line("## Faults\n");
    w.line(
        "Each fault under a steady load (`make fault NAME=…`): the part fails at a fixed \
         second and is repaired ten seconds later. The shaded band is the fault's window; \
         answers are counted per second by status class.\n",
    );
    for r in latest {
        let f = r.fault.as_ref().expect("filtered");
        w.line(&format!("### `{}`: {}\n", f.name, f.promise));
        let actions: Vec<String> = f
            .events
            .iter()
            .map(|e| {
                let t =
                    signals::t0(r).map_or(String::new(), |a0| format!(" at {:.0} s", e.at - a0));
                format!("{}{t}", e.action)
            })
            .collect();
        w.line(&format!("The lab: {}.\n", actions.join(", then ")));
        w.line("| promise | observed | |");
        w.line("|---|---|---|");
        for c in checks(r) {
            w.line(&format!(
                "| {} | {} | **{}** |",
                c.promise,
                c.observed,
                if c.passed { "PASS" } else { "FAIL" }
            ));
        }
        w.line("");
        if let Some([failed, detect, recover, jobs]) = outcome(r) {
            w.line("| failed requests by status | time to detect | time to recover | jobs lost / stored twice |");
            w.line("|---|---|---|---|");
            w.line(&format!("| {failed} | {detect} | {recover} | {jobs} |\n"));
        }
        let shade = window(r).map(|(a, b)| (a, b, format!("{} → repaired", f.name)));
        let mut series: Vec<(String, Vec<(f64, f64)>)> = r
            .status_classes
            .iter()
            .map(|(class, v)| {
                let v: Vec<f64> = v.iter().map(|n| *n as f64).collect();
                (format!("{class} per second"), mid_second(points(&v)))
            })
            .collect();
        if !r.in_rotation.is_empty() {
            let scale = r.status_classes.get("2xx").map_or(1.0, |v| {
                (v.iter().copied().max().unwrap_or(1) as f64 / r.gateways.max(1) as f64).max(1.0)
            });
            series.push((
                format!("gateways in rotation (× {scale:.0})"),
                rotation(r).iter().map(|(t, n)| (*t, n * scale)).collect(),
            ));
        }
        let title = format!("{}: answers per second", f.name);
        let mut chart =
            LineChart::new(&title, "seconds into the run", "answers per second", series);
        chart.shade = shade.clone();
        w.line_chart(&format!("fault-{}", r.id), &chart)?;
        let title = format!("{}: p95 per second", f.name);
        let mut latency = LineChart::new(
            &title,
            "seconds into the run",
            "ms",
            vec![("p95".into(), mid_second(some_points(&r.series.p95_ms)))],
        );
        latency.log_y = true;
        latency.shade = shade.clone();
        w.line_chart(&format!("fault-p95-{}", r.id), &latency)?;
        if let Some((y, series)) = mechanism(r) {
            let title = format!("{}: what the stack's counters showed", f.name);
            let mut chart = LineChart::new(&title, "seconds into the run", y, series);
            chart.shade = shade;
            // A service that did not answer a sample (killed, restarting) leaves a gap.
            chart.gap = Some(1.6);
            w.line_chart(&format!("fault-mechanism-{}", r.id), &chart)?;
        }
        w.line(&format!("\n{}\n", why(&f.name)));
    }
    Ok(())
}
