//! One recorded load run: what a protocol asks for ([`LoadSpec`]), the plan the load
//! generator receives, and the generator's process while the load runs.

use super::Workbench;
use anyhow::{bail, Context};
use records::knob::Knob;
use records::load::{Profile, Scenario, ENV_NAMES as LOAD_NAMES, ENV_PREFIX};
use records::plan::Plan;
use stack::runtime::Runtime;
use stack::settings::Name;
use std::path::{Path, PathBuf};

/// One recorded load-test run.
#[derive(Debug, Clone)]
pub struct LoadSpec {
    pub gateways: usize,
    pub scenario: Scenario,
    pub profile: Profile,
    /// QUICK=1: 300 users, +100/s, 23 s: 3 s to start them, 20 s held (profiles keep their shape).
    pub quick: bool,
    pub run_id: Option<String>,
    pub results_dir: Option<PathBuf>,
    /// Load knobs this run fixes, over what `make` or the shell set (the smoke's 30 users).
    pub knobs: Vec<Knob>,
    /// Knobs this run takes unless `make` or the shell set them: an experiment's conditions,
    /// which a handout's extension changes (`LONGTASK_MS=100 make experiment NAME=offload`).
    pub defaults: Vec<Knob>,
    /// The experiment, fault or autoscaling side the run belongs to (in run.json).
    pub experiment: Option<records::record::Experiment>,
}

/// QUICK's load for a profile: enough users that the offered load (300 / 1.5 s think ≈ 200
/// req/s) exceeds what one gateway serves on misses, so a quick run still shows what 3
/// gateways change. Values the caller set win.
pub fn quick_load(profile: Profile) -> Vec<Knob> {
    use Knob::{DurationSecs, Rate, Users};
    match profile {
        Profile::Warmup => vec![DurationSecs(5)],
        Profile::Classic => vec![Users(300), Rate(100.0), DurationSecs(23)],
        Profile::Breakpoint | Profile::Stages => vec![],
        // 20 → 300 → 20 users over 90 s: long enough after the fall for the scale-down window.
        Profile::Wave => vec![Users(300), DurationSecs(90)],
        // The open model: its users are its request slots (MAX_IN_FLIGHT), its pace ARRIVAL_RATE.
        Profile::Open => vec![DurationSecs(20)],
        // Burst and ramp keep their own shape (a burst starts everyone at once).
        Profile::Burst | Profile::Ramp => vec![Users(300), DurationSecs(20)],
    }
}

/// The value `make` or the shell gave a load setting: under the load generator's own name
/// (with `records::load::ENV_PREFIX`) or the lab's (`USERS`); empty means unset, as `make`
/// exports a variable it was not given.
fn user_value(environment: &impl Fn(&str) -> Option<String>, name: &str) -> Option<String> {
    [format!("{ENV_PREFIX}{name}"), name.to_string()]
        .iter()
        .find_map(|n| environment(n).filter(|v| !v.is_empty()))
}

/// A plan of what `make` or the shell set (`USERS=600`), parsed by the load generator's own
/// definition.
fn from_the_environment(environment: &impl Fn(&str) -> Option<String>) -> Result<Plan, String> {
    let inherited = LOAD_NAMES
        .iter()
        .filter_map(|&n| Some((n.to_string(), user_value(environment, n)?)));
    Plan::from_lab(inherited)
}

/// Whether `make` or the shell set this load setting.
fn set_by_user(environment: &impl Fn(&str) -> Option<String>, name: &str) -> bool {
    user_value(environment, name).is_some()
}

impl LoadSpec {
    /// A run under the profile's own load (QUICK's when `quick`), named and placed by
    /// default; the other fields are set with struct update where a protocol needs them.
    pub fn new(gateways: usize, scenario: Scenario, profile: Profile, quick: bool) -> Self {
        Self {
            gateways,
            scenario,
            profile,
            quick,
            run_id: None,
            results_dir: None,
            knobs: Vec::new(),
            defaults: Vec::new(),
            experiment: None,
        }
    }

    /// The run's knobs over a plan of what `make` or the shell set: its conditions where
    /// they left one unset, its fixed knobs, QUICK's load where nobody set it.
    fn apply_knobs(&self, plan: &mut Plan, environment: &impl Fn(&str) -> Option<String>) {
        for k in &self.defaults {
            if !set_by_user(environment, k.name()) {
                k.apply(plan);
            }
        }
        for k in &self.knobs {
            k.apply(plan);
        }
        if self.quick {
            for k in quick_load(self.profile) {
                if !set_by_user(environment, k.name()) && !self.names(k) {
                    k.apply(plan);
                }
            }
        }
    }

