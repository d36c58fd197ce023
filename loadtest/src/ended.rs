//! Where each ended request goes: the run's tally ([`crate::tally`], every figure of the run)
//! and, with KEEP_REQUEST_LOG, its raw request log (`requests.json`). An arrival of the open
//! model dropped before it was sent goes to both too.

use std::sync::Mutex;

/// The run's raw request log (`requests.json`): a JSON line per request, written by the
/// scenarios as each answer comes (into a buffer, to the file in blocks), with the fields
/// the readers use, in Goose's own names (`loadtest/tests/`). Goose's `--request-log`
/// formatted every request's headers and whole metric (BENCHMARKS.md, "The load
/// generator's cost"); this holds the same requests, each once, in its final state.
static REQUEST_LOG: std::sync::Mutex<Option<RequestLog>> = std::sync::Mutex::new(None);

struct RequestLog {
    out: std::io::BufWriter<std::fs::File>,
    /// The first write that failed (a full disk): the run fails with it at the end rather
    /// than keep a log with lines missing.
    failed: Option<std::io::Error>,
}

/// A request's line: `elapsed` is when it was sent (ms on the run's clock) and
/// `response_time` (+ `response_time_fraction_us`) its service time, in Goose's names;
/// `intended_us` is when the schedule meant it to go and `latency_us` runs from then to its
/// answer (under the closed model, the send and its service time). A dropped arrival has a
/// line of its own, `"dropped": true`, at its intended time.
#[derive(serde::Serialize)]
struct LogLine<'a> {
    elapsed: u64,
    name: &'a str,
    response_time: u64,
    response_time_fraction_us: u16,
    intended_us: u64,
    latency_us: u64,
    success: bool,
    status_code: u16,
    user: usize,
    raw: LogRaw<'a>,
}

#[derive(serde::Serialize)]
struct DroppedLine {
    elapsed: u64,
    intended_us: u64,
    dropped: bool,
}

#[derive(serde::Serialize)]
struct LogRaw<'a> {
    method: &'a str,
}

/// Starts the request log of a run at `path` (a new file).
pub fn open_request_log(path: &std::path::Path) -> std::io::Result<()> {
    let file = std::fs::File::create(path)?;
    *REQUEST_LOG.lock().expect("not poisoned") = Some(RequestLog {
        out: std::io::BufWriter::with_capacity(1 << 16, file),
        failed: None,
    });
    Ok(())
}

/// Writes what the request log holds and closes it; the first write that failed, if any.
pub fn close_request_log() -> std::io::Result<()> {
    use std::io::Write;
    match REQUEST_LOG.lock().expect("not poisoned").take() {
        Some(RequestLog {
            failed: Some(e), ..
        }) => Err(std::io::Error::new(
            e.kind(),
            format!("the request log lost lines: {e}"),
        )),
        Some(mut log) => log.out.flush(),
        None => Ok(()),
    }
}

/// One line into the run's request log.
fn log_line(line: &impl serde::Serialize) {
    use std::io::Write;
    let mut log = REQUEST_LOG.lock().expect("not poisoned");
    let Some(log) = log.as_mut().filter(|l| l.failed.is_none()) else {
        return;
    };
    let written = serde_json::to_writer(&mut log.out, line)
        .map_err(std::io::Error::from)
        .and_then(|()| log.out.write_all(b"\n"));
    if let Err(e) = written {
        log.failed = Some(e);
    }
}

/// The run's counts and histograms ([`crate::tally`]), fed as each request ends.
static TALLY: Mutex<Option<crate::tally::Tally>> = Mutex::new(None);

/// Starts the run's tally: under the open model it keeps the second clock per second too.
pub fn open_tally(open: bool, started_at: f64) {
    *TALLY.lock().expect("not poisoned") = Some(crate::tally::Tally::new(open, started_at));
}

/// The run's tally, once its load has ended.
pub fn take_tally() -> Option<crate::tally::Tally> {
    TALLY.lock().expect("not poisoned").take()
}

/// An arrival dropped (every request slot was busy): in the tally and the request log.
pub fn count_dropped(intended_us: u64) {
    if let Some(t) = TALLY.lock().expect("not poisoned").as_mut() {
        t.add_dropped(intended_us);
    }
    log_line(&DroppedLine {
        elapsed: intended_us / 1000,
        intended_us,
        dropped: true,
    });
}

/// One ended request: into the tally, and a line of the request log (`user` is Goose's
/// index of the user that sent it).
pub fn request(ended: &crate::tally::Ended, user: usize) {
    if let Some(t) = TALLY.lock().expect("not poisoned").as_mut() {
        t.add(ended);
    }
    let us = ended.service_us;
    log_line(&LogLine {
        elapsed: ended.sent_us / 1000,
        name: ended.name,
        response_time: us / 1000,
        response_time_fraction_us: (us % 1000) as u16,
        intended_us: ended.intended_us,
        latency_us: ended.latency_us(),
        success: ended.success,
        status_code: ended.status,
        user,
        raw: LogRaw {
            method: ended.method,
        },
    });
}
