//! A load knob: one setting of a load run's plan that a lab entry, an experiment or a fault
//! fixes (its users, its length, its tasks), typed, with the name `make` and the environment
//! spell it by (`USERS=600 make lab N=9`).

use crate::plan::Plan;

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Knob {
    Users(usize),
    /// Users started per second.
    Rate(f64),
    DurationSecs(u64),
    NoThink(bool),
    LongtaskMs(u64),
    PollMs(u64),
    Generators(usize),
    /// The breakpoint search's first step, its step, each step's length and the most steps.
    StartUsers(usize),
    StepUsers(usize),
    StepSecs(u64),
    MaxSteps(usize),
    /// The open model's requests per second.
    ArrivalRate(f64),
}

impl Knob {
    /// Its name in the environment and in `make` (`USERS`).
    pub const fn name(self) -> &'static str {
        match self {
            Knob::Users(_) => "USERS",
            Knob::Rate(_) => "RATE",
            Knob::DurationSecs(_) => "DURATION_SECS",
            Knob::NoThink(_) => "NO_THINK",
            Knob::LongtaskMs(_) => "LONGTASK_MS",
            Knob::PollMs(_) => "POLL_MS",
            Knob::Generators(_) => "GENERATORS",
            Knob::StartUsers(_) => "START_USERS",
            Knob::StepUsers(_) => "STEP_USERS",
            Knob::StepSecs(_) => "STEP_SECS",
            Knob::MaxSteps(_) => "MAX_STEPS",
            Knob::ArrivalRate(_) => "ARRIVAL_RATE",
        }
    }

    /// Its value as the environment would spell it (`32`, `true`).
    pub fn value(self) -> String {
        match self {
            Knob::Users(n)
            | Knob::Generators(n)
            | Knob::StartUsers(n)
            | Knob::StepUsers(n)
            | Knob::MaxSteps(n) => n.to_string(),
            Knob::DurationSecs(n) | Knob::LongtaskMs(n) | Knob::PollMs(n) | Knob::StepSecs(n) => {
                n.to_string()
            }
            Knob::Rate(r) | Knob::ArrivalRate(r) => r.to_string(),
            Knob::NoThink(b) => b.to_string(),
        }
    }

    /// Sets it in a plan.
    pub fn apply(self, plan: &mut Plan) {
        match self {
            Knob::Users(n) => plan.users = Some(n),
            Knob::Rate(r) => plan.rate = Some(r),
            Knob::DurationSecs(s) => plan.duration_secs = Some(s),
            Knob::NoThink(b) => plan.no_think = b,
            Knob::LongtaskMs(ms) => plan.longtask_ms = ms,
            Knob::PollMs(ms) => plan.poll_ms = ms,
            Knob::Generators(k) => plan.generators = k,
            Knob::StartUsers(n) => plan.start_users = n,
            Knob::StepUsers(n) => plan.step_users = n,
            Knob::StepSecs(s) => plan.step_secs = s,
            Knob::MaxSteps(n) => plan.max_steps = n,
            Knob::ArrivalRate(r) => plan.arrival_rate = r,
        }
    }
}

#[cfg(all(test, feature = "cli"))]
mod tests {
    use super::Knob;
    use crate::plan::Plan;

    /// Each knob sets in a plan what its name and value set through the one parser of the
    /// environment's names, and is one of the load generator's settings.
    #[test]
    fn a_knob_sets_what_its_name_sets() {
        let every = [
            Knob::Users(32),
            Knob::Rate(2.5),
            Knob::DurationSecs(45),
            Knob::NoThink(true),
            Knob::LongtaskMs(20),
            Knob::PollMs(500),
            Knob::Generators(2),
            Knob::StartUsers(20),
            Knob::StepUsers(40),
            Knob::StepSecs(10),
            Knob::MaxSteps(6),
            Knob::ArrivalRate(150.0),
        ];
        for knob in every {
            assert!(crate::load::ENV_NAMES.contains(&knob.name()), "{knob:?}");
            let named = [(knob.name().to_string(), knob.value())];
            let parsed = Plan::from_lab(named).unwrap();
            let mut typed = Plan::from_lab(Vec::new()).unwrap();
            knob.apply(&mut typed);
            assert_eq!(typed, parsed, "{knob:?}");
            assert_ne!(typed, Plan::from_lab(Vec::new()).unwrap(), "{knob:?}");
        }
    }
}
