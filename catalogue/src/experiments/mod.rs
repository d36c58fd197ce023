//! The experiments, one module each (its `SPEC`: what the lab runs and reads, and the
//! report's words), and what their words share: each side's figure, model bounds, sentence
//! fragments.

use records::names::MetricName;

// The experiments, in the order `make experiments` runs them: adding one is its module
// beside this file and one line here.
names! {
    /// A tactic as an A/B experiment (`make experiment NAME=…`).
    Experiment, "experiment", crate::experiment::Spec {
        Index => "index", index;
        DbPool => "db-pool", db_pool;
        ClientReuse => "client-reuse", client_reuse;
        LocalCache => "local-cache", local_cache;
        Batch => "batch", batch;
        ScaleWorkers => "scale-workers", scale_workers;
        ScaleMicroservice => "scale-microservice", scale_microservice;
        WorkerThreads => "worker-threads", worker_threads;
        Vertical => "vertical", vertical;
        Offload => "offload", offload;
        LbAlgorithm => "lb-algorithm", lb_algorithm;
    }
}

pub(crate) use crate::experiment::{Measurement, Side, Spec};
pub(crate) use crate::record::ExperimentRecord;
pub(crate) use crate::run::Run;
pub(crate) use crate::words::{fmt, ms_requests, p50, rate, ratio, row, Row};
pub(crate) use records::load::Scenario;

type Sides = [Side];

pub(super) fn each(
    sides: &Sides,
    f: impl Fn(&Run, &ExperimentRecord) -> Option<f64>,
) -> Vec<Option<f64>> {
    sides.iter().map(|(r, m)| f(r, m)).collect()
}

pub(super) fn ms(v: Option<f64>) -> String {
    format!("{} ms", fmt(v, 1))
}

