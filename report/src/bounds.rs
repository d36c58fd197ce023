//! The hard bounds a run's throughput cannot exceed, each computed from the run's own
//! measurements, and the check that its measured ok req/s stays under the smallest one.
//!
//! - **Gateway slots** (utilisation law, U = X·S ≤ c): every request a gateway serves holds
//!   one of its `MAX_IN_FLIGHT` slots for the time its counters measured
//!   (`limiter_slot_seconds`), so X ≤ gateways × `MAX_IN_FLIGHT` ÷ the mean hold.
//! - **Microservice pool** (utilisation law, on `miss` runs whose experiment measured the DB
//!   time): every miss holds one of the pooled connections for at least its query, so
//!   X ≤ microservices × `DB_POOL_SIZE` ÷ the mean query time.
//! - **Users** (Little's law on the closed loop, N = X·(Z + R)): each user waits for its answer,
//!   then thinks, so X ≤ users ÷ (mean think + mean response time); not for `longtask`, whose
//!   users poll without thinking between a task's requests.
//!
//! A rate is counted over the run's window (first request sent to last answer received), so
//! its noise is what the window's edges can add: the requests that were already holding the
//! resource when the window opened or still held it when it closed (c of them, or N users),
//! plus 2 % for the server counters' one-second sampling around that window.

use records::names::MetricName;

use crate::runs::Run;

/// The measurement noise allowed on top of the edges' requests.
const SAMPLING: f64 = 0.02;

/// One hard bound of a run.
#[derive(Debug, Clone, PartialEq)]
pub struct Bound {
    /// What binds, in the lab's words.
    pub name: String,
    /// Requests per second the bound allows.
    pub rps: f64,
    /// How far above it a measurement may be and still be noise (a fraction of it).
    pub noise: f64,
    /// The run's measured rate this bound holds for, and what it counts.
    pub measured: f64,
    pub counts: &'static str,
}

impl Bound {
    /// The measured rate over the bound: above 1 + noise, something is wrong.
    pub fn load(&self) -> f64 {
        self.measured / self.rps
    }
}

/// A run's hard bounds, from its own measurements; none it could not compute.
pub fn hard_bounds(run: &Run) -> Vec<Bound> {
    let mut out = Vec::new();
    let window = run.duration_secs;
    if window <= 0.0 {
        return out;
    }
    let edges = |servers: f64, rps: f64| SAMPLING + servers / (window * rps);
    let answered_ok =
        records::record::per_second(run.requests.saturating_sub(run.failures) as f64, window);
    // The most gateways the run had in rotation (an autoscaled run adds some).
    let gateways = run
        .in_rotation
        .iter()
        .map(|(_, n)| *n)
        .fold(run.gateways.max(1) as f64, f64::max);
    if let Some(hold_ms) = run.slot_hold_ms.filter(|h| *h > 0.0) {
        if run.knobs.max_in_flight > 0 {
            let slots = gateways * run.knobs.max_in_flight as f64;
            let rps = slots / (hold_ms / 1000.0);
            out.push(Bound {
                name: format!(
                    "gateway slots: {gateways:.0} × {} ÷ {hold_ms:.1} ms held",
                    run.knobs.max_in_flight
                ),
                rps,
                noise: edges(slots, rps),
                // Every route a user calls, its login too, passes the limiter.
                measured: answered_ok,
                counts: "ok req/s of every route, logins included",
            });
        }
    }
    let pooled = run.measured.as_ref().is_none_or(|m| {
        m.settings
            .get("DB_POOL_MODE")
            .is_none_or(|mode| mode == "pooled")
    });
    if run.scenario == "miss" && pooled {
        let query_s = run
            .measured
            .as_ref()
            .and_then(|m| m.mean("microservice", MetricName::DbQueryDurationSeconds));
        if let (Some(s), Some(pool)) = (query_s.filter(|s| *s > 0.0), run.knobs.microservice_pool) {
            let connections = (run.knobs.microservices.max(1) * pool) as f64;
            let rps = connections / s;
            out.push(Bound {
                name: format!(
                    "microservice pool: {} × {pool} ÷ {:.1} ms per query",
                    run.knobs.microservices.max(1),
                    s * 1000.0
                ),
                rps,
                noise: edges(connections, rps),
                measured: run.goodput,
                counts: "ok req/s",
            });
        }
    }
    // A closed loop with think time, one request a turn: the open model's pace is its
    // throttle's, and a long task's user polls without thinking between its requests.
    if run.think_ms > 0.0
        && !run.load_model.starts_with("open")
        && run.users > 0
        && run.scenario != "longtask"
    {
        let answer_ms = scenario_answer_ms(run).unwrap_or(run.latency.avg);
        let cycle_s = (run.think_ms + answer_ms) / 1000.0;
        let users = run.users as f64;
        let rps = users / cycle_s;
        out.push(Bound {
            name: format!(
                "users: {} ÷ ({:.0} ms think + {:.0} ms answer)",
                run.users, run.think_ms, answer_ms
            ),
            rps,
            noise: edges(users, rps),
            // Each request of the scenario, a failed one too, is a turn of some user's loop
            // (its login comes once, before the loop).
            measured: records::record::per_second(scenario_requests(run), window),
            counts: "req/s of the scenario, failures included",
        });
    }
    out
}

