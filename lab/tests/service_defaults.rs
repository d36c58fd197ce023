//! A setting's default is written once, in the settings table: every service's own flag
//! default (what it runs with when started by hand, without the lab) must be the table's,
//! for every setting of the table that the service reads. Read from each service's clap
//! definition, not from a parse, so the test's own environment cannot change it.

use clap::CommandFactory;
use stack::settings::{Service, TABLE};
use std::collections::BTreeMap;

/// Environment name → default value of every argument of a service that has both.
fn defaults(cmd: clap::Command) -> BTreeMap<String, String> {
    cmd.get_arguments()
        .filter_map(|a| {
            let env = a.get_env()?.to_string_lossy().into_owned();
            let default: Vec<String> = a
                .get_default_values()
                .iter()
                .map(|v| v.to_string_lossy().into_owned())
                .collect();
            (!default.is_empty()).then(|| (env, default.join(",")))
        })
        .collect()
}

#[test]
fn every_service_default_is_the_settings_tables() {
    let services = [
        (Service::Gateway, gateway::Config::command()),
        (Service::Microservice, microservice::Config::command()),
        (Service::Worker, worker::Config::command()),
        (Service::LoadBalancer, load_balancer::Config::command()),
    ];
    let mut compared = 0;
    let mut differ = Vec::new();
    for (service, cmd) in services {
        let own = defaults(cmd);
        for setting in TABLE.iter().filter(|s| s.applies_to(service)) {
            if let Some(default) = own.get(setting.name.as_str()) {
                compared += 1;
                if default != setting.default {
                    differ.push(format!(
                        "{}: {} defaults to {default:?}, the table to {:?}",
                        service.name(),
                        setting.name,
                        setting.default
                    ));
                }
            }
        }
    }
    assert!(
        differ.is_empty(),
        "defaults written twice, differently:\n{}",
        differ.join("\n")
    );
    assert!(compared >= 20, "only {compared} defaults compared");
}
