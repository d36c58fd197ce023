//! One load run as the lab hands it to the load generator: [`Plan`], every option of
//! `loadtest` in one serde struct. The lab writes it to the run folder as `plan.json` and
//! starts `loadtest --plan <file>`; a person runs `loadtest` with flags or `LOADTEST_`
//! environment names (clap, with the `cli` feature), parsed into the same struct, whose
//! defaults are written once, here. The load generator writes the plan it ran into every
//! run folder it makes, so any run can be run again as it was.

use crate::load::{Profile, Scenario, Spacing};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// The lab's users, `user1` … `userN`, all with one password: the gateway seeds them and the
/// load generator logs in as them, so both read the same two settings. The password never
/// leaves the process: it is not serialized (a plan read back takes it from
/// `LAB_PASSWORD` or the default).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::Args))]
pub struct LabUsers {
    /// Lab users: user1 .. userN.
    #[cfg_attr(feature = "cli", arg(long, env = "LAB_USERS", default_value_t = 100))]
    pub lab_users: u32,
    /// Password of every lab user.
    #[cfg_attr(
        feature = "cli",
        arg(
            long,
            env = "LAB_PASSWORD",
            default_value = "scalelab",
            hide_env_values = true
        )
    )]
    #[serde(skip, default = "password")]
    pub lab_password: String,
}

/// `NAME=value,NAME=value` (the command line's and the environment's spelling of a side's
/// settings) as the map the plan and the run record hold; a piece without `=` is an error.
pub fn settings_map(text: &str) -> Result<BTreeMap<String, String>, String> {
    text.split(',')
        .map(str::trim)
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            kv.split_once('=')
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                .ok_or_else(|| format!("{kv:?} is not NAME=value"))
        })
        .collect()
}

fn constant() -> Spacing {
    Spacing::Constant
}

fn one() -> u64 {
    1
}

