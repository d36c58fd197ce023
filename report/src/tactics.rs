//! What each experiment's counters mean, what a simple model predicts, and why the numbers
//! are what they are: one function per experiment, each adding its mechanism rows to the
//! side-by-side table and returning its paragraphs.

use crate::experiments::{fmt, ms_requests, p50, rate, ratio, row, Row};
use crate::runs::Run;
use records::record::ExperimentRecord;

type Sides = [(Run, ExperimentRecord)];

fn each(sides: &Sides, f: impl Fn(&Run, &ExperimentRecord) -> Option<f64>) -> Vec<Option<f64>> {
    sides.iter().map(|(r, m)| f(r, m)).collect()
}

fn ms(v: Option<f64>) -> String {
    format!("{} ms", fmt(v, 1))
}

fn times(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if a > 0.0 && b > 0.0 => {
            if a >= b {
                format!("{:.1}× less", a / b)
            } else {
                format!("{:.1}× more", b / a)
            }
        }
        _ => "an unknown factor".into(),
    }
}

/// Measured against predicted, as a sentence fragment.
fn versus(measured: f64, predicted: Option<f64>) -> String {
    match predicted {
        Some(p) if p > 0.0 => format!(
            "measured {measured:.1}, predicted {p:.1} ({:+.0} %)",
            100.0 * (measured - p) / p
        ),
        _ => format!("measured {measured:.1}, no prediction"),
    }
}

/// Requests per second the users can offer at most: each waits its think time plus the
/// answer before its next request (a closed system), and an answer takes at least the
/// service time `service_s` (nothing queued). Not the measured latency: with queueing in
/// it, users / (think + latency) is the measured throughput itself, whatever binds.
fn offered(r: &Run, service_s: f64) -> Option<f64> {
    let cycle = r.think_ms / 1000.0 + service_s;
    (cycle > 0.0 && r.users > 0).then(|| r.users as f64 / cycle)
}

/// Requests the microservice can hold at once: its pool, or fewer when the gateways'
/// MAX_IN_FLIGHT lets fewer through.
fn microservice_concurrency(r: &Run) -> Option<f64> {
    let pool = r.knobs.microservice_pool? as f64;
    let gateways = r.gateways.max(1) as f64;
    Some(match r.knobs.max_in_flight {
        0 => pool,
        n => pool.min(n as f64 * gateways),
    })
}

fn db_ms(m: &ExperimentRecord) -> Option<f64> {
    m.mean("microservice", "db_query_duration_seconds")
        .map(|s| s * 1000.0)
}

pub(crate) fn index(sides: &Sides, rows: &mut Vec<Row>) -> Vec<String> {
    let db = each(sides, |_, m| db_ms(m));
    // Little's law: at most `c` requests at the microservice, each holding a connection for
    // the DB time, and never more than the users offer.
    let predicted = each(sides, |r, m| {
        let service_s = db_ms(m)? / 1000.0;
        let bound = microservice_concurrency(r)? / service_s;
        Some(offered(r, service_s).map_or(bound, |o| bound.min(o)))
    });
    rows.push(row("DB time per query (ms)", db.clone(), 2));
    rows.push(row(
        "predicted ok req/s (Little's law, capped by the offered load)",
        predicted.clone(),
        1,
    ));
    let (a, b) = (&sides[0], &sides[1]);
    let plan = |m: &ExperimentRecord| {
        m.query_plan
            .as_ref()
            .map_or("an unrecorded plan".into(), |p| format!("`{}`", p.scan))
    };
    let rows_in_table = a.1.settings.get("SEED_ROWS").cloned().unwrap_or_default();
    let c = microservice_concurrency(&a.0);
    let mut out = vec![format!(
        "**Why.** The query sums the rows of one bucket out of 1,000. Without the index \
         Postgres ran {} on side A: it read all {rows_in_table} rows to find the ~0.1 % it \
         needs, {} per query. With the index (side B) it ran {}: it reads the index entries \
         of that bucket and then only the table pages that hold them, {} per query ({}). \
         At most {} requests reach the microservice at once (DB_POOL_SIZE, or MAX_IN_FLIGHT \
         × gateways if fewer), so by Little's law side A serves at most {} / DB time: \
         {}. Side B's bound is far above what the users offer, so it is bounded by the load \
         itself and the next bottleneck (the gateway): {}.",
        plan(&a.1),
        ms(db[0]),
        plan(&b.1),
        ms(db[1]),
        times(db[0], db[1]),
        fmt(c, 0),
        fmt(c, 0),
        versus(a.0.goodput, predicted[0]),
        versus(b.0.goodput, predicted[1]),
    )];
    for (_, m) in sides {
        if let Some(p) = &m.query_plan {
            out.push(format!(
                "Side {} plan ({}, {} ms in Postgres):\n\n```text\n{}\n```",
                m.side,
                if p.indexed { "indexed" } else { "no index" },
                fmt(Some(p.execution_ms), 2),
                p.plan.join("\n")
            ));
        }
    }
    out
}

