//! The run's clock, and the open model's dispatcher: it walks the arrival schedule
//! ([`crate::arrivals`]) on the clock, on a thread of its own that sleeps to each arrival's
//! absolute time (the operating system's sleep wakes within tens of microseconds, where
//! tokio's timer ticks every millisecond; arrivals that came due meanwhile are handed out at
//! once, so the schedule catches up rather than drifts), and hands each to a free user,
//! whatever the answers take.
//!
//! The users are Goose's, one per request slot (MAX_IN_FLIGHT): a free user waits for its
//! next arrival, runs the scenario's step for it, and is free again. The most recently freed
//! user takes the next arrival (last in, first out), so a fast system is served by a few
//! warm connections, not by every user in turn. An arrival that finds no user free waits for
//! one while users are still starting; once every slot is busy it is **dropped**, counted in
//! the run's tally with the time it was meant for, never skipped unseen.

use crate::arrivals::Schedule;
use std::collections::VecDeque;
use std::sync::Mutex;
use tokio::sync::oneshot;
use tokio::time::Instant;

/// The run's clock: second 0 of every series, the zero of every request's times. Every
/// generator of a run starts it at the one wall-clock time the lab gave (START_AT_MS), so
/// their seconds line up exactly and their arrivals interleave.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    pub origin: Instant,
    /// Unix seconds of the origin.
    pub unix: f64,
}

static CLOCK: Mutex<Option<Clock>> = Mutex::new(None);

/// Starts the run's clock: now, or at `at_unix_ms` when that has passed (the instant it
/// stands for on this process's monotonic clock).
pub fn start_clock(at_unix_ms: Option<u64>) -> Clock {
    let now = Instant::now();
    let now_unix = records::time::now_unix();
    let clock = match at_unix_ms {
        Some(at) if (at as f64) / 1000.0 <= now_unix => {
            let since = std::time::Duration::from_secs_f64(now_unix - at as f64 / 1000.0);
            Clock {
                origin: now.checked_sub(since).unwrap_or(now),
                unix: at as f64 / 1000.0,
            }
        }
        _ => Clock {
            origin: now,
            unix: now_unix,
        },
    };
    *CLOCK.lock().expect("not poisoned") = Some(clock);
    clock
}

/// Microseconds on the run's clock (0 before it starts).
pub fn now_us() -> u64 {
    CLOCK
        .lock()
        .expect("not poisoned")
        .map_or(0, |c| c.origin.elapsed().as_micros() as u64)
}

/// An arrival a user is serving: its slot is free again when it is dropped. One handed to a
/// user that stopped waiting before it took it (never `taken`) goes back to the front of the
/// waiting arrivals instead, for the next free user: never lost.
#[derive(Debug)]
pub struct Arrival {
    /// When the schedule meant it to go, µs on the run's clock.
    pub intended_us: u64,
    taken: bool,
}

impl Drop for Arrival {
    fn drop(&mut self) {
        if let Some(slots) = SLOTS.lock().expect("not poisoned").as_mut() {
            if self.taken {
                slots.busy = slots.busy.saturating_sub(1);
            } else {
                slots.waiting.push_front(self.intended_us);
            }
        }
    }
}

/// The dispatcher's state, shared with the users.
struct Slots {
    /// Free users, the most recently freed last.
    idle: Vec<oneshot::Sender<Arrival>>,
    /// Arrivals no user was free for yet (users still starting), oldest first.
    waiting: VecDeque<u64>,
    /// Arrivals handed out or waiting, not yet answered.
    busy: usize,
    bound: usize,
    /// The schedule has ended: a free user has nothing more to wait for.
    closed: bool,
    /// Arrivals a user took, and dropped.
    handed: u64,
    dropped: u64,
}

static SLOTS: Mutex<Option<Slots>> = Mutex::new(None);

/// What the dispatcher did with a run's schedule.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Dispatched {
    pub handed: u64,
    pub dropped: u64,
}

/// Opens the slots of a run: `bound` requests in flight at most.
pub fn open(bound: usize) {
    *SLOTS.lock().expect("not poisoned") = Some(Slots {
        idle: Vec::new(),
        waiting: VecDeque::new(),
        busy: 0,
        bound: bound.max(1),
        closed: false,
        handed: 0,
        dropped: 0,
    });
}

/// A free user's next arrival; None once the schedule has ended (or under the closed model,
/// which has none). Cancel-safe: an arrival sent to a user that stopped waiting goes to the
/// next one.
pub async fn next() -> Option<Arrival> {
    let receiver = {
        let mut guard = SLOTS.lock().expect("not poisoned");
        let slots = guard.as_mut()?;
        if let Some(intended_us) = slots.waiting.pop_front() {
            slots.handed += 1;
            return Some(Arrival {
                intended_us,
                taken: true,
            });
        }
        if slots.closed {
            return None;
        }
        // Users that stopped waiting leave their senders behind: swept when they pile up.
        if slots.idle.len() >= 2 * slots.bound {
            slots.idle.retain(|tx| !tx.is_closed());
        }
        let (tx, rx) = oneshot::channel();
        slots.idle.push(tx);
        rx
    };
    let mut arrival = receiver.await.ok()?;
    arrival.taken = true;
    if let Some(slots) = SLOTS.lock().expect("not poisoned").as_mut() {
        slots.handed += 1;
    }
    Some(arrival)
}

