//! Agent benchmark through the real daemon: prints figures, asserts nothing.
//!
//! `cargo bench -p talon-cli --bench messages` measures, on the release build,
//! against `talon-test-llm` (a local OpenAI-format server answering at once):
//! - the provider call alone (the floor), then `POST /api/agents/{id}/message`
//!   (blocking) and `POST .../message/stream` (SSE read to its end), p50/p99;
//!   the difference is Talon's overhead per turn (history load, the turn's
//!   durable commit, HTTP), and the same against `GET /api/health` from the
//!   same client (the issue-19 ratios: a turn within 4x, a stream within 5x);
//! - spawn time, and resident memory per idle agent with 1,000 and 10,000 agents.

mod daemon;

use std::time::{Duration, Instant};

use daemon::{percentile, rss_kib};
use talon_test_llm::TestLlm;

const MESSAGES: usize = 2_000;
const WARMUP: usize = 100;
/// The session is reset this often, so the history a turn loads stays the
/// size of an ordinary conversation instead of growing for the whole run.
const RESET_EVERY: usize = 20;
const CONFIG: &str = "[rate_limit]\nexempt_loopback = true\n";

fn report(what: &str, mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    let p50 = percentile(&samples, 0.5);
    println!(
        "{what} ({} samples): p50 {:.3} ms, p99 {:.3} ms",
        samples.len(),
        p50.as_secs_f64() * 1e3,
        percentile(&samples, 0.99).as_secs_f64() * 1e3
    );
    p50
}

fn manifest(name: &str, llm: &TestLlm) -> String {
    format!(
        "name = \"{name}\"\n[model]\nprovider = \"ollama\"\nmodel = \"bench-model\"\nbase_url = \"{}\"\n",
        llm.openai_url()
    )
}

async fn spawn_agent(http: &reqwest::Client, url: &str, manifest: String) -> String {
    let response = http
        .post(format!("{url}/api/agents"))
        .json(&serde_json::json!({ "manifest_toml": manifest }))
        .send()
        .await
        .expect("spawn");
    assert_eq!(response.status(), 201);
    let body: serde_json::Value = response.json().await.expect("spawn body");
    body["agent_id"].as_str().expect("id").to_string()
}

async fn turns(http: &reqwest::Client, url: &str, agent: &str, stream: bool) -> Vec<Duration> {
    let path = if stream { "message/stream" } else { "message" };
    let mut samples = Vec::with_capacity(MESSAGES);
    for i in 0..MESSAGES + WARMUP {
        if i % RESET_EVERY == 0 {
            http.post(format!("{url}/api/agents/{agent}/session/reset"))
                .send()
                .await
                .expect("reset");
        }
        let started = Instant::now();
        let response = http
            .post(format!("{url}/api/agents/{agent}/{path}"))
            .json(&serde_json::json!({ "message": "ping" }))
            .send()
            .await
            .expect("message");
        assert_eq!(response.status(), 200);
        let body = response.bytes().await.expect("body");
        if stream {
            assert!(body.windows(10).any(|w| w == b"event: don"), "a done event");
        }
        if i >= WARMUP {
            samples.push(started.elapsed());
        }
    }
    samples
}

/// MESSAGES timings of the request `request` builds, each read to its end,
/// after WARMUP untimed ones.
async fn samples(request: impl Fn() -> reqwest::RequestBuilder) -> Vec<Duration> {
    let mut samples = Vec::with_capacity(MESSAGES);
    for i in 0..MESSAGES + WARMUP {
        let started = Instant::now();
        let response = request().send().await.expect("request");
        response.bytes().await.expect("body");
        if i >= WARMUP {
            samples.push(started.elapsed());
        }
    }
    samples
}

fn main() {
    let llm = TestLlm::start_blocking();
    llm.set_recording(false);
    llm.set_default_reply("pong");
    let home = tempfile::tempdir().expect("home");
    std::fs::write(home.path().join("config.toml"), CONFIG).expect("config");
    let (mut child, url) = daemon::spawn(home.path());
    let tokio = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio");
    tokio.block_on(async {
        let http = reqwest::Client::new();
        let agent = spawn_agent(&http, &url, manifest("bench", &llm)).await;

        let direct = samples(|| {
            http.post(format!("{}/chat/completions", llm.openai_url()))
                .json(&serde_json::json!({ "model": "bench-model",
                    "messages": [{ "role": "user", "content": "ping" }] }))
        })
        .await;
        let floor = report("provider call alone (the floor)", direct);
        // The yardstick of the hot-path targets: a turn within 4x
        // and a streamed turn within 5x of the daemon's cheapest answer,
        // from the same client in the same run.
        let health = samples(|| http.get(format!("{url}/api/health"))).await;
        let health = report("GET /api/health", health);
        let blocking = report(
            "POST /message, blocking",
            turns(&http, &url, &agent, false).await,
        );
        let streaming = report(
            "POST /message/stream, read to `done`",
            turns(&http, &url, &agent, true).await,
        );
        println!(
            "overhead over the provider call at p50: blocking {:.3} ms, streaming {:.3} ms",
            (blocking.as_secs_f64() - floor.as_secs_f64()) * 1e3,
            (streaming.as_secs_f64() - floor.as_secs_f64()) * 1e3
        );
        println!(
            "at p50, a blocking turn takes {:.2}x and a streamed one {:.2}x the time of GET /api/health",
            blocking.as_secs_f64() / health.as_secs_f64(),
            streaming.as_secs_f64() / health.as_secs_f64()
        );

        let base_rss = rss_kib(child.id());
        let mut spawn_times = Vec::new();
        let mut count = 1;
        for target in [1_000usize, 10_000] {
            while count < target {
                let started = Instant::now();
                spawn_agent(&http, &url, manifest(&format!("idle-{count}"), &llm)).await;
                spawn_times.push(started.elapsed());
                count += 1;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
            let rss = rss_kib(child.id());
            println!(
                "{target} agents: resident memory {rss} KiB, {:.1} KiB per idle agent over the first",
                rss.saturating_sub(base_rss) as f64 / (target - 1) as f64
            );
        }
        report("POST /api/agents (spawn)", spawn_times);
        http.post(format!("{url}/api/agents/{agent}/session/reset"))
            .send()
            .await
            .expect("reset");
        let with_many = {
            let mut samples = Vec::new();
            for _ in 0..200 {
                let started = Instant::now();
                let response = http
                    .post(format!("{url}/api/agents/{agent}/message"))
                    .json(&serde_json::json!({ "message": "ping" }))
                    .send()
                    .await
                    .expect("message");
                response.bytes().await.expect("body");
                samples.push(started.elapsed());
            }
            samples
        };
        report("POST /message, blocking, with 10,000 agents", with_many);
    });
    let _ = child.kill();
    let _ = child.wait();
}
