//! The tactics as A/B experiments (`make experiment NAME=index`): the same load on each side,
//! one setting flipped, nothing else. Each side starts the stack afresh with its settings,
//! runs the load, and records next to `run.json` what the stack's own counters say happened
//! (`experiment.json`): connections opened, DB time per query, hits per gateway, commits.
//! What each one is (its question, sides, conditions, the counters it reads, its words) is
//! its module in the catalogue (`catalogue/src/experiments/`); the report explains each one
//! from the same module.

use crate::protocol::{self, LoadSpec, Workbench};
use anyhow::{bail, Context};
pub use catalogue::experiment::side_name;
use catalogue::experiment::{Conditions, Measurement, Spec};
use catalogue::record::{CounterDelta, ExperimentRecord};
pub use catalogue::Experiment;
use probe::exposition::Sample;
use probe::sampler::Targets;
use records::load::Profile;
use records::names::Series;
use stack::runtime::{Kind, Runtime};
use stack::settings::{Service, Settings};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// An experiment by its name, or a one-line error listing them.
pub fn find(name: &str) -> anyhow::Result<Experiment> {
    name.parse().map_err(anyhow::Error::msg)
}

/// The settings of side `i`: those in force, the fixed ones, and the flipped one.
pub fn settings_for(
    spec: &Spec,
    base: &Settings,
    i: usize,
    c: &Conditions,
) -> anyhow::Result<Settings> {
    let mut s = base.clone();
    for (k, v) in &c.fixed {
        s.set(k, v)?;
    }
    s.set(spec.flipped.as_str(), spec.values[i])?;
    Ok(s)
}

/// Whether this runtime can run it: a CPU limit per container needs a container runtime.
pub fn runs_in(exp: Experiment, kind: Kind) -> anyhow::Result<()> {
    if exp.spec().compose_only && !kind.containers() {
        bail!(
            "experiment {exp} needs a container runtime (a CPU limit per container): run it with RUNTIME=compose or RUNTIME=swarm"
        );
    }
    Ok(())
}

/// The stack's `/metrics` endpoints now: every microservice and worker, and each gateway the
/// load balancer knows.
async fn targets(rt: &dyn Runtime) -> Targets {
    let metrics = |s: Service| -> Vec<String> {
        rt.stack()
            .instance_urls(s)
            .into_iter()
            .map(|base| format!("{base}/metrics"))
            .collect()
    };
    Targets {
        load_balancer: None,
        gateways: match rt.stack().load_balancer.backends().await {
            Ok(view) => view.backends.into_iter().map(|b| b.addr).collect(),
            Err(_) => Vec::new(),
        },
        workers: metrics(Service::Worker),
        microservices: metrics(Service::Microservice),
        only: None,
    }
}

type Key = (String, String, String, BTreeMap<String, String>);

