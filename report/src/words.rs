//! Sentences from the model: what limited a run and what would move the bound, what its
//! failed requests were and why, and why a comparison came out as it did. The figures are
//! the run's own (its knobs, its calibrated service time, its counters), so the words change
//! when the run does.

use crate::model::Prediction;
use crate::runs::Run;
use crate::{label, predict_run, service_time_s, signals};

fn plural(n: f64, one: &str, many: &str) -> String {
    if (n - 1.0).abs() < f64::EPSILON {
        format!("{n:.0} {one}")
    } else {
        format!("{n:.0} {many}")
    }
}

fn bound(p: &Prediction, prefix: &str) -> Option<f64> {
    p.bounds
        .iter()
        .find(|b| b.0.starts_with(prefix))
        .map(|b| b.1)
}

/// The bound in words: which resource, how its figure comes about.
fn mechanism(r: &Run, p: &Prediction, service_s: f64) -> String {
    let ms = crate::honest::ms(service_s * 1000.0);
    let g = r.gateways.max(1) as f64;
    match p.bottleneck.split(" (").next().unwrap_or("") {
        "gateway slots" => match (r.slot_hold_ms, r.slot_share) {
            (Some(held), Some(share)) => format!(
                "{} {} at once (MAX_IN_FLIGHT {}); under this load a request held its slot \
                 {} ms ({ms} ms one at a time) and {:.0} % of the slot holders were successful \
                 requests of the scenario (the rest: logins and failures), so the slots \
                 complete at most {:.1} of them per second",
                plural(g, "gateway serves", "gateways serve"),
                plural(g * r.knobs.max_in_flight as f64, "request", "requests"),
                r.knobs.max_in_flight,
                crate::honest::ms(held),
                share * 100.0,
                p.rps
            ),
            _ => format!(
                "{} {} at once (MAX_IN_FLIGHT {}); at {ms} ms each that is {:.1} requests per second",
                plural(g, "gateway serves", "gateways serve"),
                plural(g * r.knobs.max_in_flight as f64, "request", "requests"),
                r.knobs.max_in_flight,
                p.rps
            ),
        },
        "microservice pool" => {
            let pool = r.knobs.microservice_pool.unwrap_or(0);
            let (connections, they) = match r.knobs.microservices.max(1) {
                1 => (
                    format!("the microservice's {pool} database connections"),
                    "it completes",
                ),
                n => (
                    format!(
                        "the {} database connections of {n} microservices ({pool} each)",
                        n * pool
                    ),
                    "they complete",
                ),
            };
            format!(
                "every miss holds one of {connections} for {ms} ms, so {they} at most {:.1} \
                 misses per second, whatever the gateways do",
                p.rps
            )
        }
        "gateway CPU" => format!(
            "the gateways' CPUs run out first: each request costs them {:.2} ms of CPU, so the \
             CPUs they may use complete {:.1} requests per second",
            r.gateway_cpu_ms.unwrap_or(0.0),
            p.rps
        ),
        "machine CPU" => format!(
            "the machine's CPUs ran out first: every process on it (the load generator, the \
             stack, the logins and the turned-away requests) spent {:.1} ms of CPU per \
             successful request ({:.0} % of {} cores busy), so the machine completes at most \
             {:.1} of them per second",
            crate::machine_cpu_per_ok_s(r).unwrap_or(0.0) * 1000.0,
            r.host_cpu_busy.unwrap_or(0.0) * 100.0,
            r.machine_cores.unwrap_or(0),
            p.rps
        ),
        "offered load" => format!(
            "the stack was not the limit: {} users, each waiting {:.0} ms between requests \
             and {ms} ms for an answer, send {:.1} requests per second (Little's law)",
            r.users, r.think_ms, p.rps
        ),
        _ => "no bound could be computed".into(),
    }
}

