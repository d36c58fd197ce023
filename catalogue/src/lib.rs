//! Every experiment and every fault of the lab, one module each, named by an enum variant.
//!
//! An experiment's module holds its question, the load, the setting it flips and the
//! conditions both sides share, the counters and gauges the lab samples for it, any extra
//! measurement (the query plan), and the report's mechanism rows and words. A fault's module
//! holds its steps, its promise, the checks of that promise, its mechanism chart and its
//! words. The lab runs them (`lab/src/experiments.rs`, `lab/src/faults.rs`), the report
//! renders them (`report/src/experiments.rs`, `report/src/faults.rs`), and the records they
//! write (`experiment.json`, `fault.json`, [`record`]) carry the enum, so both sides match
//! on it exhaustively: a missing arm is a compile error, never a "does not know" at run time.
//!
//! Adding an experiment: a module under `experiments/` with its `SPEC` (which points to its
//! `explain`), and one line in the list of `experiments/mod.rs`. A fault: a module under
//! `faults/` with its `SPEC` (steps, load, promise, `checks`, `detect_recover`, `mechanism`,
//! `why`), and one line in the list of `faults/mod.rs`.

pub mod experiment;
pub mod fault;
pub mod record;
pub mod run;
pub mod signals;
pub mod words;

pub use experiments::Experiment;
pub use faults::Fault;

/// Declares a name enum: its variants with their names as the lab, the records and `NAME=`
/// spell them, `ALL` in the lab's order, and serde and `FromStr` by those names.
macro_rules! names {
    ($(#[$doc:meta])* $enum:ident, $what:literal, $spec:ty { $($variant:ident => $name:literal, $module:ident;)+ }) => {
        $(pub(crate) mod $module;)+

        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $enum {
            $($variant,)+
        }

        impl $enum {
            /// Every one, in the order `make experiments` / `make faults` runs them.
            pub const ALL: &'static [$enum] = &[$($enum::$variant,)+];

            /// Its name in `NAME=`, in records and in the report (`db-pool`).
            pub fn name(self) -> &'static str {
                match self {
                    $($enum::$variant => $name,)+
                }
            }

            /// Its module's source, for the tests that read what its words use (the
            /// experiments' so far).
            #[cfg(test)]
            #[allow(dead_code)]
            pub(crate) fn source(self) -> &'static str {
                match self {
                    $($enum::$variant => include_str!(concat!(stringify!($module), ".rs")),)+
                }
            }

            /// Everything about it: its module's `SPEC`.
            pub fn spec(self) -> &'static $spec {
                match self {
                    $($enum::$variant => &$module::SPEC,)+
                }
            }
        }

        /// The first of the list: for building a record in code. A record file must name
        /// its experiment or fault; one that does not is refused.
        impl Default for $enum {
            fn default() -> Self {
                Self::ALL[0]
            }
        }

        impl std::fmt::Display for $enum {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.name())
            }
        }

        impl std::str::FromStr for $enum {
            type Err = String;

            /// A name, or a one-line error listing them all.
            fn from_str(s: &str) -> Result<Self, String> {
                if s.trim().is_empty() {
                    let names: Vec<&str> = Self::ALL.iter().map(|e| e.name()).collect();
                    return Err(format!(concat!("set NAME to the ", $what, ": one of {}"), names.join(", ")));
                }
                Self::ALL
                    .iter()
                    .copied()
                    .find(|e| e.name() == s)
                    .ok_or_else(|| {
                        let names: Vec<&str> = Self::ALL.iter().map(|e| e.name()).collect();
                        format!(concat!("unknown ", $what, " {:?}: one of {} (NAME=...)"), s, names.join(", "))
                    })
            }
        }

        impl serde::Serialize for $enum {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.name())
            }
        }

        impl<'de> serde::Deserialize<'de> for $enum {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let name = String::deserialize(d)?;
                name.parse().map_err(|_| {
                    serde::de::Error::custom(format!(
                        concat!($what, " {:?} is not one this scalelab knows (a newer lab wrote it?)"),
                        name
                    ))
                })
            }
        }
    };
}

mod experiments;
mod faults;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_through_serde_and_a_wrong_one_is_one_line() {
        for e in Experiment::ALL {
            let json = serde_json::to_string(e).unwrap();
            assert_eq!(json, format!("\"{}\"", e.name()));
            assert_eq!(serde_json::from_str::<Experiment>(&json).unwrap(), *e);
        }
        for f in Fault::ALL {
            assert_eq!(f.name().parse::<Fault>().unwrap(), *f);
        }
        assert_eq!(Experiment::DbPool.name(), "db-pool");
        let e = "indexes".parse::<Experiment>().unwrap_err();
        assert_eq!(
            e,
            "unknown experiment \"indexes\": one of index, db-pool, client-reuse, local-cache, batch, scale-workers, scale-microservice, worker-threads, vertical, offload, lb-algorithm (NAME=...)"
        );
        assert_eq!(
            "".parse::<Fault>().unwrap_err(),
            "set NAME to the fault: one of kill-gateway, redis-outage, postgres-restart, worker-crash, slow-microservice, lb-stall"
        );
        let e = serde_json::from_str::<Fault>("\"meteor\"")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("fault \"meteor\" is not one this scalelab knows"),
            "{e}"
        );
    }

    #[test]
    fn a_record_without_its_name_or_with_an_unknown_one_does_not_read() {
        use record::{ExperimentRecord, FaultRecord};
        let ok: ExperimentRecord =
            serde_json::from_str(r#"{"name": "batch", "side": "A"}"#).unwrap();
        assert_eq!((ok.name, ok.side.as_str()), (Experiment::Batch, "A"));
        assert!(serde_json::from_str::<ExperimentRecord>(r#"{"side": "A"}"#).is_err());
        assert!(serde_json::from_str::<ExperimentRecord>(r#"{"name": "offload-2"}"#).is_err());
        assert!(serde_json::from_str::<FaultRecord>(r#"{"promise": "x"}"#).is_err());
        let f: FaultRecord = serde_json::from_str(r#"{"name": "worker-crash"}"#).unwrap();
        assert_eq!(f.name, Fault::WorkerCrash);
    }
}
