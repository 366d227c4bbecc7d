//! The engine: one timer task over an ordered queue of deadlines.
//!
//! Jobs live in a map; their next deadlines in a `BTreeMap` ordered by time.
//! A single task sleeps until the earliest deadline (or until a change makes
//! an earlier one), takes every due entry off the queue, asks [`plan`] what to
//! run, puts the job back at its next deadline, and hands the firings to the
//! [`Dispatcher`] inside the job's lane. Ten thousand idle jobs cost one
//! sleeping task and a few hundred kilobytes, not ten thousand timers.
//!
//! Exactly once: a deadline is taken off the queue under the lock before its
//! firing is dispatched, and the next deadline is computed from the scheduled
//! time (not from when the task woke), so each occurrence is dispatched once.
//! A job never overlaps itself: if its previous firing is still running when
//! the next comes due, that firing is not run and
//! [`Dispatcher::overlapped`] is told. Durability across restarts is the
//! caller's part: it records the scheduled time before acting (see the
//! kernel), and gives it back as [`Job::anchor`] when the job is loaded again.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::Notify;
use uuid::Uuid;

use crate::clock::{BoxFuture, Clock, MAX_SLEEP};
use crate::lanes::{Lane, Lanes};
use crate::policy::{MissedPolicy, plan};
use crate::spec::Schedule;

/// Default grace: a firing that starts within this of its time is on time.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(30);

/// A job as the engine sees it.
#[derive(Debug, Clone)]
pub struct Job {
    /// Its id.
    pub id: Uuid,
    /// When it runs.
    pub schedule: Schedule,
    /// Where intervals count from (usually the job's creation time).
    pub origin: DateTime<Utc>,
    /// Occurrences strictly after this are pending: the last scheduled time
    /// that was fired, or for a job that never fired, when it was created (or
    /// enabled). Occurrences between the anchor and now were missed.
    pub anchor: DateTime<Utc>,
    /// What to do with missed runs.
    pub missed: MissedPolicy,
    /// The lane it runs in.
    pub lane: String,
}

/// One run to perform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Firing {
    /// The job.
    pub job_id: Uuid,
    /// The occurrence this run is for (for a manual run, when it was asked for).
    pub scheduled_at: DateTime<Utc>,
    /// When the engine dispatched it.
    pub dispatched_at: DateTime<Utc>,
    /// Occurrences the missed-run policy dropped just before this one.
    pub skipped: u64,
    /// True when this run was missed and is being caught up.
    pub catch_up: bool,
    /// True for a run asked for by hand ([`Engine::run_now`]).
    pub manual: bool,
    /// The job's next deadline after this firing; `None` when it is finished.
    pub next_run: Option<DateTime<Utc>>,
}

/// What the engine hands firings to.
pub trait Dispatcher: Send + Sync + 'static {
    /// Performs a run; the lane slot is held until the future resolves.
    fn fire(&self, firing: Firing) -> BoxFuture<()>;

    /// A firing was not run because the job's previous run is still going.
    fn overlapped(&self, firing: Firing) {
        let _ = firing;
    }

    /// The policy dropped every due occurrence (`skipped` of them) without running any.
    fn skipped(&self, job_id: Uuid, skipped: u64, next_run: Option<DateTime<Utc>>) {
        let _ = (job_id, skipped, next_run);
    }
}

/// Why the engine refused a job.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EngineError {
    /// The job names a lane that does not exist.
    #[error("unknown lane `{0}`")]
    UnknownLane(String),
    /// No such job is scheduled.
    #[error("job {0} is not scheduled")]
    NotScheduled(Uuid),
}

struct Entry {
    job: Job,
    deadline: Option<(DateTime<Utc>, u64)>,
    running: Arc<AtomicBool>,
    lane: Arc<Lane>,
}

#[derive(Default)]
struct State {
    jobs: HashMap<Uuid, Entry>,
    queue: BTreeMap<(DateTime<Utc>, u64), Uuid>,
    seq: u64,
}

impl State {
    fn enqueue(&mut self, id: Uuid, at: DateTime<Utc>) -> (DateTime<Utc>, u64) {
        self.seq += 1;
        let key = (at, self.seq);
        self.queue.insert(key, id);
        key
    }
}