/// What would raise the bound, and where the next one is.
fn lever(p: &Prediction) -> String {
    let next = p
        .bounds
        .iter()
        .filter(|b| b.0 != p.bottleneck && b.1 > p.rps)
        .min_by(|a, b| a.1.total_cmp(&b.1));
    let then = next.map_or(String::new(), |(name, v)| {
        format!(
            ", up to the next bound: the {} at {v:.1}/s",
            name.split(" (").next().unwrap_or(name)
        )
    });
    let how = match p.bottleneck.split(" (").next().unwrap_or("") {
        "gateway slots" => "more gateways or a higher MAX_IN_FLIGHT would raise it",
        "microservice pool" => {
            "a larger DB_POOL_SIZE or a faster query would raise it (more gateways would not)"
        }
        "gateway CPU" => "more CPU per gateway (GATEWAY_CPUS) or cheaper requests would raise it",
        "offered load" => "more users or less think time would load the stack harder",
        "machine CPU" => "the load generator on another machine, or more cores, would raise it",
        _ => "",
    };
    format!("{how}{then}")
}

/// "What limited the run": the bound in words, against the measurement, and the lever.
pub fn limits(runs: &[Run], r: &Run) -> Option<String> {
    // The model is of a steady closed workload: classic runs of the cached read path.
    if (r.scenario != "hit" && r.scenario != "miss") || r.profile != "classic" || r.fault.is_some()
    {
        return None;
    }
    let service = service_time_s(runs, r)?;
    let p = predict_run(r, service);
    let mut s = format!(
        "`{}` ({}): {}; it served {:.1} ok req/s ({:.0} % of that). {}.",
        r.id,
        label(r),
        mechanism(r, &p, service),
        r.goodput,
        if p.rps > 0.0 {
            100.0 * r.goodput / p.rps
        } else {
            0.0
        },
        capitalised(&lever(&p))
    );
    if let Some(busy) = r
        .host_cpu_busy
        .filter(|b| *b > 0.9 && !p.bottleneck.starts_with("machine CPU"))
    {
        s.push_str(&format!(
            " The machine's CPUs were {:.0} % busy: every process, the load generator included, \
             waited for a core, which stretches every time above.",
            busy * 100.0
        ));
    }
    Some(s)
}

fn capitalised(s: &str) -> String {
    let mut c = s.chars();
    c.next().map_or(String::new(), |f| {
        f.to_uppercase().collect::<String>() + c.as_str()
    })
}

/// Why answers of this status come back, in this stack. `shed` and `passed_on`: the 503s the
/// gateways' limiter turned away and those the microservice answered, by their counters.
fn cause(status: u16, r: &Run, shed: f64, passed_on: f64) -> String {
    match status {
        503 => {
            let limiter = format!(
                "the gateways' limiter turned {shed:.0} away fast: each gateway serves {} \
                 requests at once with a queue of {} behind them, and a request past the \
                 queue, or waiting longer than QUEUE_TIMEOUT_MS, gets a 503 with Retry-After \
                 instead of a slow answer",
                r.knobs.max_in_flight,
                r.knobs.max_queue.map_or("?".into(), |q| q.to_string())
            );
            let upstream = format!(
                "the microservice answered {passed_on:.0} with 503 (no database connection \
                 within its timeout), which the gateways passed on"
            );
            match (shed > 0.0, passed_on > 0.0) {
                (true, true) => format!("{limiter}; {upstream}"),
                (true, false) => limiter,
                (false, true) => upstream,
                (false, false) => "unavailable: no gateway in rotation, or Redis or the \
                                   microservice could not serve (a 503 with Retry-After)"
                    .into(),
            }
        }
        502 => "the load balancer lost the gateway's connection mid-request (a gateway \
                stopped or reset it)"
            .into(),
        504 => "the gateway stopped waiting for the microservice (MICROSERVICE_TIMEOUT_MS)".into(),
        500 => "a bug: an error the service did not expect (its log names it)".into(),
        401 => "a token the gateway no longer accepted (expired or signed with another \
                secret)"
            .into(),
        0 => "no answer at all: the connection was refused or reset, or the load generator \
              gave up waiting"
            .into(),
        s if (400..500).contains(&s) => "the request was refused as invalid".into(),
        _ => "an unexpected status".into(),
    }
}

