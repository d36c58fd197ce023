//! The classroom labs (`labs/`): `make lab N=1` runs a lab's experiment in its QUICK form and
//! says where its handout and its answers are. One table, which the handouts are checked
//! against (`lab/tests/handouts.rs`).

use catalogue::Experiment;
use records::knob::Knob;
use records::load::{Profile, Scenario};
use stack::runtime::Kind;

/// What a lab runs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Run {
    /// `make benchmark-all QUICK=1 REPEATS=n`.
    Benchmark { repeats: u32 },
    /// `make faults QUICK=1`.
    Faults,
    /// Lab 15: the load balancer's stall (`lb-stall`) under the closed model, then the open.
    Stall,
    /// `make experiment NAME=… QUICK=1`.
    Experiment(Experiment),
    /// `make autoscale QUICK=1`.
    Autoscale,
    /// Recorded runs of `make load`, one after the other in one batch, then the report.
    Loads(&'static [Load]),
    /// Lab 0: the stack with 3 gateways and the requests a student sends by hand, sent once
    /// by the lab (`tour`); no recorded run.
    Tour,
}

/// One `make load` run of a lab: `GATEWAYS`, `SCENARIO`, `PROFILE` and the load knobs it
/// fixes (users, the breakpoint search's steps).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Load {
    pub gateways: usize,
    pub scenario: Scenario,
    pub profile: Profile,
    pub knobs: &'static [Knob],
}

#[derive(Debug, Clone, Copy)]
pub struct Lab {
    pub n: u32,
    pub question: &'static str,
    /// The student's handout and the teacher's notes, from the checkout.
    pub handout: &'static str,
    pub teacher: &'static str,
    pub run: Run,
    /// Where in the report the answer is.
    pub look: &'static str,
}

pub const ALL: &[Lab] = &[
    Lab {
        n: 0,
        question: "What is in the stack, and what does each request do?",
        handout: "labs/00-meet-the-stack.md",
        teacher: "labs/teacher/00-meet-the-stack.md",
        run: Run::Tour,
        look: "what the lab printed for each step, then your own answers to the same lines \
               (labs/00-meet-the-stack.md); `make down` when you are done",
    },
    Lab {
        n: 1,
        question: "What do 3 gateways and a cache buy, and why not 3×?",
        handout: "labs/01-gateways-and-cache.md",
        teacher: "labs/teacher/01-gateways-and-cache.md",
        run: Run::Benchmark { repeats: 3 },
        look: "tests/reports/summary.md: Comparisons (the repeats table and the sentences), \
           Predicted vs measured → What limited each run, What failed, and why; \
           graphs/compare-throughput-*.png, graphs/timeline-*.png",
    },
    Lab {
        n: 2,
        question: "What happens when a part fails?",
        handout: "labs/02-faults.md",
        teacher: "labs/teacher/02-faults.md",
        run: Run::Faults,
        look: "tests/reports/summary.md: Faults (per fault the promise PASS/FAIL, the outcome \
               row, graphs/fault-*.png, fault-p95-*.png, fault-mechanism-*.png)",
    },
    Lab {
        n: 3,
        question: "What does an index do to a slow query, and to the whole stack?",
        handout: "labs/03-index.md",
        teacher: "labs/teacher/03-index.md",
        run: Run::Experiment(Experiment::Index),
        look: "tests/reports/summary.md: Experiments → `index` (both sides, DB time per query, \
               the prediction, the Why paragraph and both query plans)",
    },
    Lab {
        n: 4,
        question: "What does a pool of database connections save?",
        handout: "labs/04-db-pool.md",
        teacher: "labs/teacher/04-db-pool.md",
        run: Run::Experiment(Experiment::DbPool),
        look: "tests/reports/summary.md: Experiments → `db-pool` (connections opened per \
               request, connect time, peak connections, B's p50 against A's plus one connect)",
    },
    Lab {
        n: 5,
        question: "How much load can one gateway take before it breaks its SLA?",
        handout: "labs/05-breaking-point.md",
        teacher: "labs/teacher/05-breaking-point.md",
        run: Run::Loads(&[
            Load {
                gateways: 1,
                scenario: Scenario::Miss,
                profile: Profile::Breakpoint,
                knobs: &[
                    Knob::StartUsers(20),
                    Knob::StepUsers(40),
                    Knob::StepSecs(10),
                    Knob::MaxSteps(6),
                ],
            },
            Load {
                gateways: 1,
                scenario: Scenario::Miss,
                profile: Profile::Stages,
                knobs: &[Knob::Users(100), Knob::DurationSecs(60)],
            },
        ]),
        look: "tests/reports/summary.md: Breaking point (the steps, the knee, \
               graphs/breakpoint-p95-*.png), Load shapes → Stages (ramp-up, hold, ramp-down), \
               Each run over time (graphs/timeline-*.png of the stages run)",
    },
    Lab {
        n: 6,
        question:
            "Does an autoscaler (1 → 3 → 1 gateways) keep up, and does a burst or a ramp matter?",
        handout: "labs/06-autoscaling.md",
        teacher: "labs/teacher/06-autoscaling.md",
        run: Run::Autoscale,
        look: "tests/reports/summary.md: Autoscaling (the table, the sentences, \
               graphs/autoscale-*.png), Load shapes → Burst vs ramp (graphs/shape-*.png)",
    },
    Lab {
        n: 7,
        question: "What does one shared HTTP client save over a client per request?",
        handout: "labs/07-client-reuse.md",
        teacher: "labs/teacher/07-client-reuse.md",
        run: Run::Experiment(Experiment::ClientReuse),
        look: "tests/reports/summary.md: Experiments → `client-reuse` (new TCP connections per \
               miss, p50 of both sides, the Why paragraph)",
    },
    Lab {
        n: 8,
        question: "Where should a slow listing be cached: nowhere, in Redis, or in each gateway?",
        handout: "labs/08-local-cache.md",
        teacher: "labs/teacher/08-local-cache.md",
        run: Run::Experiment(Experiment::LocalCache),
        look: "tests/reports/summary.md: Experiments → `local-cache` (ok req/s, hit ratio, \
               times the source was asked against the prediction, answer age)",
    },
    Lab {
        n: 9,
        question: "What does writing results in batches do to the worker's throughput?",
        handout: "labs/09-batch.md",
        teacher: "labs/teacher/09-batch.md",
        run: Run::Experiment(Experiment::Batch),
        look: "tests/reports/summary.md: Experiments → `batch` (jobs per second, commits per \
               second, the Why paragraph)",
    },
    Lab {
        n: 10,
        question: "What do 3 workers do for a queue that 1 cannot?",
        handout: "labs/10-scale-workers.md",
        teacher: "labs/teacher/10-scale-workers.md",
        run: Run::Experiment(Experiment::ScaleWorkers),
        look: "tests/reports/summary.md: Experiments → `scale-workers` (jobs per second against \
               the capacity, end-to-end job time), Each run over time (the queue)",
    },
    Lab {
        n: 11,
        question: "Three gateways are not 3×: what does a second microservice change?",
        handout: "labs/11-scale-microservice.md",
        teacher: "labs/teacher/11-scale-microservice.md",
        run: Run::Experiment(Experiment::ScaleMicroservice),
        look: "tests/reports/summary.md: Experiments → `scale-microservice` (ok req/s against \
               both bounds, the machine's CPU)",
    },
    Lab {
        n: 12,
        question: "What do more threads per gateway do for CPU-bound work?",
        handout: "labs/12-worker-threads.md",
        teacher: "labs/teacher/12-worker-threads.md",
        run: Run::Experiment(Experiment::WorkerThreads),
        look: "tests/reports/summary.md: Experiments → `worker-threads` (logins per second \
               against the prediction, CPU per login)",
    },
    Lab {
        n: 13,
        question: "What does a bigger gateway (more CPU) do for CPU-bound work?",
        handout: "labs/13-vertical.md",
        teacher: "labs/teacher/13-vertical.md",
        run: Run::Experiment(Experiment::Vertical),
        look: "tests/reports/summary.md: Experiments → `vertical` (logins per second against \
               the prediction, the CPU limit of each side)",
    },
    Lab {
        n: 14,
        question: "What does offloading a slow task to a queue change, and what does it not?",
        handout: "labs/14-offload.md",
        teacher: "labs/teacher/14-offload.md",
        run: Run::Experiment(Experiment::Offload),
        look: "tests/reports/summary.md: Experiments → `offload` (the answer's latency against \
               the task's time, tasks done against the capacity, the queue's lag), Each run \
               over time (the queue of side B)",
    },
    Lab {
        n: 15,
        question: "Why the load test lied: what does each load model measure of the same stall?",
        handout: "labs/15-why-the-load-test-lied.md",
        teacher: "labs/teacher/15-why-the-load-test-lied.md",
        run: Run::Stall,
        look: "tests/reports/summary.md: Faults → `lb-stall` closed and open (requests sent \
               during the stall, the table of both models' percentiles), Each run over time \
               (the open run's two clocks)",
    },
    Lab {
        n: 16,
        question: "Round robin or consistent hashing in front of caches kept in each gateway?",
        handout: "labs/16-lb-algorithm.md",
        teacher: "labs/teacher/16-lb-algorithm.md",
        run: Run::Experiment(Experiment::LbAlgorithm),
        look: "tests/reports/summary.md: Experiments → `lb-algorithm` (the hit ratio against \
               both predictions, the listings the source produced, the share of the requests \
               per gateway)",
    },
];

