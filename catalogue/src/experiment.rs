//! What an experiment is: [`Spec`], which each module under `experiments/` fills in once for
//! the lab (what to run and read) and the report (what to say).

use records::names::{MetricName, Series, SettingName};

use crate::record::ExperimentRecord;
use crate::run::Run;
use crate::words::Row;
use records::knob::Knob;
use records::load::Scenario;

/// One side of an experiment as the report reads it: the client's run and what the lab
/// measured on the stack meanwhile.
pub type Side = (Run, ExperimentRecord);

/// An extra reading the lab takes after a side's load, besides the counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Measurement {
    /// How Postgres runs the microservice's query (`GET /explain/hot`): `query_plan`.
    QueryPlan,
}

/// One experiment: a question, the load, the setting whose value differs per side, what the
/// lab reads on the stack, and how the report explains the outcome.
#[derive(Debug, Clone, Copy)]
pub struct Spec {
    pub question: &'static str,
    pub scenario: Scenario,
    pub gateways: usize,
    /// The setting flipped, and its value on side A, B (, C).
    pub flipped: SettingName,
    pub values: &'static [&'static str],
    /// Settings both sides share: the conditions under which the effect shows.
    pub fixed: &'static [(SettingName, &'static str)],
    /// The load generator's own knobs for this experiment (users, task length): each side
    /// runs with them unless `make` or the shell sets one.
    pub load: &'static [Knob],
    /// Needs a container CPU limit: only the compose runtime has one.
    pub compose_only: bool,
    /// Counters whose growth over a side's run the words read (besides [`BASE_COUNTERS`]).
    pub counters: &'static [MetricName],
    /// Histograms whose mean over the run the words read (their `_sum` and `_count`).
    pub histograms: &'static [MetricName],
    /// Gauges whose peak over the run the words read (read each second).
    pub gauges: &'static [MetricName],
    pub measurements: &'static [Measurement],
    /// The mechanism rows it adds to the side-by-side table, and its paragraphs.
    pub explain: fn(&[Side], &mut Vec<Row>) -> Vec<String>,
}

/// Counters every experiment's table reads: requests per route, connections, CPU.
pub const BASE_COUNTERS: &[MetricName] = &[
    MetricName::HttpRequestsTotal,
    MetricName::HttpConnectionsAcceptedTotal,
    MetricName::ProcessCpuSecondsTotal,
];

impl Spec {
    /// Every counter the lab reads before and after a side's run: the base ones, the
    /// experiment's own and its histograms' `_sum` and `_count`.
    pub fn counters(&self) -> Vec<Series> {
        let mut out: Vec<Series> = BASE_COUNTERS
            .iter()
            .chain(self.counters)
            .map(|&m| m.into())
            .collect();
        for h in self.histograms {
            out.push(h.sum());
            out.push(h.count());
        }
        out
    }
}

/// An experiment's conditions as one run sets them ([`Spec::conditions`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Conditions {
    pub fixed: Vec<(String, String)>,
    pub load: Vec<(String, String)>,
}

impl Spec {
    /// What both sides share (`fixed`) and the load's knobs (`load`) as a run sets them: the
    /// spec's values, except where the caller set one in the environment
    /// (`LISTING_TTL_SECS=2 make lab N=8`), so that a handout's extension changes one
    /// condition and predicts again. The flipped setting is the experiment and never yields.
    pub fn conditions(&self, env: impl Fn(&str) -> Option<String>) -> Conditions {
        let resolve = |pairs: &mut dyn Iterator<Item = (&'static str, String)>| {
            pairs
                .map(|(k, v)| {
                    let v = env(k).filter(|v| !v.is_empty()).unwrap_or(v);
                    (k.to_string(), v)
                })
                .collect()
        };
        Conditions {
            fixed: resolve(&mut self.fixed.iter().map(|(k, v)| (k.as_str(), v.to_string()))),
            load: resolve(&mut self.load.iter().map(|k| (k.name(), k.value()))),
        }
    }

    /// What side `i` sets: the flipped setting first, then the fixed ones.
    pub fn side_settings(&self, i: usize, c: &Conditions) -> Vec<(String, String)> {
        std::iter::once((self.flipped.to_string(), self.values[i].to_string()))
            .chain(c.fixed.iter().cloned())
            .collect()
    }
}

/// Side names: A, B, C, ….
pub fn side_name(i: usize) -> String {
    char::from(b'A' + i as u8).to_string()
}
