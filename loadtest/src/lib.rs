//! scalelab's load generator: Goose scenarios (`hit`, `miss`, `mixed`, `login`) under named
//! load profiles, with an SLA of rules (`common::sla`) judged on the run's record, and a complete record of each run
//! in `tests/results/<run-id>/`: Goose's own HTML/JSON/Markdown reports (with per-second
//! graph data), `run.json`, and the load balancer's counters sampled every second.

pub mod breakpoint;
pub mod calibrate;
pub mod latency;
pub mod merge;
pub mod open_files;
pub mod record;
pub mod scenarios;

use clap::Parser;
use goose::config::GooseConfiguration;
use goose::prelude::*;
use serde::Serialize;
use std::path::PathBuf;
use std::time::{Duration, Instant};

pub use common::load::{Profile, Scenario};

#[derive(Debug, Clone, Parser, Serialize)]
#[command(
    version,
    name = "loadtest",
    about = "Drive scalelab with Goose and record the run"
)]
pub struct Options {
    #[arg(long, env = "LOADTEST_SCENARIO", value_enum, default_value = "hit")]
    pub scenario: Scenario,
    #[arg(long, env = "LOADTEST_PROFILE", value_enum, default_value = "classic")]
    pub profile: Profile,
    /// Users (overrides the profile's).
    #[arg(long, env = "LOADTEST_USERS")]
    pub users: Option<usize>,
    /// Users started per second (overrides the profile's).
    #[arg(long, env = "LOADTEST_RATE")]
    pub rate: Option<f64>,
    /// Run time in seconds (overrides the profile's).
    #[arg(long, env = "LOADTEST_DURATION_SECS")]
    pub duration_secs: Option<u64>,
    /// Where the load goes: the load balancer by default.
    #[arg(
        long,
        env = "LOADTEST_TARGET_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    pub target: String,
    /// The load balancer's metrics, sampled every second.
    #[arg(
        long,
        env = "LOADTEST_LB_METRICS_URL",
        default_value = "http://127.0.0.1:9100/metrics"
    )]
    pub lb_metrics_url: String,
    #[arg(long, env = "LOADTEST_RESULTS_DIR", default_value = "tests/results")]
    pub results_dir: PathBuf,
    /// Folder name of this run (default: UTC time, scenario, gateways).
    #[arg(long, env = "LOADTEST_RUN_ID")]
    pub run_id: Option<String>,
    /// Think time between iterations, each user, drawn from [min, max].
    #[arg(long, env = "LOADTEST_THINK_MIN_MS", default_value_t = 1000)]
    pub think_min_ms: u64,
    #[arg(long, env = "LOADTEST_THINK_MAX_MS", default_value_t = 2000)]
    pub think_max_ms: u64,
    /// No think time: each user sends its next request as soon as it has an answer.
    #[arg(long, env = "LOADTEST_NO_THINK")]
    pub no_think: bool,
    /// Keys of the `mixed` scenario.
    #[arg(long, env = "LOADTEST_KEY_SPACE", default_value_t = 1000)]
    pub key_space: u64,
    /// Skew of the `mixed` scenario's keys (0 = uniform, 1 = Zipf-like).
    #[arg(long, env = "LOADTEST_ZIPF_S", default_value_t = 1.0)]
    pub zipf_s: f64,
    /// Lab users to log in as (user1..userN) and their password.
    #[command(flatten)]
    #[serde(flatten)]
    pub lab: common::config::LabUsers,
    /// SLA: 95th percentile response time.
    #[arg(long, env = "LOADTEST_SLA_P95_MS", default_value_t = 500)]
    pub sla_p95_ms: u64,
    /// SLA: highest error rate, in percent.
    #[arg(long, env = "LOADTEST_SLA_ERROR_PCT", default_value_t = 1.0)]
    pub sla_error_pct: f64,
    /// SLA rules, k6-style, comma-separated: p50/p95/p99/avg/max below a latency (ms or s),
    /// error below a percentage, rps at least a rate, each optionally for one route
    /// (`p95<500ms,error<1%,rps>=100,GET /data:p99<1s`). Default: p95 below SLA_P95_MS and
    /// errors at most SLA_ERROR_PCT. Checked on the run's record; each verdict is in run.json.
    #[arg(long, env = "LOADTEST_SLA")]
    pub sla: Option<String>,
    /// Labels written into run.json: how the stack runs and with how many gateways.
    #[arg(long, env = "LOADTEST_RUNTIME", default_value = "unknown")]
    pub runtime: String,
    #[arg(long, env = "LOADTEST_GATEWAYS")]
    pub gateways: Option<u32>,
    /// Simulated work each long task asks the worker for.
    #[arg(long, env = "LOADTEST_LONGTASK_MS", default_value_t = 500)]
    pub longtask_ms: u64,
    /// How often a user polls its task's status.
    #[arg(long, env = "LOADTEST_POLL_MS", default_value_t = 250)]
    pub poll_ms: u64,
    /// A task not finished after this long counts as timed out.
    #[arg(long, env = "LOADTEST_LONGTASK_TIMEOUT_SECS", default_value_t = 60)]
    pub longtask_timeout_secs: u64,
    /// The microservice's base URL, for its `/config` (default: the one the gateways use,
    /// which the host cannot always reach: a compose service name).
    #[arg(long, env = "LOADTEST_MICROSERVICE_URL")]
    pub microservice_url: Option<String>,
    /// Keep Goose's per-request log (`requests.json`, a line per request) in the run folder;
    /// by default it is reduced to `latency_per_second.json` and removed.
    #[arg(long, env = "LOADTEST_KEEP_REQUEST_LOG")]
    pub keep_request_log: bool,
    /// Requests sent one at a time before the load (for `hit` and `miss`) to measure the
    /// service time at low load, which the report's predictions use; 0 skips it.
    #[arg(long, env = "LOADTEST_CALIBRATION_REQUESTS", default_value_t = 20)]
    pub calibration_requests: usize,
    /// The worker's metrics (queue length, pending, lag), sampled every second when set.
    #[arg(long, env = "LOADTEST_WORKER_METRICS_URL")]
    pub worker_metrics_url: Option<String>,
    /// Breakpoint search: users of the first step, users added per step, seconds per step,
    /// and the most steps.
    #[arg(long, env = "LOADTEST_START_USERS", default_value_t = 10)]
    pub start_users: usize,
    #[arg(long, env = "LOADTEST_STEP_USERS", default_value_t = 10)]
    pub step_users: usize,
    #[arg(long, env = "LOADTEST_STEP_SECS", default_value_t = 30)]
    pub step_secs: u64,
    #[arg(long, env = "LOADTEST_MAX_STEPS", default_value_t = 10)]
    pub max_steps: usize,
    /// The experiment this run belongs to, its side, and the settings that side sets
    /// (`NAME=value,NAME=value`): written into run.json for the report to pair runs.
    #[arg(long, env = "LOADTEST_EXPERIMENT")]
    pub experiment: Option<String>,
    #[arg(long, env = "LOADTEST_EXPERIMENT_SIDE")]
    pub experiment_side: Option<String>,
    #[arg(long, env = "LOADTEST_EXPERIMENT_SETTINGS", default_value = "")]
    pub experiment_settings: String,
    /// Users before and after the `wave` profile's peak.
    #[arg(long, env = "LOADTEST_LOW_USERS", default_value_t = 20)]
    pub low_users: usize,
    /// How long to wait for the target to answer /health before giving up.
    #[arg(long, env = "LOADTEST_READY_TIMEOUT_SECS", default_value_t = 60)]
    pub ready_timeout_secs: u64,
    /// The `open` profile's requests per second, across every generator.
    #[arg(long, env = "LOADTEST_ARRIVAL_RATE", default_value_t = 100.0)]
    pub arrival_rate: f64,
    /// Load generators of the run (the lab starts one process each), and which one this is:
    /// each takes its share of the users and the rates; the first samples the stack and
    /// calibrates, every one keeps its request log for the merge (`loadtest merge DIR`).
    #[arg(long, env = "LOADTEST_GENERATORS", default_value_t = 1)]
    pub generators: usize,
    #[arg(long, env = "LOADTEST_GENERATOR_INDEX", default_value_t = 0)]
    pub generator_index: usize,
    /// Wall-clock start of the load (Unix milliseconds), the same for every generator.
    #[arg(long, env = "LOADTEST_START_AT_MS")]
    pub start_at_ms: Option<u64>,
    /// The CPUs this generator is pinned to, and the sentence saying where generators and
    /// stack run (the lab sets both).
    #[arg(long, env = "LOADTEST_GENERATOR_CPUS")]
    pub generator_cpus: Option<String>,
    #[arg(long, env = "LOADTEST_GENERATOR_PINNING")]
    pub generator_pinning: Option<String>,
}

