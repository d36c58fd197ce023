//! The SLA as rules, in the style of k6's thresholds: `p95<500ms`, `p99<=1s`, `error<1%`,
//! `rps>=100`, optionally for one route (`GET /data:p95<100ms`), separated by commas. Checked
//! at the end of every run against the run's own record; each rule's verdict, with the value
//! observed, goes into `run.json` and the report.

use crate::record::{RouteRecord, RunRecord, SlaCheck};

/// What a rule measures.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Metric {
    Avg,
    P50,
    P95,
    P99,
    Max,
    /// Failed requests, in percent of all.
    ErrorPct,
    /// Requests per second over the run: every request sent (failed ones and logins too),
    /// as the report's `req/s`.
    Rps,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Op {
    Below,
    AtMost,
    Above,
    AtLeast,
}

/// One rule: `[ROUTE:]METRIC OP LIMIT[UNIT]`; latencies are kept in ms.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    /// As written (spaces trimmed): what the verdict names.
    pub text: String,
    pub route: Option<String>,
    pub metric: Metric,
    pub op: Op,
    pub limit: f64,
}

/// The rules of an `SLA` setting; an error names the rule and what is wrong, in one line.
pub fn parse(text: &str) -> Result<Vec<Rule>, String> {
    let rules: Vec<Rule> = text
        .split([',', ';'])
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .map(parse_rule)
        .collect::<Result<_, _>>()?;
    if rules.is_empty() {
        return Err(format!(
            "SLA {text:?} holds no rule (e.g. p95<500ms,error<1%)"
        ));
    }
    Ok(rules)
}

/// The rules when no `SLA` is set: p95 below `SLA_P95_MS`, errors at most `SLA_ERROR_PCT`.
pub fn defaults(p95_ms: f64, error_pct: f64) -> Vec<Rule> {
    vec![
        Rule {
            text: format!("p95<{p95_ms}ms"),
            route: None,
            metric: Metric::P95,
            op: Op::Below,
            limit: p95_ms,
        },
        Rule {
            text: format!("error<={error_pct}%"),
            route: None,
            metric: Metric::ErrorPct,
            op: Op::AtMost,
            limit: error_pct,
        },
    ]
}

fn parse_rule(rule: &str) -> Result<Rule, String> {
    let bad = |why: &str| {
        Err(format!(
            "SLA rule {rule:?}: {why} (rules look like p95<500ms, error<1%, rps>=100, GET /data:p99<1s)"
        ))
    };
    let (route, body) = match rule.rsplit_once(':') {
        Some((route, body)) if route.contains('/') => (Some(route.trim().to_string()), body.trim()),
        _ => (None, rule),
    };
    let Some(at) = body.find(['<', '>']) else {
        return bad("no comparison (<, <=, >, >=)");
    };
    let (name, rest) = body.split_at(at);
    let (op, value) = if let Some(v) = rest.strip_prefix("<=") {
        (Op::AtMost, v)
    } else if let Some(v) = rest.strip_prefix(">=") {
        (Op::AtLeast, v)
    } else if let Some(v) = rest.strip_prefix('<') {
        (Op::Below, v)
    } else {
        (Op::Above, &rest[1..])
    };
    let metric = match name.trim().to_ascii_lowercase().as_str() {
        "avg" | "mean" => Metric::Avg,
        "p50" | "median" => Metric::P50,
        "p95" => Metric::P95,
        "p99" => Metric::P99,
        "max" => Metric::Max,
        "error" | "errors" | "error-rate" | "error_rate" => Metric::ErrorPct,
        "rps" | "throughput" => Metric::Rps,
        other => {
            return bad(&format!(
                "unknown measure {other:?}: avg, p50, p95, p99, max, error, rps"
            ))
        }
    };
    let value = value.trim();
    let split = value
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(value.len());
    let (number, unit) = value.split_at(split);
    let Ok(number) = number.parse::<f64>() else {
        return bad("no number to compare with");
    };
    let limit = match (metric, unit.trim()) {
        (Metric::ErrorPct, "%" | "") => number,
        (Metric::Rps, "" | "/s" | "rps") => number,
        (Metric::ErrorPct | Metric::Rps, unit) => {
            return bad(&format!(
                "unit {unit:?} does not fit: errors in %, throughput in req/s"
            ))
        }
        (_, "ms" | "") => number,
        (_, "s") => number * 1000.0,
        (_, unit) => return bad(&format!("latency unit {unit:?}: ms or s")),
    };
    Ok(Rule {
        text: rule.to_string(),
        route,
        metric,
        op,
        limit,
    })
}

impl Rule {
    /// The value this rule reads from a run (None when the run has none, e.g. a route it never
    /// asked or a percentile of no request).
    pub fn observed(&self, run: &RunRecord) -> Option<f64> {
        let secs = run.duration_secs.max(f64::MIN_POSITIVE);
        let (requests, failures, latency) = match &self.route {
            None => (run.requests, run.failures, &run.latency_ms),
            Some(route) => {
                let r: &RouteRecord = run.by_route.get(route)?;
                (r.requests, r.failures, &r.latency_ms)
            }
        };
        match self.metric {
            Metric::Avg => (requests > 0).then_some(latency.avg),
            Metric::P50 => latency.p50,
            Metric::P95 => latency.p95,
            Metric::P99 => latency.p99,
            Metric::Max => (requests > 0).then_some(latency.max),
            Metric::ErrorPct => (requests > 0).then(|| failures as f64 * 100.0 / requests as f64),
            Metric::Rps => Some(requests as f64 / secs),
        }
    }