pub(super) fn times(a: Option<f64>, b: Option<f64>) -> String {
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

/// Times the slow listing is asked for over a side's run with `copies` caches of it: once per
/// prefix per TTL window the run touches per copy; with `stampede`, every request for a prefix
/// that comes while its copy is being refilled (LISTING_DELAY_MS) misses and asks too (at
/// most the request rate per prefix per copy × the delay more).
pub(super) fn listing_fills(
    r: &Run,
    m: &ExperimentRecord,
    copies: f64,
    stampede: bool,
) -> Option<f64> {
    let ttl: f64 = m.settings.get("LISTING_TTL_SECS")?.parse().ok()?;
    let delay_s = number(&m.settings, "LISTING_DELAY_MS").unwrap_or(0.0) / 1000.0;
    let prefixes = f64::from(records::wire::LISTING_PREFIXES);
    let fills = prefixes * (m.seconds / ttl).ceil() * copies;
    let per_prefix_per_copy = r.goodput / prefixes / copies;
    Some(if stampede {
        fills * (1.0 + per_prefix_per_copy * delay_s)
    } else {
        fills
    })
}

/// Measured against predicted, as a sentence fragment.
pub(super) fn versus(measured: f64, predicted: Option<f64>) -> String {
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
pub(super) fn offered(r: &Run, service_s: f64) -> Option<f64> {
    let cycle = r.think_ms / 1000.0 + service_s;
    (cycle > 0.0 && r.users > 0).then(|| r.users as f64 / cycle)
}

/// Requests the microservice can hold at once: its pool, or fewer when the gateways'
/// MAX_IN_FLIGHT lets fewer through.
pub(super) fn microservice_concurrency(r: &Run) -> Option<f64> {
    let pool = r.knobs.microservice_pool? as f64;
    let gateways = r.gateways.max(1) as f64;
    Some(match r.knobs.max_in_flight {
        0 => pool,
        n => pool.min(n as f64 * gateways),
    })
}

pub(super) fn db_ms(m: &ExperimentRecord) -> Option<f64> {
    m.mean("microservice", MetricName::DbQueryDurationSeconds)
        .map(|s| s * 1000.0)
}

/// `worker-threads` and `vertical`: CPU-bound logins, bounded by the cores the gateway may
/// use over the CPU each login costs.
pub(super) fn cpu_bound(vertical: bool, sides: &Sides, rows: &mut Vec<Row>) -> Vec<String> {
    let cpu = |m: &ExperimentRecord| m.delta("gateway", MetricName::ProcessCpuSecondsTotal, &[]);
    let logins =
        |m: &ExperimentRecord| m.delta("gateway", MetricName::LoginsTotal, &[("outcome", "ok")]);
    let per_login = each(sides, |_, m| ratio(cpu(m) * 1000.0, logins(m)));
    let cores_used = each(sides, |_, m| rate(m, cpu(m)));
    let usable = each(sides, |r, m| usable_cores(vertical, r, m));
    let predicted = each(sides, |r, m| {
        let per = ratio(cpu(m), logins(m))?;
        let bound = usable_cores(vertical, r, m)? / per;
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
    let knob = if vertical {
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
pub(super) fn usable_cores(vertical: bool, r: &Run, m: &ExperimentRecord) -> Option<f64> {
    let host = r.knobs.gateway_host_cores.map(f64::from);
    let value: f64 = m.value.parse().ok()?;
    let wanted = if vertical {
        value
    } else if value == 0.0 {
        host?
    } else {
        value
    };
    Some(host.map_or(wanted, |h| wanted.min(h)))
}

pub(super) fn number(map: &std::collections::BTreeMap<String, String>, key: &str) -> Option<f64> {
    map.get(key)?.parse().ok()
}

/// A counter's growth per instance on each side: `A: worker 120; B: worker 60, worker-2 58`.
pub(super) fn spread(
    sides: &Sides,
    service: &str,
    counter: MetricName,
    labels: &[(&str, &str)],
) -> String {
    sides
        .iter()
        .map(|(_, m)| {
            let each: Vec<String> = m
                .delta_by_instance(service, counter, labels)
                .iter()
                .map(|(i, v)| format!("{i} {v:.0}"))
                .collect();
            format!("{}: {}", m.side, each.join(", "))
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// The bounds of a miss run: the gateways' slots, the microservices' pools and the users'
/// pace, each in requests per second over the DB time per query.
pub(super) struct Bounds {
    gateways: Option<f64>,
    microservices: Option<f64>,
    offered: Option<f64>,
}

pub(super) fn bounds(r: &Run, m: &ExperimentRecord) -> Bounds {
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
    pub(super) fn ranked(&self) -> Vec<(&'static str, f64)> {
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

    pub(super) fn binding(&self) -> (&'static str, Option<f64>) {
        self.ranked()
            .first()
            .map_or(("nothing measured", None), |(n, v)| (n, Some(*v)))
    }

    /// What binds after the binding one: where the bottleneck moves next.
    pub(super) fn next(&self) -> String {
        self.ranked()
            .get(1)
            .map_or("nothing else measured".into(), |(n, v)| {
                format!("{n} ({v:.1} req/s)")
            })
    }
}

#[cfg(test)]
mod tests {
    use crate::Experiment;
    use records::names::{MetricName, Series};

    /// The metrics the source names (`MetricName::QueueLag`, `MetricName::BatchSize.sum()`).
    fn metric_names(src: &str) -> Vec<Series> {
        let mut out = Vec::new();
        for (i, _) in src.match_indices("MetricName::") {
            let rest = &src[i + "MetricName::".len()..];
            let end = rest
                .find(|c: char| !c.is_ascii_alphanumeric())
                .unwrap_or(rest.len());
            let metric = MetricName::ALL
                .iter()
                .copied()
                .find(|m| format!("{m:?}") == rest[..end])
                .unwrap_or_else(|| panic!("MetricName::{} is no metric", &rest[..end]));
            let after = &rest[end..];
            out.push(if after.starts_with(".sum()") {
                metric.sum()
            } else if after.starts_with(".count()") {
                metric.count()
            } else {
                metric.into()
            });
        }
        out
    }

    /// A counter a tactic reads but the lab does not sample reads as 0, silently: every metric
    /// an experiment's words name is one its spec declares.
    #[test]
    fn every_metric_an_experiment_reads_is_one_the_lab_samples() {
        for e in Experiment::ALL {
            let spec = e.spec();
            let counters = spec.counters();
            for series in metric_names(e.source()) {
                let declared = counters.contains(&series)
                    || spec.histograms.contains(&series.metric)
                    || spec.gauges.contains(&series.metric);
                assert!(
                    declared,
                    "{e} reads {series} but its SPEC does not declare it"
                );
            }
        }
        // The scan finds what it should, so the check above can fail.
        let found = metric_names(
            "m.delta(\"worker\", MetricName::JobsProcessedTotal, &[]); \
             m.mean(\"worker\", MetricName::BatchSize); MetricName::QueueLag.count()",
        );
        assert_eq!(
            found,
            [
                MetricName::JobsProcessedTotal.into(),
                MetricName::BatchSize.into(),
                MetricName::QueueLag.count()
            ]
        );
    }

    #[test]
    fn every_experiment_has_a_question_two_sides_and_a_lab_order() {
        for e in Experiment::ALL {
            let s = e.spec();
            assert!(s.question.ends_with('?'), "{e}");
            assert!(s.values.len() >= 2, "{e}");
            assert!(s.gateways >= 1, "{e}");
            assert_eq!(e.name().parse::<Experiment>().unwrap(), *e);
        }
    }
}
