//! A run's counts and latency histograms, kept as each request ends: per route (the run's
//! figures), per second of the run (its series) and for the successful requests (their
//! curve). Percentiles come from HDR histograms (the `hdrhistogram` crate: every value kept
//! to three significant figures, one for a second's), so a run of millions of requests
//! costs the same memory as one of thousands, and the parts of a run made by several
//! generators add up exactly ([`Tally::absorb`]): the merged percentiles are those of one
//! tally holding every request.
//!
//! Each request has two clocks. Its **latency** runs from when it was meant to be sent to its
//! whole answer: what the user of the system felt. Its **service time** runs from when it was
//! really sent. They differ only under the open model, whose arrivals are scheduled in
//! advance ([`crate::arrivals`]): when the system stalls, the requests meant for the stall go
//! out late, and their latency counts the wait (no coordinated omission). The gap between
//! the two is the **send lag**. An arrival that found every request slot busy is **dropped**,
//! counted in the second it was meant for.

use hdrhistogram::Histogram;
use records::record::{LatencyPerSecond, LatencySummary, OkLatency, RouteRecord};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// One ended request, as the scenarios saw it. Times are microseconds on the run's clock
/// (since its start, [`crate::clock`]).
#[derive(Debug, Clone, Copy)]
pub struct Ended<'a> {
    /// The route it counts under (`/data`) and its method (`GET`).
    pub name: &'a str,
    pub method: &'a str,
    /// When the schedule meant it to go (= `sent_us` but under the open model).
    pub intended_us: u64,
    /// It served an arrival of the open model's schedule (its send lag is counted).
    pub scheduled: bool,
    pub sent_us: u64,
    /// From its send to its whole answer (or to the failure).
    pub service_us: u64,
    pub success: bool,
    /// 0 when no answer came (refused, reset, timed out).
    pub status: u16,
}

impl Ended<'_> {
    /// From its intended send to its answer.
    pub fn latency_us(&self) -> u64 {
        (self.sent_us + self.service_us).saturating_sub(self.intended_us)
    }

    pub fn lag_us(&self) -> u64 {
        self.sent_us.saturating_sub(self.intended_us)
    }

    fn answered_us(&self) -> u64 {
        self.sent_us + self.service_us
    }
}

/// The longest time a histogram holds (one hour, in µs): a longer one is counted as an hour.
const HIGHEST_US: u64 = 3_600_000_000;

/// An HDR histogram of microseconds with the exact sum and maximum beside it (its mean and
/// maximum are then exact; its percentiles are to its precision). Written as its non-empty
/// buckets, `[value, count]`, which re-recorded give the same histogram.
#[derive(Debug, Clone, PartialEq)]
pub struct Times {
    histogram: Histogram<u64>,
    sum_us: u128,
    max_us: u64,
}

#[derive(Serialize, Deserialize)]
struct TimesFile {
    sigfig: u8,
    sum_us: u128,
    max_us: u64,
    buckets: Vec<[u64; 2]>,
}

impl Times {
    /// Three significant figures: for a run's and a route's figures.
    pub fn fine() -> Self {
        Self::with_sigfig(3)
    }

    /// Two significant figures (1 %): for each second's, a tenth of the memory.
    pub fn coarse() -> Self {
        Self::with_sigfig(2)
    }

    fn with_sigfig(sigfig: u8) -> Self {
        Self {
            histogram: Histogram::new_with_bounds(1, HIGHEST_US, sigfig)
                .expect("1 µs to an hour at 2 or 3 figures is a valid histogram"),
            sum_us: 0,
            max_us: 0,
        }
    }

    pub fn record(&mut self, us: u64) {
        let us = us.min(HIGHEST_US);
        self.histogram.saturating_record(us.max(1));
        self.sum_us += u128::from(us);
        self.max_us = self.max_us.max(us);
    }