pub(crate) fn db_pool(sides: &Sides, rows: &mut Vec<Row>) -> Vec<String> {
    let opened = each(sides, |_, m| {
        ratio(
            m.delta("microservice", "db_connections_opened_total", &[]),
            ms_requests(m),
        )
    });
    let connect = each(sides, |_, m| {
        m.mean("microservice", "db_connect_duration_seconds")
            .map(|s| s * 1000.0)
    });
    let peak = each(sides, |_, m| {
        m.peak("microservice", "db_request_connections_open")
    });
    rows.push(row(
        "Postgres connections opened per request",
        opened.clone(),
        2,
    ));
    rows.push(row("connect time, mean (ms)", connect.clone(), 2));
    rows.push(row(
        "per-request connections open at once, peak",
        peak.clone(),
        0,
    ));
    rows.push(row(
        "DB time per query (ms)",
        each(sides, |_, m| db_ms(m)),
        1,
    ));
    let (a, b) = (&sides[0].0, &sides[1].0);
    let predicted_b = connect[1].map(|c| p50(a) + c);
    let mut out = vec![format!(
        "**Why.** With the pool (side A) the microservice opened its connections once and \
         lent them out: {} opened per request during the run. Without it (side B) every \
         request opened its own ({} per request): a TCP handshake, SCRAM authentication \
         and a new Postgres backend process, {} each on average, then closed it. So B's p50 \
         should be about A's plus one connect: {} + {} = {}; {}. The cost is not only \
         latency: nothing bounds B's connections but the load ({} open at once at the peak, \
         against DB_POOL_SIZE={} pooled). Past Postgres's `max_connections` (100 by default, \
         200 in the compose stack, 300 in the native lab's) a new connection is refused with \"too many clients\", \
         and the microservice answers those requests with a 503; a pool caps each instance \
         at its size instead.",
        fmt(opened[0], 2),
        fmt(opened[1], 2),
        ms(connect[1]),
        ms(Some(p50(a))),
        ms(connect[1]),
        ms(predicted_b),
        versus(p50(b), predicted_b).replace("measured", "measured p50"),
        fmt(peak[1], 0),
        fmt(a.knobs.microservice_pool.map(f64::from), 0),
    )];
    if let (Some(da), Some(dbb)) = (db_ms(&sides[0].1), db_ms(&sides[1].1)) {
        if dbb > 1.1 * da {
            out.push(format!(
                "The queries themselves also took longer on side B ({} → {}): Postgres starts \
                 a backend process and authenticates for every connection, CPU the queries \
                 then share, which is why B's p50 exceeds the prediction.",
                ms(Some(da)),
                ms(Some(dbb))
            ));
        }
    }
    if db_ms(&sides[0].1).is_some_and(|db| p50(a) > 3.0 * db) {
        out.push(
            "Side A's p50 is mostly waiting, not database time: the requests queued (at the \
             gateways or for the pool), so the connect shows less in the latency than in the \
             throughput, and the prediction above holds only below saturation."
                .into(),
        );
    }
    out
}