/// The run's failed requests by status and route, then each status's cause once; None
/// without failures.
pub fn failures(r: &Run) -> Option<String> {
    let shed = signals::gateway_total(r, |g| g.limiter_rejected);
    let passed_on = signals::total(r, |x| Some(x.microservice.as_ref()?.ok()?.unavailable));
    let mut by_status: std::collections::BTreeMap<u16, Vec<String>> = Default::default();
    for (route, rec) in &r.routes {
        for (status, n) in rec
            .status_codes
            .iter()
            .filter(|(s, n)| !(200..300).contains(*s) && **n > 0)
        {
            let share = 100.0 * *n as f64 / rec.requests.max(1) as f64;
            by_status
                .entry(*status)
                .or_default()
                .push(format!("{n} on `{route}` ({share:.1} % of its requests)"));
        }
    }
    if by_status.is_empty() {
        return (r.failures > 0).then(|| {
            format!(
                "`{}`: {} failed requests; the run did not record their statuses.",
                r.id, r.failures
            )
        });
    }
    let parts: Vec<String> = by_status
        .iter()
        .map(|(status, where_)| {
            let name = if *status == 0 {
                "No answer".to_string()
            } else {
                status.to_string()
            };
            format!(
                "**{name}**: {}. Why: {}.",
                where_.join(", "),
                cause(*status, r, shed, passed_on)
            )
        })
        .collect();
    Some(format!(
        "`{}` ({}) failed {} of {} requests ({:.1} %). {}",
        r.id,
        label(r),
        r.failures,
        r.requests,
        100.0 * r.failures as f64 / r.requests.max(1) as f64,
        parts.join(" ")
    ))
}

/// Why B's throughput is what it is against A's: the bound of each and where it moved.
pub fn comparison_why(runs: &[Run], a: &Run, b: &Run) -> Option<String> {
    let (sa, sb) = (service_time_s(runs, a)?, service_time_s(runs, b)?);
    let (pa, pb) = (predict_run(a, sa), predict_run(b, sb));
    let name = |p: &Prediction| p.bottleneck.split(" (").next().unwrap_or("").to_string();
    let predicted = if pa.rps > 0.0 { pb.rps / pa.rps } else { 0.0 };
    let mut s = if name(&pa) == name(&pb) {
        format!(
            "Both are bound by the {} ({:.1} vs {:.1}/s), so the model expects {predicted:.2}×",
            name(&pa),
            pa.rps,
            pb.rps
        )
    } else {
        format!(
            "The bottleneck moved from the {} ({:.1}/s) to the {} ({:.1}/s), so the model \
             expects {predicted:.2}×",
            name(&pa),
            pa.rps,
            name(&pb),
            pb.rps
        )
    };
    if b.gateways > a.gateways && b.scenario == a.scenario {
        let k = b.gateways as f64 / a.gateways.max(1) as f64;
        let slots = bound(&pb, "gateway slots");
        if name(&pb) == "gateway slots" && name(&pa) == "gateway slots" {
            if let (Some(ha), Some(hb)) = (a.slot_hold_ms, b.slot_hold_ms) {
                s.push_str(&format!(
                    ", not {k:.0}×: {k:.0}× the slots, but each request held its slot {} ms \
                     instead of {} ms{}",
                    crate::honest::ms(hb),
                    crate::honest::ms(ha),
                    b.host_cpu_busy
                        .filter(|x| *x > 0.8)
                        .map_or(String::new(), |x| format!(
                        " (the machine's CPUs were {:.0} % busy: every process waited for a core)",
                        x * 100.0
                    ))
                ));
            }
        } else if name(&pb) != "gateway slots" {
            s.push_str(&format!(
                ", not {k:.0}×: {k:.0}× the gateways raise the slot bound to {}/s, but the {} \
                 binds first",
                slots.map_or("?".into(), |v| format!("{v:.1}")),
                name(&pb)
            ));
        }
    }
    s.push('.');
    Some(s)
}