struct Shared {
    state: Mutex<State>,
    wake: Notify,
    clock: Arc<dyn Clock>,
    dispatcher: Arc<dyn Dispatcher>,
    lanes: Lanes,
    grace: Duration,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        // The lock guards plain data; a panic elsewhere cannot leave it half-written
        // in a way that matters more than stopping the scheduler would.
        match self.state.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }
}

/// The running scheduler; dropping it stops the timer task (running firings finish).
pub struct Engine {
    shared: Arc<Shared>,
    timer: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").field("jobs", &self.len()).finish()
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.timer.abort();
    }
}

impl Engine {
    /// Starts the timer task on the current tokio runtime.
    pub fn start(
        clock: Arc<dyn Clock>,
        dispatcher: Arc<dyn Dispatcher>,
        lanes: Lanes,
        grace: Duration,
    ) -> Self {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            wake: Notify::new(),
            clock,
            dispatcher,
            lanes,
            grace,
        });
        let timer = tokio::spawn(run(shared.clone()));
        Self { shared, timer }
    }

    /// The lanes, for their figures.
    pub fn lanes(&self) -> &Lanes {
        &self.shared.lanes
    }

    /// Adds or replaces a job; returns its next deadline (`None`: it will never
    /// fire, and is not kept). A replaced job keeps its running state, so an
    /// edit never lets it overlap itself.
    pub fn upsert(&self, job: Job) -> Result<Option<DateTime<Utc>>, EngineError> {
        let lane = self
            .shared
            .lanes
            .get(&job.lane)
            .ok_or_else(|| EngineError::UnknownLane(job.lane.clone()))?;
        let first = job.schedule.next_after(job.anchor, job.origin);
        let mut state = self.shared.state();
        let running = match state.jobs.remove(&job.id) {
            Some(old) => {
                if let Some(key) = old.deadline {
                    state.queue.remove(&key);
                }
                old.running
            }
            None => Arc::new(AtomicBool::new(false)),
        };
        let Some(first) = first else {
            return Ok(None);
        };
        let key = state.enqueue(job.id, first);
        let wake = state.queue.first_key_value().map(|(k, _)| *k) == Some(key);
        state.jobs.insert(
            job.id,
            Entry {
                job,
                deadline: Some(key),
                running,
                lane,
            },
        );
        drop(state);
        if wake {
            self.shared.wake.notify_one();
        }
        Ok(Some(first))
    }

    /// Removes a job; true when it was scheduled. A running firing finishes.
    pub fn remove(&self, id: Uuid) -> bool {
        let mut state = self.shared.state();
        match state.jobs.remove(&id) {
            Some(entry) => {
                if let Some(key) = entry.deadline {
                    state.queue.remove(&key);
                }
                true
            }
            None => false,
        }
    }

    /// The job's next deadline, if it is scheduled.
    pub fn next_run(&self, id: Uuid) -> Option<DateTime<Utc>> {
        self.shared
            .state()
            .jobs
            .get(&id)
            .and_then(|e| e.deadline.map(|(t, _)| t))
    }

    /// How many jobs are scheduled.
    pub fn len(&self) -> usize {
        self.shared.state().jobs.len()
    }

    /// True when no job is scheduled.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Dispatches a scheduled job once, now, through its lane, without
    /// changing its schedule. False when the run was not started because the
    /// job's previous run is still going.
    pub fn run_now(&self, id: Uuid) -> Result<bool, EngineError> {
        let now = self.shared.clock.now();
        let (running, lane, next_run) = {
            let state = self.shared.state();
            let entry = state.jobs.get(&id).ok_or(EngineError::NotScheduled(id))?;
            (
                entry.running.clone(),
                entry.lane.clone(),
                entry.deadline.map(|(t, _)| t),
            )
        };
        let firing = Firing {
            job_id: id,
            scheduled_at: now,
            dispatched_at: now,
            skipped: 0,
            catch_up: false,
            manual: true,
            next_run,
        };
        Ok(dispatch(&self.shared, running, lane, vec![firing]))
    }
}

