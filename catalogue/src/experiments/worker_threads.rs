//! The `worker-threads` experiment: one thread per gateway against one per core, for CPU-bound logins.

use records::names::MetricName;

use super::*;
use records::knob::Knob;
use records::names::SettingName;

pub const SPEC: Spec = Spec {
    question:
        "What do more threads per gateway do for CPU-bound work (the Node.js cluster question)?",
    scenario: Scenario::Login,
    gateways: 1,
    flipped: SettingName::GatewayThreads,
    values: &["1", "0"],
    fixed: &[],
    // Logins back to back: the users offer more than any side can hash.
    load: &[Knob::Users(32), Knob::NoThink(true)],
    compose_only: false,
    counters: &[MetricName::LoginsTotal],
    histograms: &[],
    gauges: &[],
    measurements: &[],
    explain,
};

fn explain(sides: &Sides, rows: &mut Vec<Row>) -> Vec<String> {
    cpu_bound(false, sides, rows)
}
