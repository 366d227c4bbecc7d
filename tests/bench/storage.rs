//! Storage benchmark through the real daemon: prints figures, asserts nothing.
//!
//! `cargo bench -p talon-cli --bench storage` measures, against
//! `talon-test-llm` answering at once (so the figures are the host's work):
//! - (a) a blocking turn with a daily budget set, and `GET /api/usage/summary`,
//!   with no stored turn records and then with 1,000,000 more, written
//!   straight into the stopped daemon's database (the migration that builds
//!   the running totals from them runs at the next start, and is timed);
//! - (b) a turn in a new session, in a session whose 2,000-token window is
//!   full (400 messages), and in one of 10,000 messages (sliding window
//!   only: `compact_at_ratio = 1.0`);
//! - (c) the daemon's resident memory after starting on that store and
//!   after the turns, with the page cache at its default of 32 MiB.

mod daemon;

use std::time::{Duration, Instant};

use chrono::Datelike;
use daemon::{percentile, rss_kib};
use talon_test_llm::TestLlm;

const SAMPLES: usize = 300;
const WARMUP: usize = 30;
const RECORDS: u64 = 1_000_000;
const LONG_SESSION_TURNS: usize = 5_000;
const CONFIG: &str = "[rate_limit]\nexempt_loopback = true\n[budget]\ndaily_limit_usd = 1000.0\n\
    [agents]\ncompact_at_ratio = 1.0\nmax_context_tokens = 2000\n";

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

async fn post(http: &reqwest::Client, url: &str, body: serde_json::Value) -> serde_json::Value {
    let response = http.post(url).json(&body).send().await.expect("post");
    assert!(
        response.status().is_success(),
        "{url}: {}",
        response.status()
    );
    response.json().await.expect("json")
}

/// `n` blocking turns (after the warm-up), each in a fresh session when `reset`.
async fn turns(
    http: &reqwest::Client,
    url: &str,
    agent: &str,
    n: usize,
    reset: bool,
) -> Vec<Duration> {
    let mut samples = Vec::with_capacity(n);
    for i in 0..n + WARMUP {
        if reset {
            post(
                http,
                &format!("{url}/api/agents/{agent}/session/reset"),
                serde_json::json!({}),
            )
            .await;
        }
        let started = Instant::now();
        post(
            http,
            &format!("{url}/api/agents/{agent}/message"),
            serde_json::json!({ "message": "ping" }),
        )
        .await;
        if i >= WARMUP {
            samples.push(started.elapsed());
        }
    }
    samples
}

async fn summaries(http: &reqwest::Client, url: &str) -> Vec<Duration> {
    let mut samples = Vec::with_capacity(SAMPLES);
    for _ in 0..SAMPLES {
        let started = Instant::now();
        let response = http
            .get(format!("{url}/api/usage/summary"))
            .send()
            .await
            .expect("get");
        assert_eq!(response.status(), 200);
        response.bytes().await.expect("body");
        samples.push(started.elapsed());
    }
    samples
}

/// Writes `RECORDS` turn records of 1,000 other agents over this month into
/// the stopped daemon's database, as schema 8 had them (no totals), so the
/// next start builds the totals.
fn write_records(home: &std::path::Path) -> Duration {
    let turns: redb::TableDefinition<(&str, &str), &[u8]> = redb::TableDefinition::new("turns.v1");
    let totals: redb::TableDefinition<(&str, &str), &[u8]> =
        redb::TableDefinition::new("turn_totals.v1");
    let meta: redb::TableDefinition<&str, u64> = redb::TableDefinition::new("meta");
    let started = Instant::now();
    let db = redb::Database::create(home.join("data/talon.redb")).expect("open db");
    let agents: Vec<String> = (0..1000)
        .map(|_| uuid::Uuid::new_v4().to_string())
        .collect();
    let now = chrono::Utc::now();
    let month_start = now.date_naive().with_day0(0).expect("day 1");
    let seconds = (now.date_naive() - month_start).num_seconds().max(3600);
    let mut written = 0u64;
    while written < RECORDS {
        let tx = db.begin_write().expect("tx");
        {
            let mut table = tx.open_table(turns).expect("turns");
            for _ in 0..100_000 {
                let agent = &agents[(written % 1000) as usize];
                let at = chrono::DateTime::<chrono::Utc>::from_naive_utc_and_offset(
                    month_start.and_hms_opt(0, 0, 0).expect("midnight"),
                    chrono::Utc,
                ) + chrono::Duration::seconds((written as i64 * 7919) % seconds);
                let id = uuid::Uuid::now_v7().to_string();
                let row = format!(
                    "{{\"id\":\"{id}\",\"agent_id\":\"{agent}\",\"session_id\":\"{agent}\",\"started_at\":\"{}\",\
                     \"duration_ms\":1,\"iterations\":1,\"provider\":\"ollama\",\"model\":\"bench-model\",\
                     \"input_tokens\":120,\"output_tokens\":30,\"cost_usd\":0.0,\"tool_calls\":[],\"status\":\"completed\"}}",
                    at.to_rfc3339()
                );
                table
                    .insert((agent.as_str(), id.as_str()), row.as_bytes())
                    .expect("insert");
                written += 1;
            }
        }
        tx.commit().expect("commit");
    }
    let tx = db.begin_write().expect("tx");
    tx.delete_table(totals).expect("drop totals");
    tx.open_table(meta)
        .expect("meta")
        .insert("schema_version", 8)
        .expect("version");
    tx.commit().expect("commit");
    started.elapsed()
}