    /// Whether the run sets this knob itself (fixed or by default).
    fn names(&self, knob: Knob) -> bool {
        self.knobs
            .iter()
            .chain(&self.defaults)
            .any(|k| k.name() == knob.name())
    }

    /// The run's plan: what `make` or the shell set (`environment`, parsed once by the load
    /// generator's own definition), then the run's conditions where they left one unset,
    /// the run's fixed knobs, QUICK's load where nobody set it, and what the lab knows (the
    /// stack's addresses, the lab users, the SLA, the folder). A plan that cannot run is
    /// one line.
    pub fn plan(
        &self,
        rt: &dyn Runtime,
        results: &Path,
        run_id: &str,
        environment: impl Fn(&str) -> Option<String>,
    ) -> anyhow::Result<Plan> {
        let fail = |e: String| anyhow::anyhow!("the load generator's settings: {e}");
        let mut plan = from_the_environment(&environment).map_err(fail)?;
        self.apply_knobs(&mut plan, &environment);
        let ends = rt.stack().generator_endpoints();
        let s = &rt.stack().settings;
        plan.scenario = self.scenario;
        plan.profile = self.profile;
        plan.gateways = Some(self.gateways as u32);
        plan.runtime = rt.stack().kind.name().to_string();
        plan.target = ends.target;
        plan.lb_metrics_url = ends.lb_metrics;
        plan.microservice_url = Some(ends.microservice);
        plan.worker_metrics_url = Some(ends.worker_metrics);
        plan.lab.lab_users = s.number(Name::LabUsers) as u32;
        plan.lab.lab_password = s.get(Name::LabPassword).to_string();
        plan.sla_p95_ms = s.number(Name::SlaP95Ms) as u64;
        plan.sla = Some(s.get(Name::Sla).to_string());
        plan.results_dir = results.to_path_buf();
        plan.run_id = Some(run_id.to_string());
        if let Some(e) = &self.experiment {
            plan.experiment = Some(e.name.clone());
            plan.experiment_side = Some(e.side.clone());
            plan.experiment_settings = e.settings.clone();
        }
        plan.check().map_err(fail)?;
        Ok(plan)
    }

    pub fn check(&self) -> anyhow::Result<()> {
        if self.gateways == 0 {
            bail!("GATEWAYS must be at least 1");
        }
        Ok(())
    }
}

/// Brings the stack to `spec.gateways`, then runs the load generator as a child process (so
/// its CPU is its own, as `run.json` reports it). Returns the run folder.
pub async fn load(lab: &mut Workbench<'_>, spec: &LoadSpec) -> anyhow::Result<PathBuf> {
    let (mut child, dir) = spawn_load(lab, spec).await?;
    let status = child.wait().await?;
    if !status.success() {
        bail!("the load test failed ({status})");
    }
    Ok(dir)
}

/// [`load`] with the autoscaler deciding every sync period until the load ends; its
/// decisions go to `autoscaler.jsonl` in the run folder.
pub async fn load_autoscaled(
    lab: &mut Workbench<'_>,
    spec: &LoadSpec,
    mut controller: crate::autoscale::Controller,
) -> anyhow::Result<PathBuf> {
    use std::io::Write;
    let (mut child, dir) = spawn_load(lab, spec).await?;
    let mut pending: Vec<String> = Vec::new();
    let mut file: Option<std::fs::File> = None;
    // A step is never cut short (a scale-in half done would leave a gateway drained): the
    // load's end is checked between steps.
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        match controller.step(lab.rt).await {
            Ok(sample) => pending.push(serde_json::to_string(&sample)?),
            Err(e) => eprintln!("autoscaler: no decision this period: {e:#}"),
        }
        if file.is_none() && dir.exists() {
            file = Some(std::fs::File::create(dir.join("autoscaler.jsonl"))?);
        }
        if let Some(f) = file.as_mut() {
            for line in pending.drain(..) {
                writeln!(f, "{line}")?;
            }
        }
    };
    if !status.success() {
        bail!("the load test failed ({status})");
    }
    if let Some(f) = file.as_mut() {
        for line in pending.drain(..) {
            writeln!(f, "{line}")?;
        }
    }
    Ok(dir)
}

