//! The load generators of one run: one process, or `GENERATORS=K` cooperating ones. Each of
//! K takes its share of the users and rates, starts its load at the same wall-clock moment
//! and writes its part in `<run>/generators/<i>/`; when all have ended, `loadtest merge`
//! writes the run's own record (sums, and percentiles of the merged raw latencies). Where the
//! machine has the cores (natively: two per generator, one for it and one for the stack),
//! generators and stack are pinned to separate CPUs, and `run.json` says where they ran.

use anyhow::{bail, Context};
use live::LiveBoard;
use records::plan::Plan;
use stack::runtime::{Kind, Runtime};
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
pub fn pinning(cores: usize, k: usize, runtime: Kind) -> Pinning {
    let unpinned = |why: String| Pinning {
        generators: vec![None; k],
        stack: None,
        sentence: format!("not pinned: {why}"),
    };
    if !stack::platform::CAN_PIN {
        return unpinned("pinning to CPUs needs Linux".into());
    }
    if runtime.containers() {
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

/// How many generators the run's plan has (`GENERATORS`), checked.
pub fn count(plan: &Plan) -> anyhow::Result<usize> {
    let k = plan.generators;
    if !(1..=MOST).contains(&k) {
        bail!("GENERATORS must be a whole number from 1 to {MOST}, not {k}");
    }
    Ok(k)
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
    /// The live board, told which generators run (for their CPU share).
    live: LiveBoard,
}

impl LoadRun {
    /// The load generator alone.
    pub fn one(child: Child, dir: PathBuf, live: &LiveBoard) -> Self {
        live.generators(child.id().into_iter().collect());
        Self {
            children: vec![child],
            dir,
            merge: None,
            pinned: Vec::new(),
            cores: 0,
            status: None,
            live: live.clone(),
        }
    }

    /// Starts the plan's `k` generators, each on its share of the plan, under `results`.
    pub async fn several(
        rt: &dyn Runtime,
        bin: &Path,
        root: &Path,
        plan: &Plan,
        results: &Path,
        k: usize,
        live: &LiveBoard,
    ) -> anyhow::Result<Self> {
        let run_id = plan.run_id();
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let pinning = pinning(cores, k, rt.stack().kind);
        eprintln!("lab: {k} load generators, {}", pinning.sentence);
        let mut pinned = Vec::new();
        if let Some(cpus) = &pinning.stack {
            for i in rt.ps().await? {
                if stack::platform::pin_process(cpus, &i.id) {
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
            let part = Plan {
                generators: k,
                generator_index: i,
                run_id: Some(format!("{run_id}/generators/{i}")),
                start_at_ms: Some(start_at as u64),
                generator_pinning: Some(pinning.sentence.clone()),
                generator_cpus: pinning.generators[i].map(|cpu| cpu.to_string()),
                ..plan.clone()
            };
            let file = write_plan(&part)?;
            let mut cmd = rt.generator(bin, &file, &part.lab.lab_password, results)?;
            cmd.current_dir(root);
            if let Some(cpu) = pinning.generators[i] {
                stack::platform::pin_command(&mut cmd, cpu);
            }
            children.push(
                cmd.spawn()
                    .with_context(|| format!("cannot start load generator {i}"))?,
            );
        }
        live.generators(children.iter().filter_map(|c| c.id()).collect());
        Ok(Self {
            children,
            dir: results.join(&run_id),
            merge: Some(bin.join("loadtest")),
            pinned,
            cores,
            status: None,
            live: live.clone(),
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
        self.live.generators(Vec::new());
        let mut status = statuses
            .iter()
            .find(|s| !s.success())
            .copied()
            .unwrap_or(statuses[0]);
        if status.success() {
            if let Some(loadtest) = &self.merge {
                let mut merge = std::process::Command::new(loadtest);
                // The lab's unprefixed names are not the merge's (no deprecation notice).
                for name in records::load::ENV_NAMES {
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
            stack::platform::pin_process(&all, &pid);
        }
    }
}

/// Writes a generator's plan into the folder it will write (`plan.json`), never over
/// another run: the load generator would refuse the folder, but only after the plan had
/// replaced that run's own. Returns the file.
pub fn write_plan(plan: &Plan) -> anyhow::Result<PathBuf> {
    let folder = plan.folder();
    if !records::plan::unused(&folder) {
        bail!("{} already exists: choose another RUN_ID", folder.display());
    }
    let file = folder.join(records::plan::FILE);
    plan.write(&file).map_err(anyhow::Error::msg)?;
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(target_os = "linux")]
    fn generators_and_stack_get_separate_cpus_only_where_there_are_enough() {
        let p = pinning(8, 2, Kind::Native);
        assert_eq!(p.generators, vec![Some(6), Some(7)]);
        assert_eq!(p.stack.as_deref(), Some("0-5"));
        assert_eq!(
            p.sentence,
            "2 generators on CPUs 6-7, the stack on CPUs 0-5"
        );
        let p = pinning(4, 2, Kind::Native);
        assert_eq!(p.generators, vec![Some(2), Some(3)]);
        assert_eq!(p.stack.as_deref(), Some("0-1"));
        // This machine: 2 cores cannot give 2 generators and the stack CPUs of their own.
        let p = pinning(2, 2, Kind::Native);
        assert_eq!(p.generators, vec![None, None]);
        assert_eq!(p.stack, None);
        assert!(
            p.sentence.starts_with("not pinned: 2 cores"),
            "{}",
            p.sentence
        );
        let p = pinning(16, 2, Kind::Swarm);
        assert_eq!(p.stack, None);
        assert!(p.sentence.contains("swarm runtime"));
    }

    fn lab_names(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_count_is_checked() {
        let plan = |v: &str| Plan::from_lab(lab_names(&[("GENERATORS", v)]));
        assert_eq!(count(&plan("2").unwrap()).unwrap(), 2);
        assert_eq!(count(&plan("1").unwrap()).unwrap(), 1);
        for bad in ["0", "17"] {
            let e = count(&plan(bad).unwrap()).unwrap_err().to_string();
            assert!(e.contains("GENERATORS must be"), "{e}");
        }
        for bad in ["two", "-1"] {
            let e = plan(bad).unwrap_err();
            assert!(e.contains("GENERATORS") && !e.contains('\n'), "{e}");
        }
    }

    #[test]
    fn the_generator_gets_its_plan_in_the_run_folder_and_never_over_a_run() {
        let results = std::env::temp_dir().join(format!("hand-over-{}", std::process::id()));
        let env = lab_names(&[
            ("SCENARIO", "miss"),
            ("USERS", "100"),
            ("USERS", "32"),
            ("NO_THINK", "true"),
            ("RUN_ID", "b-index-A"),
            ("RESULTS_DIR", &results.display().to_string()),
            ("EXPERIMENT", "index"),
            ("LAB_PASSWORD", "a-secret"),
        ]);
        let plan = Plan::from_lab(env).unwrap();
        let file = write_plan(&plan).unwrap();
        assert_eq!(file, results.join("b-index-A").join("plan.json"));
        let back = Plan::read(&file).unwrap();
        assert_eq!(back.scenario, records::load::Scenario::Miss);
        // The last value of a name wins.
        assert_eq!(back.users, Some(32));
        assert!(back.no_think);
        assert_eq!(back.experiment.as_deref(), Some("index"));
        assert_eq!(plan.lab.lab_password, "a-secret");
        assert!(!std::fs::read_to_string(&file).unwrap().contains("a-secret"));
        // A finished run's folder is refused before its plan is touched.
        let done = results.join("done-run");
        std::fs::create_dir_all(&done).unwrap();
        std::fs::write(done.join("run.json"), "{}").unwrap();
        std::fs::write(done.join("plan.json"), "the run's own").unwrap();
        let again = lab_names(&[
            ("RUN_ID", "done-run"),
            ("RESULTS_DIR", &results.display().to_string()),
        ]);
        let e = write_plan(&Plan::from_lab(again).unwrap())
            .unwrap_err()
            .to_string();
        assert!(e.contains("already exists"), "{e}");
        assert_eq!(
            std::fs::read_to_string(done.join("plan.json")).unwrap(),
            "the run's own"
        );
        std::fs::remove_dir_all(&results).unwrap();
        let e = Plan::from_lab(lab_names(&[("USERS", "lots")])).unwrap_err();
        assert!(e.contains("USERS") && !e.contains('\n'), "{e}");
    }
}