    /// Adds another's values (both of one precision).
    pub fn add(&mut self, other: &Times) {
        self.histogram
            .add(&other.histogram)
            .expect("histograms of the same bounds add");
        self.sum_us += other.sum_us;
        self.max_us = self.max_us.max(other.max_us);
    }

    pub fn count(&self) -> u64 {
        self.histogram.len()
    }

    /// Nearest-rank percentile (`q` in 0..=1) in ms, to the histogram's precision and never
    /// above the exact maximum; None when empty.
    pub fn percentile_ms(&self, q: f64) -> Option<f64> {
        (self.count() > 0).then(|| {
            let us = self.histogram.value_at_quantile(q).min(self.max_us);
            us as f64 / 1000.0
        })
    }

    pub fn max_ms(&self) -> f64 {
        self.max_us as f64 / 1000.0
    }

    pub fn mean_ms(&self) -> f64 {
        match self.count() {
            0 => 0.0,
            n => self.sum_us as f64 / n as f64 / 1000.0,
        }
    }

    pub fn summary(&self) -> LatencySummary {
        LatencySummary {
            avg: self.mean_ms(),
            p50: self.percentile_ms(0.50),
            p95: self.percentile_ms(0.95),
            p99: self.percentile_ms(0.99),
            max: self.max_ms(),
        }
    }
}

impl Serialize for Times {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        TimesFile {
            sigfig: self.histogram.sigfig(),
            sum_us: self.sum_us,
            max_us: self.max_us,
            buckets: self
                .histogram
                .iter_recorded()
                .map(|v| [v.value_iterated_to(), v.count_at_value()])
                .collect(),
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for Times {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let file = TimesFile::deserialize(d)?;
        if !(1..=3).contains(&file.sigfig) {
            return Err(D::Error::custom(format!(
                "a histogram of {} significant figures",
                file.sigfig
            )));
        }
        let mut times = Self::with_sigfig(file.sigfig);
        for [value, count] in file.buckets {
            times
                .histogram
                .saturating_record_n(value.min(HIGHEST_US), count);
        }
        times.sum_us = file.sum_us;
        times.max_us = file.max_us;
        Ok(times)
    }
}

/// One route's requests: counts and both clocks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Route {
    pub requests: u64,
    pub failures: u64,
    pub status_codes: BTreeMap<u16, u64>,
    pub latency: Times,
    pub service: Times,
}

impl Default for Route {
    fn default() -> Self {
        Self {
            requests: 0,
            failures: 0,
            status_codes: BTreeMap::new(),
            latency: Times::fine(),
            service: Times::fine(),
        }
    }
}

/// One second of the run: the scenario's requests answered in it (logins left out: they
/// are the set-up), and the arrivals meant for it that were dropped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Second {
    pub requests: u64,
    pub failures: u64,
    pub classes: BTreeMap<String, u64>,
    pub statuses: BTreeMap<u16, u64>,
    pub latency: Times,
    /// Only under the open model (where it differs from the latency).
    pub service: Option<Times>,
    pub dropped: u64,
    /// The scenario's requests sent in this second (the rest count by their answer's).
    #[serde(default)]
    pub sent: u64,
}

impl Second {
    fn new(open: bool) -> Self {
        Self {
            requests: 0,
            failures: 0,
            classes: BTreeMap::new(),
            statuses: BTreeMap::new(),
            latency: Times::coarse(),
            service: open.then(Times::coarse),
            dropped: 0,
            sent: 0,
        }
    }
}

/// Everything a run (or a generator's part of one) measured of its requests.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tally {
    /// Under the open model: the per-second service times are kept too.
    pub open: bool,
    /// Unix time of second 0 (the run clock's start).
    pub started_at: f64,
    pub first_login_ms: Option<u64>,
    /// First request sent to last answer received, ms on the run's clock.
    pub window_ms: Option<[f64; 2]>,
    /// By route key, `GET /data` (logins included, as a run's totals count them).
    pub routes: BTreeMap<String, Route>,
    pub seconds: Vec<Second>,
    /// The scenario's successful requests' latency.
    pub ok: Times,
    /// Send lag of every request that served an arrival of the schedule (none under the
    /// closed model).
    pub lag: Times,
    pub dropped: u64,
}

