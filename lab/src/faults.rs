//! Fault experiments (`make fault NAME=kill-gateway`): a steady load, a fault at a fixed
//! second, the repair at another, and what the stack did meanwhile. The lab records when it
//! acted (`fault.json` beside `run.json`); the report draws the timeline and checks the
//! stack's promise. What each fault is (its steps, load, promise, checks, words) is its
//! module in the catalogue (`catalogue/src/faults/`). Postgres and Redis are never stopped natively:
//! the stack reaches them through relays the lab cuts.

use crate::protocol::{self, LoadSpec, Workbench};
use anyhow::{bail, Context};
use catalogue::fault::{Spec, Step};
use catalogue::record::{FaultEvent, FaultRecord, JobAccount};
pub use catalogue::Fault;
use records::knob::Knob;
use records::load::Profile;
use stack::runtime::{Action, Runtime};
use stack::settings::Name;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Does one step of a fault to the stack; a step that queues jobs returns them, for the run
/// to follow to the end.
async fn take(step: Step, rt: &mut dyn Runtime) -> anyhow::Result<Option<Backlog>> {
    match step {
        Step::Act(instance, action) => rt.act(instance, action).await.map(|_| None),
        Step::Cut(d) => rt.act(d.name(), Action::Stop).await.map(|_| None),
        Step::Restore(d) => rt.act(d.name(), Action::Start).await.map(|_| None),
        Step::SlowBy(factor) => {
            let delay = records::wire::Delay {
                db_delay_ms: rt.stack().settings.number(Name::DbDelayMs) as u64 * factor,
            };
            let http = common::http::client(Duration::from_secs(5));
            for base in rt
                .stack()
                .instance_urls(stack::settings::Service::Microservice)
            {
                let answer = http
                    .put(format!("{base}/delay"))
                    .json(&delay)
                    .send()
                    .await?;
                if !answer.status().is_success() {
                    bail!("PUT {base}/delay answered {}", answer.status());
                }
            }
            Ok(None)
        }
        Step::BacklogThenKillWorker(n) => {
            let backlog = Backlog::queue(rt, n).await?;
            rt.act("worker", Action::Kill).await?;
            Ok(Some(backlog))
        }
    }
}

/// The jobs a worker crash is measured on: queued through the load balancer as lab user 1.
struct Backlog {
    http: reqwest::Client,
    target: String,
    token: String,
    ids: Vec<String>,
    queued: u64,
}

impl Backlog {
    async fn queue(rt: &dyn Runtime, n: u64) -> anyhow::Result<Self> {
        use futures::StreamExt;
        let http = probe::client::client(Duration::from_secs(10));
        let target = rt.stack().endpoints().target;
        let login = records::wire::Login::lab_user(1, rt.stack().settings.get(Name::LabPassword));
        let token = probe::client::log_in(&http, &target, &login).await?;
        let task = records::wire::NewTask {
            task: "report".into(),
            payload: serde_json::json!({"duration_ms": 20}),
        };
        let ids: Vec<String> = futures::stream::iter(0..n)
            .map(|_| {
                let req = http
                    .post(format!("{target}/longtask"))
                    .bearer_auth(&token)
                    .json(&task);
                async move {
                    let r = req.send().await.ok()?;
                    (r.status().as_u16() == 202)
                        .then_some(r)?
                        .json::<records::wire::TaskAccepted>()
                        .await
                        .ok()
                        .map(|a| a.id)
                }
            })
            .buffer_unordered(16)
            .filter_map(|id| async move { id })
            .collect()
            .await;
        Ok(Self {
            http,
            target,
            token,
            ids,
            queued: n,
        })
    }

