//! The tactics as A/B experiments (`make experiment NAME=index`): the same load on each side,
//! one setting flipped, nothing else. Each side starts the stack afresh with its settings,
//! runs the load, and records next to `run.json` what the stack's own counters say happened
//! (`experiment.json`): connections opened, DB time per query, hits per gateway, commits.
//! The report explains each one (`report/src/experiments.rs`).

use crate::protocol::{self, LoadSpec};
use crate::runtime::{Kind, Runtime};
use crate::settings::{Service, Settings};
use anyhow::{bail, Context};
use common::metrics::Sample;
use common::record::{CounterDelta, ExperimentRecord};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// One experiment: a question, the load, and the setting whose value differs per side.
#[derive(Debug, Clone, Copy)]
pub struct Experiment {
    pub name: &'static str,
    pub question: &'static str,
    pub scenario: &'static str,
    pub gateways: usize,
    /// The setting flipped, and its value on side A, B (, C).
    pub flipped: &'static str,
    pub values: &'static [&'static str],
    /// Settings both sides share: the conditions under which the effect shows.
    pub fixed: &'static [(&'static str, &'static str)],
    /// The load generator's own knobs for this experiment (users, task length).
    pub load: &'static [(&'static str, &'static str)],
    /// Needs a container CPU limit: only the compose runtime has one.
    pub compose_only: bool,
}

/// Every experiment, in the order `make experiments` runs them.
pub const ALL: &[Experiment] = &[
    Experiment {
        name: "index",
        question: "What does an index on the filtered column do to the slow query?",
        scenario: "miss",
        gateways: 1,
        flipped: "ITEMS_INDEX",
        values: &["false", "true"],
        // A million rows and no deliberate delay: the scan is the service time.
        fixed: &[("SEED_ROWS", "1000000"), ("DB_DELAY_MS", "0")],
        load: &[],
        compose_only: false,
    },
    Experiment {
        name: "db-pool",
        question:
            "What does a pool of open Postgres connections save over a connection per request?",
        scenario: "miss",
        gateways: 1,
        flipped: "DB_POOL_MODE",
        values: &["pooled", "per-request"],
        // Below saturation, and nothing in front of the microservice holding requests back:
        // latency shows the connect, and the connections follow the load.
        fixed: &[("MAX_IN_FLIGHT", "0"), ("DB_POOL_SIZE", "20")],
        load: &[("USERS", "100")],
        compose_only: false,
    },
    Experiment {
        name: "client-reuse",
        question:
            "What does one shared HTTP client to the microservice save over a client per request?",
        scenario: "miss",
        gateways: 1,
        flipped: "MICROSERVICE_CLIENT",
        values: &["shared", "per-request"],
        fixed: &[("MAX_IN_FLIGHT", "0"), ("DB_POOL_SIZE", "20")],
        load: &[("USERS", "100")],
        compose_only: false,
    },
    Experiment {
        name: "local-cache",
        question: "Where should a slow listing be cached: nowhere, in Redis, or in each gateway?",
        scenario: "listing",
        gateways: 3,
        flipped: "LISTING_CACHE",
        values: &["none", "redis", "local"],
        fixed: &[("LISTING_DELAY_MS", "300"), ("LISTING_TTL_SECS", "10")],
        load: &[],
        compose_only: false,
    },
    Experiment {
        name: "batch",
        question: "What does writing results in batches do to the worker's throughput?",
        scenario: "longtask",
        gateways: 1,
        flipped: "BATCH_SIZE",
        values: &["1", "20"],
        // Short tasks and many at once: the commits, not the work, bound the worker.
        fixed: &[("WORKER_CONCURRENCY", "64")],
        load: &[("LONGTASK_MS", "10"), ("POLL_MS", "250")],
        compose_only: false,
    },
    Experiment {
        name: "scale-workers",
        question: "What do 3 workers do for the queue that 1 cannot?",
        scenario: "longtask",
        gateways: 1,
        flipped: "WORKERS",
        values: &["1", "3"],
        fixed: &[("WORKER_CONCURRENCY", "4")],
        load: &[("LONGTASK_MS", "500"), ("POLL_MS", "500")],
        compose_only: false,
    },
    Experiment {
        name: "scale-microservice",
        question: "Three gateways are not 3x: what does a second microservice, the tier that binds, change?",
        scenario: "miss",
        gateways: 3,
        flipped: "MICROSERVICES",
        values: &["1", "2"],
        // A smaller pool, so that the microservice binds before the gateways do.
        fixed: &[("DB_POOL_SIZE", "5")],
        load: &[],
        compose_only: false,
    },
    Experiment {
        name: "worker-threads",
        question:
            "What do more threads per gateway do for CPU-bound work (the Node.js cluster question)?",
        scenario: "login",
        gateways: 1,
        flipped: "GATEWAY_THREADS",
        values: &["1", "0"],
        fixed: &[],
        // Logins back to back: the users offer more than any side can hash.
        load: &[("USERS", "32"), ("NO_THINK", "true")],
        compose_only: false,
    },
    Experiment {
        name: "vertical",
        question: "What does a bigger gateway (more CPU) do for CPU-bound work?",
        scenario: "login",
        gateways: 1,
        flipped: "GATEWAY_CPUS",
        values: &["0.5", "1.0"],
        fixed: &[("GATEWAY_THREADS", "0")],
        load: &[("USERS", "32"), ("NO_THINK", "true")],
        compose_only: true,
    },
];