/// Hands the arrival meant for `intended_us` to the most recently freed user; else it waits
/// for a user while a slot is free; else it is dropped (returned: the caller counts it).
fn dispatch(intended_us: u64) -> Option<u64> {
    let mut guard = SLOTS.lock().expect("not poisoned");
    let slots = guard.as_mut()?;
    if slots.busy >= slots.bound {
        slots.dropped += 1;
        return Some(intended_us);
    }
    slots.busy += 1;
    while let Some(user) = slots.idle.pop() {
        // A user that stopped waiting gives the arrival back.
        let arrival = Arrival {
            intended_us,
            taken: false,
        };
        match user.send(arrival) {
            Ok(()) => return None,
            // Forgotten, not dropped: its slot stays taken for the next user.
            Err(back) => std::mem::forget(back),
        }
    }
    slots.waiting.push_back(intended_us);
    None
}

/// Ends the schedule: free users stop waiting (the arrivals still waiting for a user are
/// taken by the next ones to be free, or dropped by [`finish`]).
pub fn close() {
    if let Some(slots) = SLOTS.lock().expect("not poisoned").as_mut() {
        slots.closed = true;
        slots.idle.clear();
    }
}

/// After the run: the arrivals still waiting (no user was left to take them) are dropped;
/// what the dispatcher did.
pub fn finish() -> (Dispatched, Vec<u64>) {
    let Some(mut slots) = SLOTS.lock().expect("not poisoned").take() else {
        return (Dispatched::default(), Vec::new());
    };
    let left: Vec<u64> = slots.waiting.drain(..).collect();
    slots.dropped += left.len() as u64;
    (
        Dispatched {
            handed: slots.handed,
            dropped: slots.dropped,
        },
        left,
    )
}

/// The dispatcher's thread: [`Dispatcher::stop`] ends it early (the run ended first).
pub struct Dispatcher {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Dispatcher {
    /// Walks the schedule on the run's clock from `LEAD` on, handing each arrival out at its
    /// time; `on_drop` counts each dropped one. Closes the slots at the end.
    pub fn start(schedule: Schedule, clock: Clock, on_drop: fn(u64)) -> Self {
        use std::sync::atomic::Ordering;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopped = stop.clone();
        let origin = clock.origin.into_std() + LEAD;
        let thread = std::thread::spawn(move || {
            for at in schedule.intended() {
                // Sleeps in steps of at most 100 ms, to hear a stop at a low rate.
                loop {
                    if stopped.load(Ordering::Relaxed) {
                        return;
                    }
                    let wait = (origin + at).saturating_duration_since(std::time::Instant::now());
                    if wait.is_zero() {
                        break;
                    }
                    std::thread::sleep(wait.min(std::time::Duration::from_millis(100)));
                }
                if let Some(dropped) = dispatch((LEAD + at).as_micros() as u64) {
                    on_drop(dropped);
                }
            }
            close();
        });
        Self {
            stop,
            thread: Some(thread),
        }
    }

    /// Ends the walk (if not done) and waits for the thread.
    pub fn stop(self) {
        drop(self);
    }
}

/// Stopped however the run ends (an error included): no walk outlives its run.
impl Drop for Dispatcher {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The schedule starts this long after the run's clock: Goose's users start within a
/// quarter of a second, so the first arrivals find them ready (their wait would otherwise
/// count as latency).
pub const LEAD: std::time::Duration = std::time::Duration::from_secs(1);

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// One test for the process-wide slots: the steps run in order.
    #[tokio::test(flavor = "current_thread")]
    async fn arrivals_go_to_the_last_freed_user_wait_while_a_slot_is_free_and_drop_when_none_is() {
        open(2);
        // No user yet: the first arrival waits (a slot is free), the second too, the third
        // finds both slots busy and is dropped.
        assert_eq!(dispatch(10), None);
        assert_eq!(dispatch(20), None);
        assert_eq!(dispatch(30), Some(30));
        // A user takes the oldest waiting one; freeing it frees a slot.
        let a = next().await.unwrap();
        assert_eq!(a.intended_us, 10);
        drop(a);
        let b = next().await.unwrap();
        assert_eq!(b.intended_us, 20);
        // Two users wait; the one that came last gets the next arrival.
        let first = tokio::spawn(next());
        tokio::task::yield_now().await;
        drop(b);
        let second = tokio::spawn(next());
        tokio::task::yield_now().await;
        assert_eq!(dispatch(40), None);
        let got = second.await.unwrap().unwrap();
        assert_eq!(got.intended_us, 40);
        // The schedule ends: the other stops waiting.
        close();
        assert!(first.await.unwrap().is_none());
        drop(got);
        assert_eq!(
            finish(),
            (
                Dispatched {
                    handed: 3,
                    dropped: 1
                },
                Vec::new()
            )
        );
        // A user that stops waiting after an arrival was sent to it (cancelled) gives it
        // back: the next user takes it, counted once.
        open(5);
        let quitter = tokio::spawn(next());
        tokio::task::yield_now().await;
        assert_eq!(dispatch(60), None);
        quitter.abort();
        assert!(quitter.await.is_err(), "cancelled");
        let again = next().await.unwrap();
        assert_eq!(again.intended_us, 60);
        drop(again);
        close();
        assert_eq!(
            finish().0,
            Dispatched {
                handed: 1,
                dropped: 0
            }
        );
        // Left waiting at the end: dropped.
        open(5);
        assert_eq!(dispatch(50), None);
        close();
        let (done, left) = finish();
        assert_eq!((done.dropped, left), (1, vec![50]));
        // Without slots (the closed model) there is nothing to wait for.
        assert!(next().await.is_none());
        // The clock: a start in the past is placed on the monotonic clock.
        let at = (records::time::now_unix() * 1000.0) as u64 - 2_000;
        start_clock(Some(at));
        let us = now_us();
        assert!((1_990_000..2_500_000).contains(&us), "{us}");
        start_clock(None);
        assert!(now_us() < Duration::from_millis(500).as_micros() as u64);
    }
}