/// Hands a job's firings to the dispatcher in its lane, one after another.
/// False (and the dispatcher told) when the job is already running.
fn dispatch(
    shared: &Arc<Shared>,
    running: Arc<AtomicBool>,
    lane: Arc<Lane>,
    firings: Vec<Firing>,
) -> bool {
    if running.swap(true, Ordering::AcqRel) {
        for firing in firings {
            shared.dispatcher.overlapped(firing);
        }
        return false;
    }
    let dispatcher = shared.dispatcher.clone();
    lane.queued
        .fetch_add(firings.len() as u64, Ordering::Relaxed);
    tokio::spawn(async move {
        // Cleared however this task ends, so a panicking run does not block the job forever.
        struct Done(Arc<AtomicBool>);
        impl Drop for Done {
            fn drop(&mut self) {
                self.0.store(false, Ordering::Release);
            }
        }
        let _done = Done(running);
        for firing in firings {
            let permit = lane.permits.clone().acquire_owned().await;
            lane.queued.fetch_sub(1, Ordering::Relaxed);
            dispatcher.fire(firing).await;
            lane.completed.fetch_add(1, Ordering::Relaxed);
            drop(permit);
        }
    });
    true
}

/// The timer task.
async fn run(shared: Arc<Shared>) {
    loop {
        let next = fire_due(&shared);
        let clock = shared.clock.clone();
        let deadline = next.unwrap_or_else(|| clock.now() + MAX_SLEEP);
        tokio::select! {
            _ = clock.sleep_until(deadline) => {}
            _ = shared.wake.notified() => {}
        }
    }
}

