//! What each experiment's counters mean, what a simple model predicts, and why the numbers
//! are what they are: one function per experiment, each adding its mechanism rows to the
//! side-by-side table and returning its paragraphs.

use crate::experiments::{fmt, ms_requests, p50, rate, ratio, row, Row};
use crate::runs::Run;
use common::record::ExperimentRecord;

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
/// answer before the next request (a closed system).
fn offered(r: &Run) -> Option<f64> {
    let cycle = r.think_ms / 1000.0 + p50(r) / 1000.0;
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
        let bound = microservice_concurrency(r)? / (db_ms(m)? / 1000.0);
        Some(offered(r).map_or(bound, |o| bound.min(o)))
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
    vec![format!(
        "**Why.** With the pool (side A) the microservice opened its connections once and \
         lent them out: {} opened per request during the run. Without it (side B) every \
         request opened its own ({} per request): a TCP handshake, SCRAM authentication \
         and a new Postgres backend process, {} each on average, then closed it. So B's p50 \
         should be about A's plus one connect: {} + {} = {}; {}. The cost is not only \
         latency: nothing bounds B's connections but the load ({} open at once at the peak, \
         against DB_POOL_SIZE={} pooled). Past Postgres's `max_connections` (100 by default, \
         200 in the compose stack) a new connection is refused with \"too many clients\", \
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
    )]
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
         miss built a client (its connection pool, DNS resolver and TLS roots) and opened a \
         new TCP connection that was closed right after: {} per request, {} per second. \
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
    // Each cache asks the source once per prefix per TTL (plus the misses of a cold start);
    // with no cache every request does.
    let prefixes = f64::from(common::wire::LISTING_PREFIXES);
    let predicted = each(sides, |r, m| {
        let ttl: f64 = m.settings.get("LISTING_TTL_SECS")?.parse().ok()?;
        let refreshes = (m.seconds / ttl).ceil();
        match m.value.as_str() {
            "redis" => Some(prefixes * refreshes),
            "local" => Some(prefixes * refreshes * r.gateways.max(1) as f64),
            _ => None,
        }
    });
    rows.push(row("hit ratio", hit_ratio.clone(), 3));
    rows.push(row("listings the slow source produced", made.clone(), 0));
    rows.push(row(
        "predicted listings (prefixes × TTLs in the run × caches)",
        predicted.clone(),
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
    let lag = each(sides, |_, m| m.peak("worker", "queue_lag"));
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
    vec![format!(
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
    )]
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
        Some(offered(r).map_or(bound, |o| bound.min(o)))
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
         use are set by {knob}: {} on side A, {} on side B. Side A: {}. Side B: {}. Where B \
         falls short of the prediction the machine is the bound: the load generator, the \
         load balancer and Postgres share its {} cores (CPU used by the gateway: {} vs {} \
         cores).",
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
