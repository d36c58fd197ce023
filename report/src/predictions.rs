//! "Predicted vs measured": each run's bounds from its recorded knobs and measured demands,
//! the bottleneck, the gap to the measurement, and in words what limited each run and what
//! failed.

use crate::runs::Run;
use crate::{model, pct, words, Writer};

/// A run's service time at low load: its own calibration (requests sent one at a time before
/// the load), else the lowest p50 of the scenario's routes over every run of that scenario on
/// that runtime (the lightest load recorded; queueing-inflated when every run was loaded).
pub fn service_time_s(runs: &[Run], run: &Run) -> Option<f64> {
    if let Some(ms) = run.calibrated_ms {
        return Some(ms / 1000.0);
    }
    let (scenario, runtime) = (run.scenario.as_str(), run.runtime.as_str());
    runs.iter()
        .filter(|r| r.scenario == scenario && r.runtime == runtime)
        .filter_map(|r| r.route_p50_ms)
        .filter(|v| *v > 0.0)
        .reduce(f64::min)
        .map(|ms| ms / 1000.0)
}

pub fn predict_run(run: &Run, service_s: f64) -> model::Prediction {
    model::predict(&model::Inputs {
        users: run.users as f64,
        think_s: run.think_ms / 1000.0,
        service_s,
        gateways: run.gateways.max(1) as f64,
        max_in_flight: run.knobs.max_in_flight as f64,
        misses: run.scenario == "miss" || !run.knobs.cache_enabled,
        microservice_pool: run.knobs.microservice_pool.unwrap_or(0) as f64,
        microservices: run.knobs.microservices as f64,
        gateway_cpus: match (run.knobs.gateway_cpu_limit, run.knobs.gateway_host_cores) {
            (Some(limit), _) => limit * run.gateways.max(1) as f64,
            // No limit: the gateways share the host's cores (with everything else on it).
            (None, Some(cores)) => cores as f64,
            (None, None) => 0.0,
        },
        gateway_cpu_s: run.gateway_cpu_ms.unwrap_or(0.0) / 1000.0,
        slot_hold_s: run.slot_hold_ms.unwrap_or(0.0) / 1000.0,
        slot_share: run.slot_share.unwrap_or(0.0),
        machine_cores: run.machine_cores.unwrap_or(0) as f64,
        machine_cpu_s: machine_cpu_per_ok_s(run).unwrap_or(0.0),
    })
}

/// CPU seconds the whole machine spent per successful request of the run: its mean busy
/// share × cores ÷ successful requests per second (the load generator, the logins and the
/// failed requests are all in the numerator).
pub fn machine_cpu_per_ok_s(run: &Run) -> Option<f64> {
    let busy = run.host_cpu_busy?;
    let cores = run.machine_cores? as f64;
    (run.goodput > 0.0 && busy > 0.0).then(|| busy * cores / run.goodput)
}