/// An experiment's conditions as one run sets them ([`Experiment::conditions`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Conditions {
    pub fixed: Vec<(String, String)>,
    pub load: Vec<(String, String)>,
}

/// Side names: A, B, C, ….
pub fn side_name(i: usize) -> String {
    char::from(b'A' + i as u8).to_string()
}

pub fn find(name: &str) -> anyhow::Result<&'static Experiment> {
    ALL.iter().find(|e| e.name == name).with_context(|| {
        let names: Vec<&str> = ALL.iter().map(|e| e.name).collect();
        format!(
            "unknown experiment {name:?}: one of {} (NAME=...)",
            names.join(", ")
        )
    })
}

impl Experiment {
    /// What both sides share (`fixed`) and the load's knobs (`load`) as a run sets them: the
    /// table's values, except where the caller set one in the environment
    /// (`LISTING_TTL_SECS=2 make lab N=8`), so that a handout's extension changes one
    /// condition and predicts again. The flipped setting is the experiment and never yields.
    pub fn conditions(&self, env: impl Fn(&str) -> Option<String>) -> Conditions {
        let resolve = |pairs: &[(&'static str, &'static str)]| {
            pairs
                .iter()
                .map(|(k, v)| {
                    let v = env(k).filter(|v| !v.is_empty()).unwrap_or(v.to_string());
                    (k.to_string(), v)
                })
                .collect()
        };
        Conditions {
            fixed: resolve(self.fixed),
            load: resolve(self.load),
        }
    }

    /// The settings of side `i`: those in force, the fixed ones, and the flipped one.
    pub fn settings_for(
        &self,
        base: &Settings,
        i: usize,
        c: &Conditions,
    ) -> anyhow::Result<Settings> {
        let mut s = base.clone();
        for (k, v) in &c.fixed {
            s.set(k, v)?;
        }
        s.set(self.flipped, self.values[i])?;
        Ok(s)
    }

    /// What side `i` sets: the flipped setting first, then the fixed ones.
    pub fn side_settings(&self, i: usize, c: &Conditions) -> Vec<(String, String)> {
        std::iter::once((self.flipped.to_string(), self.values[i].to_string()))
            .chain(c.fixed.iter().cloned())
            .collect()
    }

