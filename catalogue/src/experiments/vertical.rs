//! The `vertical` experiment: a bigger gateway (more CPU) for CPU-bound logins.

use records::names::MetricName;

use super::*;
use records::knob::Knob;
use records::names::SettingName;

pub const SPEC: Spec = Spec {
    question: "What does a bigger gateway (more CPU) do for CPU-bound work?",
    scenario: Scenario::Login,
    gateways: 1,
    flipped: SettingName::GatewayCpus,
    values: &["0.5", "1.0"],
    fixed: &[(SettingName::GatewayThreads, "0")],
    load: &[Knob::Users(32), Knob::NoThink(true)],
    compose_only: true,
    counters: &[MetricName::LoginsTotal],
    histograms: &[],
    gauges: &[],
    measurements: &[],
    explain,
};

fn explain(sides: &Sides, rows: &mut Vec<Row>) -> Vec<String> {
    cpu_bound(true, sides, rows)
}
