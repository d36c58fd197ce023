//! The load generators of one run: one process, or `GENERATORS=K` cooperating ones. Each of
//! K takes its share of the users and rates, starts its load at the same wall-clock moment
//! and writes its part in `<run>/generators/<i>/`; when all have ended, `loadtest merge`
//! writes the run's own record (sums, and percentiles of the merged raw latencies). Where the
//! machine has the cores (natively: two per generator, one for it and one for the stack),
//! generators and stack are pinned to separate CPUs, and `run.json` says where they ran.

use crate::runtime::{Kind, Runtime};
use anyhow::{bail, Context};
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use tokio::process::Child;

/// The most generators one run may have.
pub const MOST: usize = 16;

/// Where generators and stack run: a CPU list each, or why not pinned.
#[derive(Debug, Clone, PartialEq)]
pub struct Pinning {
    /// Per generator, the CPU it is pinned to.
    pub generators: Vec<Option<usize>>,
    /// The stack's CPUs (`taskset` list), when pinned.
    pub stack: Option<String>,
    /// The sentence for `run.json`.
    pub sentence: String,
}

/// Pins each of `k` generators to a CPU of its own at the top of the machine and the stack
/// to the rest, when there are at least `2k` cores and the stack is native processes.
pub fn plan(cores: usize, k: usize, runtime: Kind) -> Pinning {
    let unpinned = |why: String| Pinning {
        generators: vec![None; k],
        stack: None,
        sentence: format!("not pinned: {why}"),
    };
    if !crate::platform::CAN_PIN {
        return unpinned("pinning to CPUs needs Linux".into());
    }
    if runtime != Kind::Native {
        return unpinned(format!(
            "the {} runtime's containers are placed by Docker",
            runtime.name()
        ));
    }
    if cores < 2 * k {
        return unpinned(format!(
            "{cores} cores, fewer than {} (one per generator and as many for the stack)",
            2 * k
        ));
    }
    let first = cores - k;
    Pinning {
        generators: (first..cores).map(Some).collect(),
        stack: Some(format!("0-{}", first - 1)),
        sentence: format!(
            "{k} generators on CPUs {first}-{}, the stack on CPUs 0-{}",
            cores - 1,
            first - 1
        ),
    }
}

/// How many generators the run has: `GENERATORS` from the run's or the lab's environment.
pub fn count(env: &[(String, String)]) -> anyhow::Result<usize> {
    let value = env
        .iter()
        .rev()
        .find(|(k, _)| k == "GENERATORS")
        .map(|(_, v)| v.clone())
        .or_else(|| std::env::var("GENERATORS").ok())
        .filter(|v| !v.is_empty());
    let Some(value) = value else { return Ok(1) };
    match value.parse::<usize>() {
        Ok(k) if (1..=MOST).contains(&k) => Ok(k),
        _ => bail!("GENERATORS must be a whole number from 1 to {MOST}, not {value:?}"),
    }
}

/// A run's load generators while they run.
pub struct LoadRun {
    children: Vec<Child>,
    /// The run folder, and the merge to do once all have ended (several generators).
    dir: PathBuf,
    merge: Option<PathBuf>,
    /// Stack processes pinned for the run, set free again at its end.
    pinned: Vec<String>,
    cores: usize,
    status: Option<ExitStatus>,
}

impl LoadRun {
    /// The load generator alone.
    pub fn one(child: Child, dir: PathBuf) -> Self {
        crate::live::generators(child.id().into_iter().collect());
        Self {
            children: vec![child],
            dir,
            merge: None,
            pinned: Vec::new(),
            cores: 0,
            status: None,
        }
    }