/// The file a generator writes its tally to, in its run folder.
pub const FILE: &str = "tally.json";

impl Tally {
    pub fn new(open: bool, started_at: f64) -> Self {
        Self {
            open,
            started_at,
            first_login_ms: None,
            window_ms: None,
            routes: BTreeMap::new(),
            seconds: Vec::new(),
            ok: Times::fine(),
            lag: Times::fine(),
            dropped: 0,
        }
    }

    fn second(&mut self, index: usize) -> &mut Second {
        if self.seconds.len() <= index {
            let open = self.open;
            self.seconds.resize_with(index + 1, || Second::new(open));
        }
        &mut self.seconds[index]
    }

    /// Counts an ended request.
    pub fn add(&mut self, r: &Ended) {
        let (sent, answered) = (r.sent_us as f64 / 1000.0, r.answered_us() as f64 / 1000.0);
        self.window_ms = Some(
            self.window_ms
                .map_or([sent, answered], |[a, b]| [a.min(sent), b.max(answered)]),
        );
        let route = self
            .routes
            .entry(format!("{} {}", r.method.to_uppercase(), r.name))
            .or_default();
        route.requests += 1;
        route.failures += u64::from(!r.success);
        if r.status != 0 {
            *route.status_codes.entry(r.status).or_default() += 1;
        }
        route.latency.record(r.latency_us());
        route.service.record(r.service_us);
        if r.scheduled {
            self.lag.record(r.lag_us());
        }
        if records::record::is_login(r.name) {
            let ms = r.sent_us / 1000;
            self.first_login_ms = Some(self.first_login_ms.map_or(ms, |f| f.min(ms)));
            return;
        }
        if r.success {
            self.ok.record(r.latency_us());
        }
        self.second((r.sent_us / 1_000_000) as usize).sent += 1;
        // The second the answer came: a request sent before a fault that fails after it
        // counts after it.
        let second = self.second((r.answered_us() / 1_000_000) as usize);
        second.requests += 1;
        second.failures += u64::from(!r.success);
        let class = match r.status {
            0 => "none".to_string(),
            code => format!("{}xx", code / 100),
        };
        *second.classes.entry(class).or_default() += 1;
        *second.statuses.entry(r.status).or_default() += 1;
        second.latency.record(r.latency_us());
        if let Some(service) = &mut second.service {
            service.record(r.service_us);
        }
    }

    /// Counts an arrival dropped because every request slot was busy, in the second it was
    /// meant for.
    pub fn add_dropped(&mut self, intended_us: u64) {
        self.dropped += 1;
        self.second((intended_us / 1_000_000) as usize).dropped += 1;
    }

    /// Adds another generator's part of the run, whose clock started `offset_secs` whole
    /// seconds after this one's (the lab starts every generator at one wall-clock time).
    pub fn absorb(&mut self, other: &Tally, offset_secs: usize) {
        let shift_ms = offset_secs as f64 * 1000.0;
        if let Some([a, b]) = other.window_ms {
            let [a, b] = [a + shift_ms, b + shift_ms];
            self.window_ms = Some(self.window_ms.map_or([a, b], |[x, y]| [x.min(a), y.max(b)]));
        }
        if let Some(f) = other.first_login_ms {
            let f = f + offset_secs as u64 * 1000;
            self.first_login_ms = Some(self.first_login_ms.map_or(f, |g| g.min(f)));
        }
        for (key, r) in &other.routes {
            let mine = self.routes.entry(key.clone()).or_default();
            mine.requests += r.requests;
            mine.failures += r.failures;
            for (code, n) in &r.status_codes {
                *mine.status_codes.entry(*code).or_default() += n;
            }
            mine.latency.add(&r.latency);
            mine.service.add(&r.service);
        }
        self.open |= other.open;
        for (i, s) in other.seconds.iter().enumerate() {
            let mine = self.second(i + offset_secs);
            mine.requests += s.requests;
            mine.failures += s.failures;
            mine.dropped += s.dropped;
            mine.sent += s.sent;
            for (class, n) in &s.classes {
                *mine.classes.entry(class.clone()).or_default() += n;
            }
            for (code, n) in &s.statuses {
                *mine.statuses.entry(*code).or_default() += n;
            }
            mine.latency.add(&s.latency);
            if let Some(service) = &s.service {
                mine.service.get_or_insert_with(Times::coarse).add(service);
            }
        }
        self.ok.add(&other.ok);
        self.lag.add(&other.lag);
        self.dropped += other.dropped;
    }

