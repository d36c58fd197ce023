//! scalelab's load generator: Goose scenarios (`hit`, `miss`, `mixed`, `login`) under named
//! load profiles, with an SLA of rules (`records::sla`) judged on the run's record, and a complete record of each run
//! in `tests/results/<run-id>/`: Goose's own HTML/JSON/Markdown reports (with per-second
//! graph data), `run.json`, and the load balancer's counters sampled every second.

pub mod ahead;
pub mod arrivals;
pub mod breakpoint;
pub mod calibrate;
pub mod dispatch;
pub mod ended;
pub mod http1;
pub mod merge;
pub mod open_files;
pub mod record;
pub mod scenarios;
pub mod tally;

use goose::config::GooseConfiguration;
use goose::prelude::*;
use std::path::PathBuf;
use std::time::{Duration, Instant};

pub use records::load::{Profile, Scenario};

pub use records::plan::{share, stage_secs, wave_secs, Load, Plan as Options, FILE as PLAN_FILE};

/// Waits until the target answers `/health`; a clear error naming the URL otherwise.
pub async fn wait_ready(target: &str, limit: Duration) -> anyhow::Result<()> {
    let client = probe::client::client(Duration::from_secs(2));
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
        // DURATION_SECS is the whole load: Goose holds the users for the rest of it once
        // they have started (its --run-time counts from the last user's start). The open
        // model's users serve the schedule, which ends the load: they stay two seconds
        // more, for the last arrivals.
        let hold = if options.profile == Profile::Open {
            load.duration_secs + 2
        } else {
            load.hold_secs()
        };
        args.extend([
            "--users".into(),
            load.users.to_string(),
            "--increase-rate".into(),
            load.rate.to_string(),
            "--run-time".into(),
            format!("{hold}s"),
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
        // The scenarios write the request log themselves (scenarios::log_request), and no
        // transaction or scenario is read from Goose's metrics: only its requests.
        "--no-transaction-metrics".into(),
        "--no-scenario-metrics".into(),
        // Goose's own client sends nothing (the users send on their own connections): no
        // decoder for it either.
        "--no-gzip".into(),
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
pub fn print_verdict(run: &records::record::RunRecord) {
    let verdicts: Vec<String> = run.sla.rules.iter().map(|c| c.line()).collect();
    if run.sla.met == Some(true) {
        eprintln!("loadtest: SLA met: {}", verdicts.join("; "));
    } else {
        eprintln!("loadtest: SLA missed: {}", run.sla.failed_rules.join("; "));
    }
}

/// Makes a run folder: a new one, or the one the lab made for the run's plan (holding
/// nothing else). Any other existing folder is refused: a run never overwrites another.
pub fn fresh_folder(dir: &std::path::Path) -> anyhow::Result<()> {
    if !records::plan::unused(dir) {
        anyhow::bail!("{} already exists: choose another RUN_ID", dir.display());
    }
    std::fs::create_dir_all(dir)?;
    Ok(())
}

/// Runs the load test the options ask for and writes its record. Returns the run's folder
/// (for a breakpoint search, the folder holding `breakpoint.json`).
pub async fn run(mut options: Options) -> anyhow::Result<PathBuf> {
    options.fix_run_id();
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
    options.check().map_err(anyhow::Error::msg)?;
    // The users connect to the target themselves (http1): a URL they cannot use is refused
    // here, before waiting for it.
    scenarios::configure(&options)?;
    let several = options.generators > 1;
    let rules = options.sla_rules().map_err(anyhow::Error::msg)?;
    open_files::ensure(options.load().users)?;
    wait_ready(
        &options.target,
        Duration::from_secs(options.ready_timeout_secs),
    )
    .await?;
    let load = options.load();
    let dir = options.run_folder();
    fresh_folder(&dir)?;
    options
        .write(&dir.join(PLAN_FILE))
        .map_err(anyhow::Error::msg)?;

    let lb_base = options
        .lb_metrics_url
        .trim_end_matches("/metrics")
        .to_string();
    let http = probe::client::client(Duration::from_secs(2));
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
    // The lab users' logins too, before the sampler and the load (every generator its own).
    ahead::log_in(&options).await?;
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
    let cpu_before = probe::host::process_cpu_seconds();
    let started = record::utc_now();
    let log = dir.join("requests.json");
    if options.keep_request_log {
        ended::open_request_log(&log)?;
    }
    let clock = dispatch::start_clock(options.start_at_ms);
    let open = options.profile == Profile::Open;
    ended::open_tally(open, clock.unix);
    let schedule = open
        .then(|| arrivals::Schedule::of(&options))
        .transpose()
        .map_err(anyhow::Error::msg)?;
    let dispatcher = schedule.clone().map(|schedule| {
        dispatch::open(load.users);
        dispatch::Dispatcher::start(schedule, clock, ended::count_dropped)
    });

    // The think time is the scenarios' own (scenarios::think), not Goose's wait time: Goose
    // sleeps it in half-second steps, a quarter of its CPU per request (BENCHMARKS.md, "The
    // load generator's cost").
    let scenario = scenarios::scenario(options.scenario);
    // The users send on their own connections (scenarios::send), not through Goose's
    // client; Goose still builds one, here one for every user instead of its default of a
    // client per user, which cost about 1.5 ms of CPU each (BENCHMARKS.md, "The load
    // generator's cost").
    let attack = GooseAttack::initialize_with_config(goose_config(&options, &load, &dir)?)?
        .set_client_builder_without_cookies(
            goose::client::GooseClientBuilder::new().without_cookies(),
        )?
        .register_scenario(scenario);
    // No Goose thresholds: the SLA is judged on the run's record (records::sla).
    let metrics = attack
        .execute()
        .await
        .map_err(|e| anyhow::anyhow!("the load test failed: {e:?}"))?;
    if let Some(dispatcher) = dispatcher {
        dispatcher.stop();
    }
    dispatch::close();
    let (mut dispatched, left) = dispatch::finish();
    for intended_us in left {
        ended::count_dropped(intended_us);
    }
    // Arrivals the dispatcher never reached (the run ended first, a generator too slow for its
    // schedule) are dropped too: the schedule is accounted for in full.
    if let Some(schedule) = &schedule {
        let reached = (dispatched.handed + dispatched.dropped) as usize;
        for at in schedule.intended().skip(reached) {
            ended::count_dropped((dispatch::LEAD + at).as_micros() as u64);
            dispatched.dropped += 1;
        }
    }
    ended::close_request_log()?;
    let tally = ended::take_tally().expect("opened above");
    let ended = record::utc_now();
    let cpu_seconds = probe::host::process_cpu_seconds() - cpu_before;
    if several && options.leads() {
        // The stack is sampled until every generator's load has ended.
        merge::wait_for_parts(&dir, options.generators, Duration::from_secs(60)).await;
    }
    let server = match sampler {
        Some(s) => s.stop().await,
        None => Vec::new(),
    };
    let mut series = tally.per_second();
    if let Some((_, elapsed_ms)) = scenarios::first_login_at() {
        series.first_login_ms = Some(elapsed_ms);
    }
    std::fs::write(
        dir.join("latency_per_second.json"),
        serde_json::to_string(&series)?,
    )?;
    // Several generators' tallies are merged into the run's (`loadtest merge`).
    tally.write(&dir)?;
    let arrivals =
        schedule.map(|s| record::arrivals(&tally, s.intended().count() as u64, dispatched.handed));
    let outcome = record::Outcome {
        server,
        stack,
        calibration,
        generator_cpu_seconds: cpu_seconds,
        started,
        ended,
        window_secs: series.window_secs(),
        tally,
        arrivals,
    };
    let mut run = record::run_record(&dir, &options, &load, &metrics, outcome);
    records::sla::judge(&mut run, &rules);
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
    use clap::Parser;

    #[test]
    fn every_option_is_read_from_a_prefixed_name_the_lab_knows() {
        use clap::CommandFactory;
        let mut read: Vec<String> = Options::command()
            .get_arguments()
            .filter_map(|a| a.get_env())
            .map(|e| e.to_string_lossy().into_owned())
            .filter(|e| e.starts_with(records::load::ENV_PREFIX))
            .collect();
        let mut known: Vec<String> = records::load::ENV_NAMES
            .iter()
            .map(|n| format!("{}{n}", records::load::ENV_PREFIX))
            .collect();
        read.sort();
        known.sort();
        assert_eq!(read, known);
        // Nothing else unprefixed, but the lab users the services share.
        let other: Vec<String> = Options::command()
            .get_arguments()
            .filter_map(|a| a.get_env())
            .map(|e| e.to_string_lossy().into_owned())
            .filter(|e| !e.starts_with(records::load::ENV_PREFIX))
            .collect();
        assert_eq!(other, vec!["LAB_USERS", "LAB_PASSWORD"]);
    }

    /// The value Goose's command line gives `name`.
    fn flag<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
        let at = args.iter().position(|a| a == name)?;
        args.get(at + 1).map(String::as_str)
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
        assert_eq!(
            flag(&args, "--test-plan"),
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
                duration_secs: 60,
                ramp_secs: 10.0,
            }
        );
        assert_eq!(
            load(Profile::Warmup),
            Load {
                users: 10,
                rate: 10.0,
                duration_secs: 10,
                ramp_secs: 1.0,
            }
        );
        assert_eq!(
            load(Profile::Burst),
            Load {
                users: 100,
                rate: 100.0,
                duration_secs: 30,
                ramp_secs: 1.0,
            }
        );
        // Ramp: every user started by half time.
        assert_eq!(
            load(Profile::Ramp),
            Load {
                users: 100,
                rate: 100.0 / 15.0,
                duration_secs: 30,
                ramp_secs: 100.0 / (100.0 / 15.0),
            }
        );
        assert_eq!(stage_secs(300), (60, 180, 60));
        assert_eq!(stage_secs(3), (1, 1, 1));
    }

    #[test]
    fn generators_share_users_and_rates_and_the_open_model_its_request_slots() {
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
        // Ten seconds of 150 req/s in flight at most, a user each; half of them here, all
        // started within a quarter of a second, held two seconds past the schedule.
        assert_eq!(o.max_in_flight(), 1500);
        assert_eq!(o.load().users, 750);
        assert_eq!(o.load().rate, 1500.0 * 4.0 / 2.0);
        let model = o.model();
        assert_eq!(model.kind, "open");
        assert_eq!(model.max_in_flight, Some(1500));
        assert_eq!(model.latency_from.as_deref(), Some("intended send"));
        let args = goose_args(&o, &o.load(), std::path::Path::new("/tmp/x"));
        assert_eq!(flag(&args, "--run-time"), Some("62s"));
        // Goose paces nothing: no throttle, and no mitigation claimed.
        assert!(!args
            .iter()
            .any(|a| a.contains("throttle") || a.contains("co-mitigation")));
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
                duration_secs: 5,
                ramp_secs: 1.0,
            }
        );
    }

    /// Goose counts `--run-time` from the last user's start: it gets the rest of the run.
    #[test]
    fn goose_holds_the_users_for_the_rest_of_the_duration() {
        let o = Options::try_parse_from([
            "loadtest",
            "--users",
            "300",
            "--rate",
            "100",
            "--duration-secs",
            "23",
        ])
        .unwrap();
        let args = goose_args(&o, &o.load(), std::path::Path::new("/tmp/x"));
        assert_eq!(flag(&args, "--run-time"), Some("20s"));
        assert_eq!(flag(&args, "--increase-rate"), Some("100"));
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