pub(crate) fn client_reuse(sides: &Sides, rows: &mut Vec<Row>) -> Vec<String> {
    let accepted =
        |m: &ExperimentRecord| m.delta("microservice", "http_connections_accepted_total", &[]);
    let per_request = each(sides, |_, m| ratio(accepted(m), ms_requests(m)));
    let per_second = each(sides, |_, m| rate(m, accepted(m)));
    rows.push(row(
        "TCP connections the microservice accepted per request",
        per_request.clone(),
        2,
    ));
    rows.push(row(
        "TCP connections opened per second",
        per_second.clone(),
        1,
    ));
    let (a, b) = (&sides[0].0, &sides[1].0);
    vec![format!(
        "**Why.** With one shared client (side A) the gateway kept its connections to the \
         microservice open and sent request after request over them: {} new connections \
         per request, {} per second. With a client built per request (side B) each cache \
         miss built a new client and opened a new TCP connection to the microservice that \
         was closed right after: {} per request, {} per second. \
         p50 went from {} to {} ({:+.1} ms): on loopback a connection costs little; across \
         a network each adds a round trip (TLS two or three more), and every closed \
         connection leaves a socket in TIME_WAIT on the gateway's side for a minute.",
        fmt(per_request[0], 2),
        fmt(per_second[0], 1),
        fmt(per_request[1], 2),
        fmt(per_second[1], 1),
        ms(Some(p50(a))),
        ms(Some(p50(b))),
        p50(b) - p50(a),
    )]
}

pub(crate) fn local_cache(sides: &Sides, rows: &mut Vec<Row>) -> Vec<String> {
    let listing = |m: &ExperimentRecord, result: &str| {
        m.delta(
            "gateway",
            "cache_requests_total",
            &[("route", "listing"), ("result", result)],
        )
    };
    let hit_ratio = each(sides, |_, m| {
        let hits = listing(m, "hit");
        ratio(hits, hits + listing(m, "miss") + listing(m, "error"))
    });
    let made = each(sides, |_, m| {
        Some(m.delta("microservice", "listings_total", &[]))
    });
    let age = each(sides, |_, m| m.mean("gateway", "listing_age_seconds"));
    // Each cache asks the source at least once per prefix per TTL. While a refill is under
    // way (LISTING_DELAY_MS) every other request for that prefix misses too and asks again
    // (a cache stampede): at most its request rate per prefix per cache × the delay more.
    let prefixes = f64::from(records::wire::LISTING_PREFIXES);
    let predicted = |stampede: bool| {
        each(sides, move |r, m| {
            let ttl: f64 = m.settings.get("LISTING_TTL_SECS")?.parse().ok()?;
            let delay_s = number(&m.settings, "LISTING_DELAY_MS").unwrap_or(0.0) / 1000.0;
            let caches = match m.value.as_str() {
                "redis" => 1.0,
                "local" => r.gateways.max(1) as f64,
                _ => return None,
            };
            let fills = prefixes * (m.seconds / ttl).ceil() * caches;
            let per_prefix_per_cache = r.goodput / prefixes / caches;
            Some(if stampede {
                fills * (1.0 + per_prefix_per_cache * delay_s)
            } else {
                fills
            })
        })
    };
    rows.push(row("hit ratio", hit_ratio.clone(), 3));
    rows.push(row("listings the slow source produced", made.clone(), 0));
    rows.push(row(
        "predicted: one fill per prefix per TTL per cache",
        predicted(false),
        0,
    ));
    rows.push(row(
        "predicted: with every miss during a refill asking too",
        predicted(true),
        0,
    ));
    rows.push(row("mean age of an answer (s)", age.clone(), 2));
    let mut per_gateway = Vec::new();
    for (_, m) in sides {
        let hits = m.delta_by_instance(
            "gateway",
            "cache_requests_total",
            &[("route", "listing"), ("result", "hit")],
        );
        let misses = m.delta_by_instance(
            "gateway",
            "cache_requests_total",
            &[("route", "listing"), ("result", "miss")],
        );
        let each: Vec<String> = hits
            .iter()
            .map(|(gw, h)| {
                let miss = misses.get(gw).copied().unwrap_or(0.0);
                format!("{gw} {}", fmt(ratio(*h, h + miss), 3))
            })
            .collect();
        if !each.is_empty() && m.value != "none" {
            per_gateway.push(format!("{} ({}): {}", m.side, m.value, each.join(", ")));
        }
    }
    let ttl = sides[0]
        .1
        .settings
        .get("LISTING_TTL_SECS")
        .cloned()
        .unwrap_or_default();
    vec![
        format!(
            "**Why.** The listing takes LISTING_DELAY_MS at the source, like an object \
             store's list call. With no cache every request pays it, and the gateways' slots \
             fill with requests waiting on it. Redis holds one entry per prefix for all \
             gateways: the source is asked about once per prefix per TTL ({ttl} s). A cache \
             in each gateway needs no network hop, but each gateway fills its own ({} here), \
             so the source is asked up to {}× as often and the hit ratio is a little \
             lower; two answers given at the same moment by two gateways may differ in age by \
             up to the TTL. Staleness is the price of every cache here: an answer is at most \
             {ttl} s old (mean age per side in the table).",
            sides[0].0.gateways, sides[0].0.gateways,
        ),
        format!("Hit ratio per gateway: {}.", per_gateway.join("; ")),
    ]
}