    pub fn requests(&self) -> u64 {
        self.routes.values().map(|r| r.requests).sum()
    }

    pub fn failures(&self) -> u64 {
        self.routes.values().map(|r| r.failures).sum()
    }

    /// Every route's latency (or service time) together.
    pub fn all(&self, service: bool) -> Times {
        let mut all = Times::fine();
        for r in self.routes.values() {
            all.add(if service { &r.service } else { &r.latency });
        }
        all
    }

    /// The run record's rows, one per route.
    pub fn by_route(&self) -> BTreeMap<String, RouteRecord> {
        self.routes
            .iter()
            .map(|(key, r)| {
                (
                    key.clone(),
                    RouteRecord {
                        requests: r.requests,
                        failures: r.failures,
                        status_codes: r.status_codes.clone(),
                        latency_ms: r.latency.summary(),
                        service_ms: self.open.then(|| r.service.summary()),
                    },
                )
            })
            .collect()
    }

    /// `latency_per_second.json`: the series, each as long as the run.
    pub fn per_second(&self) -> LatencyPerSecond {
        let mut classes: BTreeMap<String, Vec<u64>> = BTreeMap::new();
        let mut statuses: BTreeMap<u16, Vec<u64>> = BTreeMap::new();
        let n = self.seconds.len();
        for (i, s) in self.seconds.iter().enumerate() {
            for (class, c) in &s.classes {
                classes.entry(class.clone()).or_insert_with(|| vec![0; n])[i] = *c;
            }
            for (code, c) in &s.statuses {
                statuses.entry(*code).or_insert_with(|| vec![0; n])[i] = *c;
            }
        }
        let series = |f: &dyn Fn(&Second) -> Option<f64>| self.seconds.iter().map(f).collect();
        let service = |q: f64| -> Vec<Option<f64>> {
            if self.open {
                series(&|s| s.service.as_ref()?.percentile_ms(q))
            } else {
                Vec::new()
            }
        };
        LatencyPerSecond {
            started_at: Some(self.started_at),
            first_login_ms: self.first_login_ms,
            window_ms: self.window_ms,
            requests: self.seconds.iter().map(|s| s.requests).collect(),
            sent: self.seconds.iter().map(|s| s.sent).collect(),
            failures: self.seconds.iter().map(|s| s.failures).collect(),
            status_classes: classes,
            statuses,
            p50_ms: series(&|s| s.latency.percentile_ms(0.50)),
            p95_ms: series(&|s| s.latency.percentile_ms(0.95)),
            p99_ms: series(&|s| s.latency.percentile_ms(0.99)),
            service_p50_ms: service(0.50),
            service_p99_ms: service(0.99),
            dropped: if self.open {
                self.seconds.iter().map(|s| s.dropped).collect()
            } else {
                Vec::new()
            },
            ok: OkLatency {
                requests: self.ok.count(),
                p50_ms: self.ok.percentile_ms(0.50),
                p95_ms: self.ok.percentile_ms(0.95),
                p99_ms: self.ok.percentile_ms(0.99),
                curve: OkLatency::CURVE
                    .iter()
                    .filter_map(|p| Some((*p, self.ok.percentile_ms(p / 100.0)?)))
                    .collect(),
            },
        }
    }