    /// Starts `k` generators for the run `run_id` under `results`, with the run's `env`.
    pub async fn several(
        rt: &dyn Runtime,
        bin: &Path,
        root: &Path,
        env: &[(String, String)],
        results: &Path,
        run_id: &str,
        k: usize,
    ) -> anyhow::Result<Self> {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let pinning = plan(cores, k, rt.kind());
        eprintln!("lab: {k} load generators, {}", pinning.sentence);
        let mut pinned = Vec::new();
        if let Some(cpus) = &pinning.stack {
            for i in rt.ps().await? {
                if crate::platform::pin_process(cpus, &i.id) {
                    pinned.push(i.id);
                }
            }
        }
        // Every generator's load starts at the same moment, after each has logged in.
        let start_at = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis()
            + 8_000;
        let mut children = Vec::new();
        for i in 0..k {
            let mut env = env.to_vec();
            env.retain(|(name, _)| name != "RUN_ID" && name != "GENERATORS");
            env.extend(
                [
                    ("GENERATORS", k.to_string()),
                    ("GENERATOR_INDEX", i.to_string()),
                    ("RUN_ID", format!("{run_id}/generators/{i}")),
                    ("START_AT_MS", start_at.to_string()),
                    ("GENERATOR_PINNING", pinning.sentence.clone()),
                ]
                .map(|(k, v)| (k.to_string(), v)),
            );
            if let Some(cpu) = pinning.generators[i] {
                env.push(("GENERATOR_CPUS".into(), cpu.to_string()));
            }
            let mut cmd = rt.generator(bin, &env, results)?;
            cmd.current_dir(root);
            if let Some(cpu) = pinning.generators[i] {
                crate::platform::pin_command(&mut cmd, cpu);
            }
            children.push(
                cmd.spawn()
                    .with_context(|| format!("cannot start load generator {i}"))?,
            );
        }
        crate::live::generators(children.iter().filter_map(|c| c.id()).collect());
        Ok(Self {
            children,
            dir: results.join(run_id),
            merge: Some(bin.join("loadtest")),
            pinned,
            cores,
            status: None,
        })
    }

    /// The run's status once every generator has ended (and their parts are merged), else
    /// `None`.
    pub fn try_wait(&mut self) -> std::io::Result<Option<ExitStatus>> {
        if let Some(s) = self.status {
            return Ok(Some(s));
        }
        let mut statuses = Vec::new();
        for c in &mut self.children {
            match c.try_wait()? {
                Some(s) => statuses.push(s),
                None => return Ok(None),
            }
        }
        self.unpin();
        crate::live::generators(Vec::new());
        let mut status = statuses
            .iter()
            .find(|s| !s.success())
            .copied()
            .unwrap_or(statuses[0]);
        if status.success() {
            if let Some(loadtest) = &self.merge {
                let mut merge = std::process::Command::new(loadtest);
                // The lab's unprefixed names are not the merge's (no deprecation notice).
                for name in common::load::ENV_NAMES {
                    merge.env_remove(name);
                }
                status = merge.arg("merge").arg(&self.dir).status()?;
            }
        }
        self.status = Some(status);
        Ok(Some(status))
    }