/// The series of interest from one reading of every target, keyed by (service, instance,
/// name, labels).
async fn read_all<S: Copy + Into<Series>>(
    client: &reqwest::Client,
    targets: &Targets,
    names: &[S],
) -> BTreeMap<Key, f64> {
    let mut out = BTreeMap::new();
    for Sample {
        name,
        labels,
        value,
    } in targets.read(client).await.samples()
    {
        if !names.iter().any(|&n| n.into().is(name)) {
            continue;
        }
        let mut labels = labels.clone();
        let service = labels.remove("service").unwrap_or_default();
        let instance = labels.remove("instance").unwrap_or_default();
        out.insert((service, instance, name.clone(), labels), *value);
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
    lab: &mut Workbench<'_>,
    spec: &LoadSpec,
    mut record: ExperimentRecord,
) -> anyhow::Result<PathBuf> {
    let exp = record.name.spec();
    let counters = exp.counters();
    let client = common::http::client(Duration::from_secs(3));
    lab.up(spec.gateways).await?;
    let targets = targets(lab.rt).await;
    let before = read_all(&client, &targets, &counters).await;
    let started = Instant::now();
    let (mut child, dir) = protocol::spawn_load(lab, spec).await?;
    let mut peaks: BTreeMap<Key, f64> = BTreeMap::new();
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        for (k, v) in read_all(&client, &targets, exp.gauges).await {
            let peak = peaks.entry(k).or_insert(v);
            *peak = peak.max(v);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    if !status.success() {
        bail!("the load test failed ({status})");
    }
    let after = read_all(&client, &targets, &counters).await;
    record.seconds = started.elapsed().as_secs_f64();
    record.counters = deltas(&before, after);
    record.peaks = rows(peaks);
    for m in exp.measurements {
        match m {
            Measurement::QueryPlan => {
                let url = format!("{}/explain/hot", lab.rt.stack().endpoints().microservice);
                record.query_plan = match client.get(&url).send().await {
                    Ok(r) if r.status().is_success() => r.json().await.ok(),
                    _ => None,
                };
            }
        }
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
    lab: &mut Workbench<'_>,
    name: Experiment,
    quick: bool,
    batch: &str,
) -> anyhow::Result<Vec<PathBuf>> {
    runs_in(name, lab.rt.stack().kind)?;
    let exp = name.spec();
    let base = lab.settings.clone();
    let conditions = exp.conditions(|k| std::env::var(k).ok());
    if std::env::var_os(exp.flipped.as_str()).is_some() {
        eprintln!(
            "lab: experiment {name} sets {} on each side itself: the environment's value is not used",
            exp.flipped
        );
    }
    // Every side's settings are checked before anything starts.
    let sides: Vec<Settings> = (0..exp.values.len())
        .map(|i| settings_for(exp, &base, i, &conditions))
        .collect::<anyhow::Result<_>>()?;
    let result = async {
        let mut dirs = Vec::new();
        for (i, settings) in sides.into_iter().enumerate() {
            let side = side_name(i);
            eprintln!(
                "\n\x1b[1m== {name}: side {side} of {}: {}={}\x1b[0m",
                exp.values.len(),
                exp.flipped,
                exp.values[i]
            );
            // Removing the data empties the job queue and the caches (the database keeps its
            // rows natively, compose reseeds it): no side inherits the last one's backlog.
            lab.rt.down(true).await?;
            lab.settings = settings.clone();
            let spec = LoadSpec {
                run_id: Some(format!("{batch}-{name}-{side}")),
                defaults: exp.load.to_vec(),
                experiment: Some(records::record::Experiment {
                    name: name.name().into(),
                    side: side.clone(),
                    settings: exp.side_settings(i, &conditions).into_iter().collect(),
                }),
                ..LoadSpec::new(exp.gateways, exp.scenario, Profile::Classic, quick)
            };
            let record = ExperimentRecord {
                name,
                question: exp.question.into(),
                side,
                flipped: exp.flipped.to_string(),
                value: exp.values[i].into(),
                settings: exp.side_settings(i, &conditions).into_iter().collect(),
                load: conditions.load.iter().cloned().collect(),
                ..ExperimentRecord::default()
            };
            dirs.push(observed_run(lab, &spec, record).await?);
        }
        lab.rt.down(true).await?;
        Ok(dirs)
    }
    .await;
    lab.settings = base;
    result
}

/// `make experiment NAME=…` (one name) or `make experiments` (None: every one this runtime
/// can run), with progress, then the report. The stack is taken down if a step fails.
pub async fn protocol(
    lab: &mut Workbench<'_>,
    name: Option<Experiment>,
    quick: bool,
) -> anyhow::Result<()> {
    let chosen: Vec<Experiment> = match name {
        Some(e) => {
            runs_in(e, lab.rt.stack().kind)?;
            vec![e]
        }
        None => Experiment::ALL
            .iter()
            .copied()
            .filter(|e| {
                let ok = runs_in(*e, lab.rt.stack().kind).is_ok();
                if !ok {
                    eprintln!(
                        "experiments: {e} skipped (compose runtime only: make experiment NAME={e} RUNTIME=compose)"
                    );
                }
                ok
            })
            .collect(),
    };
    let batch = records::time::batch_stamp();
    let started = Instant::now();
    let work = async {
        for (k, exp) in chosen.iter().enumerate() {
            let what = format!("experiment {exp}: {}", exp.spec().question);
            protocol::banner(&lab.live, k, chosen.len(), &what, started, "");
            run(lab, *exp, quick, &batch).await?;
        }
        lab.report().await
    };
    if let Err(e) = protocol::until_interrupted(work).await {
        return lab.stopped("experiments", e).await;
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
    use stack::settings::Name;

    fn base() -> Settings {
        let mut s = Settings::defaults();
        s.set("JWT_SECRET", "a-test-secret-of-enough-length")
            .unwrap();
        s
    }

    #[test]
    fn every_side_of_every_experiment_is_a_valid_setting_and_differs_only_in_one() {
        for e in Experiment::ALL {
            let exp = e.spec();
            assert!(exp.values.len() >= 2, "{e}");
            let sides: Vec<Settings> = (0..exp.values.len())
                .map(|i| settings_for(exp, &base(), i, &exp.conditions(|_| None)).unwrap())
                .collect();
            for side in &sides[1..] {
                let differ: Vec<Name> = stack::settings::TABLE
                    .iter()
                    .map(|s| s.name)
                    .filter(|n| side.get(*n) != sides[0].get(*n))
                    .collect();
                assert_eq!(differ, vec![exp.flipped], "{e}");
            }
            assert!(
                protocol::LoadSpec::new(exp.gateways, exp.scenario, Profile::Classic, true)
                    .check()
                    .is_ok()
            );
        }
    }

    #[test]
    fn names_are_found_and_a_wrong_one_lists_them() {
        assert_eq!(find("index").unwrap().spec().flipped, Name::ItemsIndex);
        let e = find("indexes").unwrap_err().to_string();
        assert!(e.contains("index, db-pool"), "{e}");
        let e = runs_in(Experiment::Vertical, Kind::Native).unwrap_err();
        assert!(e.to_string().contains("RUNTIME=compose"), "{e}");
        assert!(runs_in(Experiment::Vertical, Kind::Compose).is_ok());
    }

    /// `NAME=value,…` of what a side sets, as a test reads it.
    fn settings_line(pairs: &[(String, String)]) -> String {
        pairs
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    #[test]
    fn the_record_names_what_each_side_sets() {
        let exp = Experiment::Index.spec();
        let table = exp.conditions(|_| None);
        assert_eq!(
            settings_line(&exp.side_settings(1, &table)),
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
            settings_line(&exp.side_settings(1, &changed)),
            "ITEMS_INDEX=true,SEED_ROWS=100000,DB_DELAY_MS=0"
        );
        let side_b = settings_for(exp, &base(), 1, &changed).unwrap();
        assert_eq!(
            (side_b.get(Name::SeedRows), side_b.get(Name::ItemsIndex)),
            ("100000", "true")
        );
        let load = Experiment::Batch
            .spec()
            .conditions(|k| (k == "LONGTASK_MS").then(|| "1".to_string()))
            .load;
        assert_eq!(load[0], ("LONGTASK_MS".to_string(), "1".to_string()));
        // A bad value is a one-line error naming the setting, before anything starts.
        let bad = exp.conditions(|k| (k == "SEED_ROWS").then(|| "many".to_string()));
        let e = settings_for(exp, &base(), 0, &bad).unwrap_err().to_string();
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
        let (a, b) = (
            records::names::MetricName::HttpRequestsTotal.as_str(),
            records::names::MetricName::LoginsTotal.as_str(),
        );
        let before = BTreeMap::from([(key(a), 10.0)]);
        let after = BTreeMap::from([(key(a), 25.0), (key(b), 3.0)]);
        let d = deltas(&before, after);
        assert_eq!(d.len(), 2);
        assert_eq!(d[0].value, 15.0);
        assert_eq!(d[1].value, 3.0);
        let record = ExperimentRecord {
            counters: d,
            ..Default::default()
        };
        let a = records::names::MetricName::HttpRequestsTotal;
        assert_eq!(record.delta("gateway", a, &[]), 15.0);
        assert_eq!(record.delta("microservice", a, &[]), 0.0);
    }
}