/// Fires everything due now; returns the earliest remaining deadline.
fn fire_due(shared: &Arc<Shared>) -> Option<DateTime<Utc>> {
    let now = shared.clock.now();
    let mut state = shared.state();
    while let Some((&key, &id)) = state.queue.first_key_value() {
        if key.0 > now {
            return Some(key.0);
        }
        state.queue.remove(&key);
        let Some(entry) = state.jobs.get(&id) else {
            continue;
        };
        let job = &entry.job;
        let p = plan(
            &job.schedule,
            job.origin,
            key.0,
            now,
            job.missed,
            shared.grace,
        );
        let (running, lane) = (entry.running.clone(), entry.lane.clone());
        let next_key = p.next.map(|t| state.enqueue(id, t));
        match next_key {
            Some(k) => {
                if let Some(entry) = state.jobs.get_mut(&id) {
                    entry.deadline = Some(k);
                }
            }
            None => {
                state.jobs.remove(&id);
            }
        }
        if p.fire.is_empty() {
            shared.dispatcher.skipped(id, p.skipped, p.next);
            continue;
        }
        let grace = chrono::TimeDelta::from_std(shared.grace).unwrap_or(chrono::TimeDelta::MAX);
        let firings = p
            .fire
            .iter()
            .enumerate()
            .map(|(i, &t)| Firing {
                job_id: id,
                scheduled_at: t,
                dispatched_at: now,
                skipped: if i == 0 { p.skipped } else { 0 },
                catch_up: now - t > grace,
                manual: false,
                next_run: p.next,
            })
            .collect();
        dispatch(shared, running, lane, firings);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::lanes::DEFAULT_LANE;
    use tokio::sync::mpsc;

    /// Sends every firing to a channel; `hold` keeps each run going until released.
    struct Recorder {
        tx: mpsc::UnboundedSender<Firing>,
        overlapped: mpsc::UnboundedSender<Firing>,
        hold: Option<Arc<tokio::sync::Semaphore>>,
    }

    impl Dispatcher for Recorder {
        fn fire(&self, firing: Firing) -> BoxFuture<()> {
            let tx = self.tx.clone();
            let hold = self.hold.clone();
            Box::pin(async move {
                let _ = tx.send(firing);
                if let Some(hold) = hold {
                    let _ = hold.acquire().await.map(|p| p.forget());
                }
            })
        }
        fn overlapped(&self, firing: Firing) {
            let _ = self.overlapped.send(firing);
        }
    }

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    struct Rig {
        clock: ManualClock,
        engine: Engine,
        fired: mpsc::UnboundedReceiver<Firing>,
        overlapped: mpsc::UnboundedReceiver<Firing>,
    }

    fn rig(start: &str, lanes: Lanes, hold: Option<Arc<tokio::sync::Semaphore>>) -> Rig {
        let clock = ManualClock::new(utc(start));
        let (tx, fired) = mpsc::unbounded_channel();
        let (otx, overlapped) = mpsc::unbounded_channel();
        let engine = Engine::start(
            Arc::new(clock.clone()),
            Arc::new(Recorder {
                tx,
                overlapped: otx,
                hold,
            }),
            lanes,
            DEFAULT_GRACE,
        );
        Rig {
            clock,
            engine,
            fired,
            overlapped,
        }
    }

    fn job(id: Uuid, spec: &str, anchor: &str, missed: MissedPolicy) -> Job {
        Job {
            id,
            schedule: Schedule::parse(spec, None).unwrap(),
            origin: utc(anchor),
            anchor: utc(anchor),
            missed,
            lane: DEFAULT_LANE.into(),
        }
    }

    /// Lets spawned tasks run until the runtime has nothing left to do.
    async fn settle() {
        for _ in 0..50 {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test]
    async fn each_occurrence_fires_once_in_order() {
        let mut r = rig("2026-01-01T00:00:00Z", Lanes::new([("default", 4)]), None);
        let id = Uuid::new_v4();
        let next = r
            .engine
            .upsert(job(
                id,
                "every 10s",
                "2026-01-01T00:00:00Z",
                MissedPolicy::RunOnce,
            ))
            .unwrap();
        assert_eq!(next, Some(utc("2026-01-01T00:00:10Z")));
        settle().await;
        assert!(r.fired.try_recv().is_err(), "nothing is due yet");
        for i in 1..=5 {
            r.clock.advance(Duration::from_secs(10));
            let f = r.fired.recv().await.unwrap();
            assert_eq!(
                f.scheduled_at,
                utc("2026-01-01T00:00:00Z") + Duration::from_secs(10 * i)
            );
            assert!(!f.catch_up && !f.manual);
        }
        settle().await;
        assert!(r.fired.try_recv().is_err(), "no double firing");
        assert_eq!(r.engine.next_run(id), Some(utc("2026-01-01T00:01:00Z")));
    }

    #[tokio::test]
    async fn an_earlier_job_wakes_the_timer() {
        let mut r = rig("2026-01-01T00:00:00Z", Lanes::new([("default", 4)]), None);
        let late = Uuid::new_v4();
        r.engine
            .upsert(job(
                late,
                "at 2026-01-01T01:00:00Z",
                "2026-01-01T00:00:00Z",
                MissedPolicy::Skip,
            ))
            .unwrap();
        settle().await;
        let early = Uuid::new_v4();
        r.engine
            .upsert(job(
                early,
                "at 2026-01-01T00:00:05Z",
                "2026-01-01T00:00:00Z",
                MissedPolicy::Skip,
            ))
            .unwrap();
        r.clock.advance(Duration::from_secs(5));
        assert_eq!(r.fired.recv().await.unwrap().job_id, early);
        assert_eq!(r.engine.len(), 1, "the one-shot is finished");
        r.clock.advance(Duration::from_secs(3600));
        let f = r.fired.recv().await.unwrap();
        assert_eq!((f.job_id, f.next_run), (late, None));
        assert!(r.engine.is_empty());
    }

    #[tokio::test]
    async fn missed_runs_at_load_follow_the_policy() {
        // The jobs last fired at 07:00; the daemon comes back at 10:20.
        let mut r = rig("2026-01-01T10:20:00Z", Lanes::new([("default", 4)]), None);
        let (skip, once, all) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        for (id, policy) in [
            (skip, MissedPolicy::Skip),
            (once, MissedPolicy::RunOnce),
            (all, MissedPolicy::RunAll),
        ] {
            r.engine
                .upsert(job(id, "0 * * * *", "2026-01-01T07:00:00Z", policy))
                .unwrap();
        }
        let mut seen: HashMap<Uuid, Vec<Firing>> = HashMap::new();
        for _ in 0..4 {
            let f = r.fired.recv().await.unwrap();
            seen.entry(f.job_id).or_default().push(f);
        }
        settle().await;
        assert!(r.fired.try_recv().is_err());
        assert!(!seen.contains_key(&skip));
        let o = &seen[&once];
        assert_eq!(o.len(), 1);
        assert_eq!(
            (o[0].scheduled_at, o[0].skipped),
            (utc("2026-01-01T10:00:00Z"), 2)
        );
        assert!(o[0].catch_up);
        let a: Vec<_> = seen[&all].iter().map(|f| f.scheduled_at).collect();
        assert_eq!(
            a,
            vec![
                utc("2026-01-01T08:00:00Z"),
                utc("2026-01-01T09:00:00Z"),
                utc("2026-01-01T10:00:00Z")
            ]
        );
        for id in [skip, once, all] {
            assert_eq!(r.engine.next_run(id), Some(utc("2026-01-01T11:00:00Z")));
        }
    }

    #[tokio::test]
    async fn lanes_bound_concurrency_and_a_job_never_overlaps_itself() {
        let hold = Arc::new(tokio::sync::Semaphore::new(0));
        let lanes = Lanes::new([("default", 4), ("narrow", 1)]);
        let mut r = rig("2026-01-01T00:00:00Z", lanes, Some(hold.clone()));
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        for id in [a, b] {
            let mut j = job(
                id,
                "every 10s",
                "2026-01-01T00:00:00Z",
                MissedPolicy::RunOnce,
            );
            j.lane = "narrow".into();
            r.engine.upsert(j).unwrap();
        }
        r.clock.advance(Duration::from_secs(10));
        let first = r.fired.recv().await.unwrap();
        settle().await;
        assert!(
            r.fired.try_recv().is_err(),
            "the narrow lane runs one at a time"
        );
        let narrow = |r: &Rig| {
            r.engine
                .lanes()
                .stats()
                .into_iter()
                .find(|s| s.name == "narrow")
                .unwrap()
        };
        assert_eq!((narrow(&r).running, narrow(&r).queued), (1, 1));
        // Both are still running (one waiting for the lane) when they come due again.
        r.clock.advance(Duration::from_secs(10));
        let mut over = [
            r.overlapped.recv().await.unwrap(),
            r.overlapped.recv().await.unwrap(),
        ];
        over.sort_by_key(|f| f.job_id);
        let mut both = [a, b];
        both.sort();
        assert_eq!(over.iter().map(|f| f.job_id).collect::<Vec<_>>(), both);
        hold.add_permits(1);
        let second = r.fired.recv().await.unwrap();
        assert_ne!(first.job_id, second.job_id);
        hold.add_permits(1);
        settle().await;
        assert_eq!(narrow(&r).completed, 2);
        assert!(matches!(
            r.engine.upsert(Job {
                lane: "nope".into(),
                ..job(a, "every 1s", "2026-01-01T00:00:00Z", MissedPolicy::Skip)
            }),
            Err(EngineError::UnknownLane(_))
        ));
    }

    #[tokio::test]
    async fn removed_and_replaced_jobs_do_not_fire_their_old_schedule() {
        let mut r = rig("2026-01-01T00:00:00Z", Lanes::new([("default", 4)]), None);
        let (gone, changed) = (Uuid::new_v4(), Uuid::new_v4());
        r.engine
            .upsert(job(
                gone,
                "every 10s",
                "2026-01-01T00:00:00Z",
                MissedPolicy::RunOnce,
            ))
            .unwrap();
        r.engine
            .upsert(job(
                changed,
                "every 10s",
                "2026-01-01T00:00:00Z",
                MissedPolicy::RunOnce,
            ))
            .unwrap();
        assert!(r.engine.remove(gone));
        assert!(!r.engine.remove(gone));
        r.engine
            .upsert(job(
                changed,
                "every 15s",
                "2026-01-01T00:00:00Z",
                MissedPolicy::RunOnce,
            ))
            .unwrap();
        r.clock.advance(Duration::from_secs(10));
        settle().await;
        assert!(r.fired.try_recv().is_err());
        r.clock.advance(Duration::from_secs(5));
        let f = r.fired.recv().await.unwrap();
        assert_eq!(
            (f.job_id, f.scheduled_at),
            (changed, utc("2026-01-01T00:00:15Z"))
        );
    }

    #[tokio::test]
    async fn run_now_dispatches_once_without_moving_the_schedule() {
        let mut r = rig("2026-01-01T00:00:00Z", Lanes::new([("default", 4)]), None);
        let id = Uuid::new_v4();
        r.engine
            .upsert(job(
                id,
                "every 1h",
                "2026-01-01T00:00:00Z",
                MissedPolicy::RunOnce,
            ))
            .unwrap();
        assert!(r.engine.run_now(id).unwrap());
        let f = r.fired.recv().await.unwrap();
        assert!(f.manual);
        assert_eq!(f.next_run, Some(utc("2026-01-01T01:00:00Z")));
        assert_eq!(r.engine.next_run(id), Some(utc("2026-01-01T01:00:00Z")));
        assert_eq!(
            r.engine.run_now(Uuid::nil()),
            Err(EngineError::NotScheduled(Uuid::nil()))
        );
    }
}