    pub fn write(&self, dir: &Path) -> anyhow::Result<()> {
        std::fs::write(dir.join(FILE), serde_json::to_vec(self)?)
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", dir.join(FILE).display()))
    }

    pub fn read(dir: &Path) -> anyhow::Result<Tally> {
        let path = dir.join(FILE);
        let text = std::fs::read(&path)
            .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
        serde_json::from_slice(&text)
            .map_err(|e| anyhow::anyhow!("{} is not a run's tally: {e}", path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `got` is `want` or above it by less than `rel` (a histogram's highest equivalent).
    fn near(got: Option<f64>, want: f64, rel: f64) {
        let got = got.expect("a value");
        assert!(
            got >= want && got - want <= want * rel,
            "{got} against {want}"
        );
    }

    fn ended(name: &str, sent_ms: u64, service_ms: u64, status: u16) -> Ended<'_> {
        Ended {
            name,
            method: "GET",
            intended_us: sent_ms * 1000,
            scheduled: true,
            sent_us: sent_ms * 1000,
            service_us: service_ms * 1000,
            success: (200..300).contains(&status),
            status,
        }
    }

    #[test]
    fn requests_become_per_second_percentiles_by_the_second_they_were_answered() {
        let mut t = Tally::new(false, 100.0);
        // Second 0: 1..=20 ms; second 2: one failed 503 and one without an answer; one sent in
        // second 1 and answered in second 2; a login, which counts by route only.
        for ms in 1..=20u64 {
            t.add(&ended("/data", ms * 10, ms, 200));
        }
        t.add(&ended("/login", 1500, 900, 200));
        t.add(&ended("/process", 2100, 0, 503));
        t.add(&ended("/data", 2200, 1, 0));
        t.add(&ended("/data", 1900, 300, 200));
        let s = t.per_second();
        assert_eq!(s.requests, vec![20, 0, 3]);
        // Sent: the one answered in second 2 went in second 1.
        assert_eq!(s.sent, vec![20, 1, 2]);
        assert_eq!(s.failures, vec![0, 0, 2]);
        // A second's histogram holds two figures: within 1 % (upward), and the slowest exact.
        assert_eq!(s.p50_ms[1], None);
        near(s.p50_ms[0], 10.0, 0.01);
        near(s.p50_ms[2], 1.0, 0.01);
        assert_eq!(s.p99_ms[2], Some(300.0));
        assert_eq!(s.status_classes["2xx"], vec![20, 0, 1]);
        assert_eq!(s.status_classes["5xx"], vec![0, 0, 1]);
        assert_eq!(s.status_classes["none"], vec![0, 0, 1]);
        assert_eq!(s.statuses[&503], vec![0, 0, 1]);
        assert_eq!(s.first_login_ms, Some(1500));
        assert_eq!(s.ok.requests, 21);
        near(s.ok.p50_ms, 11.0, 0.001);
        assert_eq!(s.ok.p99_ms, Some(300.0));
        assert_eq!(s.ok.curve.last(), Some(&(100.0, 300.0)));
        // Closed: no second clock in the series.
        assert!(s.service_p99_ms.is_empty() && s.dropped.is_empty());
        assert_eq!(t.requests(), 24);
        assert_eq!(t.failures(), 2);
        assert_eq!(t.routes["GET /login"].requests, 1);
        assert_eq!(s.window_ms, Some([10.0, 2400.0]));
    }

    /// Under a stall, a late request's latency counts from when it should have gone.
    #[test]
    fn the_open_model_times_a_late_request_from_its_intended_send() {
        let mut t = Tally::new(true, 0.0);
        t.add(&Ended {
            intended_us: 1_000_000,
            sent_us: 3_500_000,
            service_us: 2_000,
            ..ended("/data", 0, 0, 200)
        });
        t.add_dropped(1_200_000);
        let route = &t.routes["GET /data"];
        assert_eq!(route.latency.max_ms(), 2502.0);
        assert_eq!(route.service.max_ms(), 2.0);
        assert_eq!(t.lag.max_ms(), 2500.0);
        let s = t.per_second();
        assert_eq!(s.requests, vec![0, 0, 0, 1]);
        assert_eq!(s.sent, vec![0, 0, 0, 1], "sent at 3.5 s");
        assert_eq!(s.dropped, vec![0, 1, 0, 0]);
        assert_eq!(s.service_p99_ms[3], Some(2.0));
        // 2502 ms to two figures: the second's histogram holds it within 1 %.
        let p99 = s.p99_ms[3].unwrap();
        assert!((p99 - 2502.0).abs() / 2502.0 < 0.01, "{p99}");
        assert_eq!(t.dropped, 1);
    }

    /// K generators' tallies absorbed give the tally of one generator that saw every request:
    /// the same histograms, so the same percentiles, to the last bucket.
    #[test]
    fn merged_parts_equal_one_tally_of_every_request() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let mut whole = Tally::new(true, 0.0);
        let mut parts: Vec<Tally> = (0..3).map(|_| Tally::new(true, 0.0)).collect();
        for i in 0..30_000u64 {
            let sent = i * 2_000 + rng.random_range(0..1_500);
            let r = Ended {
                intended_us: sent.saturating_sub(rng.random_range(0..500)),
                sent_us: sent,
                // Log-uniform from 0.1 ms to 10 s: every bucket size is met.
                service_us: 10f64.powf(rng.random_range(2.0..7.0)) as u64,
                status: if i % 50 == 0 { 503 } else { 200 },
                ..ended(if i % 3 == 0 { "/process" } else { "/data" }, 0, 0, 200)
            };
            let r = Ended {
                success: r.status == 200,
                ..r
            };
            whole.add(&r);
            parts[(i % 3) as usize].add(&r);
            if i % 1000 == 0 {
                whole.add_dropped(sent);
                parts[0].add_dropped(sent);
            }
        }
        // Through their files, as `loadtest merge` reads them.
        let mut merged = Tally::new(true, 0.0);
        for p in &parts {
            let back: Tally = serde_json::from_slice(&serde_json::to_vec(p).unwrap()).unwrap();
            merged.absorb(&back, 0);
        }
        assert_eq!(merged.routes, whole.routes);
        assert_eq!(merged.per_second(), whole.per_second());
        assert_eq!(merged.all(false).summary(), whole.all(false).summary());
        assert_eq!(merged.lag, whole.lag);
        // And the tally's percentiles are the exact ones to within the histogram's precision.
        let mut exact: Vec<f64> = Vec::new();
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        for i in 0..30_000u64 {
            let sent = i * 2_000 + rng.random_range(0..1_500);
            let intended = sent.saturating_sub(rng.random_range(0..500));
            let service = 10f64.powf(rng.random_range(2.0..7.0)) as u64;
            exact.push((sent + service - intended) as f64 / 1000.0);
        }
        exact.sort_by(f64::total_cmp);
        for q in [0.5, 0.95, 0.99] {
            let want = records::stats::percentile(&exact, q).unwrap();
            let got = merged.all(false).percentile_ms(q).unwrap();
            assert!(
                (got - want).abs() <= want * 0.001 + 0.001,
                "p{q}: {got} against {want}"
            );
        }
    }

    #[test]
    fn a_bad_tally_file_is_a_clear_error() {
        let dir = std::env::temp_dir().join(format!("scalelab-tally-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(FILE), "{\"open\": 3}").unwrap();
        let err = Tally::read(&dir).unwrap_err().to_string();
        assert!(err.contains("is not a run's tally"), "{err}");
        let err = Tally::read(Path::new("/nonexistent"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("cannot read"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