/// The password of a plan read back: the environment's, else the lab's default.
fn password() -> String {
    std::env::var("LAB_PASSWORD")
        .ok()
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| "scalelab".into())
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::Parser))]
#[cfg_attr(
    feature = "cli",
    command(
        version,
        name = "loadtest",
        about = "Drive scalelab with Goose and record the run"
    )
)]
pub struct Plan {
    #[cfg_attr(
        feature = "cli",
        arg(long, env = "LOADTEST_SCENARIO", value_enum, default_value = "hit")
    )]
    pub scenario: Scenario,
    #[cfg_attr(
        feature = "cli",
        arg(long, env = "LOADTEST_PROFILE", value_enum, default_value = "classic")
    )]
    pub profile: Profile,
    /// Users (overrides the profile's; the open profile has one per request slot,
    /// MAX_IN_FLIGHT).
    #[cfg_attr(feature = "cli", arg(long, env = "LOADTEST_USERS"))]
    pub users: Option<usize>,
    /// Users started per second (overrides the profile's).
    #[cfg_attr(feature = "cli", arg(long, env = "LOADTEST_RATE"))]
    pub rate: Option<f64>,
    /// Run time in seconds (overrides the profile's).
    #[cfg_attr(feature = "cli", arg(long, env = "LOADTEST_DURATION_SECS"))]
    pub duration_secs: Option<u64>,
    /// Where the load goes: the load balancer by default.
    #[cfg_attr(
        feature = "cli",
        arg(
            long,
            env = "LOADTEST_TARGET_URL",
            default_value = "http://127.0.0.1:8080"
        )
    )]
    pub target: String,
    /// The load balancer's metrics, sampled every second.
    #[cfg_attr(
        feature = "cli",
        arg(
            long,
            env = "LOADTEST_LB_METRICS_URL",
            default_value = "http://127.0.0.1:9100/metrics"
        )
    )]
    pub lb_metrics_url: String,
    #[cfg_attr(
        feature = "cli",
        arg(long, env = "LOADTEST_RESULTS_DIR", default_value = "tests/results")
    )]
    pub results_dir: PathBuf,
    /// Folder name of this run (default: UTC time, scenario, gateways).
    #[cfg_attr(feature = "cli", arg(long, env = "LOADTEST_RUN_ID"))]
    pub run_id: Option<String>,
    /// Think time between iterations, each user, drawn from [min, max].
    #[cfg_attr(
        feature = "cli",
        arg(long, env = "LOADTEST_THINK_MIN_MS", default_value_t = 1000)
    )]
    pub think_min_ms: u64,
    #[cfg_attr(
        feature = "cli",
        arg(long, env = "LOADTEST_THINK_MAX_MS", default_value_t = 2000)
    )]
    pub think_max_ms: u64,
    /// No think time: each user sends its next request as soon as it has an answer.
    #[cfg_attr(feature = "cli", arg(long, env = "LOADTEST_NO_THINK"))]
    pub no_think: bool,
    /// Keys of the `mixed` scenario.
    #[cfg_attr(
        feature = "cli",
        arg(long, env = "LOADTEST_KEY_SPACE", default_value_t = 1000)
    )]
    pub key_space: u64,
    /// Exponent of the Zipf law of the `mixed` scenario's keys: key k of KEY_SPACE is drawn
    /// with probability k^−s / H(N, s) (0 = uniform).
    #[cfg_attr(
        feature = "cli",
        arg(long, env = "LOADTEST_ZIPF_S", default_value_t = 1.0)
    )]
    pub zipf_s: f64,
    /// Lab users to log in as (user1..userN) and their password.
    #[cfg_attr(feature = "cli", command(flatten))]
    #[serde(flatten)]
    pub lab: LabUsers,
    /// SLA: 95th percentile response time.
    #[cfg_attr(
        feature = "cli",
        arg(long, env = "LOADTEST_SLA_P95_MS", default_value_t = 500)
    )]
    pub sla_p95_ms: u64,
    /// SLA: highest error rate, in percent.
    #[cfg_attr(
        feature = "cli",
        arg(long, env = "LOADTEST_SLA_ERROR_PCT", default_value_t = 1.0)
    )]
    pub sla_error_pct: f64,
    /// SLA rules, k6-style, comma-separated: p50/p95/p99/avg/max below a latency (ms or s),
    /// error below a percentage, rps at least a rate, each optionally for one route
    /// (`p95<500ms,error<1%,rps>=100,GET /data:p99<1s`). Default: p95 below SLA_P95_MS and
    /// errors at most SLA_ERROR_PCT. Checked on the run's record; each verdict is in run.json.
    #[cfg_attr(feature = "cli", arg(long, env = "LOADTEST_SLA"))]
    pub sla: Option<String>,
    /// Labels written into run.json: how the stack runs and with how many gateways.
    #[cfg_attr(
        feature = "cli",
        arg(long, env = "LOADTEST_RUNTIME", default_value = "unknown")
    )]
    pub runtime: String,
    #[cfg_attr(feature = "cli", arg(long, env = "LOADTEST_GATEWAYS"))]
    pub gateways: Option<u32>,
    /// Simulated work each long task asks the worker for.
    #[cfg_attr(
        feature = "cli",
        arg(long, env = "LOADTEST_LONGTASK_MS", default_value_t = 500)
    )]
    pub longtask_ms: u64,
    /// How often a user polls its task's status.
    #[cfg_attr(
        feature = "cli",
        arg(long, env = "LOADTEST_POLL_MS", default_value_t = 250)
    )]
    pub poll_ms: u64,
    /// A task not finished after this long counts as timed out.
    #[cfg_attr(
        feature = "cli",
        arg(long, env = "LOADTEST_LONGTASK_TIMEOUT_SECS", default_value_t = 60)
    )]
    pub longtask_timeout_secs: u64,
    /// The microservice's base URL, for its `/config` (default: the one the gateways use,
    /// which the host cannot always reach: a compose service name).
    #[cfg_attr(feature = "cli", arg(long, env = "LOADTEST_MICROSERVICE_URL"))]
    pub microservice_url: Option<String>,
    /// Keep the per-request log (`requests.json`, a line per request) in the run folder;
    /// by default it is reduced to `latency_per_second.json` and removed.
    #[cfg_attr(feature = "cli", arg(long, env = "LOADTEST_KEEP_REQUEST_LOG"))]
    pub keep_request_log: bool,
    /// Requests sent one at a time before the load (for `hit` and `miss`) to measure the
    /// service time at low load, which the report's predictions use; 0 skips it.
    #[cfg_attr(
        feature = "cli",
        arg(long, env = "LOADTEST_CALIBRATION_REQUESTS", default_value_t = 20)
    )]
    pub calibration_requests: usize,
    /// The worker's metrics (queue length, pending, lag), sampled every second when set.
    #[cfg_attr(feature = "cli", arg(long, env = "LOADTEST_WORKER_METRICS_URL"))]
    pub worker_metrics_url: Option<String>,
    /// Breakpoint search: users of the first step, users added per step, seconds per step,
    /// and the most steps.
    #[cfg_attr(
        feature = "cli",
        arg(long, env = "LOADTEST_START_USERS", default_value_t = 10)
    )]
    pub start_users: usize,
    #[cfg_attr(
        feature = "cli",
        arg(long, env = "LOADTEST_STEP_USERS", default_value_t = 10)
    )]
    pub step_users: usize,
    #[cfg_attr(
        feature = "cli",
        arg(long, env = "LOADTEST_STEP_SECS", default_value_t = 30)
    )]
    pub step_secs: u64,
    #[cfg_attr(
        feature = "cli",
        arg(long, env = "LOADTEST_MAX_STEPS", default_value_t = 10)
    )]
    pub max_steps: usize,
    /// The experiment this run belongs to, its side, and the settings that side sets
    /// (`NAME=value,NAME=value`): written into run.json for the report to pair runs.
    #[cfg_attr(feature = "cli", arg(long, env = "LOADTEST_EXPERIMENT"))]
    pub experiment: Option<String>,
    #[cfg_attr(feature = "cli", arg(long, env = "LOADTEST_EXPERIMENT_SIDE"))]
    pub experiment_side: Option<String>,
    #[cfg_attr(
        feature = "cli",
        arg(
            long,
            env = "LOADTEST_EXPERIMENT_SETTINGS",
            default_value = "",
            value_parser = settings_map
        )
    )]
    pub experiment_settings: BTreeMap<String, String>,
    /// Users before and after the `wave` profile's peak.
    #[cfg_attr(
        feature = "cli",
        arg(long, env = "LOADTEST_LOW_USERS", default_value_t = 20)
    )]
    pub low_users: usize,
    /// How long to wait for the target to answer /health before giving up.
    #[cfg_attr(
        feature = "cli",
        arg(long, env = "LOADTEST_READY_TIMEOUT_SECS", default_value_t = 60)
    )]
    pub ready_timeout_secs: u64,
    /// The `open` profile's requests per second, across every generator.
    #[cfg_attr(
        feature = "cli",
        arg(long, env = "LOADTEST_ARRIVAL_RATE", default_value_t = 100.0)
    )]
    pub arrival_rate: f64,
    /// The `open` profile's rate at the end of the run: from ARRIVAL_RATE, it ramps linearly
    /// to this (k6's ramping-arrival-rate).
    #[cfg_attr(feature = "cli", arg(long, env = "LOADTEST_TARGET_ARRIVAL_RATE"))]
    #[serde(default)]
    pub target_arrival_rate: Option<f64>,
    /// The `open` profile's spacing of arrivals: constant, or poisson (seeded by ARRIVAL_SEED).
    #[cfg_attr(
        feature = "cli",
        arg(
            long,
            env = "LOADTEST_ARRIVALS",
            value_enum,
            default_value = "constant"
        )
    )]
    #[serde(default = "constant")]
    pub arrivals: Spacing,
    #[cfg_attr(
        feature = "cli",
        arg(long, env = "LOADTEST_ARRIVAL_SEED", default_value_t = 1)
    )]
    #[serde(default = "one")]
    pub arrival_seed: u64,
    /// The `open` profile's requests in flight at most, across every generator (default: ten
    /// seconds of arrivals, from 100 to 2,000): an arrival that finds them all unanswered is
    /// dropped and counted, never silently skipped.
    #[cfg_attr(feature = "cli", arg(long, env = "LOADTEST_MAX_IN_FLIGHT"))]
    #[serde(default)]
    pub max_in_flight: Option<usize>,
    /// Load generators of the run (the lab starts one process each), and which one this is:
    /// each takes its share of the users and the rates; the first samples the stack and
    /// calibrates, every one keeps its request log for the merge (`loadtest merge DIR`).
    #[cfg_attr(
        feature = "cli",
        arg(long, env = "LOADTEST_GENERATORS", default_value_t = 1)
    )]
    pub generators: usize,
    #[cfg_attr(
        feature = "cli",
        arg(long, env = "LOADTEST_GENERATOR_INDEX", default_value_t = 0)
    )]
    pub generator_index: usize,
    /// Wall-clock start of the load (Unix milliseconds), the same for every generator.
    #[cfg_attr(feature = "cli", arg(long, env = "LOADTEST_START_AT_MS"))]
    pub start_at_ms: Option<u64>,
    /// The CPUs this generator is pinned to, and the sentence saying where generators and
    /// stack run (the lab sets both).
    #[cfg_attr(feature = "cli", arg(long, env = "LOADTEST_GENERATOR_CPUS"))]
    pub generator_cpus: Option<String>,
    #[cfg_attr(feature = "cli", arg(long, env = "LOADTEST_GENERATOR_PINNING"))]
    pub generator_pinning: Option<String>,
}