/// The requests of the run's scenario, logins left out, failed ones in (all of the run's
/// when it recorded no routes).
fn scenario_requests(run: &Run) -> f64 {
    let logins: u64 = run
        .routes
        .iter()
        .filter(|(name, _)| records::record::is_login(name))
        .map(|(_, r)| r.requests)
        .sum();
    run.requests.saturating_sub(logins) as f64
}

/// The mean answer time of the scenario's requests (logins left out), where the run
/// recorded its routes.
fn scenario_answer_ms(run: &Run) -> Option<f64> {
    let (mut n, mut total) = (0.0, 0.0);
    for r in records::record::scenario_routes(&run.routes) {
        n += r.requests as f64;
        total += r.requests as f64 * r.latency_ms.avg;
    }
    (n > 0.0).then(|| total / n)
}

/// A run's check: the bound its measurement comes closest to (or goes furthest over).
#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    pub bound: Bound,
    pub passed: bool,
}

impl Check {
    /// `PASS 38.9 ok req/s ≤ 40.0 (gateway slots: …) + 3.0 % noise`.
    pub fn line(&self) -> String {
        let b = &self.bound;
        format!(
            "{} {:.1} {} {} {:.1} ({}) + {:.1} % noise",
            if self.passed { "PASS" } else { "FAIL" },
            b.measured,
            b.counts,
            if b.measured <= b.rps { "≤" } else { ">" },
            b.rps,
            b.name,
            b.noise * 100.0
        )
    }
}

/// Every hard bound of the run against the rate it bounds: the one the run came closest to
/// (or went furthest over), and whether every one held within its noise. None when no
/// bound could be computed.
pub fn check(run: &Run) -> Option<Check> {
    let bounds = hard_bounds(run);
    let passed = bounds.iter().all(|b| b.load() <= 1.0 + b.noise);
    let bound = bounds
        .into_iter()
        .max_by(|a, b| (a.load() - a.noise).total_cmp(&(b.load() - b.noise)))?;
    Some(Check { bound, passed })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lab 8's side A: 1124 ok listings and 300 logins, 12 slots held 238 ms on average.
    fn run(window: f64) -> Run {
        let mut r = Run {
            duration_secs: window,
            gateways: 3,
            slot_hold_ms: Some(238.3),
            users: 300,
            think_ms: 1500.0,
            requests: 1424 + 599,
            failures: 599,
            goodput: 1124.0 / window,
            ..Run::default()
        };
        r.knobs.max_in_flight = 4;
        r.latency.avg = 4000.0;
        let route = |requests, avg| records::record::RouteRecord {
            requests,
            latency_ms: records::record::LatencySummary {
                avg,
                ..Default::default()
            },
            ..Default::default()
        };
        r.routes.insert("GET /listing".into(), route(1667, 4200.0));
        r.routes.insert("POST /login".into(), route(356, 400.0));
        r
    }

    /// As it used to be reported, over Goose's 23 s: 1424 ok answers are 61.9/s against 12
    /// slots ÷ 238.3 ms = 50.4/s. Over the 29 s window they came in: 49.1/s.
    #[test]
    fn a_rate_above_the_slots_bound_fails_and_one_under_it_passes() {
        let bad = check(&run(23.0)).unwrap();
        assert!(!bad.passed, "{}", bad.line());
        assert!(
            bad.bound.name.starts_with("gateway slots"),
            "{}",
            bad.line()
        );
        assert!((bad.bound.rps - 12.0 / 0.2383).abs() < 1e-9);
        assert!(
            bad.line().starts_with("FAIL 61.9 ok req/s of every route"),
            "{}",
            bad.line()
        );
        let good = check(&run(29.0)).unwrap();
        assert!(good.passed, "{}", good.line());
        // Noise: 12 slots at the window's edges over 29 s, plus 2 %.
        let want = 0.02 + 12.0 / (29.0 * good.bound.rps);
        assert!((good.bound.noise - want).abs() < 1e-9);
    }

    #[test]
    fn every_bound_is_checked_and_the_closest_is_named() {
        // Users: 300 ÷ (1.5 s + 0.1 s) = 187.5/s, far below the slots' 12 ÷ 3 ms.
        let mut r = run(20.0);
        r.slot_hold_ms = Some(3.0);
        r.latency.avg = 100.0;
        r.routes.clear();
        r.requests = 3000;
        let c = check(&r).unwrap();
        assert!(c.bound.name.starts_with("users"), "{}", c.line());
        assert!((c.bound.rps - 187.5).abs() < 1e-9);
        assert!(c.passed);
        r.requests = 5000;
        assert!(!check(&r).unwrap().passed);
        // Logins are not turns of the loop: 2,000 of them leave the scenario's 3,000.
        r.routes.insert(
            "POST /login".into(),
            records::record::RouteRecord {
                requests: 2000,
                ..Default::default()
            },
        );
        assert!(check(&r).unwrap().passed);
        // No think time, no limiter: nothing to check against.
        r.think_ms = 0.0;
        r.knobs.max_in_flight = 0;
        assert_eq!(check(&r), None);
    }
}
