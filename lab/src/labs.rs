//! The classroom labs (`labs/`): `make lab N=1` runs a lab's experiment in its QUICK form and
//! says where its handout and its answers are. One table, which the handouts are checked
//! against (`lab/tests/handouts.rs`).

/// What a lab runs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Run {
    /// `make benchmark-all QUICK=1 REPEATS=n`.
    Benchmark { repeats: u32 },
    /// `make faults QUICK=1`.
    Faults,
    /// `make experiment NAME=… QUICK=1`.
    Experiment(&'static str),
}

#[derive(Debug, Clone, Copy)]
pub struct Lab {
    pub n: u32,
    pub question: &'static str,
    /// The student's handout and the teacher's notes, from the checkout.
    pub handout: &'static str,
    pub teacher: &'static str,
    pub run: Run,
    /// Where in the report the answer is.
    pub look: &'static str,
}

pub const ALL: &[Lab] = &[
    Lab {
        n: 1,
        question: "What do 3 gateways and a cache buy, and why not 3×?",
        handout: "labs/01-gateways-and-cache.md",
        teacher: "labs/teacher/01-gateways-and-cache.md",
        run: Run::Benchmark { repeats: 3 },
        look: "tests/reports/summary.md: Comparisons (the repeats table and the sentences), \
           Predicted vs measured → What limited each run, What failed, and why; \
           graphs/compare-throughput-*.png, graphs/timeline-*.png",
    },
    Lab {
        n: 2,
        question: "What happens when a part fails?",
        handout: "labs/02-faults.md",
        teacher: "labs/teacher/02-faults.md",
        run: Run::Faults,
        look: "tests/reports/summary.md: Faults (per fault the promise PASS/FAIL, the outcome \
               row, graphs/fault-*.png, fault-p95-*.png, fault-mechanism-*.png)",
    },
    Lab {
        n: 3,
        question: "What does an index do to a slow query, and to the whole stack?",
        handout: "labs/03-index.md",
        teacher: "labs/teacher/03-index.md",
        run: Run::Experiment("index"),
        look: "tests/reports/summary.md: Experiments → `index` (both sides, DB time per query, \
               the prediction, the Why paragraph and both query plans)",
    },
    Lab {
        n: 4,
        question: "What does a pool of database connections save?",
        handout: "labs/04-db-pool.md",
        teacher: "labs/teacher/04-db-pool.md",
        run: Run::Experiment("db-pool"),
        look: "tests/reports/summary.md: Experiments → `db-pool` (connections opened per \
               request, connect time, peak connections, B's p50 against A's plus one connect)",
    },
];

pub fn find(n: u32) -> anyhow::Result<&'static Lab> {
    ALL.iter().find(|l| l.n == n).ok_or_else(|| {
        let known: Vec<String> = ALL.iter().map(|l| l.n.to_string()).collect();
        anyhow::anyhow!("no lab {n}: labs are {} (N=...)", known.join(", "))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labs_are_found_by_number_or_named_in_the_error() {
        assert_eq!(find(1).unwrap().run, Run::Benchmark { repeats: 3 });
        let e = find(99).unwrap_err().to_string();
        assert!(e.starts_with("no lab 99: labs are 1, 2, 3, 4"), "{e}");
        // A lab's experiment is one the lab runs.
        for lab in ALL {
            if let Run::Experiment(name) = lab.run {
                assert!(
                    crate::experiments::find(name).is_ok(),
                    "lab {}: {name}",
                    lab.n
                );
            }
        }
        assert_eq!(find(2).unwrap().run, Run::Faults);
    }
}