/// Generator `index`'s share of `total` when `of` generators split it: the shares differ
/// by at most one and sum to the total.
pub fn share(total: usize, index: usize, of: usize) -> usize {
    let of = of.max(1);
    total * (index + 1) / of - total * index / of
}

/// The load a run applies, after the profile's defaults and the overrides.
pub use common::record::Load;

impl Options {
    pub fn load(&self) -> Load {
        let (users, duration_secs) = match self.profile {
            Profile::Classic => (1000, 60),
            Profile::Warmup => (10, 10),
            Profile::Burst | Profile::Ramp => (100, 30),
            Profile::Stages => (100, 300),
            Profile::Wave => (300, 120),
            Profile::Breakpoint => (self.start_users, self.step_secs),
            // Enough users that the arrival rate is kept while answers take up to 2 s.
            Profile::Open => ((self.arrival_rate * 2.0).ceil().max(10.0) as usize, 60),
        };
        let users = self.users.unwrap_or(users).max(1);
        let duration_secs = self.duration_secs.unwrap_or(duration_secs).max(1);
        let rate = self.rate.unwrap_or(match self.profile {
            Profile::Classic => 100.0,
            Profile::Warmup => 10.0,
            Profile::Burst => users as f64,
            // Everyone started by half time, then held.
            Profile::Ramp => (users as f64 / (duration_secs as f64 / 2.0)).max(0.1),
            // Each step starts its users within about 5 s, then holds them.
            Profile::Breakpoint => (users as f64 / 5.0).max(1.0),
            Profile::Stages => {
                let (up, _, _) = stage_secs(duration_secs);
                users as f64 / up as f64
            }
            Profile::Wave => {
                let [_, up, ..] = wave_secs(duration_secs);
                users.saturating_sub(self.low_users) as f64 / up as f64
            }
            // Every user within the first second: the throttle sets the pace, not them.
            Profile::Open => users as f64,
        });
        let of = self.generators.max(1);
        Load {
            users: share(users, self.generator_index, of).max(1),
            rate: rate / of as f64,
            duration_secs,
        }
    }

