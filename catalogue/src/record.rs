//! What the lab writes beside a run's own record: `experiment.json` (the stack's counters
//! while the load ran) and `fault.json` (what was done to the stack, and when).

use records::names::{MetricName, Series};
use records::record::read_json;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

use crate::{Experiment, Fault};

/// `experiment.json`, next to `run.json` in a run of `make experiment`: what the lab measured
/// on the stack's own counters while the load ran, for the report to explain the effect.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ExperimentRecord {
    /// Which experiment: a record without one, or naming one this scalelab does not know
    /// (a newer lab's), does not read.
    pub name: Experiment,
    /// The question the experiment answers, as the lab asks it.
    #[serde(default)]
    pub question: String,
    #[serde(default)]
    pub side: String,
    /// The setting this experiment flips, and its value on this side.
    #[serde(default)]
    pub flipped: String,
    #[serde(default)]
    pub value: String,
    /// Every setting the experiment set on this side (the flipped one and the fixed ones).
    #[serde(default)]
    pub settings: BTreeMap<String, String>,
    /// The load generator's knobs the experiment set (`LONGTASK_MS`, …).
    #[serde(default)]
    pub load: BTreeMap<String, String>,
    /// Seconds between the first and the last reading of the counters.
    #[serde(default)]
    pub seconds: f64,
    /// How much each counter grew over the run, per instance.
    #[serde(default)]
    pub counters: Vec<CounterDelta>,
    /// The highest value each gauge showed, per instance (read each second).
    #[serde(default)]
    pub peaks: Vec<CounterDelta>,
    /// How Postgres ran the microservice's query on this side (the `index` experiment).
    #[serde(default)]
    pub query_plan: Option<records::wire::QueryPlan>,
}

/// `fault.json`, beside `run.json` in a run of `make fault`: what the lab did to the stack
/// and when.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FaultRecord {
    /// Which fault (required, as the experiment's name is).
    pub name: Fault,
    /// What the stack promises meanwhile, as the report checks it.
    #[serde(default)]
    pub promise: String,
    /// The load balancer's health-check interval in force (what "detected in time" means).
    #[serde(default)]
    pub health_interval_ms: f64,
    /// The timeouts in force (`QUEUE_TIMEOUT_MS`, `MICROSERVICE_TIMEOUT_MS`) and the settings
    /// the fault set: what "no wait past the timeouts" means.
    #[serde(default)]
    pub settings: BTreeMap<String, f64>,
    #[serde(default)]
    pub events: Vec<FaultEvent>,
    /// The jobs the lab queued before a worker crash, and what became of them.
    #[serde(default)]
    pub jobs: Option<JobAccount>,
}

/// Jobs the lab queued itself and followed to the end (`worker-crash`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct JobAccount {
    /// Asked for.
    pub queued: u64,
    /// Accepted by the gateway (202).
    pub accepted: u64,
    pub done: u64,
    pub failed: u64,
    /// Neither done nor failed when the lab stopped waiting: lost.
    pub unfinished: u64,
    /// Finished after more than one delivery: taken over from the crashed worker.
    pub taken_over: u64,
    /// Unix time by which the lab saw every job finished (None: some never did).
    pub all_finished_at: Option<f64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct FaultEvent {
    /// Unix seconds.
    pub at: f64,
    /// `fault` or `repair`.
    pub kind: String,
    /// `kill gateway-2`, `cut redis`, …
    pub action: String,
}

impl FaultRecord {
    pub const FILE: &'static str = "fault.json";

    /// The run's `fault.json`: None when there is none, an error naming the file when it
    /// does not read (corrupt, or a fault this scalelab does not know).
    pub fn read(dir: &Path) -> Result<Option<Self>, String> {
        read_present(dir, Self::FILE)
    }

    /// When the event of this kind happened.
    pub fn at(&self, kind: &str) -> Option<f64> {
        self.events.iter().find(|e| e.kind == kind).map(|e| e.at)
    }
}

/// One series of one instance: `service`/`instance` as in its metric labels.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CounterDelta {
    /// `gateway`, `microservice`, `worker`.
    pub service: String,
    pub instance: String,
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

impl ExperimentRecord {
    pub const FILE: &'static str = "experiment.json";

    /// A counter's growth summed over a service's instances and the series whose labels
    /// include `matching`.
    pub fn delta(
        &self,
        service: &str,
        series: impl Into<Series>,
        matching: &[(&str, &str)],
    ) -> f64 {
        sum_matching(&self.counters, service, series.into(), matching)
    }

    /// The same per instance, in instance order.
    pub fn delta_by_instance(
        &self,
        service: &str,
        series: impl Into<Series>,
        matching: &[(&str, &str)],
    ) -> BTreeMap<String, f64> {
        let series = series.into();
        let mut out = BTreeMap::new();
        for c in self
            .counters
            .iter()
            .filter(|c| c.service == service && series.is(&c.name))
        {
            if matches_labels(&c.labels, matching) {
                *out.entry(c.instance.clone()).or_insert(0.0) += c.value;
            }
        }
        out
    }

    /// A gauge every instance reports for the whole stack (the queue's lag): its highest
    /// value on any instance; None when it was never read.
    pub fn peak_shared(&self, service: &str, gauge: MetricName) -> Option<f64> {
        self.peaks
            .iter()
            .filter(|c| c.service == service && c.name == gauge.as_str())
            .map(|c| c.value)
            .reduce(f64::max)
    }

    /// A gauge's highest value, summed over instances; None when it was never read.
    pub fn peak(&self, service: &str, gauge: MetricName) -> Option<f64> {
        self.peaks
            .iter()
            .any(|c| c.service == service && c.name == gauge.as_str())
            .then(|| sum_matching(&self.peaks, service, gauge.into(), &[]))
    }

    /// A histogram's mean over the run (its `_sum` growth over its `_count` growth).
    pub fn mean(&self, service: &str, histogram: MetricName) -> Option<f64> {
        let count = self.delta(service, histogram.count(), &[]);
        (count > 0.0).then(|| self.delta(service, histogram.sum(), &[]) / count)
    }

    /// The run's `experiment.json`, as [`FaultRecord::read`] reads `fault.json`.
    pub fn read(dir: &Path) -> Result<Option<Self>, String> {
        read_present(dir, Self::FILE)
    }
}

fn read_present<T: serde::de::DeserializeOwned>(
    dir: &Path,
    file: &str,
) -> Result<Option<T>, String> {
    let path = dir.join(file);
    if !path.exists() {
        return Ok(None);
    }
    read_json(&path)
        .map(Some)
        .map_err(|e| format!("{file}: {e}"))
}

fn matches_labels(labels: &BTreeMap<String, String>, matching: &[(&str, &str)]) -> bool {
    matching
        .iter()
        .all(|(k, v)| labels.get(*k).map(String::as_str) == Some(*v))
}

fn sum_matching(
    rows: &[CounterDelta],
    service: &str,
    series: Series,
    matching: &[(&str, &str)],
) -> f64 {
    rows.iter()
        .filter(|c| {
            c.service == service && series.is(&c.name) && matches_labels(&c.labels, matching)
        })
        // From +0.0: an empty f64 sum is -0.0, which prints as "-0".
        .fold(0.0, |total, c| total + c.value)
}
