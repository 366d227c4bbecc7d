//! Foundation benchmark: prints figures, asserts nothing.
//!
//! `cargo bench -p talon-cli --bench startup` measures, on the release build:
//! - time from exec to the first 200 on `/api/health`, cold (empty home: the
//!   config is written and the database created) and warm (existing home);
//! - idle resident memory one second after start;
//! - `/api/health` throughput and latency with keep-alive connections.

mod daemon;

use std::time::{Duration, Instant};

use daemon::{percentile, rss_kib, stop, time_to_first_health};

const RUNS: usize = 20;
const THROUGHPUT_SECS: u64 = 5;
const CONNECTIONS: usize = 16;

fn main() {
    // Cold: a fresh home each time.
    let mut cold = Vec::new();
    for _ in 0..RUNS {
        let home = tempfile::tempdir().expect("home");
        let (t, child, _) = time_to_first_health(home.path());
        cold.push(t);
        stop(child);
    }
    // Warm: the same home, already initialised.
    let home = tempfile::tempdir().expect("home");
    std::fs::write(
        home.path().join("config.toml"),
        "[rate_limit]\nexempt_loopback = true\n",
    )
    .expect("config");
    let mut warm = Vec::new();
    for _ in 0..RUNS {
        let (t, child, _) = time_to_first_health(home.path());
        warm.push(t);
        stop(child);
    }
    cold.sort();
    warm.sort();
    println!("start to first 200 on /api/health ({RUNS} runs each)");
    println!(
        "  cold (new home)  p50 {:>7.2} ms  p99 {:>7.2} ms",
        ms(percentile(&cold, 0.5)),
        ms(percentile(&cold, 0.99))
    );
    println!(
        "  warm             p50 {:>7.2} ms  p99 {:>7.2} ms",
        ms(percentile(&warm, 0.5)),
        ms(percentile(&warm, 0.99))
    );

    let (_, child, url) = time_to_first_health(home.path());
    std::thread::sleep(Duration::from_secs(1));
    println!(
        "idle RSS after start: {:.1} MiB",
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
