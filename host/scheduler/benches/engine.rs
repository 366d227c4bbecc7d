//! Scheduler benchmark: prints figures, asserts nothing.
//!
//! `cargo bench -p talon-scheduler --bench engine` measures, on the release
//! build, with the real clock and 10,000 jobs:
//! - firing lateness (when the dispatcher runs minus the scheduled time),
//!   p50/p99/max, with the jobs spread evenly (`every 10s`, phases spread
//!   over the period: 1,000 firings a second) and in a burst (all 10,000 on
//!   the same `*/5 * * * * *` second);
//! - idle CPU (getrusage user+system over a 10 s window) with 10,000 daily
//!   cron jobs scheduled.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use talon_scheduler::clock::BoxFuture;
use talon_scheduler::{
    Dispatcher, Engine, Firing, Job, Lanes, MissedPolicy, Schedule, SystemClock,
};
use uuid::Uuid;

const JOBS: usize = 10_000;

struct Lateness(Mutex<Vec<i64>>);

impl Dispatcher for Lateness {
    fn fire(&self, firing: Firing) -> BoxFuture<()> {
        let late = (Utc::now() - firing.scheduled_at)
            .num_microseconds()
            .unwrap_or(i64::MAX);
        if let Ok(mut v) = self.0.lock() {
            v.push(late);
        }
        Box::pin(async {})
    }
}

fn engine(d: Arc<Lateness>) -> Engine {
    Engine::start(
        Arc::new(SystemClock),
        d,
        Lanes::new([("default", JOBS)]),
        Duration::from_secs(30),
    )
}

fn report(name: &str, d: &Lateness) {
    let mut v = d.0.lock().map(|v| v.clone()).unwrap_or_default();
    v.sort_unstable();
    if v.is_empty() {
        println!("{name}: no firings");
        return;
    }
    let pct = |p: f64| v[((v.len() as f64 * p) as usize).min(v.len() - 1)] as f64 / 1000.0;
    println!(
        "{name}: {} firings, lateness p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        v.len(),
        pct(0.50),
        pct(0.99),
        *v.last().unwrap_or(&0) as f64 / 1000.0
    );
}

fn cpu_secs() -> f64 {
    // SAFETY: getrusage only writes into the struct we pass.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    t(u.ru_utime) + t(u.ru_stime)
}

/// A small deterministic generator, so runs are comparable.
struct XorShift(u64);
impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn job(schedule: Schedule, origin: DateTime<Utc>) -> Job {
    Job {
        id: Uuid::new_v4(),
        schedule,
        origin,
        anchor: Utc::now(),
        missed: MissedPolicy::Skip,
        lane: "default".into(),
    }
}

#[tokio::main]
async fn main() {
    // Spread: 10,000 interval jobs, phases spread over their 10 s period.
    let d = Arc::new(Lateness(Mutex::new(Vec::new())));
    let e = engine(d.clone());
    let start = Utc::now();
    let every = Schedule::parse("every 10s", None).unwrap();
    let t = Instant::now();
    for i in 0..JOBS {
        let phase = chrono::TimeDelta::microseconds((i as i64) * 10_000_000 / JOBS as i64);
        e.upsert(job(every.clone(), start - Duration::from_secs(10) + phase))
            .unwrap();
    }
    println!(
        "scheduled {JOBS} interval jobs in {:.1} ms",
        t.elapsed().as_secs_f64() * 1e3
    );
    tokio::time::sleep(Duration::from_secs(20)).await;
    drop(e);
    report("spread (10,000 jobs every 10 s, 20 s)", &d);

    // Burst: 10,000 jobs due on the same second, three times.
    let d = Arc::new(Lateness(Mutex::new(Vec::new())));
    let e = engine(d.clone());
    let burst = Schedule::parse("*/5 * * * * *", None).unwrap();
    for _ in 0..JOBS {
        e.upsert(job(burst.clone(), Utc::now())).unwrap();
    }
    tokio::time::sleep(Duration::from_millis(15_500)).await;
    drop(e);
    report("burst (10,000 jobs on the same second, x3)", &d);

    // Idle: 10,000 daily jobs at random times of day.
    let d = Arc::new(Lateness(Mutex::new(Vec::new())));
    let e = engine(d.clone());
    let mut rng = XorShift(0x9e3779b97f4a7c15);
    for _ in 0..JOBS {
        let (m, h) = (rng.next() % 60, rng.next() % 24);
        e.upsert(job(
            Schedule::parse(&format!("{m} {h} * * *"), None).unwrap(),
            Utc::now(),
        ))
        .unwrap();
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (cpu0, wall0) = (cpu_secs(), Instant::now());
    tokio::time::sleep(Duration::from_secs(10)).await;
    let (cpu, wall) = (cpu_secs() - cpu0, wall0.elapsed().as_secs_f64());
    println!(
        "idle with {JOBS} daily jobs: {:.3} % CPU ({:.1} ms CPU over {:.1} s; {} fired meanwhile)",
        cpu / wall * 100.0,
        cpu * 1e3,
        wall,
        d.0.lock().map(|v| v.len()).unwrap_or(0)
    );
    drop(e);
}
