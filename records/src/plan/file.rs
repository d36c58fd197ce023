//! A plan as a file (`plan.json` in its run folder) and as the lab hands it over (its
//! setting names), and the run folder it names.

use super::Plan;
use crate::load::Profile;
use std::path::PathBuf;

/// The file a plan is written to in its run folder.
pub const FILE: &str = "plan.json";

/// Whether a run folder is still free for a run: absent, or holding nothing but the plan the
/// lab wrote for it.
pub fn unused(folder: &std::path::Path) -> bool {
    match std::fs::read_dir(folder) {
        Ok(entries) => entries
            .filter_map(Result::ok)
            .all(|e| e.file_name() == FILE),
        Err(_) => !folder.exists(),
    }
}

impl Plan {
    /// The plan in a file (`plan.json`), with the password from the environment.
    pub fn read(path: &std::path::Path) -> Result<Plan, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read the plan {}: {e}", path.display()))?;
        serde_json::from_str(&text)
            .map_err(|e| format!("{} is not a load plan: {e}", path.display()))
    }

    /// Writes the plan (without the password) to `path`.
    pub fn write(&self, path: &std::path::Path) -> Result<(), String> {
        let text = serde_json::to_string_pretty(self).map_err(|e| e.to_string())?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        }
        std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
    }

    /// Names the run now when the plan leaves it to the clock, so that every later
    /// [`Plan::run_id`] and [`Plan::folder`] agree.
    pub fn fix_run_id(&mut self) {
        if self.run_id.is_none() {
            self.run_id = Some(self.run_id());
        }
    }

    /// The folder of one run of this plan (`RESULTS_DIR/RUN_ID`; a breakpoint search's
    /// steps are each one).
    pub fn run_folder(&self) -> PathBuf {
        self.results_dir.join(self.run_id())
    }

    /// The folder this plan writes first: its run's, or for a breakpoint search the folder
    /// of its summary (`RUN_ID-breakpoint`), where its steps' plans start from.
    pub fn folder(&self) -> PathBuf {
        if self.profile == Profile::Breakpoint {
            self.results_dir
                .join(format!("{}-breakpoint", self.run_id()))
        } else {
            self.run_folder()
        }
    }
}

#[cfg(feature = "cli")]
impl Plan {
    /// The plan of a load run from names and values as `make` and the shell spell them
    /// (`USERS=600`; `LAB_USERS=3`), the last value of a name winning: the one way from the
    /// lab's names to a plan; a value the load generator would refuse is one line. The lab
    /// changes the plan further, then checks it ([`Plan::check`]).
    pub fn from_lab(names: impl IntoIterator<Item = (String, String)>) -> Result<Plan, String> {
        use crate::load::{ENV_NAMES, ENV_PREFIX};
        let mut last: Vec<(String, String)> = Vec::new();
        for (k, v) in names {
            let k = if ENV_NAMES.contains(&k.as_str()) {
                format!("{ENV_PREFIX}{k}")
            } else {
                k
            };
            last.retain(|(n, _)| *n != k);
            last.push((k, v));
        }
        Plan::parse(&last)
    }

    /// The plan of a load run from names and values as the lab and `make` spell them
    /// (`LOADTEST_USERS=600`, `LAB_USERS=3`): each one an argument's environment name sets
    /// that argument, the rest take the environment or their defaults, as a hand-run
    /// `loadtest` would. A value the load generator would refuse is a one-line error naming
    /// the setting, as is a plan that cannot run.
    pub fn from_pairs(pairs: &[(String, String)]) -> Result<Plan, String> {
        let plan = Plan::parse(pairs)?;
        plan.check()?;
        Ok(plan)
    }