    /// The verdict on a run: a rule with nothing to read fails.
    pub fn check(&self, run: &RunRecord) -> SlaCheck {
        let observed = self.observed(run);
        let passed = observed.is_some_and(|v| match self.op {
            Op::Below => v < self.limit,
            Op::AtMost => v <= self.limit,
            Op::Above => v > self.limit,
            Op::AtLeast => v >= self.limit,
        });
        SlaCheck {
            rule: self.text.clone(),
            observed,
            unit: match self.metric {
                Metric::ErrorPct => "%",
                Metric::Rps => "req/s",
                _ => "ms",
            }
            .to_string(),
            passed,
        }
    }
}

/// Checks every rule on the run and writes the verdicts into its record.
pub fn judge(run: &mut RunRecord, rules: &[Rule]) {
    let checks: Vec<SlaCheck> = rules.iter().map(|r| r.check(run)).collect();
    run.sla.failed_rules = checks
        .iter()
        .filter(|c| !c.passed)
        .map(SlaCheck::line)
        .collect();
    run.sla.met = Some(checks.iter().all(|c| c.passed));
    run.sla.rules = checks;
}

impl SlaCheck {
    /// `p95<1ms (observed 1384 ms)`.
    pub fn line(&self) -> String {
        match self.observed {
            Some(v) => format!("{} (observed {} {})", self.rule, round(v), self.unit),
            None => format!("{} (nothing to observe)", self.rule),
        }
    }
}

fn round(v: f64) -> String {
    if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::LatencySummary;

    fn run() -> RunRecord {
        let mut r: RunRecord = serde_json::from_str(
            r#"{"schema_version":1,"run_id":"r","scenario":"miss","profile":"classic","gateways":1,
                "latency_ms":{"avg":40.0,"p50":30.0,"p95":120.0,"p99":400.0,"max":900.0},
                "requests":1000,"rps":50.0}"#,
        )
        .unwrap();
        r.failures = 20;
        r.duration_secs = 20.0;
        r.by_route.insert(
            "GET /data".into(),
            RouteRecord {
                requests: 800,
                failures: 0,
                latency_ms: LatencySummary {
                    avg: 20.0,
                    p50: Some(10.0),
                    p95: Some(90.0),
                    p99: Some(200.0),
                    max: 300.0,
                },
                ..Default::default()
            },
        );
        r
    }

    #[test]
    fn rules_read_like_k6_thresholds() {
        let rules = parse(" p95<500ms, p99<=1s; error<1% ,rps>=100, GET /data:p99<150ms").unwrap();
        assert_eq!(rules.len(), 5);
        assert_eq!(
            (rules[1].metric, rules[1].op, rules[1].limit),
            (Metric::P99, Op::AtMost, 1000.0)
        );
        assert_eq!(rules[4].route.as_deref(), Some("GET /data"));
        assert_eq!(rules[4].text, "GET /data:p99<150ms");
    }

    #[test]
    fn bad_rules_are_one_line_naming_the_rule() {
        for (text, why) in [
            ("p95 500ms", "no comparison"),
            ("p42<1ms", "unknown measure \"p42\""),
            ("p95<fast", "no number"),
            ("error<3ms", "unit \"ms\" does not fit"),
            ("p95<3h", "latency unit \"h\""),
            (" , ", "holds no rule"),
        ] {
            let e = parse(text).unwrap_err();
            assert!(e.contains(why), "{text}: {e}");
            assert!(!e.contains('\n'), "{e}");
        }
    }

    #[test]
    fn each_rule_is_judged_on_the_run_with_what_it_observed() {
        let mut r = run();
        let rules = parse("p95<1ms,p95<500ms,error<1%,error<=2%,rps>=100,rps>40,GET /data:p99<150ms,GET /login:p95<1ms").unwrap();
        judge(&mut r, &rules);
        let verdicts: Vec<(bool, Option<f64>)> =
            r.sla.rules.iter().map(|c| (c.passed, c.observed)).collect();
        assert_eq!(
            verdicts,
            vec![
                (false, Some(120.0)),
                (true, Some(120.0)),
                (false, Some(2.0)),
                (true, Some(2.0)),
                (false, Some(50.0)),
                (true, Some(50.0)),
                (false, Some(200.0)),
                (false, None),
            ]
        );
        assert_eq!(r.sla.met, Some(false));
        assert_eq!(r.sla.failed_rules[0], "p95<1ms (observed 120 ms)");
        assert_eq!(
            r.sla.failed_rules.last().unwrap(),
            "GET /login:p95<1ms (nothing to observe)"
        );
        judge(&mut r, &defaults(500.0, 5.0));
        assert_eq!(r.sla.met, Some(true));
        assert_eq!(r.sla.rules[0].rule, "p95<500ms");
    }
}