    /// `NAME=value,…` of what side `i` sets, for the run record.
    pub fn settings_line(&self, i: usize, c: &Conditions) -> String {
        self.side_settings(i, c)
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    pub fn runs_in(&self, kind: Kind) -> anyhow::Result<()> {
        if self.compose_only && kind == Kind::Native {
            bail!(
                "experiment {} needs a container runtime (a CPU limit per container): run it with RUNTIME=compose or RUNTIME=swarm",
                self.name
            );
        }
        Ok(())
    }
}

/// Counters whose growth over a run the experiments read, and gauges whose peak they read.
const COUNTERS: &[&str] = &[
    "http_requests_total",
    "http_connections_accepted_total",
    "process_cpu_seconds_total",
    "db_query_duration_seconds_sum",
    "db_query_duration_seconds_count",
    "db_connections_opened_total",
    "db_connect_duration_seconds_sum",
    "db_connect_duration_seconds_count",
    "listings_total",
    "cache_requests_total",
    "listing_age_seconds_sum",
    "listing_age_seconds_count",
    "logins_total",
    "jobs_processed_total",
    "batch_size_sum",
    "batch_size_count",
    "batch_flush_duration_seconds_sum",
    "batch_flush_duration_seconds_count",
];
const GAUGES: &[&str] = &[
    "db_request_connections_open",
    "db_pool_connections",
    "http_requests_in_flight",
    "queue_lag",
];

/// The stack's `/metrics` endpoints now: every microservice and worker, and each gateway the
/// load balancer knows.
async fn endpoints(rt: &dyn Runtime) -> Vec<String> {
    let mut urls: Vec<String> = [Service::Microservice, Service::Worker]
        .into_iter()
        .flat_map(|s| rt.instance_urls(s))
        .map(|base| format!("{base}/metrics"))
        .collect();
    if let Ok(backends) = rt.load_balancer().backends().await {
        for b in backends.backends {
            urls.push(format!("http://{}/metrics", b.addr));
        }
    }
    urls
}

type Key = (String, String, String, BTreeMap<String, String>);

/// The series of interest from every endpoint, keyed by (service, instance, name, labels).
async fn read_all(client: &reqwest::Client, urls: &[String], names: &[&str]) -> BTreeMap<Key, f64> {
    let mut out = BTreeMap::new();
    for url in urls {
        let Ok(samples) = common::metrics::scrape(client, url).await else {
            continue;
        };
        for Sample {
            name,
            mut labels,
            value,
        } in samples
        {
            if !names.contains(&name.as_str()) {
                continue;
            }
            let service = labels.remove("service").unwrap_or_default();
            let instance = labels.remove("instance").unwrap_or_default();
            out.insert((service, instance, name, labels), value);
        }
    }
    out
}

fn rows(values: BTreeMap<Key, f64>) -> Vec<CounterDelta> {
    values
        .into_iter()
        .map(|((service, instance, name, labels), value)| CounterDelta {
            service,
            instance,
            name,
            labels,
            value,
        })
        .collect()
}

/// Growth from `before` to `after` (a series new in `after` grew from 0).
pub fn deltas(before: &BTreeMap<Key, f64>, after: BTreeMap<Key, f64>) -> Vec<CounterDelta> {
    rows(
        after
            .into_iter()
            .map(|(k, v)| {
                let start = before.get(&k).copied().unwrap_or(0.0);
                (k, (v - start).max(0.0))
            })
            .collect(),
    )
}

/// Runs one side's load while reading the stack's counters before, after, and its gauges
/// each second; writes `experiment.json` into the run folder.
async fn observed_run(
    rt: &mut dyn Runtime,
    bin: &Path,
    root: &Path,
    spec: &LoadSpec,
    mut record: ExperimentRecord,
) -> anyhow::Result<PathBuf> {
    let client = common::http::client(Duration::from_secs(3));
    rt.up(spec.gateways).await?;
    let urls = endpoints(rt).await;
    let before = read_all(&client, &urls, COUNTERS).await;
    let started = Instant::now();
    let (mut child, dir) = protocol::spawn_load(rt, bin, root, spec).await?;
    let mut peaks: BTreeMap<Key, f64> = BTreeMap::new();
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        for (k, v) in read_all(&client, &urls, GAUGES).await {
            let peak = peaks.entry(k).or_insert(v);
            *peak = peak.max(v);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    if !status.success() {
        bail!("the load test failed ({status})");
    }
    let after = read_all(&client, &urls, COUNTERS).await;
    record.seconds = started.elapsed().as_secs_f64();
    record.counters = deltas(&before, after);
    record.peaks = rows(peaks);
    if record.name == "index" {
        let url = format!("{}/explain/hot", rt.endpoints().microservice);
        record.query_plan = match client.get(&url).send().await {
            Ok(r) if r.status().is_success() => r.json().await.ok(),
            _ => None,
        };
    }
    std::fs::write(
        dir.join(ExperimentRecord::FILE),
        serde_json::to_string_pretty(&record)?,
    )
    .with_context(|| format!("cannot write {}", dir.display()))?;
    Ok(dir)
}

/// `make experiment NAME=…`: each side on a freshly started stack with an empty queue and
/// caches, in one batch.
pub async fn run(
    rt: &mut dyn Runtime,
    bin: &Path,
    root: &Path,
    exp: &Experiment,
    quick: bool,
    batch: &str,
) -> anyhow::Result<Vec<PathBuf>> {
    exp.runs_in(rt.kind())?;
    let base = rt.settings().clone();
    let conditions = exp.conditions(|k| std::env::var(k).ok());
    if std::env::var_os(exp.flipped).is_some() {
        eprintln!(
            "lab: experiment {} sets {} on each side itself: the environment's value is not used",
            exp.name, exp.flipped
        );
    }
    // Every side's settings are checked before anything starts.
    let sides: Vec<Settings> = (0..exp.values.len())
        .map(|i| exp.settings_for(&base, i, &conditions))
        .collect::<anyhow::Result<_>>()?;
    let result = async {
        let mut dirs = Vec::new();
        for (i, settings) in sides.into_iter().enumerate() {
            let side = side_name(i);
            eprintln!(
                "\n\x1b[1m== {}: side {side} of {}: {}={}\x1b[0m",
                exp.name,
                exp.values.len(),
                exp.flipped,
                exp.values[i]
            );
            // Removing the data empties the job queue and the caches (the database keeps its
            // rows natively, compose reseeds it): no side inherits the last one's backlog.
            rt.down(true).await?;
            rt.set_settings(settings.clone());
            let mut env: Vec<(String, String)> = vec![
                ("EXPERIMENT".into(), exp.name.into()),
                ("EXPERIMENT_SIDE".into(), side.clone()),
                (
                    "EXPERIMENT_SETTINGS".into(),
                    exp.settings_line(i, &conditions),
                ),
            ];
            env.extend(conditions.load.iter().cloned());
            let spec = LoadSpec {
                run_id: Some(format!("{batch}-{}-{side}", exp.name)),
                env,
                ..LoadSpec::new(exp.gateways, exp.scenario, "classic", quick)
            };
            let record = ExperimentRecord {
                name: exp.name.into(),
                question: exp.question.into(),
                side,
                flipped: exp.flipped.into(),
                value: exp.values[i].into(),
                settings: exp.side_settings(i, &conditions).into_iter().collect(),
                load: conditions.load.iter().cloned().collect(),
                ..ExperimentRecord::default()
            };
            dirs.push(observed_run(rt, bin, root, &spec, record).await?);
        }
        rt.down(true).await?;
        Ok(dirs)
    }
    .await;
    rt.set_settings(base);
    result
}

/// `make experiment NAME=…` (one name) or `make experiments` (None: every one this runtime
/// can run), with progress, then the report. The stack is taken down if a step fails.
pub async fn protocol(
    rt: &mut dyn Runtime,
    bin: &Path,
    root: &Path,
    name: Option<&str>,
    quick: bool,
) -> anyhow::Result<()> {
    let chosen: Vec<&Experiment> = match name {
        Some(n) => {
            let e = find(n)?;
            e.runs_in(rt.kind())?;
            vec![e]
        }
        None => ALL
            .iter()
            .filter(|e| {
                let ok = e.runs_in(rt.kind()).is_ok();
                if !ok {
                    eprintln!(
                        "experiments: {} skipped (compose runtime only: make experiment NAME={} RUNTIME=compose)",
                        e.name, e.name
                    );
                }
                ok
            })
            .collect(),
    };
    let batch = protocol::utc_stamp();
    let started = Instant::now();
    let work = async {
        for (k, exp) in chosen.iter().enumerate() {
            let what = format!("experiment {}: {}", exp.name, exp.question);
            protocol::banner(k, chosen.len(), &what, started, "");
            run(rt, bin, root, exp, quick, &batch).await?;
        }
        protocol::report(bin, root).await
    };
    if let Err(e) = protocol::until_interrupted(work).await {
        return protocol::stopped(rt, "experiments", e).await;
    }
    eprintln!(
        "experiments: done in {}: runs in tests/results/{batch}-*, report in tests/reports/summary.md (section Experiments)",
        protocol::min_sec(started.elapsed().as_secs())
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Settings {
        let mut s = Settings::defaults();
        s.set("JWT_SECRET", "a-test-secret-of-enough-length")
            .unwrap();
        s
    }

    #[test]
    fn every_side_of_every_experiment_is_a_valid_setting_and_differs_only_in_one() {
        for exp in ALL {
            assert!(exp.values.len() >= 2, "{}", exp.name);
            let sides: Vec<Settings> = (0..exp.values.len())
                .map(|i| {
                    exp.settings_for(&base(), i, &exp.conditions(|_| None))
                        .unwrap()
                })
                .collect();
            for side in &sides[1..] {
                let differ: Vec<&str> = crate::settings::TABLE
                    .iter()
                    .map(|s| s.name)
                    .filter(|n| side.get(n) != sides[0].get(n))
                    .collect();
                assert_eq!(differ, vec![exp.flipped], "{}", exp.name);
            }
            assert!(
                protocol::LoadSpec::new(exp.gateways, exp.scenario, "classic", true)
                    .check()
                    .is_ok()
            );
        }
    }

    #[test]
    fn names_are_found_and_a_wrong_one_lists_them() {
        assert_eq!(find("index").unwrap().flipped, "ITEMS_INDEX");
        let e = find("indexes").unwrap_err().to_string();
        assert!(e.contains("index, db-pool"), "{e}");
        let e = find("vertical").unwrap().runs_in(Kind::Native).unwrap_err();
        assert!(e.to_string().contains("RUNTIME=compose"), "{e}");
        assert!(find("vertical").unwrap().runs_in(Kind::Compose).is_ok());
    }

    #[test]
    fn the_record_names_what_each_side_sets() {
        let exp = find("index").unwrap();
        let table = exp.conditions(|_| None);
        assert_eq!(
            exp.settings_line(1, &table),
            "ITEMS_INDEX=true,SEED_ROWS=1000000,DB_DELAY_MS=0"
        );
        // A condition the caller set wins (a handout's extension); the flipped one is the
        // experiment's own.
        let caller = |k: &str| match k {
            "SEED_ROWS" => Some("100000".to_string()),
            "ITEMS_INDEX" => Some("false".to_string()),
            _ => None,
        };
        let changed = exp.conditions(caller);
        assert_eq!(
            exp.settings_line(1, &changed),
            "ITEMS_INDEX=true,SEED_ROWS=100000,DB_DELAY_MS=0"
        );
        let side_b = exp.settings_for(&base(), 1, &changed).unwrap();
        assert_eq!(
            (side_b.get("SEED_ROWS"), side_b.get("ITEMS_INDEX")),
            ("100000", "true")
        );
        let batch = find("batch").unwrap();
        let load = batch
            .conditions(|k| (k == "LONGTASK_MS").then(|| "1".to_string()))
            .load;
        assert_eq!(load[0], ("LONGTASK_MS".to_string(), "1".to_string()));
        // A bad value is a one-line error naming the setting, before anything starts.
        let bad = exp.conditions(|k| (k == "SEED_ROWS").then(|| "many".to_string()));
        let e = exp.settings_for(&base(), 0, &bad).unwrap_err().to_string();
        assert!(e.contains("SEED_ROWS"), "{e}");
        assert_eq!(side_name(2), "C");
    }

    #[test]
    fn deltas_are_growth_and_a_new_series_grows_from_zero() {
        let key = |name: &str| {
            (
                "gateway".to_string(),
                "gw-1".to_string(),
                name.to_string(),
                BTreeMap::new(),
            )
        };
        let before = BTreeMap::from([(key("a"), 10.0)]);
        let after = BTreeMap::from([(key("a"), 25.0), (key("b"), 3.0)]);
        let d = deltas(&before, after);
        assert_eq!(d.len(), 2);
        assert_eq!(d[0].value, 15.0);
        assert_eq!(d[1].value, 3.0);
        let record = ExperimentRecord {
            counters: d,
            ..Default::default()
        };
        assert_eq!(record.delta("gateway", "a", &[]), 15.0);
        assert_eq!(record.delta("microservice", "a", &[]), 0.0);
    }
}