pub(crate) fn batch(sides: &Sides, rows: &mut Vec<Row>) -> Vec<String> {
    let jobs = each(sides, |_, m| {
        rate(m, m.delta("worker", "jobs_processed_total", &[]))
    });
    let commits = each(sides, |_, m| {
        rate(m, m.delta("worker", "batch_size_count", &[]))
    });
    let per_commit = each(sides, |_, m| m.mean("worker", "batch_size"));
    let commit_ms = each(sides, |_, m| {
        m.mean("worker", "batch_flush_duration_seconds")
            .map(|s| s * 1000.0)
    });
    let lag = each(sides, |_, m| m.peak_shared("worker", "queue_lag"));
    let e2e = each(sides, |r, _| r.longtask.as_ref()?.end_to_end_ms.p50);
    // One batch is committed at a time: jobs/s ≤ jobs per commit / commit time.
    let bound = each(sides, |_, m| {
        let per = m.mean("worker", "batch_size")?;
        let secs = m.mean("worker", "batch_flush_duration_seconds")?;
        ratio(per, secs)
    });
    rows.push(row("jobs done per second", jobs.clone(), 1));
    rows.push(row("commits per second", commits.clone(), 1));
    rows.push(row("jobs per commit, mean", per_commit.clone(), 1));
    rows.push(row(
        "commit + acknowledge time, mean (ms)",
        commit_ms.clone(),
        2,
    ));
    rows.push(row(
        "bound: jobs per commit / commit time (jobs/s)",
        bound.clone(),
        0,
    ));
    rows.push(row("queue lag, peak (jobs not yet delivered)", lag, 0));
    rows.push(row("end-to-end job time p50 (ms)", e2e, 0));
    let mut out = vec![format!(
        "**Why.** The worker writes results through one batcher that commits one batch at a \
         time, so it can finish at most (jobs per commit) / (commit time) jobs per second. \
         With BATCH_SIZE=1 every job is its own transaction and its own acknowledgement: \
         {} commits per second of {} each bound it at {} jobs/s. With batches the same \
         commit carries {} jobs on average, and the bound rises to {} jobs/s. Whether \
         throughput follows depends on whether the commits were the bottleneck: the jobs \
         themselves took LONGTASK_MS and at most WORKER_CONCURRENCY run at once, and the \
         users offer only so many. Measured {} vs {} jobs/s. The price of batching is \
         latency: a job waits for its batch to fill or for FLUSH_INTERVAL_MS.",
        fmt(commits[0], 1),
        ms(commit_ms[0]),
        fmt(bound[0], 0),
        fmt(per_commit[1], 1),
        fmt(bound[1], 0),
        fmt(jobs[0], 1),
        fmt(jobs[1], 1),
    )];
    let below = |i: usize| matches!((jobs[i], bound[i]), (Some(j), Some(b)) if j < 0.5 * b);
    if below(0) && below(1) {
        out.push(format!(
            "Here the commits were not the bottleneck on either side (jobs/s well under each \
             bound): the users' pace was, so throughput stayed the same. What batching \
             changed is the database's work for the same jobs: {} transactions per second \
             instead of {} ({}). On a Postgres that flushes every commit to disk (this lab's \
             runs with fsync off) each commit costs milliseconds, and the bound on side A \
             falls to a few hundred jobs/s.",
            fmt(commits[1], 1),
            fmt(commits[0], 1),
            times(commits[0], commits[1]),
        ));
    }
    out
}