/// Generator `index`'s share of `total` when `of` generators split it: the shares differ
/// by at most one and sum to the total.
pub fn share(total: usize, index: usize, of: usize) -> usize {
    let of = of.max(1);
    total * (index + 1) / of - total * index / of
}

/// The load a run applies, after the profile's defaults and the overrides.
pub use crate::record::Load;

impl Plan {
    /// Each user's think time after each iteration, `[min, max]` ms; none when NO_THINK is
    /// set or in the open model, whose pace is the throttle's.
    pub fn think_ms(&self) -> Option<[u64; 2]> {
        (!self.no_think && self.profile != Profile::Open)
            .then_some([self.think_min_ms, self.think_max_ms])
    }

    pub fn load(&self) -> Load {
        let (users, duration_secs) = match self.profile {
            Profile::Classic => (1000, 60),
            Profile::Warmup => (10, 10),
            Profile::Burst | Profile::Ramp => (100, 30),
            Profile::Stages => (100, 300),
            Profile::Wave => (300, 120),
            Profile::Breakpoint => (self.start_users, self.step_secs),
            // A user per request in flight: each takes the next arrival when it is free.
            Profile::Open => (self.max_in_flight(), 60),
        };
        // The open model's users are its request slots (MAX_IN_FLIGHT), not USERS.
        let users = match self.profile {
            Profile::Open => users,
            _ => self.users.unwrap_or(users),
        }
        .max(1);
        let duration_secs = self.duration_secs.unwrap_or(duration_secs).max(1);
        let rate = self.rate.unwrap_or(match self.profile {
            Profile::Classic => 100.0,
            Profile::Warmup => 10.0,
            Profile::Burst => users as f64,
            // Everyone started by half time, then held.
            Profile::Ramp => (users as f64 / (duration_secs as f64 / 2.0)).max(0.1),
            // Each step starts its users within about 5 s, then holds them.
            // (or the first half of a shorter step).
            Profile::Breakpoint => (users as f64 / 5.0f64.min(duration_secs as f64 / 2.0)).max(1.0),
            Profile::Stages => {
                let (up, _, _) = stage_secs(duration_secs);
                users as f64 / up as f64
            }
            Profile::Wave => {
                let [_, up, ..] = wave_secs(duration_secs);
                users.saturating_sub(self.low_users) as f64 / up as f64
            }
            // Every user within a quarter of a second: the schedule sets the pace, not them.
            Profile::Open => users as f64 * 4.0,
        });
        let of = self.generators.max(1);
        let ramp_secs = match self.profile {
            Profile::Stages => stage_secs(duration_secs).0 as f64,
            // The low users start within the wave's first 2 s.
            Profile::Wave => 2.0f64.min(duration_secs as f64),
            _ => users as f64 / rate,
        };
        Load {
            users: share(users, self.generator_index, of).max(1),
            rate: rate / of as f64,
            duration_secs,
            ramp_secs,
        }
    }