    fn parse(pairs: &[(String, String)]) -> Result<Plan, String> {
        use clap::{ArgAction, CommandFactory, FromArgMatches};
        let command = Plan::command();
        let mut args: Vec<String> = vec!["loadtest".into()];
        for (name, value) in pairs {
            let Some(arg) = command
                .get_arguments()
                .find(|a| a.get_env().is_some_and(|e| e == name.as_str()))
            else {
                continue;
            };
            let long = arg.get_long().unwrap_or_default();
            match arg.get_action() {
                ArgAction::SetTrue => match value.trim().to_ascii_lowercase().as_str() {
                    "1" | "true" | "yes" | "on" => args.push(format!("--{long}")),
                    "" | "0" | "false" | "no" | "off" => {}
                    _ => {
                        let bare = name.trim_start_matches(crate::load::ENV_PREFIX);
                        return Err(format!("{bare} must be true or false, not {value:?}"));
                    }
                },
                _ => args.push(format!("--{long}={value}")),
            }
        }
        let matches = command.clone().try_get_matches_from(&args).map_err(|e| {
            let text = e.to_string();
            let first = text.lines().next().unwrap_or_default().trim();
            by_setting_name(&command, first.trim_start_matches("error: "))
        })?;
        let plan = Plan::from_arg_matches(&matches).map_err(|e| e.to_string())?;
        if plan.zipf_s < 0.0 {
            return Err(format!(
                "ZIPF_S must be 0 or more (0: uniform keys), not {}",
                plan.zipf_s
            ));
        }
        if plan.key_space == 0 {
            return Err("KEY_SPACE must be at least 1".into());
        }
        // A plan is JSON, which has no infinity: such a number would come back as nothing.
        for (what, v) in [
            ("RATE", plan.rate.unwrap_or(0.0)),
            ("ZIPF_S", plan.zipf_s),
            ("SLA_ERROR_PCT", plan.sla_error_pct),
            ("ARRIVAL_RATE", plan.arrival_rate),
        ] {
            if !v.is_finite() {
                return Err(format!("{what} must be a finite number, not {v}"));
            }
        }
        Ok(plan)
    }
}

/// clap's line names an option (`invalid value 'two' for '--generators <GENERATORS>'`);
/// whoever set it wrote the setting (`GENERATORS=two`): the line names that instead.
#[cfg(feature = "cli")]
fn by_setting_name(command: &clap::Command, line: &str) -> String {
    let named = line.find("'--").and_then(|start| {
        let close = start + 1 + line[start + 1..].find('\'')?;
        let long = line[start + 3..close].split_whitespace().next()?;
        let arg = command
            .get_arguments()
            .find(|a| a.get_long() == Some(long))?;
        let env = arg.get_env()?.to_str()?;
        let name = env.trim_start_matches(crate::load::ENV_PREFIX);
        Some(format!("{}{name}{}", &line[..start], &line[close + 1..]))
    });
    named.unwrap_or_else(|| line.to_string())
}

#[cfg(all(test, feature = "cli"))]
mod tests {
    use super::*;
    use crate::load::Scenario;
    use std::collections::BTreeMap;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_plan_from_the_lab_names_round_trips_through_its_file() {
        let plan = Plan::from_pairs(&pairs(&[
            ("LOADTEST_SCENARIO", "longtask"),
            ("LOADTEST_PROFILE", "burst"),
            ("LOADTEST_USERS", "7"),
            ("LOADTEST_NO_THINK", "true"),
            ("LOADTEST_TARGET_URL", "http://lb:9000"),
            ("LOADTEST_RUN_ID", "r1"),
            ("LOADTEST_RESULTS_DIR", "/tmp/results"),
            ("LAB_USERS", "3"),
            ("LAB_PASSWORD", "a-secret"),
            ("PATH", "/bin"),
        ]))
        .unwrap();
        assert_eq!(plan.scenario, Scenario::Longtask);
        assert_eq!(plan.profile, Profile::Burst);
        assert_eq!(plan.users, Some(7));
        assert!(plan.no_think);
        assert_eq!(plan.target, "http://lb:9000");
        assert_eq!(plan.lab.lab_users, 3);
        // Defaults are the load generator's own.
        assert_eq!(
            (plan.think_min_ms, plan.poll_ms, plan.key_space),
            (1000, 250, 1000)
        );
        assert_eq!(plan.folder(), PathBuf::from("/tmp/results/r1"));
        let sides = Plan::from_pairs(&pairs(&[(
            "LOADTEST_EXPERIMENT_SETTINGS",
            "ITEMS_INDEX=true, SEED_ROWS=100",
        )]))
        .unwrap();
        assert_eq!(
            sides.experiment_settings,
            BTreeMap::from([
                ("ITEMS_INDEX".to_string(), "true".to_string()),
                ("SEED_ROWS".to_string(), "100".to_string())
            ])
        );
        let e = Plan::from_pairs(&pairs(&[("LOADTEST_EXPERIMENT_SETTINGS", "ITEMS_INDEX")]))
            .unwrap_err();
        assert!(e.contains("is not NAME=value"), "{e}");
        let json = serde_json::to_string(&plan).unwrap();
        assert!(
            !json.contains("a-secret"),
            "the password stays out of the file"
        );
        let dir = std::env::temp_dir().join(format!("plan-{}", std::process::id()));
        let file = dir.join(FILE);
        plan.write(&file).unwrap();
        let back = Plan::read(&file).unwrap();
        assert_eq!(back.users, plan.users);
        assert_eq!(back.scenario, plan.scenario);
        assert_eq!(back.lab.lab_users, 3);
        std::fs::remove_dir_all(&dir).unwrap();
        // A flag left false stays off; a typo in one is an error, not a silent off.
        let off = Plan::from_pairs(&pairs(&[("LOADTEST_NO_THINK", "false")])).unwrap();
        assert!(!off.no_think);
        let e = Plan::from_pairs(&pairs(&[("LOADTEST_NO_THINK", "y")])).unwrap_err();
        assert_eq!(e, "NO_THINK must be true or false, not \"y\"");
        let e = Plan::from_pairs(&pairs(&[("LOADTEST_ARRIVAL_RATE", "inf")])).unwrap_err();
        assert!(e.starts_with("ARRIVAL_RATE must be a finite number"), "{e}");
        // A key law that does not exist is one line, not a silent uniform one.
        let e = Plan::from_pairs(&pairs(&[("LOADTEST_ZIPF_S", "-1")])).unwrap_err();
        assert_eq!(e, "ZIPF_S must be 0 or more (0: uniform keys), not -1");
        let e = Plan::from_pairs(&pairs(&[("LOADTEST_KEY_SPACE", "0")])).unwrap_err();
        assert_eq!(e, "KEY_SPACE must be at least 1");
    }