/// `worker-threads` and `vertical`: CPU-bound logins, bounded by the cores the gateway may
/// use over the CPU each login costs.
pub(crate) fn cpu_bound(name: &str, sides: &Sides, rows: &mut Vec<Row>) -> Vec<String> {
    let cpu = |m: &ExperimentRecord| m.delta("gateway", "process_cpu_seconds_total", &[]);
    let logins = |m: &ExperimentRecord| m.delta("gateway", "logins_total", &[("outcome", "ok")]);
    let per_login = each(sides, |_, m| ratio(cpu(m) * 1000.0, logins(m)));
    let cores_used = each(sides, |_, m| rate(m, cpu(m)));
    let usable = each(sides, |r, m| usable_cores(name, r, m));
    let predicted = each(sides, |r, m| {
        let per = ratio(cpu(m), logins(m))?;
        let bound = usable_cores(name, r, m)? / per;
        Some(offered(r, per).map_or(bound, |o| bound.min(o)))
    });
    rows.push(row("gateway CPU per login (ms)", per_login.clone(), 2));
    rows.push(row("gateway CPU used (cores)", cores_used.clone(), 2));
    rows.push(row("cores the gateway may use", usable.clone(), 2));
    rows.push(row(
        "predicted logins/s (cores / CPU per login)",
        predicted.clone(),
        1,
    ));
    let (a, b) = (&sides[0].0, &sides[1].0);
    let knob = if name == "vertical" {
        "its container's CPU limit (GATEWAY_CPUS)"
    } else {
        "its runtime's threads (GATEWAY_THREADS, which also sets how many password checks run at once)"
    };
    vec![format!(
        "**Why.** A login is an argon2id hash: pure CPU, {} each here. A gateway can do at \
         most (cores it may use) / (CPU per login) of them per second, and the cores it may \
         use are set by {knob}: {} on side A, {} on side B. Side A: {}. Side B: {}. Where a \
         side falls short of its prediction the machine is the bound: the load generator, \
         the load balancer and Postgres share its {} cores (CPU used by the gateway: {} vs \
         {} cores).",
        ms(per_login[0]),
        fmt(usable[0], 2),
        fmt(usable[1], 2),
        versus(a.goodput, predicted[0]),
        versus(b.goodput, predicted[1]),
        fmt(a.knobs.gateway_host_cores.map(f64::from), 0),
        fmt(cores_used[0], 2),
        fmt(cores_used[1], 2),
    )]
}

/// Cores a gateway may use on this side: its threads (0 = the host's cores) or its CPU
/// limit, never more than the host has.
fn usable_cores(name: &str, r: &Run, m: &ExperimentRecord) -> Option<f64> {
    let host = r.knobs.gateway_host_cores.map(f64::from);
    let value: f64 = m.value.parse().ok()?;
    let wanted = if name == "vertical" {
        value
    } else if value == 0.0 {
        host?
    } else {
        value
    };
    Some(host.map_or(wanted, |h| wanted.min(h)))
}