/// Starts the load generator; returns it and the run folder it will write.
pub(crate) async fn spawn_load(
    lab: &mut Workbench<'_>,
    spec: &LoadSpec,
) -> anyhow::Result<(crate::generators::LoadRun, PathBuf)> {
    spec.check()?;
    // A value of make's or the shell's the load generator would refuse: said before the
    // stack starts.
    from_the_environment(&|n: &str| std::env::var(n).ok())
        .map_err(|e| anyhow::anyhow!("the load generator's settings: {e}"))?;
    lab.up(spec.gateways).await?;
    let results = spec.results_dir.clone().unwrap_or_else(|| {
        std::env::var_os("RESULTS_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| lab.root.join("tests/results"))
    });
    let results = if results.is_absolute() {
        results
    } else {
        lab.root.join(results)
    };
    let run_id = spec.run_id.clone().unwrap_or_else(|| {
        std::env::var("RUN_ID").unwrap_or_else(|_| {
            format!(
                "{}-{}gw-{}",
                records::time::batch_stamp(),
                spec.gateways,
                spec.scenario
            )
        })
    });
    let plan = spec.plan(lab.rt, &results, &run_id, |n| std::env::var(n).ok())?;
    let generators = crate::generators::count(&plan)?;
    eprintln!(
        "lab: load: {}, profile {}, {} gateway(s), {} runtime{}",
        spec.scenario,
        spec.profile,
        spec.gateways,
        lab.rt.stack().kind.name(),
        if spec.quick { " (quick)" } else { "" }
    );
    let run = if generators > 1 {
        crate::generators::LoadRun::several(
            lab.rt, lab.bin, lab.root, &plan, &results, generators, &lab.live,
        )
        .await?
    } else {
        let file = crate::generators::write_plan(&plan)?;
        let mut cmd = lab
            .rt
            .generator(lab.bin, &file, &plan.lab.lab_password, &results)?;
        cmd.current_dir(lab.root);
        let child = cmd
            .spawn()
            .with_context(|| format!("cannot run {}", lab.bin.join("loadtest").display()))?;
        crate::generators::LoadRun::one(child, results.join(&run_id), &lab.live)
    };
    let dir = results.join(run_id);
    lab.runs.push(dir.clone());
    Ok((run, dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `make` or the shell wins over a run's conditions, a run's fixed knobs over both, and
    /// QUICK's load fills only what nobody set.
    #[test]
    fn a_plan_takes_the_knobs_in_their_order() {
        let env = |pairs: &[(&str, &str)]| {
            let pairs: Vec<(String, String)> = pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            move |n: &str| pairs.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone())
        };
        let plan_of = |spec: &LoadSpec, environment: &dyn Fn(&str) -> Option<String>| {
            let mut plan = from_the_environment(&environment).unwrap();
            spec.apply_knobs(&mut plan, &environment);
            plan
        };
        let spec = LoadSpec {
            defaults: vec![Knob::Users(40), Knob::LongtaskMs(500), Knob::PollMs(500)],
            knobs: vec![Knob::Generators(2)],
            ..LoadSpec::new(1, Scenario::Longtask, Profile::Classic, true)
        };
        let shell = env(&[("USERS", "600"), ("LONGTASK_MS", "100"), ("POLL_MS", "")]);
        let p = plan_of(&spec, &shell);
        assert_eq!((p.users, p.longtask_ms, p.poll_ms), (Some(600), 100, 500));
        assert_eq!(
            (p.generators, p.rate, p.duration_secs),
            (2, Some(100.0), Some(23))
        );
        let p = plan_of(&spec, &env(&[("DURATION_SECS", "9")]));
        assert_eq!((p.users, p.duration_secs), (Some(40), Some(9)));
        // The load generator's own spelling counts as set; an empty value does not.
        let own = format!("{ENV_PREFIX}LONGTASK_MS");
        let p = plan_of(&spec, &env(&[(&own, "100"), ("DURATION_SECS", "")]));
        assert_eq!((p.longtask_ms, p.duration_secs), (100, Some(23)));
        assert!(set_by_user(&env(&[(&own, "100")]), "LONGTASK_MS"));
        assert!(!set_by_user(&env(&[("LONGTASK_MS", "")]), "LONGTASK_MS"));
        let fixed = LoadSpec {
            knobs: vec![Knob::Users(30)],
            ..LoadSpec::new(1, Scenario::Hit, Profile::Classic, false)
        };
        let p = plan_of(&fixed, &env(&[("USERS", "600")]));
        assert_eq!((p.users, p.duration_secs), (Some(30), None));
    }
}
