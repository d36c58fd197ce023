//! What a load run is: its scenario and its profile, one definition for the load generator
//! that runs them and the lab that asks for them (`lab load GATEWAYS SCENARIO PROFILE`), so
//! both parse the same names and list them in their help.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum Scenario {
    /// `/data` or `/process` with one fixed key: cache hits after the first request.
    Hit,
    /// A key never asked before on every request: always a cache miss.
    Miss,
    /// Keys from a key space of KEY_SPACE keys drawn from a Zipf law of exponent ZIPF_S
    /// (key k with probability k^−s / H(N, s)): the hit ratio follows the TTL and the skew.
    Mixed,
    /// A login storm: `POST /login` on every iteration.
    Login,
    /// `POST /longtask`, then poll `/tasks/{id}` until done; end-to-end job time recorded.
    Longtask,
    /// `GET /listing` of one of LISTING_PREFIXES prefixes: a slow listing behind the
    /// gateway's LISTING_CACHE.
    Listing,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    /// The seed lab's protocol: 1000 users, +100 users/s, 60 s.
    Classic,
    /// 10 users, 10 s: fills caches and pools before a measured run.
    Warmup,
    /// Every user at once.
    Burst,
    /// Users added steadily over the first half of the run.
    Ramp,
    /// Step-load search: runs of START_USERS, +STEP_USERS, ... users, STEP_SECS each, until
    /// one breaks the SLA; reports the highest load that met it.
    Breakpoint,
    /// Ramp up, hold, ramp down (20% / 60% / 20% of the duration; 1 min / 3 min / 1 min by
    /// default), the k6 shape.
    Stages,
    /// A load that rises and falls, for the autoscaler: LOW_USERS, then up to USERS, held,
    /// then back to LOW_USERS and held (10 % / 10 % / 30 % / 5 % / 45 % of the duration).
    Wave,
    /// The open model: ARRIVAL_RATE requests per second whatever the answers take, on a
    /// schedule computed in advance (ARRIVALS spacing, ramping to TARGET_ARRIVAL_RATE when
    /// set); each request is timed from when it should have gone, and an arrival that finds
    /// MAX_IN_FLIGHT requests unanswered is dropped and counted; 60 s.
    Open,
}

/// How the open model spaces its arrivals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum Spacing {
    /// Evenly, every 1/rate seconds (wrk2's, k6's arrival-rate executors').
    Constant,
    /// Exponential gaps (a Poisson process, as independent users arrive), seeded by
    /// ARRIVAL_SEED.
    Poisson,
}

/// The names as serde writes them (`hit`, `longtask`): one spelling for the command line,
/// the records and the errors.
fn serde_name<T: Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        _ => String::new(),
    }
}

/// An enum of the load: every value and its name.
pub trait Named: Sized + Copy + Serialize + 'static {
    const ALL: &'static [Self];
    /// Its name on the command line and in records (`hit`, `breakpoint`).
    fn name(self) -> String {
        serde_name(&self)
    }
}

impl Scenario {
    /// Its name on the command line and in records (`hit`, `longtask`).
    pub fn name(self) -> String {
        Named::name(self)
    }
}

impl Profile {
    /// Its name on the command line and in records (`classic`, `breakpoint`).
    pub fn name(self) -> String {
        Named::name(self)
    }
}

impl std::fmt::Display for Scenario {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name())
    }
}

impl std::fmt::Display for Profile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name())
    }
}

impl Named for Scenario {
    const ALL: &'static [Self] = &[
        Scenario::Hit,
        Scenario::Miss,
        Scenario::Mixed,
        Scenario::Login,
        Scenario::Longtask,
        Scenario::Listing,
    ];
}

impl Named for Profile {
    const ALL: &'static [Self] = &[
        Profile::Classic,
        Profile::Warmup,
        Profile::Burst,
        Profile::Ramp,
        Profile::Breakpoint,
        Profile::Stages,
        Profile::Wave,
        Profile::Open,
    ];
}

/// The prefix of the load generator's environment names: `LOADTEST_USERS`, so that a stray
/// `USERS` or `PROFILE` in a shell does not change a run.
pub const ENV_PREFIX: &str = "LOADTEST_";