fn number(map: &std::collections::BTreeMap<String, String>, key: &str) -> Option<f64> {
    map.get(key)?.parse().ok()
}

/// A counter's growth per instance on each side: `A: worker 120; B: worker 60, worker-2 58`.
fn spread(sides: &Sides, service: &str, name: &str, labels: &[(&str, &str)]) -> String {
    sides
        .iter()
        .map(|(_, m)| {
            let each: Vec<String> = m
                .delta_by_instance(service, name, labels)
                .iter()
                .map(|(i, v)| format!("{i} {v:.0}"))
                .collect();
            format!("{}: {}", m.side, each.join(", "))
        })
        .collect::<Vec<_>>()
        .join("; ")
}

pub(crate) fn scale_workers(sides: &Sides, rows: &mut Vec<Row>) -> Vec<String> {
    let jobs = each(sides, |_, m| {
        rate(m, m.delta("worker", "jobs_processed_total", &[]))
    });
    // Each worker runs WORKER_CONCURRENCY jobs of LONGTASK_MS at once (Little's law).
    let capacity = each(sides, |_, m| {
        let workers: f64 = m.value.parse().ok()?;
        let concurrency = number(&m.settings, "WORKER_CONCURRENCY")?;
        let task_s = number(&m.load, "LONGTASK_MS")? / 1000.0;
        Some(workers * concurrency / task_s)
    });
    let lag = each(sides, |_, m| m.peak_shared("worker", "queue_lag"));
    let e2e = each(sides, |r, _| r.longtask.as_ref()?.end_to_end_ms.p50);
    let timed_out = each(sides, |r, _| Some(r.longtask.as_ref()?.timed_out as f64));
    rows.push(row("jobs done per second", jobs.clone(), 1));
    rows.push(row(
        "capacity: workers × WORKER_CONCURRENCY / task time (jobs/s)",
        capacity.clone(),
        1,
    ));
    rows.push(row(
        "queue lag, peak (jobs not yet delivered)",
        lag.clone(),
        0,
    ));
    rows.push(row("end-to-end job time p50 (ms)", e2e.clone(), 0));
    rows.push(row("jobs the users gave up waiting for", timed_out, 0));
    let spread = spread(sides, "worker", "jobs_processed_total", &[]);
    vec![
        format!(
            "**Why.** A worker runs at most WORKER_CONCURRENCY jobs at once, each taking the \
             task's time, so by Little's law one worker finishes at most {} jobs/s and three \
             {}. While the users submit faster than that, the queue grows (peak lag {} vs {} \
             jobs) and every job waits behind the ones before it: end-to-end p50 {} vs {}. \
             The workers share one consumer group, so each job goes to exactly one of them \
             and they split the work without coordination. Measured {} vs {} jobs/s; a worker \
             tier scales out until the users' own pace (or Postgres, or Redis) binds. (Ok \
             req/s above counts the users' status polls too: a job that waits longer is \
             polled more often, so it falls as the jobs speed up.)",
            fmt(capacity[0], 1),
            fmt(capacity[1], 1),
            fmt(lag[0], 0),
            fmt(lag[1], 0),
            ms(e2e[0]),
            ms(e2e[1]),
            fmt(jobs[0], 1),
            fmt(jobs[1], 1),
        ),
        format!("Jobs per worker: {spread}."),
    ]
}

/// The bounds of a miss run: the gateways' slots, the microservices' pools and the users'
/// pace, each in requests per second over the DB time per query.
struct Bounds {
    gateways: Option<f64>,
    microservices: Option<f64>,
    offered: Option<f64>,
}

fn bounds(r: &Run, m: &ExperimentRecord) -> Bounds {
    let service_s = db_ms(m).map(|v| v / 1000.0).filter(|s| *s > 0.0);
    let instances = f64::from(r.knobs.microservices.max(1));
    let pool = number(&m.settings, "DB_POOL_SIZE").or(r.knobs.microservice_pool.map(f64::from));
    Bounds {
        gateways: match r.knobs.max_in_flight {
            0 => None,
            n => service_s.map(|s| n as f64 * r.gateways.max(1) as f64 / s),
        },
        microservices: service_s.zip(pool).map(|(s, p)| instances * p / s),
        offered: service_s.and_then(|s| offered(r, s)),
    }
}