    /// This generator's requests per second under the open model (Goose's throttle takes
    /// whole requests per second).
    pub fn throttle(&self) -> usize {
        let of = self.generators.max(1) as f64;
        (self.arrival_rate / of).round().max(1.0) as usize
    }

    /// The load model this run uses.
    pub fn model(&self) -> common::record::LoadModel {
        if self.profile == Profile::Open {
            common::record::LoadModel {
                kind: "open".into(),
                arrival_rate: Some(self.arrival_rate),
                co_mitigation: Some("average".into()),
            }
        } else {
            common::record::LoadModel {
                kind: "closed".into(),
                ..Default::default()
            }
        }
    }

    /// Whether this process is the first (or only) generator: it samples the stack.
    pub fn leads(&self) -> bool {
        self.generator_index == 0
    }

    pub fn experiment(&self) -> Option<common::record::Experiment> {
        let name = self.experiment.clone().filter(|n| !n.is_empty())?;
        Some(common::record::Experiment {
            name,
            side: self.experiment_side.clone().unwrap_or_default(),
            settings: self
                .experiment_settings
                .split(',')
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                .collect(),
        })
    }

    pub fn run_id(&self) -> String {
        self.run_id.clone().unwrap_or_else(|| {
            let gateways = self.gateways.map(|g| format!("-{g}gw")).unwrap_or_default();
            format!(
                "{}-{}{}",
                record::utc_stamp(),
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

/// Waits until the target answers `/health`; a clear error naming the URL otherwise.
pub async fn wait_ready(target: &str, limit: Duration) -> anyhow::Result<()> {
    let client = common::http::client(Duration::from_secs(2));
    let url = format!("{}/health", target.trim_end_matches('/'));
    let deadline = Instant::now() + limit;
    loop {
        if let Ok(resp) = client.get(&url).send().await {
            if resp.status().is_success() {
                return Ok(());
            }
        }
        if Instant::now() >= deadline {
            anyhow::bail!(
                "the target {url} did not answer within {} s; start the stack first (make up, or the services by hand as the README shows)",
                limit.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Goose's own configuration, from the command line it would accept.
fn goose_config(
    options: &Options,
    load: &Load,
    dir: &std::path::Path,
) -> anyhow::Result<GooseConfiguration> {
    <GooseConfiguration as clap::Parser>::try_parse_from(goose_args(options, load, dir))
        .map_err(|e| anyhow::anyhow!("goose configuration: {e}"))
}

/// The command line of Goose's configuration for a run.
fn goose_args(options: &Options, load: &Load, dir: &std::path::Path) -> Vec<String> {
    let dir = dir.display();
    let mut args: Vec<String> = vec![
        "loadtest".into(),
        "--host".into(),
        options.target.trim_end_matches('/').into(),
    ];
    if options.profile == Profile::Stages {
        let (up, hold, down) = stage_secs(load.duration_secs);
        let u = load.users;
        args.extend([
            "--test-plan".into(),
            format!("{u},{up}s;{u},{hold}s;0,{down}s"),
        ]);
    } else if options.profile == Profile::Wave {
        let [low_s, rise, peak, fall, tail] = wave_secs(load.duration_secs);
        let (low, high) = (options.low_users.min(load.users).max(1), load.users);
        // Goose ramps to each step's users over its duration: the low users start within
        // 2 s and hold, rise, hold the peak, fall and hold; a test plan ends only when its
        // last step brings the users to 0, here within the run's last second.
        args.extend([
            "--test-plan".into(),
            format!(
                "{low},2s;{low},{}s;{high},{rise}s;{high},{peak}s;{low},{fall}s;{low},{}s;0,1s",
                low_s.saturating_sub(2).max(1),
                tail.saturating_sub(1).max(1)
            ),
        ]);
    } else {
        args.extend([
            "--users".into(),
            load.users.to_string(),
            "--increase-rate".into(),
            load.rate.to_string(),
            "--run-time".into(),
            format!("{}s", load.duration_secs),
        ]);
    }
    if options.profile == Profile::Open {
        args.extend([
            "--throttle-requests".into(),
            options.throttle().to_string(),
            "--co-mitigation".into(),
            "average".into(),
        ]);
    }
    args.extend::<Vec<String>>(vec![
        "--report-file".into(),
        format!("{dir}/goose.html"),
        "--report-file".into(),
        format!("{dir}/goose.json"),
        "--report-file".into(),
        format!("{dir}/goose.md"),
        "--report-graph-data".into(),
        "--request-log".into(),
        format!("{dir}/requests.json"),
        "--request-format".into(),
        "json".into(),
        "--no-telnet".into(),
        "--quiet".into(),
    ]);
    // Count the whole run, ramp-up included, so totals match the servers' counters. A test
    // plan never resets them, and Goose refuses the option beside one.
    if !matches!(options.profile, Profile::Stages | Profile::Wave) {
        args.push("--no-reset-metrics".into());
    }
    args
}

/// `loadtest: SLA met: p95<500ms (observed 12 ms); …` or the rules it missed.
pub fn print_verdict(run: &common::record::RunRecord) {
    let verdicts: Vec<String> = run.sla.rules.iter().map(|c| c.line()).collect();
    if run.sla.met == Some(true) {
        eprintln!("loadtest: SLA met: {}", verdicts.join("; "));
    } else {
        eprintln!("loadtest: SLA missed: {}", run.sla.failed_rules.join("; "));
    }
}

impl Options {
    /// The SLA's rules: `SLA` when set, else p95 below SLA_P95_MS and errors at most
    /// SLA_ERROR_PCT. A bad rule is one line, before anything runs.
    pub fn sla_rules(&self) -> anyhow::Result<Vec<common::sla::Rule>> {
        match self.sla.as_deref().filter(|s| !s.trim().is_empty()) {
            Some(text) => common::sla::parse(text).map_err(|e| anyhow::anyhow!(e)),
            None => Ok(common::sla::defaults(
                self.sla_p95_ms as f64,
                self.sla_error_pct,
            )),
        }
    }
}

/// Runs the load test the options ask for and writes its record. Returns the run's folder
/// (for a breakpoint search, the folder holding `breakpoint.json`).
pub async fn run(options: Options) -> anyhow::Result<PathBuf> {
    if options.profile == Profile::Breakpoint {
        return breakpoint::search(options).await;
    }
    run_once(options).await
}

/// Runs one load test and writes its record. Returns the run's folder.
pub(crate) async fn run_once(options: Options) -> anyhow::Result<PathBuf> {
    if options.think_min_ms > options.think_max_ms {
        anyhow::bail!("THINK_MIN_MS must not exceed THINK_MAX_MS");
    }
    if options.generators == 0 || options.generator_index >= options.generators {
        anyhow::bail!(
            "GENERATOR_INDEX must be below GENERATORS (index {} of {})",
            options.generator_index,
            options.generators
        );
    }
    if options.profile == Profile::Open
        && !(options.arrival_rate.is_finite() && options.arrival_rate >= 1.0)
    {
        anyhow::bail!("ARRIVAL_RATE must be at least 1 request per second");
    }
    let several = options.generators > 1;
    let rules = options.sla_rules()?;
    open_files::ensure(options.load().users)?;
    wait_ready(
        &options.target,
        Duration::from_secs(options.ready_timeout_secs),
    )
    .await?;
    let load = options.load();
    let dir = options.results_dir.join(options.run_id());
    if dir.exists() {
        anyhow::bail!("{} already exists: choose another RUN_ID", dir.display());
    }
    std::fs::create_dir_all(&dir)?;

    scenarios::configure(&options);
    let lb_base = options
        .lb_metrics_url
        .trim_end_matches("/metrics")
        .to_string();
    let http = common::http::client(Duration::from_secs(2));
    let gateways = record::discover_gateways(&http, &lb_base).await;
    let stack =
        record::stack_config(&lb_base, &gateways, options.microservice_url.as_deref()).await;
    // Before the sampler starts, so the server-side counters of the run leave it out; by the
    // first generator alone, which alone samples the stack.
    let calibration = if options.leads() {
        calibrate::service_time(&options).await
    } else {
        None
    };
    let sampler = if !options.leads() {
        None
    } else {
        Some(
            record::Sampler::start(
                &options.lb_metrics_url,
                options.worker_metrics_url.clone(),
                // The lab names the microservice; else the gateways' own setting (the first of a list).
                options
                    .microservice_url
                    .clone()
                    .or_else(|| stack.gateway()?.microservice_url.clone())
                    .and_then(|u| {
                        Some(format!(
                            "{}/metrics",
                            u.split(',').next()?.trim().trim_end_matches('/')
                        ))
                    }),
                &dir,
            )
            .await?,
        )
    };
    if let Some(at) = options.start_at_ms {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis() as u64;
        tokio::time::sleep(Duration::from_millis(at.saturating_sub(now))).await;
    }
    let cpu_before = common::host::process_cpu_seconds();
    let started = record::utc_now();

    let mut scenario = scenarios::scenario(options.scenario);
    // The open model's pace is the throttle's, never a think time.
    if !options.no_think && options.profile != Profile::Open {
        scenario = scenario.set_wait_time(
            Duration::from_millis(options.think_min_ms),
            Duration::from_millis(options.think_max_ms),
        )?;
    }
    let attack = GooseAttack::initialize_with_config(goose_config(&options, &load, &dir)?)?
        .register_scenario(scenario);
    // No Goose thresholds: the SLA is judged on the run's record (common::sla).
    let metrics = attack
        .execute()
        .await
        .map_err(|e| anyhow::anyhow!("the load test failed: {e:?}"))?;
    let ended = record::utc_now();
    let cpu_seconds = common::host::process_cpu_seconds() - cpu_before;
    if several && options.leads() {
        // The stack is sampled until every generator's load has ended.
        merge::wait_for_parts(&dir, options.generators, Duration::from_secs(60)).await;
    }
    let server = match sampler {
        Some(s) => s.stop().await,
        None => Vec::new(),
    };
    // Goose has flushed its request log by the time execute() returns.
    let log = dir.join("requests.json");
    let mut series = latency::per_second(&log)?;
    series.started_at = scenarios::first_login_at()
        .zip(series.first_login_ms)
        .map(|(wall, elapsed_ms)| wall - elapsed_ms as f64 / 1000.0);
    std::fs::write(
        dir.join("latency_per_second.json"),
        serde_json::to_string(&series)?,
    )?;
    // Several generators' logs are merged into the run's percentiles.
    if !options.keep_request_log && !several {
        std::fs::remove_file(&log)?;
    }
    let outcome = record::Outcome {
        server,
        stack,
        calibration,
        generator_cpu_seconds: cpu_seconds,
        started,
        ended,
    };
    let mut run = record::run_record(&dir, &options, &load, &metrics, outcome);
    common::sla::judge(&mut run, &rules);
    // A part of a run made by several generators is judged again once merged.
    if !several {
        print_verdict(&run);
    }
    run.write(&dir)?;
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_option_is_read_from_a_prefixed_name_the_lab_knows() {
        use clap::CommandFactory;
        let mut read: Vec<String> = Options::command()
            .get_arguments()
            .filter_map(|a| a.get_env())
            .map(|e| e.to_string_lossy().into_owned())
            .filter(|e| e.starts_with(common::load::ENV_PREFIX))
            .collect();
        let mut known: Vec<String> = common::load::ENV_NAMES
            .iter()
            .map(|n| format!("{}{n}", common::load::ENV_PREFIX))
            .collect();
        read.sort();
        known.sort();
        assert_eq!(read, known);
        // Nothing else unprefixed, but the lab users the services share.
        let other: Vec<String> = Options::command()
            .get_arguments()
            .filter_map(|a| a.get_env())
            .map(|e| e.to_string_lossy().into_owned())
            .filter(|e| !e.starts_with(common::load::ENV_PREFIX))
            .collect();
        assert_eq!(other, vec!["LAB_USERS", "LAB_PASSWORD"]);
    }

    fn options(profile: Profile) -> Options {
        Options::try_parse_from([
            "loadtest",
            "--profile",
            &format!("{profile:?}").to_lowercase(),
        ])
        .unwrap()
    }

    #[test]
    fn the_wave_rises_and_falls_over_its_whole_duration() {
        assert_eq!(wave_secs(120), [12, 12, 36, 6, 54]);
        assert_eq!(wave_secs(90).iter().sum::<u64>(), 90);
        let o = options(Profile::Wave);
        assert_eq!(o.load().users, 300);
        let dir = std::path::Path::new("/tmp/x");
        let args = goose_args(&o, &o.load(), dir);
        let plan = args
            .iter()
            .position(|a| a == "--test-plan")
            .map(|i| &args[i + 1]);
        assert_eq!(
            plan.map(String::as_str),
            Some("20,2s;20,10s;300,12s;300,36s;20,6s;20,53s;0,1s")
        );
        // Goose takes it, as it does every profile's configuration (it refuses some
        // combinations only when the run starts: checked in tests/runs.rs).
        goose_config(&o, &o.load(), dir).unwrap();
    }

    #[test]
    fn profiles_have_their_documented_defaults() {
        let load = |p| options(p).load();
        assert_eq!(
            load(Profile::Classic),
            Load {
                users: 1000,
                rate: 100.0,
                duration_secs: 60
            }
        );
        assert_eq!(
            load(Profile::Warmup),
            Load {
                users: 10,
                rate: 10.0,
                duration_secs: 10
            }
        );
        assert_eq!(
            load(Profile::Burst),
            Load {
                users: 100,
                rate: 100.0,
                duration_secs: 30
            }
        );
        // Ramp: every user started by half time.
        assert_eq!(
            load(Profile::Ramp),
            Load {
                users: 100,
                rate: 100.0 / 15.0,
                duration_secs: 30
            }
        );
        assert_eq!(stage_secs(300), (60, 180, 60));
        assert_eq!(stage_secs(3), (1, 1, 1));
    }

    #[test]
    fn generators_share_users_and_rates_and_the_open_model_is_throttled() {
        for (total, of) in [(7, 2), (100, 3), (1, 1), (10, 10)] {
            let shares: Vec<usize> = (0..of).map(|i| share(total, i, of)).collect();
            assert_eq!(shares.iter().sum::<usize>(), total, "{total}/{of}");
            assert!(shares.iter().max().unwrap() - shares.iter().min().unwrap() <= 1);
        }
        let o = Options::try_parse_from([
            "loadtest",
            "--profile",
            "open",
            "--arrival-rate",
            "150",
            "--generators",
            "2",
            "--generator-index",
            "1",
        ])
        .unwrap();
        // 300 users keep 150 req/s up while answers take up to 2 s; half of each here.
        assert_eq!(o.load().users, 150);
        assert_eq!(o.throttle(), 75);
        assert_eq!(o.model().kind, "open");
        let args = goose_args(&o, &o.load(), std::path::Path::new("/tmp/x"));
        let at = |flag: &str| {
            args.iter()
                .position(|a| a == flag)
                .map(|i| args[i + 1].clone())
        };
        assert_eq!(at("--throttle-requests").as_deref(), Some("75"));
        assert_eq!(at("--co-mitigation").as_deref(), Some("average"));
        assert_eq!(options(Profile::Burst).model().kind, "closed");
    }

    #[test]
    fn overrides_win_over_the_profile() {
        let o = Options::try_parse_from([
            "loadtest",
            "--profile",
            "burst",
            "--users",
            "7",
            "--duration-secs",
            "5",
        ])
        .unwrap();
        assert_eq!(
            o.load(),
            Load {
                users: 7,
                rate: 7.0,
                duration_secs: 5
            }
        );
    }

    #[test]
    fn goose_accepts_every_profile() {
        let dir = std::env::temp_dir();
        for profile in [
            Profile::Classic,
            Profile::Warmup,
            Profile::Burst,
            Profile::Ramp,
            Profile::Stages,
            Profile::Open,
        ] {
            let o = options(profile);
            goose_config(&o, &o.load(), &dir).unwrap_or_else(|e| panic!("{profile:?}: {e}"));
        }
    }
}