    /// DURATION_SECS is the whole load: its users' start (USERS / RATE) is inside it.
    #[test]
    fn the_users_start_inside_the_duration_or_the_plan_is_one_line() {
        let quick = Plan::from_pairs(&pairs(&[
            ("LOADTEST_USERS", "300"),
            ("LOADTEST_RATE", "100"),
            ("LOADTEST_DURATION_SECS", "23"),
        ]))
        .unwrap();
        let load = quick.load();
        assert_eq!((load.ramp_secs, load.hold_secs()), (3.0, 20));
        // Ramp: every user started by half time, whatever the length.
        let ramp = Plan::from_pairs(&pairs(&[
            ("LOADTEST_PROFILE", "ramp"),
            ("LOADTEST_DURATION_SECS", "45"),
        ]))
        .unwrap();
        assert_eq!(ramp.load().ramp_secs, 22.5);
        assert_eq!(ramp.load().hold_secs(), 22);
        // Stages and waves hold their ramps inside their phases.
        let stages = Plan::from_pairs(&pairs(&[("LOADTEST_PROFILE", "stages")])).unwrap();
        assert_eq!(stages.load().ramp_secs, 60.0);
        let e = Plan::from_pairs(&pairs(&[
            ("LOADTEST_USERS", "1000"),
            ("LOADTEST_DURATION_SECS", "5"),
        ]))
        .unwrap_err();
        assert_eq!(
            e,
            "1000 users at +100/s take 10.0 s to start, but DURATION_SECS (5 s) is the whole run, their start included: raise RATE or DURATION_SECS"
        );
        let e = Plan::from_pairs(&pairs(&[("LOADTEST_RATE", "0")])).unwrap_err();
        assert_eq!(e, "RATE must be above 0 users per second, not 0");
    }

    #[test]
    fn a_bad_value_is_one_line_naming_the_setting() {
        let e = Plan::from_pairs(&pairs(&[("LOADTEST_USERS", "many")])).unwrap_err();
        assert!(e.contains("for USERS:") && !e.contains("--"), "{e}");
        assert!(!e.contains('\n'), "{e}");
        let e = Plan::from_pairs(&pairs(&[("LOADTEST_SCENARIO", "hits")])).unwrap_err();
        assert!(e.contains("hits"), "{e}");
        let e = Plan::read(std::path::Path::new("/nonexistent/plan.json")).unwrap_err();
        assert!(e.starts_with("cannot read the plan"), "{e}");
    }

    #[test]
    fn a_breakpoint_plan_writes_the_folder_of_its_summary() {
        let plan = Plan::from_pairs(&pairs(&[
            ("LOADTEST_PROFILE", "breakpoint"),
            ("LOADTEST_RUN_ID", "b"),
        ]))
        .unwrap();
        assert_eq!(plan.folder(), PathBuf::from("tests/results/b-breakpoint"));
    }
}