    /// Follows every job until it is done or failed, for at most `limit`.
    async fn account(&self, limit: Duration) -> JobAccount {
        use futures::StreamExt;
        let deadline = Instant::now() + limit;
        let mut open: Vec<String> = self.ids.clone();
        let mut account = JobAccount {
            queued: self.queued,
            accepted: self.ids.len() as u64,
            ..Default::default()
        };
        while !open.is_empty() && Instant::now() < deadline {
            let statuses: Vec<(String, Option<records::wire::TaskStatus>)> =
                futures::stream::iter(open.iter().cloned())
                    .map(|id| {
                        let req = self
                            .http
                            .get(format!("{}/tasks/{id}", self.target))
                            .bearer_auth(&self.token);
                        async move {
                            let status = match req.send().await {
                                Ok(r) if r.status().is_success() => r.json().await.ok(),
                                _ => None,
                            };
                            (id, status)
                        }
                    })
                    .buffer_unordered(16)
                    .collect()
                    .await;
            open.clear();
            for (id, status) in statuses {
                match status.filter(|s| s.finished()) {
                    Some(s) => {
                        if s.status == "done" {
                            account.done += 1;
                        } else {
                            account.failed += 1;
                        }
                        if s.attempts.unwrap_or(1) > 1 {
                            account.taken_over += 1;
                        }
                    }
                    None => open.push(id),
                }
            }
            if !open.is_empty() {
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
        account.unfinished = open.len() as u64;
        if open.is_empty() {
            account.all_finished_at = Some(records::time::now_unix());
        }
        account
    }
}

/// A fault by its name, or a one-line error listing them.
pub fn find(name: &str) -> anyhow::Result<Fault> {
    name.parse().map_err(anyhow::Error::msg)
}

/// Seconds into the load when the fault comes and when it is repaired, and the run's length:
/// 10 s down, with time on both sides to see the before and the recovery.
pub fn schedule(quick: bool) -> (u64, u64, u64) {
    if quick {
        (8, 18, 30)
    } else {
        (20, 30, 60)
    }
}

/// Waits for the load to start: the load generator creates `server.jsonl` as its attack
/// begins (after logging in and calibrating).
async fn attack_started(dir: &Path, child: &mut crate::generators::LoadRun) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(120);
    // With several generators, the first one samples the stack in its part's folder.
    let lead = dir.join("generators/0/server.jsonl");
    while !dir.join("server.jsonl").exists() && !lead.exists() {
        if let Some(status) = child.try_wait()? {
            bail!("the load test ended before its load started ({status})");
        }
        if Instant::now() > deadline {
            bail!("the load did not start within 120 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

/// One fault under load, under the closed model or the open one (`profile`), on a fresh
/// stack with the fault's settings; returns the run folder.
pub async fn run(
    lab: &mut Workbench<'_>,
    (name, profile): (Fault, Profile),
    quick: bool,
    batch: &str,
) -> anyhow::Result<PathBuf> {
    let (at, repair_at, duration) = schedule(quick);
    lab.rt.down(true).await?;
    let base = lab.settings.clone();
    let mut settings = base.clone();
    for (k, v) in name.spec().fixed {
        settings.set(k.as_str(), v)?;
    }
    lab.settings = settings;
    let result = run_with(
        lab,
        (name, profile),
        quick,
        batch,
        (at, repair_at, duration),
    )
    .await;
    lab.settings = base;
    result
}

async fn run_with(
    lab: &mut Workbench<'_>,
    (name, profile): (Fault, Profile),
    quick: bool,
    batch: &str,
    (at, repair_at, duration): (u64, u64, u64),
) -> anyhow::Result<PathBuf> {
    let fault: &Spec = name.spec();
    let mut knobs = vec![Knob::DurationSecs(duration)];
    knobs.extend(fault.load);
    let model = match profile {
        Profile::Open => "-open",
        _ => "",
    };
    let spec = LoadSpec {
        run_id: Some(format!("{batch}-fault-{name}{model}")),
        knobs,
        experiment: Some(records::record::Experiment {
            name: name.name().into(),
            side: "fault".into(),
            settings: Default::default(),
        }),
        ..LoadSpec::new(fault.gateways, fault.scenario, profile, quick)
    };
    let (mut child, dir) = protocol::spawn_load(lab, &spec).await?;
    let mut record = FaultRecord {
        name,
        promise: fault.promise.into(),
        health_interval_ms: lab.rt.stack().settings.number(Name::HealthIntervalMs),
        settings: [
            Name::QueueTimeoutMs,
            Name::MicroserviceTimeoutMs,
            Name::DbDelayMs,
        ]
        .iter()
        .map(|k| (k.to_string(), lab.rt.stack().settings.number(*k)))
        .collect(),
        ..FaultRecord::default()
    };
    let mut backlog: Option<Backlog> = None;
    let acted = async {
        attack_started(&dir, &mut child).await?;
        let started = Instant::now();
        for (second, step, kind) in [
            (at, fault.fault, "fault"),
            (repair_at, fault.repair, "repair"),
        ] {
            let when = Duration::from_secs(second);
            if let Some(wait) = when.checked_sub(started.elapsed()) {
                tokio::time::sleep(wait).await;
            }
            eprintln!("fault: {}s: {}", second, step.describe());
            let queued = take(step, lab.rt)
                .await
                .with_context(|| format!("{} failed", step.describe()))?;
            if queued.is_some() {
                backlog = queued;
            }
            if kind == "fault" {
                lab.live
                    .fault(Some(&format!("{name}: {}", step.describe())));
            } else {
                lab.live.fault(None);
                lab.live.note(format!("repair: {}", step.describe()));
            }
            record.events.push(FaultEvent {
                at: records::time::now_unix(),
                kind: kind.into(),
                action: step.describe(),
            });
        }
        anyhow::Ok(())
    }
    .await;
    if let Err(e) = acted {
        let _ = child.kill().await;
        // Whatever was cut comes back before the stack goes down.
        let _ = take(fault.repair, lab.rt).await;
        return Err(e);
    }
    let status = child.wait().await?;
    if !status.success() {
        bail!("the load test failed ({status})");
    }
    if let Some(backlog) = &backlog {
        eprintln!(
            "fault: following the {} queued jobs to the end",
            backlog.ids.len()
        );
        record.jobs = Some(backlog.account(Duration::from_secs(60)).await);
    }
    std::fs::write(
        dir.join(FaultRecord::FILE),
        serde_json::to_string_pretty(&record)?,
    )?;
    lab.rt.down(true).await?;
    Ok(dir)
}

/// `make fault NAME=…` or `make faults` (every one), then the report, whose verdicts decide
/// the exit status: a broken promise is a failure of the command.
pub async fn protocol(
    lab: &mut Workbench<'_>,
    name: Option<Fault>,
    quick: bool,
) -> anyhow::Result<()> {
    let chosen: Vec<(Fault, Profile)> = match name {
        Some(f) => vec![(f, Profile::Classic)],
        // The load balancer's stall is lab 15's, under both models (`stall`).
        None => Fault::ALL
            .iter()
            .filter(|f| **f != Fault::LbStall)
            .map(|f| (*f, Profile::Classic))
            .collect(),
    };
    under(lab, &chosen, quick).await
}

/// Lab 15: the load balancer's stall under the closed model, then under the open one.
pub async fn stall(lab: &mut Workbench<'_>, quick: bool) -> anyhow::Result<()> {
    under(
        lab,
        &[
            (Fault::LbStall, Profile::Classic),
            (Fault::LbStall, Profile::Open),
        ],
        quick,
    )
    .await
}

/// The faults, each under its load model, in one batch; then the report and its checks.
async fn under(
    lab: &mut Workbench<'_>,
    chosen: &[(Fault, Profile)],
    quick: bool,
) -> anyhow::Result<()> {
    let batch = records::time::batch_stamp();
    let started = Instant::now();
    let work = async {
        let mut dirs = Vec::new();
        for (k, (fault, profile)) in chosen.iter().enumerate() {
            let spec = fault.spec();
            let what = format!(
                "fault {fault} ({} model): {} → {}; promise: {}",
                if *profile == Profile::Open {
                    "open"
                } else {
                    "closed"
                },
                spec.fault.describe(),
                spec.repair.describe(),
                spec.promise
            );
            protocol::banner(&lab.live, k, chosen.len(), &what, started, "");
            dirs.push(run(lab, (*fault, *profile), quick, &batch).await?);
        }
        lab.report().await?;
        anyhow::Ok(dirs)
    };
    let dirs = match protocol::until_interrupted(work).await {
        Ok(d) => d,
        Err(e) => return lab.stopped("faults", e).await,
    };
    // The report's checks decide: one definition of each promise.
    let checked = tokio::process::Command::new(lab.bin.join("report"))
        .arg("--check-faults")
        .args(&dirs)
        .current_dir(lab.root)
        .status()
        .await
        .context("cannot run the report's fault checks")?;
    eprintln!(
        "faults: done in {}: runs in tests/results/{batch}-fault-*, report in tests/reports/summary.md (section Faults)",
        protocol::min_sec(started.elapsed().as_secs())
    );
    if !checked.success() {
        bail!(
            "a promise was broken (FAIL above): a bug in the stack to fix, not a number to report"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_are_found_by_name_and_repair_what_they_break() {
        assert_eq!(find("redis-outage").unwrap(), Fault::RedisOutage);
        let e = find("kill-everything").unwrap_err().to_string();
        assert!(e.contains("kill-gateway, redis-outage"), "{e}");
        for f in Fault::ALL {
            let spec = f.spec();
            let undone = match (spec.fault, spec.repair) {
                (Step::Act(a, Action::Kill), Step::Act(b, Action::Start)) => a == b,
                (Step::Act(a, Action::Pause), Step::Act(b, Action::Resume)) => a == b,
                (Step::Cut(a), Step::Restore(b)) => a == b,
                (Step::SlowBy(_), Step::SlowBy(1)) => true,
                (Step::BacklogThenKillWorker(_), Step::Act("worker", Action::Start)) => true,
                _ => false,
            };
            let mut s = stack::settings::Settings::defaults();
            for (k, v) in spec.fixed {
                s.set(k.as_str(), v).unwrap();
            }
            assert!(
                undone,
                "{f}: {:?} is not undone by {:?}",
                spec.fault, spec.repair
            );
            assert!(
                LoadSpec::new(spec.gateways, spec.scenario, Profile::Classic, true)
                    .check()
                    .is_ok()
            );
        }
        let (at, repair, len) = schedule(true);
        assert!(at < repair && repair + 10 <= len);
    }
}