impl Lab {
    /// The runtime a lab runs on unless `RUNTIME` says otherwise, the one its teacher notes
    /// were measured on first (so that a student's figures compare with them): native, except
    /// for an experiment that needs a container CPU limit. In the lab container every lab runs
    /// on compose (the teacher notes give those figures too).
    pub fn runtime(&self) -> Kind {
        match self.run {
            Run::Experiment(e) if e.spec().compose_only => Kind::Compose,
            _ => Kind::Native,
        }
    }
}

pub fn find(n: u32) -> anyhow::Result<&'static Lab> {
    ALL.iter().find(|l| l.n == n).ok_or_else(|| {
        let known: Vec<String> = ALL.iter().map(|l| l.n.to_string()).collect();
        anyhow::anyhow!("no lab {n}: labs are {} (N=...)", known.join(", "))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labs_are_found_by_number_or_named_in_the_error() {
        assert_eq!(find(1).unwrap().run, Run::Benchmark { repeats: 3 });
        let e = find(99).unwrap_err().to_string();
        assert!(
            e.starts_with("no lab 99: labs are 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13"),
            "{e}"
        );
        assert_eq!(find(2).unwrap().run, Run::Faults);
        assert_eq!(find(13).unwrap().runtime(), Kind::Compose);
        assert_eq!(find(10).unwrap().runtime(), Kind::Native);
        // A lab's experiment runs on the lab's runtime.
        for lab in ALL {
            if let Run::Experiment(e) = lab.run {
                assert!(
                    crate::experiments::runs_in(e, lab.runtime()).is_ok(),
                    "lab {}",
                    lab.n
                );
            }
        }
        // A lab's loads are ones the load generator accepts.
        for lab in ALL {
            if let Run::Loads(loads) = lab.run {
                for l in loads {
                    let spec =
                        crate::protocol::LoadSpec::new(l.gateways, l.scenario, l.profile, true);
                    spec.check().unwrap();
                }
            }
        }
    }
}
