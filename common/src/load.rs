//! What a load run is: its scenario and its profile, one definition for the load generator
//! that runs them and the lab that asks for them (`lab load GATEWAYS SCENARIO PROFILE`), so
//! both parse the same names and list them in their help.

use clap::ValueEnum;
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scenario {
    /// `/data` or `/process` with one fixed key: cache hits after the first request.
    Hit,
    /// A key never asked before on every request: always a cache miss.
    Miss,
    /// Keys from a key space of KEY_SPACE keys, skewed by ZIPF_S: the hit ratio follows
    /// the TTL and the skew.
    Mixed,
    /// A login storm: `POST /login` on every iteration.
    Login,
    /// `POST /longtask`, then poll `/tasks/{id}` until done; end-to-end job time recorded.
    Longtask,
    /// `GET /listing` of one of LISTING_PREFIXES prefixes: a slow listing behind the
    /// gateway's LISTING_CACHE.
    Listing,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    /// The seed lab's protocol: 1000 users, +100 users/s, 60 s.
    Classic,
    /// 10 users, 10 s: fills caches and pools before a measured run.
    Warmup,
    /// Every user at once.
    Burst,
    /// Users added steadily over the first half of the run.
    Ramp,
    /// Step-load search: runs of START_USERS, +STEP_USERS, ... users, STEP_SECS each, until
    /// one breaks the SLA; reports the highest load that met it.
    Breakpoint,
    /// Ramp up, hold, ramp down (20% / 60% / 20% of the duration; 1 min / 3 min / 1 min by
    /// default), the k6 shape.
    Stages,
    /// A load that rises and falls, for the autoscaler: LOW_USERS, then up to USERS, held,
    /// then back to LOW_USERS and held (10 % / 10 % / 30 % / 5 % / 45 % of the duration).
    Wave,
    /// The open model: ARRIVAL_RATE requests per second whatever the answers take (Goose's
    /// throttle over enough users sending without think time), with coordinated-omission
    /// mitigation; 60 s.
    Open,
}

impl Scenario {
    /// Its name on the command line and in records (`hit`, `longtask`).
    pub fn name(self) -> String {
        value_name(self)
    }
}

impl Profile {
    /// Its name on the command line and in records (`classic`, `breakpoint`).
    pub fn name(self) -> String {
        value_name(self)
    }
}

fn value_name<T: ValueEnum>(value: T) -> String {
    value
        .to_possible_value()
        .map(|v| v.get_name().to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for s in Scenario::value_variants() {
            assert_eq!(Scenario::from_str(&s.name(), false).unwrap(), *s);
        }
        for p in Profile::value_variants() {
            assert_eq!(Profile::from_str(&p.name(), false).unwrap(), *p);
        }
        assert_eq!(Profile::Breakpoint.name(), "breakpoint");
    }
}