    pub async fn wait(&mut self) -> std::io::Result<ExitStatus> {
        loop {
            if let Some(s) = self.try_wait()? {
                return Ok(s);
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }

    pub async fn kill(&mut self) -> std::io::Result<()> {
        for c in &mut self.children {
            let _ = c.kill().await;
        }
        self.unpin();
        Ok(())
    }

    fn unpin(&mut self) {
        let all = format!("0-{}", self.cores.saturating_sub(1));
        for pid in self.pinned.drain(..) {
            crate::platform::pin_process(&all, &pid);
        }
    }
}

/// A load generator's environment (names set) and the names it must not inherit.
pub type HandOver = (Vec<(String, String)>, Vec<String>);

/// What a load generator is started with: its plan (every load setting, typed) written to
/// its run folder as `plan.json` and named by `LOADTEST_PLAN`, and the other names (the lab
/// users' password, which no file holds) as they are. `env` holds the lab's names
/// (`USERS`, …), `inherited` what `make` or the shell exported; the second list holds the
/// unprefixed names the child must not inherit. A setting the load generator would refuse
/// is a one-line error here, before anything starts.
pub fn hand_over(
    env: &[(String, String)],
    inherited: impl IntoIterator<Item = (String, String)>,
) -> anyhow::Result<HandOver> {
    let (set, unprefixed) = common::load::generator_env(env, inherited);
    // The last value of a name wins, as it would in the child's environment.
    let mut last: Vec<(String, String)> = Vec::new();
    for (k, v) in set {
        last.retain(|(n, _)| *n != k);
        last.push((k, v));
    }
    let plan = common::plan::Plan::from_pairs(&last)
        .map_err(|e| anyhow::anyhow!("the load generator's settings: {e}"))?;
    // Never over another run: the load generator would refuse the folder, but only after
    // the plan had replaced that run's own.
    let folder = plan.folder();
    if !common::plan::unused(&folder) {
        anyhow::bail!("{} already exists: choose another RUN_ID", folder.display());
    }
    let file = folder.join(common::plan::FILE);
    plan.write(&file).map_err(anyhow::Error::msg)?;
    let mut out: Vec<(String, String)> = last
        .into_iter()
        .filter(|(k, _)| !k.starts_with(common::load::ENV_PREFIX))
        .collect();
    out.push((
        format!("{}PLAN", common::load::ENV_PREFIX),
        file.display().to_string(),
    ));
    Ok((out, unprefixed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(target_os = "linux")]
    fn generators_and_stack_get_separate_cpus_only_where_there_are_enough() {
        let p = plan(8, 2, Kind::Native);
        assert_eq!(p.generators, vec![Some(6), Some(7)]);
        assert_eq!(p.stack.as_deref(), Some("0-5"));
        assert_eq!(
            p.sentence,
            "2 generators on CPUs 6-7, the stack on CPUs 0-5"
        );
        let p = plan(4, 2, Kind::Native);
        assert_eq!(p.generators, vec![Some(2), Some(3)]);
        assert_eq!(p.stack.as_deref(), Some("0-1"));
        // This machine: 2 cores cannot give 2 generators and the stack CPUs of their own.
        let p = plan(2, 2, Kind::Native);
        assert_eq!(p.generators, vec![None, None]);
        assert_eq!(p.stack, None);
        assert!(
            p.sentence.starts_with("not pinned: 2 cores"),
            "{}",
            p.sentence
        );
        let p = plan(16, 2, Kind::Swarm);
        assert_eq!(p.stack, None);
        assert!(p.sentence.contains("swarm runtime"));
    }

    #[test]
    fn the_count_is_checked() {
        let env = |v: &str| vec![("GENERATORS".to_string(), v.to_string())];
        assert_eq!(count(&env("2")).unwrap(), 2);
        assert_eq!(count(&env("1")).unwrap(), 1);
        for bad in ["0", "17", "two", "-1"] {
            let e = count(&env(bad)).unwrap_err().to_string();
            assert!(e.contains("GENERATORS must be"), "{e}");
        }
    }

    #[test]
    fn the_generator_gets_its_plan_in_the_run_folder_and_only_the_password_beside() {
        let results = std::env::temp_dir().join(format!("hand-over-{}", std::process::id()));
        let env: Vec<(String, String)> = [
            ("SCENARIO", "miss"),
            ("USERS", "100"),
            ("USERS", "32"),
            ("NO_THINK", "true"),
            ("RUN_ID", "b-index-A"),
            ("RESULTS_DIR", &results.display().to_string()),
            ("EXPERIMENT", "index"),
            ("LAB_PASSWORD", "a-secret"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let inherited = vec![("DURATION_SECS".to_string(), "5".to_string())];
        let (set, unprefixed) = hand_over(&env, inherited).unwrap();
        let file = results.join("b-index-A").join("plan.json");
        assert_eq!(
            set,
            vec![
                ("LAB_PASSWORD".to_string(), "a-secret".to_string()),
                ("LOADTEST_PLAN".to_string(), file.display().to_string()),
            ]
        );
        assert_eq!(unprefixed, vec!["DURATION_SECS".to_string()]);
        let plan = common::plan::Plan::read(&file).unwrap();
        assert_eq!(plan.scenario, common::load::Scenario::Miss);
        // The last value of a name wins; the shell's fills what the lab left unset.
        assert_eq!((plan.users, plan.duration_secs), (Some(32), Some(5)));
        assert!(plan.no_think);
        assert_eq!(plan.experiment.as_deref(), Some("index"));
        assert!(!std::fs::read_to_string(&file).unwrap().contains("a-secret"));
        // A finished run's folder is refused before its plan is touched.
        let done = results.join("done-run");
        std::fs::create_dir_all(&done).unwrap();
        std::fs::write(done.join("run.json"), "{}").unwrap();
        std::fs::write(done.join("plan.json"), "the run's own").unwrap();
        let again = vec![
            ("RUN_ID".to_string(), "done-run".to_string()),
            ("RESULTS_DIR".to_string(), results.display().to_string()),
        ];
        let e = hand_over(&again, Vec::new()).unwrap_err().to_string();
        assert!(e.contains("already exists"), "{e}");
        assert_eq!(
            std::fs::read_to_string(done.join("plan.json")).unwrap(),
            "the run's own"
        );
        std::fs::remove_dir_all(&results).unwrap();
        let bad = vec![("USERS".to_string(), "lots".to_string())];
        let e = hand_over(&bad, Vec::new()).unwrap_err().to_string();
        assert!(e.contains("--users") && !e.contains('\n'), "{e}");
    }
}