    /// `DURATION_SECS` is the whole load's length, the users' start included: a plan whose
    /// users cannot all start in it, with a second left to hold them, is one line.
    pub fn check(&self) -> Result<(), String> {
        let load = self.load();
        if load.rate.is_nan() || load.rate <= 0.0 {
            return Err(format!(
                "RATE must be above 0 users per second, not {}",
                load.rate
            ));
        }
        if !matches!(self.profile, Profile::Stages | Profile::Wave)
            && load.ramp_secs + 1.0 > load.duration_secs as f64
        {
            // The whole plan's users, not this generator's share of them.
            let total = Plan {
                generators: 1,
                generator_index: 0,
                ..self.clone()
            }
            .load()
            .users;
            return Err(format!(
                "{total} users at +{}/s take {:.1} s to start, but DURATION_SECS ({} s) is the whole run, their start included: raise RATE or DURATION_SECS",
                load.rate * self.generators.max(1) as f64,
                load.ramp_secs,
                load.duration_secs
            ));
        }
        Ok(())
    }

    /// The open model's requests in flight at most, across every generator: MAX_IN_FLIGHT,
    /// else ten seconds of the highest arrival rate, from 100 to 2,000.
    pub fn max_in_flight(&self) -> usize {
        self.max_in_flight.unwrap_or_else(|| {
            let rate = self
                .arrival_rate
                .max(self.target_arrival_rate.unwrap_or(0.0));
            (rate * 10.0).ceil().clamp(100.0, 2000.0) as usize
        })
    }

