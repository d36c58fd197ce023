//! The autoscaler's decision, a pure function of what it observed and when: the Kubernetes
//! Horizontal Pod Autoscaler's algorithm as its documentation describes it.
//!
//! 1. **Proposal**: `desired = ceil(current × metric / target)` over the ready replicas that
//!    reported a metric (`metric` is their average); no change while the ratio is within the
//!    tolerance of 1. Replicas that are not ready, or ready without a metric, are set aside,
//!    then counted conservatively: on a scale-up they are taken to use 0 % of the target, on
//!    a scale-down (missing metrics only) 100 %; if that reverses the direction, or brings the
//!    ratio within the tolerance, nothing changes.
//! 2. **Stabilization**: a scale-up takes the lowest proposal of its window, a scale-down the
//!    highest of its window (so a dip shorter than the window never removes a replica).
//! 3. **Rate policies**: at most K replicas or P % per period, the policy allowing the most
//!    change winning (`Select::Max`, the default) or the least (`Select::Min`).
//! 4. **Bounds**: min and max replicas.
//!
//! Time is seconds on any monotonic clock, so tests can replay a timeline.

use std::collections::VecDeque;

/// A rate policy, as the settings spell it (`4/15s`, `100%/15s`).
pub use stack::settings::Policy;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Select {
    /// The policy that allows the most change (HPA's default).
    Max,
    /// The policy that allows the least change.
    Min,
    /// No change in this direction at all.
    Disabled,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Behavior {
    pub stabilization_secs: f64,
    pub policies: Vec<Policy>,
    pub select: Select,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Hpa {
    pub min_replicas: u32,
    pub max_replicas: u32,
    /// The metric's target value per replica (utilization 0.7, say).
    pub target: f64,
    /// No change while |metric / target − 1| is at most this (HPA: 0.1).
    pub tolerance: f64,
    pub scale_up: Behavior,
    pub scale_down: Behavior,
}

impl Hpa {
    /// HPA's defaults: scale-up without stabilization, at most 4 pods or 100 % per 15 s
    /// (whichever is more); scale-down stabilized over 300 s, at most 100 % per 15 s.
    pub fn kubernetes_defaults(min_replicas: u32, max_replicas: u32, target: f64) -> Self {
        Self {
            min_replicas,
            max_replicas,
            target,
            tolerance: 0.1,
            scale_up: Behavior {
                stabilization_secs: 0.0,
                policies: vec![
                    Policy::Pods {
                        value: 4,
                        period_secs: 15.0,
                    },
                    Policy::Percent {
                        value: 100,
                        period_secs: 15.0,
                    },
                ],
                select: Select::Max,
            },
            scale_down: Behavior {
                stabilization_secs: 300.0,
                policies: vec![Policy::Percent {
                    value: 100,
                    period_secs: 15.0,
                }],
                select: Select::Max,
            },
        }
    }
}

/// What the controller saw of the replicas at one sync.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Observation {
    /// The metric of each ready replica that reported one.
    pub ready: Vec<f64>,
    /// Ready replicas whose metric could not be read.
    pub missing: u32,
    /// Replicas not ready yet (started, not yet in the load balancer's rotation).
    pub not_ready: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// The average metric of the ready replicas that reported one.
    pub metric: Option<f64>,
    pub current: u32,
    /// Step 1's proposal.
    pub proposed: u32,
    /// After the stabilization windows.
    pub stabilized: u32,
    /// After the rate policies and the bounds: what the runtime is asked for.
    pub desired: u32,
    pub reason: String,
}

/// Step 1 alone: the replica count the metric asks for, and why.
pub fn propose(hpa: &Hpa, current: u32, obs: &Observation) -> (u32, String) {
    if obs.ready.is_empty() {
        return (
            current,
            "no ready replica reported the metric: no change".into(),
        );
    }
    let ratio = |values: &[f64]| values.iter().sum::<f64>() / values.len() as f64 / hpa.target;
    let usage = ratio(&obs.ready);
    let within = |r: f64| (1.0 - r).abs() <= hpa.tolerance;
    let scale_up_with_unready = obs.not_ready > 0 && usage > 1.0;
    if !scale_up_with_unready && obs.missing == 0 {
        if within(usage) {
            return (current, format!("ratio {usage:.2} within the tolerance"));
        }
        let n = (usage * obs.ready.len() as f64).ceil() as u32;
        return (
            n,
            format!("ratio {usage:.2} over {} ready replica(s)", obs.ready.len()),
        );
    }
    // Set-aside replicas counted conservatively.
    let mut values = obs.ready.clone();
    let missing_value = if usage < 1.0 { hpa.target } else { 0.0 };
    values.extend(std::iter::repeat_n(missing_value, obs.missing as usize));
    if scale_up_with_unready {
        values.extend(std::iter::repeat_n(0.0, obs.not_ready as usize));
    }
    let new_usage = ratio(&values);
    if within(new_usage) || (usage < 1.0 && new_usage > 1.0) || (usage > 1.0 && new_usage < 1.0) {
        return (
            current,
            format!("ratio {usage:.2}, {new_usage:.2} with the replicas set aside: no change"),
        );
    }
    let n = (new_usage * values.len() as f64).ceil() as u32;
    if (new_usage < 1.0 && n > current) || (new_usage > 1.0 && n < current) {
        return (
            current,
            "the set-aside replicas would reverse the direction: no change".into(),
        );
    }
    (
        n,
        format!(
            "ratio {new_usage:.2} counting {} set-aside replica(s)",
            values.len() - obs.ready.len()
        ),
    )
}

/// The controller's memory: past proposals (for the stabilization windows) and past scale
/// changes (for the rate policies).
#[derive(Debug, Clone)]
pub struct Autoscaler {
    pub hpa: Hpa,
    recommendations: VecDeque<(f64, u32)>,
    /// (time, replicas after - replicas before)
    changes: VecDeque<(f64, i64)>,
}

impl Autoscaler {
    pub fn new(hpa: Hpa) -> Self {
        Self {
            hpa,
            recommendations: VecDeque::new(),
            changes: VecDeque::new(),
        }
    }

    /// One sync at `now`: the decision, and its change remembered for the rate policies.
    pub fn decide(&mut self, now: f64, current: u32, obs: &Observation) -> Decision {
        let (proposed, mut reason) = propose(&self.hpa, current, obs);
        let stabilized = self.stabilize(now, current, proposed);
        if stabilized != proposed {
            reason.push_str(&format!("; stabilized at {stabilized}"));
        }
        let mut desired = stabilized;
        if desired > current {
            let limit = self.limit(now, current, true);
            if desired > limit {
                desired = limit;
                reason.push_str(&format!("; scale-up policy allows {limit}"));
            }
        } else if desired < current {
            let limit = self.limit(now, current, false);
            if desired < limit {
                desired = limit;
                reason.push_str(&format!("; scale-down policy allows {limit}"));
            }
        }
        let bounded = desired.clamp(self.hpa.min_replicas, self.hpa.max_replicas);
        if bounded != desired {
            reason.push_str(&format!(
                "; bounded to {}..={}",
                self.hpa.min_replicas, self.hpa.max_replicas
            ));
        }
        if bounded != current {
            self.changes
                .push_back((now, i64::from(bounded) - i64::from(current)));
        }
        Decision {
            metric: (!obs.ready.is_empty())
                .then(|| obs.ready.iter().sum::<f64>() / obs.ready.len() as f64),
            current,
            proposed,
            stabilized,
            desired: bounded,
            reason,
        }
    }

    fn stabilize(&mut self, now: f64, current: u32, proposed: u32) -> u32 {
        self.recommendations.push_back((now, proposed));
        let longest = self
            .hpa
            .scale_up
            .stabilization_secs
            .max(self.hpa.scale_down.stabilization_secs);
        while self
            .recommendations
            .front()
            .is_some_and(|(t, _)| now - t > longest)
        {
            self.recommendations.pop_front();
        }
        let within = |window: f64| {
            self.recommendations
                .iter()
                .filter(move |(t, _)| now - t <= window)
                .map(|(_, r)| *r)
        };
        let up = within(self.hpa.scale_up.stabilization_secs)
            .min()
            .unwrap_or(proposed);
        let down = within(self.hpa.scale_down.stabilization_secs)
            .max()
            .unwrap_or(proposed);
        let mut result = current;
        if result < up {
            result = up;
        }
        if result > down {
            result = down;
        }
        result
    }

    /// The most (scale-up) or fewest (scale-down) replicas the rate policies allow now.
    fn limit(&mut self, now: f64, current: u32, up: bool) -> u32 {
        let behavior = if up {
            &self.hpa.scale_up
        } else {
            &self.hpa.scale_down
        };
        let longest = behavior
            .policies
            .iter()
            .map(Policy::period)
            .fold(0.0, f64::max);
        let keep = longest
            .max(
                self.hpa
                    .scale_up
                    .policies
                    .iter()
                    .map(Policy::period)
                    .fold(0.0, f64::max),
            )
            .max(
                self.hpa
                    .scale_down
                    .policies
                    .iter()
                    .map(Policy::period)
                    .fold(0.0, f64::max),
            );
        while self.changes.front().is_some_and(|(t, _)| now - t > keep) {
            self.changes.pop_front();
        }
        if behavior.select == Select::Disabled || behavior.policies.is_empty() {
            return current;
        }
        let limits = behavior.policies.iter().map(|p| {
            let period = p.period();
            // Replicas at the start of the period: the changes in this direction undone.
            let moved: i64 = self
                .changes
                .iter()
                .filter(|(t, d)| now - t < period && (*d > 0) == up)
                .map(|(_, d)| *d)
                .sum();
            let start = (i64::from(current) - moved).max(0) as f64;
            let limit = match (*p, up) {
                (Policy::Pods { value, .. }, true) => start + f64::from(value),
                (Policy::Pods { value, .. }, false) => start - f64::from(value),
                (Policy::Percent { value, .. }, true) => {
                    (start * (1.0 + f64::from(value) / 100.0)).ceil()
                }
                // As the documentation's example reads: the replicas removed are the
                // percentage rounded up (80 → 72 → 64 at 10 %).
                (Policy::Percent { value, .. }, false) => {
                    start - (start * f64::from(value) / 100.0).ceil()
                }
            };
            limit.max(0.0) as u32
        });
        let limits: Vec<u32> = limits.collect();
        match (behavior.select, up) {
            (Select::Max, true) | (Select::Min, false) => {
                limits.into_iter().max().unwrap_or(current)
            }
            (Select::Max, false) | (Select::Min, true) => {
                limits.into_iter().min().unwrap_or(current)
            }
            (Select::Disabled, _) => current,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hpa(target: f64) -> Hpa {
        Hpa::kubernetes_defaults(1, 100, target)
    }

    fn ready(values: &[f64]) -> Observation {
        Observation {
            ready: values.to_vec(),
            ..Observation::default()
        }
    }

    #[test]
    fn the_documentation_examples_double_and_halve() {
        // "if the current metric value is 200m, and the desired value is 100m, the number of
        // replicas will be doubled"; "if the current value is instead 50m, you'll halve".
        assert_eq!(propose(&hpa(100.0), 2, &ready(&[200.0, 200.0])).0, 4);
        assert_eq!(propose(&hpa(100.0), 4, &ready(&[50.0; 4])).0, 2);
        // desired = ceil(current × ratio): 3 replicas at 150 % of target → ceil(4.5) = 5.
        assert_eq!(propose(&hpa(100.0), 3, &ready(&[150.0; 3])).0, 5);
        // The v1.33 blog's example: 50 replicas at 90 % against a 75 % target → 60.
        assert_eq!(propose(&hpa(75.0), 50, &ready(&[90.0; 50])).0, 60);
    }

    #[test]
    fn a_ratio_within_the_tolerance_changes_nothing() {
        assert_eq!(propose(&hpa(100.0), 3, &ready(&[109.0; 3])).0, 3);
        assert_eq!(propose(&hpa(100.0), 3, &ready(&[91.0; 3])).0, 3);
        assert_eq!(propose(&hpa(100.0), 3, &ready(&[111.0; 3])).0, 4);
    }

    #[test]
    fn missing_metrics_count_as_full_on_a_scale_down_and_empty_on_a_scale_up() {
        // Scale-down: two replicas at 40 %, one missing counted at 100 %: (40+40+100)/3 = 60 %
        // → ceil(0.6 × 3) = 2, not the 1 the two alone would give.
        let obs = Observation {
            ready: vec![40.0, 40.0],
            missing: 1,
            not_ready: 0,
        };
        assert_eq!(propose(&hpa(100.0), 3, &obs).0, 2);
        // Scale-up: 150 % and 150 %, one missing at 0 %: 100 % → within tolerance: no change.
        let obs = Observation {
            ready: vec![150.0, 150.0],
            missing: 1,
            not_ready: 0,
        };
        assert_eq!(propose(&hpa(100.0), 3, &obs).0, 3);
        // Scale-up that survives: 300 % twice, one missing: 200 % → 6.
        let obs = Observation {
            ready: vec![300.0, 300.0],
            missing: 1,
            not_ready: 0,
        };
        assert_eq!(propose(&hpa(100.0), 3, &obs).0, 6);
    }

    #[test]
    fn not_ready_replicas_never_reverse_a_scale_up() {
        // One ready replica at 120 %, two not ready counted at 0 %: 40 % would be a
        // scale-down, which would reverse the direction: no change.
        let obs = Observation {
            ready: vec![120.0],
            missing: 0,
            not_ready: 2,
        };
        assert_eq!(propose(&hpa(100.0), 3, &obs).0, 3);
        // Not-ready replicas do not matter on a scale-down.
        let obs = Observation {
            ready: vec![20.0],
            missing: 0,
            not_ready: 2,
        };
        assert_eq!(propose(&hpa(100.0), 3, &obs).0, 1);
        // With no metric at all, nothing changes.
        assert_eq!(
            propose(
                &hpa(100.0),
                3,
                &Observation {
                    ready: vec![],
                    missing: 3,
                    not_ready: 0
                }
            )
            .0,
            3
        );
    }

    #[test]
    fn the_scale_down_window_keeps_the_highest_recent_recommendation() {
        let mut a = Autoscaler::new(Hpa {
            scale_down: Behavior {
                stabilization_secs: 30.0,
                ..hpa(1.0).scale_down
            },
            ..hpa(1.0)
        });
        assert_eq!(a.decide(0.0, 3, &ready(&[1.0; 3])).desired, 3);
        // The load drops at t=10: the proposal is 1, the window still holds the 3.
        let d = a.decide(10.0, 3, &ready(&[0.2; 3]));
        assert_eq!((d.proposed, d.desired), (1, 3), "{}", d.reason);
        assert_eq!(a.decide(25.0, 3, &ready(&[0.2; 3])).desired, 3);
        // 31 s after the last 3 was proposed, the window holds only 1s.
        assert_eq!(a.decide(31.0, 3, &ready(&[0.2; 3])).desired, 1);
    }

    #[test]
    fn the_scale_up_window_keeps_the_lowest_recent_recommendation() {
        let mut a = Autoscaler::new(Hpa {
            scale_up: Behavior {
                stabilization_secs: 10.0,
                ..hpa(1.0).scale_up
            },
            ..hpa(1.0)
        });
        assert_eq!(a.decide(0.0, 1, &ready(&[1.0])).desired, 1);
        assert_eq!(a.decide(5.0, 1, &ready(&[3.0])).desired, 1);
        assert_eq!(a.decide(11.0, 1, &ready(&[3.0])).desired, 3);
    }

    #[test]
    fn min_and_max_replicas_bound_every_decision() {
        let mut a = Autoscaler::new(Hpa::kubernetes_defaults(1, 3, 1.0));
        let d = a.decide(0.0, 1, &ready(&[10.0]));
        assert_eq!((d.proposed, d.desired), (10, 3));
        assert!(d.reason.contains("bounded to 1..=3"), "{}", d.reason);
        let mut a = Autoscaler::new(Hpa {
            scale_down: Behavior {
                stabilization_secs: 0.0,
                ..hpa(1.0).scale_down
            },
            ..Hpa::kubernetes_defaults(2, 3, 1.0)
        });
        assert_eq!(a.decide(0.0, 3, &ready(&[0.01; 3])).desired, 2);
    }

    #[test]
    fn the_documentation_scale_down_policy_example_80_72_64() {
        // "Pods 4 per 60 s, Percent 10 per 60 s": from 80 replicas towards 10, 8 are removed
        // (10 %), then at 72 another 8 (7.2 rounded up); below 40 the Pods policy (4) wins.
        let behavior = Behavior {
            stabilization_secs: 0.0,
            policies: vec![
                Policy::Pods {
                    value: 4,
                    period_secs: 60.0,
                },
                Policy::Percent {
                    value: 10,
                    period_secs: 60.0,
                },
            ],
            select: Select::Max,
        };
        let mut a = Autoscaler::new(Hpa {
            scale_down: behavior,
            ..Hpa::kubernetes_defaults(1, 100, 1.0)
        });
        let low = |n| ready(&vec![0.1; n]);
        assert_eq!(a.decide(0.0, 80, &low(80)).desired, 72);
        assert_eq!(a.decide(61.0, 72, &low(72)).desired, 64);
        // Within the same period no more may go.
        assert_eq!(a.decide(62.0, 64, &low(64)).desired, 64);
        assert_eq!(a.decide(200.0, 38, &low(38)).desired, 34);
    }

    #[test]
    fn the_scale_up_policy_limits_growth_per_period() {
        let mut a = Autoscaler::new(Hpa {
            scale_up: Behavior {
                stabilization_secs: 0.0,
                policies: vec![Policy::Pods {
                    value: 1,
                    period_secs: 10.0,
                }],
                select: Select::Max,
            },
            ..Hpa::kubernetes_defaults(1, 10, 1.0)
        });
        assert_eq!(a.decide(0.0, 1, &ready(&[5.0])).desired, 2);
        // 5 s later the period still counts the first step: nothing more.
        assert_eq!(a.decide(5.0, 2, &ready(&[5.0; 2])).desired, 2);
        assert_eq!(a.decide(11.0, 2, &ready(&[5.0; 2])).desired, 3);
        // Disabled: never up.
        let mut a = Autoscaler::new(Hpa {
            scale_up: Behavior {
                select: Select::Disabled,
                ..hpa(1.0).scale_up
            },
            ..hpa(1.0)
        });
        assert_eq!(a.decide(0.0, 1, &ready(&[5.0])).desired, 1);
    }
}