fn main() {
    let llm = TestLlm::start_blocking();
    llm.set_recording(false);
    llm.set_default_reply("pong");
    let home = tempfile::tempdir().expect("home");
    std::fs::write(home.path().join("config.toml"), CONFIG).expect("config");
    let tokio = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio");
    let http = reqwest::Client::new();
    let manifest = format!(
        "name = \"bench\"\n[model]\nprovider = \"ollama\"\nmodel = \"bench-model\"\nbase_url = \"{}\"\n",
        llm.openai_url()
    );

    let (child, url) = daemon::spawn(home.path());
    let agent = tokio.block_on(async {
        let body = post(
            &http,
            &format!("{url}/api/agents"),
            serde_json::json!({ "manifest_toml": manifest }),
        )
        .await;
        let agent = body["agent_id"].as_str().expect("id").to_string();
        report(
            "(a) turn with a budget, 0 other records",
            turns(&http, &url, &agent, SAMPLES, true).await,
        );
        report(
            "(a) GET /api/usage/summary, 0 other records",
            summaries(&http, &url).await,
        );
        report(
            "(b) turn in a new session",
            turns(&http, &url, &agent, SAMPLES, true).await,
        );
        agent
    });
    daemon::stop(child);

    let wrote = write_records(home.path());
    let size = std::fs::metadata(home.path().join("data/talon.redb")).map_or(0, |m| m.len());
    println!(
        "wrote {RECORDS} turn records in {:.1} s; database {:.0} MB",
        wrote.as_secs_f64(),
        size as f64 / 1e6
    );
    let started = Instant::now();
    let (child, url) = daemon::spawn(home.path());
    println!(
        "start with the migration building the totals of {RECORDS} records: {:.1} s",
        started.elapsed().as_secs_f64()
    );
    println!(
        "(c) RSS after that start: {:.1} MB",
        rss_kib(child.id()) as f64 / 1024.0
    );
    tokio.block_on(async {
        report(
            &format!("(a) turn with a budget, {RECORDS} other records"),
            turns(&http, &url, &agent, SAMPLES, true).await,
        );
        report(
            &format!("(a) GET /api/usage/summary, {RECORDS} other records"),
            summaries(&http, &url).await,
        );
        post(
            &http,
            &format!("{url}/api/agents/{agent}/session/reset"),
            serde_json::json!({}),
        )
        .await;
        // 200 turns fill the 2,000-token window ("ping"/"pong" are 9 tokens
        // each): from there on, what a turn reads and sends stays the same.
        turns(&http, &url, &agent, 200 - WARMUP, false).await;
        report(
            "(b) turn in a session of 400+ messages (window full)",
            turns(&http, &url, &agent, SAMPLES, false).await,
        );
        let started = Instant::now();
        turns(
            &http,
            &url,
            &agent,
            LONG_SESSION_TURNS - 500 - WARMUP,
            false,
        )
        .await;
        println!(
            "{} turns into one session ({} messages) in {:.1} s",
            LONG_SESSION_TURNS,
            LONG_SESSION_TURNS * 2,
            started.elapsed().as_secs_f64()
        );
        report(
            &format!(
                "(b) turn in a session of {}+ messages",
                LONG_SESSION_TURNS * 2
            ),
            turns(&http, &url, &agent, SAMPLES, false).await,
        );
    });
    println!(
        "(c) RSS after the turns: {:.1} MB",
        rss_kib(child.id()) as f64 / 1024.0
    );
    daemon::stop(child);

    // The steady state: a restart on the large store, without the migration.
    let (child, url) = daemon::spawn(home.path());
    println!(
        "(c) RSS after a restart on it: {:.1} MB",
        rss_kib(child.id()) as f64 / 1024.0
    );
    tokio.block_on(async {
        report(
            &format!("(a) turn with a budget after the restart, {RECORDS} other records"),
            turns(&http, &url, &agent, SAMPLES, true).await,
        );
        report(
            &format!("(a) GET /api/usage/summary after the restart, {RECORDS} other records"),
            summaries(&http, &url).await,
        );
    });
    println!(
        "(c) RSS after those requests: {:.1} MB",
        rss_kib(child.id()) as f64 / 1024.0
    );
    daemon::stop(child);
}