    /// The load model this run uses.
    pub fn model(&self) -> crate::record::LoadModel {
        if self.profile == Profile::Open {
            crate::record::LoadModel {
                kind: "open".into(),
                arrival_rate: Some(self.arrival_rate),
                target_arrival_rate: self.target_arrival_rate,
                spacing: serde_json::to_value(self.arrivals)
                    .ok()
                    .and_then(|v| v.as_str().map(String::from)),
                seed: (self.arrivals == Spacing::Poisson).then_some(self.arrival_seed),
                max_in_flight: Some(self.max_in_flight()),
                latency_from: Some("intended send".into()),
            }
        } else {
            crate::record::LoadModel {
                kind: "closed".into(),
                latency_from: Some("send".into()),
                ..Default::default()
            }
        }
    }

    /// Whether this process is the first (or only) generator: it samples the stack.
    pub fn leads(&self) -> bool {
        self.generator_index == 0
    }

    pub fn experiment(&self) -> Option<crate::record::Experiment> {
        let name = self.experiment.clone().filter(|n| !n.is_empty())?;
        Some(crate::record::Experiment {
            name,
            side: self.experiment_side.clone().unwrap_or_default(),
            settings: self.experiment_settings.clone(),
        })
    }

    pub fn run_id(&self) -> String {
        self.run_id.clone().unwrap_or_else(|| {
            let gateways = self.gateways.map(|g| format!("-{g}gw")).unwrap_or_default();
            format!(
                "{}-{}{}",
                crate::time::utc_stamp(),
                serde_json::to_value(self.scenario)
                    .ok()
                    .and_then(|v| v.as_str().map(String::from))
                    .unwrap_or_default(),
                gateways
            )
        })
    }
}

/// Ramp-up, hold and ramp-down seconds of the `stages` profile.
pub fn stage_secs(duration_secs: u64) -> (u64, u64, u64) {
    let up = (duration_secs / 5).max(1);
    let down = up;
    (up, duration_secs.saturating_sub(up + down).max(1), down)
}

/// The `wave` profile's phases in seconds: low, rise, peak, fall, low again.
pub fn wave_secs(duration_secs: u64) -> [u64; 5] {
    let part = |pct: u64| (duration_secs * pct / 100).max(1);
    let [low, rise, peak, fall] = [part(10), part(10), part(30), part(5)];
    [
        low,
        rise,
        peak,
        fall,
        duration_secs
            .saturating_sub(low + rise + peak + fall)
            .max(1),
    ]
}

impl Plan {
    /// The SLA's rules: `SLA` when set, else p95 below SLA_P95_MS and errors at most
    /// SLA_ERROR_PCT. A bad rule is one line, before anything runs.
    pub fn sla_rules(&self) -> Result<Vec<crate::sla::Rule>, String> {
        match self.sla.as_deref().filter(|s| !s.trim().is_empty()) {
            Some(text) => crate::sla::parse(text),
            None => Ok(crate::sla::defaults(
                self.sla_p95_ms as f64,
                self.sla_error_pct,
            )),
        }
    }
}

mod file;
pub use file::{unused, FILE};