/// The load generator's settings by their unprefixed names (the names the lab and `make`
/// take, and the load generator's own before the prefix; a test in `loadtest` checks this
/// list against its options).
pub const ENV_NAMES: [&str; 45] = [
    "SCENARIO",
    "PROFILE",
    "USERS",
    "RATE",
    "DURATION_SECS",
    "TARGET_URL",
    "LB_METRICS_URL",
    "RESULTS_DIR",
    "RUN_ID",
    "THINK_MIN_MS",
    "THINK_MAX_MS",
    "NO_THINK",
    "KEY_SPACE",
    "ZIPF_S",
    "SLA_P95_MS",
    "SLA_ERROR_PCT",
    "SLA",
    "RUNTIME",
    "GATEWAYS",
    "LONGTASK_MS",
    "POLL_MS",
    "LONGTASK_TIMEOUT_SECS",
    "MICROSERVICE_URL",
    "KEEP_REQUEST_LOG",
    "CALIBRATION_REQUESTS",
    "WORKER_METRICS_URL",
    "START_USERS",
    "STEP_USERS",
    "STEP_SECS",
    "MAX_STEPS",
    "EXPERIMENT",
    "EXPERIMENT_SIDE",
    "EXPERIMENT_SETTINGS",
    "LOW_USERS",
    "READY_TIMEOUT_SECS",
    "ARRIVAL_RATE",
    "TARGET_ARRIVAL_RATE",
    "ARRIVALS",
    "ARRIVAL_SEED",
    "MAX_IN_FLIGHT",
    "GENERATORS",
    "GENERATOR_INDEX",
    "START_AT_MS",
    "GENERATOR_CPUS",
    "GENERATOR_PINNING",
];

/// How a load generator starts on a plan file: the environment it gets (the file's path,
/// and the lab users' password, which no file holds) and the names of `inherited` it must
/// not keep (a load setting under either spelling, which would reach its options or its
/// notice about the old names).
pub fn launch(
    file: &std::path::Path,
    password: &str,
    inherited: impl IntoIterator<Item = String>,
) -> (Vec<(String, String)>, Vec<String>) {
    use crate::load::{ENV_NAMES, ENV_PREFIX};
    let set = vec![
        (format!("{ENV_PREFIX}PLAN"), file.display().to_string()),
        ("LAB_PASSWORD".to_string(), password.to_string()),
    ];
    let stray = inherited
        .into_iter()
        .filter(|k| {
            k.strip_prefix(ENV_PREFIX)
                .is_some_and(|bare| ENV_NAMES.contains(&bare))
                || ENV_NAMES.contains(&k.as_str())
        })
        .collect();
    (set, stray)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generator_is_started_on_its_file_and_keeps_no_load_setting_of_the_shell() {
        let file = std::path::Path::new("/r/run-1/plan.json");
        let inherited = [
            "USERS",
            "LOADTEST_USERS",
            "PATH",
            "LAB_USERS",
            "LOADTEST_NOPE",
        ];
        let (set, stray) = launch(file, "a-secret", inherited.map(String::from));
        assert_eq!(
            set,
            vec![
                (
                    "LOADTEST_PLAN".to_string(),
                    "/r/run-1/plan.json".to_string()
                ),
                ("LAB_PASSWORD".to_string(), "a-secret".to_string())
            ]
        );
        assert_eq!(stray, ["USERS", "LOADTEST_USERS"]);
    }

    #[test]
    fn names_round_trip() {
        for s in Scenario::ALL {
            let back: Scenario = serde_json::from_value(s.name().into()).unwrap();
            assert_eq!(back, *s);
        }
        for p in Profile::ALL {
            let back: Profile = serde_json::from_value(p.name().into()).unwrap();
            assert_eq!(back, *p);
        }
        assert_eq!(Profile::Breakpoint.name(), "breakpoint");
        assert!(serde_json::from_value::<Scenario>("hits".into()).is_err());
    }

    /// The command line's names (clap's) are the records' (serde's), and `ALL` lists every
    /// variant clap knows.
    #[cfg(feature = "cli")]
    #[test]
    fn clap_names_are_the_records_names() {
        use clap::ValueEnum;
        fn same<T: Named + ValueEnum + PartialEq + std::fmt::Debug>() {
            let clap: Vec<String> = T::value_variants()
                .iter()
                .map(|v| v.to_possible_value().unwrap().get_name().to_string())
                .collect();
            let ours: Vec<String> = T::ALL.iter().map(|v| v.name()).collect();
            assert_eq!(clap, ours);
        }
        same::<Scenario>();
        same::<Profile>();
    }
}