impl Bounds {
    /// The bounds, smallest first.
    fn ranked(&self) -> Vec<(&'static str, f64)> {
        let mut all: Vec<(&'static str, f64)> = [
            ("the gateways' slots", self.gateways),
            ("the microservices' pools", self.microservices),
            ("the users' pace", self.offered),
        ]
        .into_iter()
        .filter_map(|(n, v)| Some((n, v?)))
        .collect();
        all.sort_by(|a, b| a.1.total_cmp(&b.1));
        all
    }

    fn binding(&self) -> (&'static str, Option<f64>) {
        self.ranked()
            .first()
            .map_or(("nothing measured", None), |(n, v)| (n, Some(*v)))
    }

    /// What binds after the binding one: where the bottleneck moves next.
    fn next(&self) -> String {
        self.ranked()
            .get(1)
            .map_or("nothing else measured".into(), |(n, v)| {
                format!("{n} ({v:.1} req/s)")
            })
    }
}

pub(crate) fn scale_microservice(sides: &Sides, rows: &mut Vec<Row>) -> Vec<String> {
    let b: Vec<Bounds> = sides.iter().map(|(r, m)| bounds(r, m)).collect();
    rows.push(row(
        "DB time per query (ms)",
        each(sides, |_, m| db_ms(m)),
        1,
    ));
    rows.push(row(
        "bound: gateways × MAX_IN_FLIGHT / DB time",
        b.iter().map(|b| b.gateways).collect(),
        1,
    ));
    rows.push(row(
        "bound: microservices × DB_POOL_SIZE / DB time",
        b.iter().map(|b| b.microservices).collect(),
        1,
    ));
    rows.push(row(
        "bound: users / (think + DB time)",
        b.iter().map(|b| b.offered).collect(),
        1,
    ));
    rows.push(row(
        "predicted ok req/s (the smallest bound)",
        b.iter().map(|b| b.binding().1).collect(),
        1,
    ));
    let host_busy = each(sides, |r, _| r.host_cpu_busy.map(|b| b * 100.0));
    rows.push(row("machine CPU busy (%)", host_busy.clone(), 0));
    let spread = spread(
        sides,
        "microservice",
        "http_requests_total",
        &[("route", "/data/{key}")],
    );
    let (a, bb) = (&sides[0].0, &sides[1].0);
    let mut out = vec![format!(
        "**Why.** Three gateways were not three times one because the microservice binds: \
         each request holds one of its DB_POOL_SIZE connections for the DB time, so one \
         instance serves at most pool / DB time. On side A the smallest bound was {} ({} \
         req/s), then {}. A second microservice doubles its tier's bound; on side B the \
         smallest was {} ({} req/s), then {}: that is where the bottleneck moves next. \
         Side A: {}. Side B: {}. The gateways send their misses to the instances in turn, \
         so each got about half (requests per instance: {}). The DB time itself went from \
         {} to {}: both instances' queries share one Postgres and the machine's cores.",
        b[0].binding().0,
        fmt(b[0].binding().1, 1),
        b[0].next(),
        b[1].binding().0,
        fmt(b[1].binding().1, 1),
        b[1].next(),
        versus(a.goodput, b[0].binding().1),
        versus(bb.goodput, b[1].binding().1),
        spread,
        ms(db_ms(&sides[0].1)),
        ms(db_ms(&sides[1].1)),
    )];
    if host_busy.iter().flatten().any(|b| *b > 90.0) {
        out.push(format!(
            "The machine's CPUs were {} % / {} % busy: on one laptop the next bottleneck is the \
             laptop itself (every tier shares its cores), which no replica count fixes.",
            fmt(host_busy[0], 0),
            fmt(host_busy[1], 0)
        ));
    }
    out
}
