//! Foundation benchmark: prints figures, asserts nothing.
//!
//! `cargo bench -p talon-cli --bench startup` measures, on the release build,
//! twice: the host alone (`[plugins] bundled = false`) and as installed
//! (the default config: the five bundled components load at start):
//! - time from exec to the first 200 on `/api/health` (the API answers
//!   from the moment it binds) and to the `talon listening` line (everything
//!   installed loaded), cold (empty home: the config is written, the
//!   database created, the bundled components compiled) and warm (existing
//!   home: they come from its cache);
//! - idle resident memory one second after a warm start;
//! - `/api/health` throughput and latency with keep-alive connections.

mod daemon;

use std::path::Path;
use std::time::{Duration, Instant};

use daemon::{Started, percentile, rss_kib, stop, time_to_first_health};

const RUNS: usize = 20;
const THROUGHPUT_SECS: u64 = 5;
const CONNECTIONS: usize = 16;

/// The two configurations measured: a name, and the config file's lines.
const SETUPS: [(&str, &str); 2] = [
    (
        "host alone (bundled = false)",
        "[rate_limit]\nexempt_loopback = true\n[plugins]\nbundled = false\n",
    ),
    (
        "as installed (bundled plugins on)",
        "[rate_limit]\nexempt_loopback = true\n",
    ),
];

fn main() {
    for (name, config) in SETUPS {
        println!("== {name}");
        // Cold: a fresh home each time.
        let cold = starts(RUNS, || {
            let home = tempfile::tempdir().expect("home");
            std::fs::write(home.path().join("config.toml"), config).expect("config");
            home
        });
        // Warm: the same home, started once before so it is initialised.
        let home = tempfile::tempdir().expect("home");
        std::fs::write(home.path().join("config.toml"), config).expect("config");
        stop(time_to_first_health(home.path()).child);
        let warm = starts(RUNS, || home.path());
        println!("start ({RUNS} runs each)          first 200 p50 / p99       ready p50 / p99");
        for (label, (health, ready)) in [("cold (new home)", cold), ("warm", warm)] {
            println!(
                "  {label:<16} {:>8.2} / {:>8.2} ms   {:>8.2} / {:>8.2} ms",
                ms(percentile(&health, 0.5)),
                ms(percentile(&health, 0.99)),
                ms(percentile(&ready, 0.5)),
                ms(percentile(&ready, 0.99))
            );
        }

        let Started { child, url, .. } = time_to_first_health(home.path());
        std::thread::sleep(Duration::from_secs(1));
        println!(
            "idle RSS after a warm start: {:.1} MiB",
            rss_kib(child.id()) as f64 / 1024.0
        );

        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let (count, mut latencies) = runtime.block_on(throughput(&url));
        latencies.sort();
        println!(
            "/api/health throughput: {:.0} req/s over {THROUGHPUT_SECS} s with {CONNECTIONS} keep-alive connections \
             (client on the same 2 cores); latency p50 {:.3} ms p99 {:.3} ms",
            count as f64 / THROUGHPUT_SECS as f64,
            ms(percentile(&latencies, 0.5)),
            ms(percentile(&latencies, 0.99))
        );
        println!(
            "RSS after load: {:.1} MiB",
            rss_kib(child.id()) as f64 / 1024.0
        );
        stop(child);
    }
}

/// `runs` starts of the home `home()` gives; sorted times to the first 200
/// and to ready.
fn starts<H: AsRef<Path>>(
    runs: usize,
    mut home: impl FnMut() -> H,
) -> (Vec<Duration>, Vec<Duration>) {
    let (mut health, mut ready) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        let home = home();
        let started = time_to_first_health(home.as_ref());
        health.push(started.first_health);
        ready.push(started.ready);
        stop(started.child);
    }
    health.sort();
    ready.sort();
    (health, ready)
}

async fn throughput(url: &str) -> (usize, Vec<Duration>) {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(CONNECTIONS)
        .build()
        .expect("client");
    let deadline = Instant::now() + Duration::from_secs(THROUGHPUT_SECS);
    let mut tasks = Vec::new();
    for _ in 0..CONNECTIONS {
        let client = client.clone();
        let target = format!("{url}/api/health");
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            while Instant::now() < deadline {
                let t = Instant::now();
                let response = client.get(&target).send().await.expect("request");
                assert_eq!(response.status(), 200);
                let _ = response.bytes().await;
                latencies.push(t.elapsed());
            }
            latencies
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.expect("task"));
    }
    (all.len(), all)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