pub(crate) fn section(w: &mut Writer, runs: &[Run]) {
    w.line("## Predicted vs measured\n");
    w.line("Each run's throughput bound from its recorded knobs: the offered load of a closed workload \
        (users ÷ (think time + service time), Little's law), the gateways' request slots \
        (gateways × `MAX_IN_FLIGHT` ÷ service time), for cache misses the microservices' \
        connection pools (microservices × `DB_POOL_SIZE` ÷ service time), the gateways' CPU (the CPUs they \
        may use, `GATEWAY_CPUS` × gateways or the host's cores, ÷ the CPU each request cost them), \
        and the whole machine's CPU (its cores ÷ the CPU every process on it, the load generator \
        included, spent per successful request: on one machine the generator and the turned-away \
        requests cost CPU the stack cannot use), by the utilisation law (for `hit` and `miss` runs). The service time is the run's own \
        calibration (p50 of requests sent one at a time before the load); for a run without one, \
        the lowest p50 any run of the scenario recorded on that runtime. The smallest bound is the bottleneck; the measurement is the \
        scenario's successful requests per second, and one more than 20 % away from the bound \
        is flagged.\n");
    w.line(
        "The last column is how busy the whole machine's CPUs were during the run: near \
        100 %, every service is short of CPU and no single modelled bound holds.\n",
    );
    w.line("| run | service time ms | offered | gateway slots | microservice pool | gateway CPU | machine CPU | bottleneck | predicted req/s | measured ok req/s | difference | machine CPU busy |");
    w.line("|---|--:|--:|--:|--:|--:|--:|---|--:|--:|--:|--:|");
    // The model is about the cached read path; long tasks and login storms are bound by
    // other resources (the worker, password hashing).
    // Fault runs are disturbed on purpose: the Faults section reads them.
    for r in runs
        .iter()
        .filter(|r| (r.scenario == "hit" || r.scenario == "miss") && r.fault.is_none())
    {
        let Some(service) = service_time_s(runs, r) else {
            continue;
        };
        let p = predict_run(r, service);
        let bound = |prefix: &str| {
            p.bounds
                .iter()
                .find(|b| b.0.starts_with(prefix))
                .map(|b| format!("{:.1}", b.1))
                .unwrap_or_else(|| "–".into())
        };
        let d = model::deviation(p.rps, r.goodput);
        w.line(&format!(
            "| `{}` | {:.1} | {} | {} | {} | {} | {} | {} | {:.1} | {:.1} | {}{} | {} |",
            r.id,
            service * 1000.0,
            bound("offered"),
            bound("gateway slots"),
            bound("microservice"),
            bound("gateway CPU"),
            bound("machine CPU"),
            p.bottleneck.split(" (").next().unwrap_or(""),
            p.rps,
            r.goodput,
            pct(d),
            if d.abs() > 0.2 { " ⚠" } else { "" },
            r.host_cpu_busy
                .map_or_else(|| "–".to_string(), |b| format!("{:.0} %", b * 100.0)),
        ));
    }
    w.line("");
    let checks: Vec<(&Run, crate::bounds::Check)> = runs
        .iter()
        .filter_map(|r| Some((r, crate::bounds::check(r)?)))
        .collect();
    if !checks.is_empty() {
        w.line("### Hard bounds\n");
        w.line(
            "Unlike the predictions above, these bounds use no calibration: each is computed from \
            the run's own measurements, so no measured rate can exceed it. The gateways' slots by \
            the utilisation law (gateways × `MAX_IN_FLIGHT` ÷ the mean time a request held a slot, \
            from their counters) bound the ok answers of every route, logins included (all pass \
            the limiter); the microservices' pools on misses (instances × `DB_POOL_SIZE` ÷ the mean \
            query time, where the run measured it) bound the ok req/s; the users by Little's law \
            (users ÷ (mean think + mean answer time)) bound the scenario's requests (logins \
            left out; not for long tasks, whose users poll without thinking). Rates are \
            taken over the run's window, from the first request sent to the last answer received; \
            the noise allowed is the requests the window's edges can cut (one per slot, connection \
            or user) plus 2 % for the counters' one-second sampling. `make check-bounds` checks \
            every run.\n",
        );
        w.line("| run | the bound it came closest to | bound req/s | measured | what it counts | noise | every bound held |");
        w.line("|---|---|--:|--:|---|--:|---|");
        for (r, c) in checks {
            w.line(&format!(
                "| `{}` | {} | {:.1} | {:.1} | {} | {:.1} % | {} |",
                r.id,
                c.bound.name,
                c.bound.rps,
                c.bound.measured,
                c.bound.counts,
                c.bound.noise * 100.0,
                if c.passed { "yes" } else { "**no** ⚠" }
            ));
        }
        w.line("");
    }
    let limits: Vec<String> = runs.iter().filter_map(|r| words::limits(runs, r)).collect();
    if !limits.is_empty() {
        w.line(
            "### What limited each run
",
        );
        for l in limits {
            w.line(&format!("- {l}"));
        }
        w.line("");
    }
    let failed: Vec<String> = runs
        .iter()
        .filter(|r| r.fault.is_none())
        .filter_map(words::failures)
        .collect();
    if !failed.is_empty() {
        w.line(
            "### What failed, and why
",
        );
        for f in failed {
            w.line(&format!("- {f}"));
        }
        w.line("");
    }
}
