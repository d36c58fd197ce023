//! Predicted vs measured: each run's expected throughput from its recorded knobs and the
//! service time measured at low load, by the utilisation law (a resource of c servers, each
//! busy S seconds per request, completes at most c / S requests per second) and Little's law
//! for the closed workload (N users, each thinking Z between requests: X ≤ N / (Z + R)).
//! The gateways' CPU is a resource too: L CPUs, D CPU-seconds per request, X ≤ L / D.

/// What bounds a run's throughput.
#[derive(Debug, Clone, PartialEq)]
pub struct Prediction {
    /// Requests per second the run should reach.
    pub rps: f64,
    pub bottleneck: &'static str,
    /// Every bound considered, as (name, req/s), for the report's explanation.
    pub bounds: Vec<(&'static str, f64)>,
}

/// The inputs, all from the run record.
#[derive(Debug, Clone, PartialEq)]
pub struct Inputs {
    pub users: f64,
    /// Mean think time per request (s).
    pub think_s: f64,
    /// Response time measured at low load for this scenario (s).
    pub service_s: f64,
    pub gateways: f64,
    /// Requests each gateway serves at once (0 = unlimited).
    pub max_in_flight: f64,
    /// Whether requests reach the microservice (cache misses).
    pub misses: bool,
    /// Connections of each microservice's pool (each request holds one).
    pub microservice_pool: f64,
    /// Microservice instances the gateways spread their misses over (each with its pool).
    pub microservices: f64,
    /// CPUs the gateways together may use (limit × gateways, or the host's cores when
    /// unlimited); 0 = unknown.
    pub gateway_cpus: f64,
    /// CPU seconds a gateway spends per request it serves; 0 = not measured.
    pub gateway_cpu_s: f64,
    /// Mean time a request held a gateway slot under the run's load (s), and the share of
    /// slot holders that were successful scenario requests; 0 = not measured (the slot
    /// bound then uses the service time).
    pub slot_hold_s: f64,
    pub slot_share: f64,
    /// Cores of the machine everything runs on; 0 = unknown.
    pub machine_cores: f64,
    /// CPU seconds the whole machine spent per successful request: every process, the load
    /// generator, the logins and the turned-away requests included; 0 = not measured.
    pub machine_cpu_s: f64,
}

pub fn predict(i: &Inputs) -> Prediction {
    let mut bounds = vec![(
        "offered load (users / (think + service time))",
        i.users / (i.think_s + i.service_s),
    )];
    if i.max_in_flight > 0.0 && i.slot_hold_s > 0.0 && i.slot_share > 0.0 {
        bounds.push((
            "gateway slots (gateways × MAX_IN_FLIGHT / time a slot is held under load × share of successful scenario requests)",
            i.gateways * i.max_in_flight / i.slot_hold_s * i.slot_share,
        ));
    } else if i.max_in_flight > 0.0 && i.service_s > 0.0 {
        bounds.push((
            "gateway slots (gateways × MAX_IN_FLIGHT / service time)",
            i.gateways * i.max_in_flight / i.service_s,
        ));
    }
    if i.misses && i.microservice_pool > 0.0 && i.service_s > 0.0 {
        bounds.push((
            "microservice pool (microservices × DB_POOL_SIZE / service time)",
            i.microservices.max(1.0) * i.microservice_pool / i.service_s,
        ));
    }
    if i.gateway_cpus > 0.0 && i.gateway_cpu_s > 0.0 {
        bounds.push((
            "gateway CPU (CPUs for gateways / CPU per request)",
            i.gateway_cpus / i.gateway_cpu_s,
        ));
    }
    if i.machine_cores > 0.0 && i.machine_cpu_s > 0.0 {
        bounds.push((
            "machine CPU (cores / CPU of every process per successful request)",
            i.machine_cores / i.machine_cpu_s,
        ));
    }
    let (bottleneck, rps) =
        bounds.iter().copied().fold(
            ("none", f64::INFINITY),
            |best, b| if b.1 < best.1 { b } else { best },
        );
    Prediction {
        rps,
        bottleneck,
        bounds,
    }
}

/// Relative difference of measured to predicted (0.25 = 25 % above the prediction).
pub fn deviation(predicted: f64, measured: f64) -> f64 {
    if predicted <= 0.0 {
        return 0.0;
    }
    (measured - predicted) / predicted
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs() -> Inputs {
        Inputs {
            users: 1000.0,
            think_s: 1.5,
            service_s: 0.060,
            gateways: 1.0,
            max_in_flight: 4.0,
            misses: true,
            microservice_pool: 10.0,
            microservices: 1.0,
            gateway_cpus: 0.0,
            gateway_cpu_s: 0.0,
            slot_hold_s: 0.0,
            slot_share: 0.0,
            machine_cores: 0.0,
            machine_cpu_s: 0.0,
        }
    }

    #[test]
    fn slots_held_longer_under_load_and_shared_with_logins_bound_lower() {
        // 4 slots, each request holding one 80 ms under load, 85 % of them misses: 4 / 0.08
        // × 0.85 = 42.5/s, not 4 / 0.06 = 66.7/s.
        let p = predict(&Inputs {
            slot_hold_s: 0.080,
            slot_share: 0.85,
            ..inputs()
        });
        assert!((p.rps - 42.5).abs() < 1e-9, "{p:?}");
        assert!(p.bottleneck.starts_with("gateway slots"));
    }

    #[test]
    fn a_busy_machine_is_the_bound_when_its_cpu_runs_out_first() {
        // 3 gateways: slots 200/s, pool 166.67/s; the whole machine spends 17.4 ms of CPU per
        // successful request on 2 cores: 114.9/s, the real bottleneck.
        let p = predict(&Inputs {
            gateways: 3.0,
            machine_cores: 2.0,
            machine_cpu_s: 0.0174,
            ..inputs()
        });
        assert!((p.rps - 114.94).abs() < 0.01, "{p:?}");
        assert!(p.bottleneck.starts_with("machine CPU"));
    }

    #[test]
    fn one_gateway_with_four_slots_is_the_bottleneck_for_misses() {
        // 1 × 4 / 0.060 = 66.67 req/s; pool 10 / 0.060 = 166.67; offered 1000 / 1.56 = 641.03.
        let p = predict(&inputs());
        assert!((p.rps - 66.666).abs() < 0.01, "{p:?}");
        assert!(p.bottleneck.starts_with("gateway slots"));
        assert!((p.bounds[0].1 - 641.025).abs() < 0.01);
        assert!((p.bounds[2].1 - 166.666).abs() < 0.01);
    }

    #[test]
    fn three_gateways_move_the_bottleneck_to_the_microservice_pool() {
        // 3 × 4 / 0.060 = 200 > 10 / 0.060 = 166.67.
        let p = predict(&Inputs {
            gateways: 3.0,
            ..inputs()
        });
        assert!((p.rps - 166.666).abs() < 0.01, "{p:?}");
        assert!(p.bottleneck.starts_with("microservice pool"));
    }

    #[test]
    fn a_second_microservice_doubles_the_pool_bound_and_moves_the_bottleneck_on() {
        // 3 gateways, 2 microservices of 5 connections at 60 ms: pools 2 × 5 / 0.06 = 166.67,
        // slots 200: the pools still bind, at twice one instance's 83.33.
        let p = predict(&Inputs {
            gateways: 3.0,
            microservice_pool: 5.0,
            microservices: 2.0,
            ..inputs()
        });
        assert!((p.rps - 166.666).abs() < 0.01, "{p:?}");
        assert!(p.bottleneck.starts_with("microservice pool"));
        // With 4, the gateways' slots bind.
        let p = predict(&Inputs {
            gateways: 3.0,
            microservice_pool: 5.0,
            microservices: 4.0,
            ..inputs()
        });
        assert!(p.bottleneck.starts_with("gateway slots"), "{p:?}");
    }

    #[test]
    fn cache_hits_are_bound_by_the_offered_load() {
        // Hits never reach the microservice; 1 × 4 / 0.005 = 800 > 100 / 1.505 = 66.45.
        let p = predict(&Inputs {
            users: 100.0,
            service_s: 0.005,
            misses: false,
            ..inputs()
        });
        assert!((p.rps - 66.445).abs() < 0.01, "{p:?}");
        assert!(p.bottleneck.starts_with("offered load"));
        assert_eq!(p.bounds.len(), 2);
    }

    #[test]
    fn unlimited_gateways_leave_no_gateway_bound() {
        let p = predict(&Inputs {
            max_in_flight: 0.0,
            ..inputs()
        });
        assert!(p.bounds.iter().all(|b| !b.0.starts_with("gateway")));
    }

    #[test]
    fn a_cpu_limit_can_be_the_bottleneck() {
        // Hits at 2 ms of CPU each on 3 gateways of 0.5 CPU: 1.5 / 0.002 = 750 req/s, below
        // the slots (3 × 4 / 0.001 = 12000) and the offered load (5000 / 1.501 = 3331.1).
        let p = predict(&Inputs {
            users: 5000.0,
            service_s: 0.001,
            gateways: 3.0,
            misses: false,
            gateway_cpus: 1.5,
            gateway_cpu_s: 0.002,
            ..inputs()
        });
        assert!((p.rps - 750.0).abs() < 1e-6, "{p:?}");
        assert!(p.bottleneck.starts_with("gateway CPU"));
        assert!((p.bounds[0].1 - 3331.112).abs() < 0.01);
        assert_eq!(p.bounds.len(), 3);
    }

    #[test]
    fn deviation_is_relative_to_the_prediction() {
        assert!((deviation(100.0, 125.0) - 0.25).abs() < 1e-9);
        assert!((deviation(100.0, 70.0) + 0.30).abs() < 1e-9);
        assert_eq!(deviation(0.0, 5.0), 0.0);
    }
}
