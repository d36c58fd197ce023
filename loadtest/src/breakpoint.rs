//! The `breakpoint` profile's step-load search: runs of more and more users until one breaks
//! the SLA; `breakpoint.json` names the highest load that met it.

use crate::Options;
use std::path::PathBuf;

/// The step-load search: each step is a run of its own (its own folder and run.json); the
/// search stops at the first step whose SLA verdict is a failure.
pub async fn search(options: Options) -> anyhow::Result<PathBuf> {
    if options.start_users == 0 || options.step_users == 0 || options.max_steps == 0 {
        anyhow::bail!("START_USERS, STEP_USERS and MAX_STEPS must be at least 1");
    }
    let base = options.run_id();
    let summary_dir = options.folder();
    crate::fresh_folder(&summary_dir)?;
    options
        .write(&summary_dir.join(crate::PLAN_FILE))
        .map_err(anyhow::Error::msg)?;
    let mut record = records::record::BreakpointRecord {
        scenario: serde_json::to_value(options.scenario)?
            .as_str()
            .unwrap_or_default()
            .to_string(),
        sla: records::record::Sla {
            p95_ms: Some(options.sla_p95_ms as f64),
            error_pct: Some(options.sla_error_pct),
            ..Default::default()
        },
        start_users: options.start_users,
        step_users: options.step_users,
        step_secs: options.step_secs,
        max_steps: options.max_steps,
        ..Default::default()
    };
    for k in 0..options.max_steps {
        let users = options.start_users + k * options.step_users;
        let step = Options {
            users: Some(users),
            rate: None,
            duration_secs: Some(options.step_secs),
            run_id: Some(format!("{base}-step{:02}-{users}u", k + 1)),
            ..options.clone()
        };
        let dir = crate::run_once(step).await?;
        let run = records::record::RunRecord::read(&dir).map_err(|e| anyhow::anyhow!("{e}"))?;
        let met = run.sla.met == Some(true);
        let row = records::record::BreakpointStep {
            step: k + 1,
            users,
            run_id: run.run_id.clone(),
            rps: run.rps,
            p95_ms: run.latency_ms.p95,
            error_pct: run.error_pct,
            sla_met: met,
            generator_saturated: run.generator.saturated,
        };
        eprintln!(
            "breakpoint step {}: {users} users, {:.1} req/s, p95 {} ms, errors {:.2}%: SLA {}",
            k + 1,
            run.rps,
            run.latency_ms
                .p95
                .map_or("-".to_string(), |p| format!("{p:.0}")),
            run.error_pct,
            if met { "met" } else { "broken" }
        );
        record.steps.push(row.clone());
        if met {
            record.highest_passing = Some(row);
        } else {
            record.first_failing = Some(row);
            record.broke = true;
            break;
        }
    }
    std::fs::create_dir_all(&summary_dir)?;
    std::fs::write(
        summary_dir.join("breakpoint.json"),
        serde_json::to_string_pretty(&record)?,
    )?;
    Ok(summary_dir)
}
