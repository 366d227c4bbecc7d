//! Storage benchmark through the real daemon: prints figures, asserts nothing.
//!
//! `cargo bench -p talon-cli --bench storage` measures, against
//! `talon-test-llm` answering at once (so the figures are the host's work),
//! each turn's latency from the client and the daemon's CPU time per turn:
//! - (a) per-request cost as the store grows: a blocking turn with a daily
//!   budget set (each the first of its session), `GET /api/usage/summary`,
//!   `GET /api/health` and `GET /api/agents`, on an empty store and then
//!   with 1,000,000 turn records and 1,000,000 stored messages more (in
//!   1,000 sessions of 10 other agents), written straight into the stopped
//!   daemon's database (the migration that builds the running totals from
//!   the records runs at the next start, and is timed), and again after a
//!   restart on that store. With the store large, the turns alternate in
//!   batches with a second daemon on an empty store started at the same
//!   time, and the ratio of the two is printed: the machine's speed drifts
//!   (the first empty-store p50 moved by ±20 % between runs of one build),
//!   and alternating puts the drift on both sides alike;
//! - (b) a turn in a new session, in a session whose 2,000-token window is
//!   full (400 messages), and in one of 10,000 messages (sliding window
//!   only: `compact_at_ratio = 1.0`); then the long session and new
//!   sessions again in alternating batches, with the ratio printed;
//! - (c) the daemon's resident memory after starting on that store and
//!   after the turns, with the page cache at its default of 32 MiB.

mod daemon;

use std::time::{Duration, Instant};

use chrono::Datelike;
use daemon::{percentile, rss_kib};
use talon_kernel::conversation::{SessionRecord, StoredMessage};
use talon_llm::Message;
use talon_test_llm::TestLlm;

const SAMPLES: usize = 300;
const WARMUP: usize = 30;
/// Turns per batch when two daemons are compared in alternation.
const BATCH: usize = 30;
const RECORDS: u64 = 1_000_000;
const MESSAGES: u64 = 1_000_000;
const MESSAGE_SESSIONS: u64 = 1_000;
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

/// What a series of turns cost: each turn's latency from the client, and
/// the daemon's CPU time per turn (what the host spent, whatever else ran).
struct Turns {
    samples: Vec<Duration>,
    cpu_per_turn: Duration,
}

/// A running daemon and the agent the turns go to.
struct Daemon<'a> {
    url: &'a str,
    pid: u32,
    agent: &'a str,
}

/// Where a series of compared turns goes: a daemon's agent, each turn the
/// first of a new session (`fresh`) or all in the agent's current session.
#[derive(Clone, Copy)]
struct Side<'a> {
    daemon: &'a Daemon<'a>,
    fresh: bool,
}

/// `SAMPLES` turns on each of `a` and `b`, in alternating batches (the
/// machine's drift falls on both alike); both sides' figures.
async fn paired_turns(http: &reqwest::Client, a: Side<'_>, b: Side<'_>) -> (Turns, Turns) {
    let mut sides = [a, b].map(|_| Turns {
        samples: Vec::with_capacity(SAMPLES),
        cpu_per_turn: Duration::ZERO,
    });
    for _ in 0..SAMPLES / BATCH {
        for (turns_of, side) in sides.iter_mut().zip([a, b]) {
            let d = side.daemon;
            let batch = turns(http, d.url, d.pid, d.agent, BATCH, side.fresh).await;
            turns_of.samples.extend(batch.samples);
            turns_of.cpu_per_turn += batch.cpu_per_turn * BATCH as u32 / SAMPLES as u32;
        }
    }
    let [a, b] = sides;
    (a, b)
}

/// Reports two series compared in alternation, and `what`'s p50 and CPU
/// per turn relative to the `baseline` series.
fn report_paired(what: &str, turns: Turns, baseline_what: &str, baseline: Turns, against: &str) {
    let baseline_cpu = baseline.cpu_per_turn;
    let baseline_p50 = report_turns(baseline_what, baseline);
    let cpu = turns.cpu_per_turn;
    let p50 = report_turns(what, turns);
    println!(
        "    against {against} in the same run: p50 {:+.0} %, CPU {:+.0} %",
        (p50.as_secs_f64() / baseline_p50.as_secs_f64() - 1.0) * 100.0,
        (cpu.as_secs_f64() / baseline_cpu.as_secs_f64() - 1.0) * 100.0
    );
}

/// `n` blocking turns (after the warm-up), each the first of a session made
/// for it beforehand when `fresh`, else all in the agent's current session.
async fn turns(
    http: &reqwest::Client,
    url: &str,
    daemon: u32,
    agent: &str,
    n: usize,
    fresh: bool,
) -> Turns {
    let mut sessions = Vec::new();
    if fresh {
        for _ in 0..n + WARMUP {
            let body = post(
                http,
                &format!("{url}/api/agents/{agent}/sessions"),
                serde_json::json!({}),
            )
            .await;
            sessions.push(body["session_id"].as_str().expect("session id").to_string());
        }
    }
    let mut samples = Vec::with_capacity(n);
    let mut cpu_from = daemon::cpu_time(daemon);
    for i in 0..n + WARMUP {
        if i == WARMUP {
            cpu_from = daemon::cpu_time(daemon);
        }
        let mut body = serde_json::json!({ "message": "ping" });
        if let Some(session) = sessions.get(i) {
            body["session_id"] = session.as_str().into();
        }
        let started = Instant::now();
        post(http, &format!("{url}/api/agents/{agent}/message"), body).await;
        if i >= WARMUP {
            samples.push(started.elapsed());
        }
    }
    let cpu_per_turn = (daemon::cpu_time(daemon) - cpu_from) / n as u32;
    Turns {
        samples,
        cpu_per_turn,
    }
}

/// Prints the latencies and the CPU per turn; the p50.
fn report_turns(what: &str, turns: Turns) -> Duration {
    let p50 = report(what, turns.samples);
    println!(
        "    daemon CPU per turn: {:.3} ms",
        turns.cpu_per_turn.as_secs_f64() * 1e3
    );
    p50
}

/// Waits for the daemon's start-up work (the retention sweep walks every
/// turn record once at start, then hourly) to end before measuring requests.
fn settle(pid: u32) {
    let cpu = daemon::cpu_time(pid);
    let took = daemon::wait_idle(pid);
    println!(
        "    start-up work (retention sweep) over in {:.1} s, {:.1} s of CPU",
        took.as_secs_f64(),
        (daemon::cpu_time(pid) - cpu).as_secs_f64()
    );
}

/// `SAMPLES` requests of `GET {path}`.
async fn gets(http: &reqwest::Client, url: &str, path: &str) -> Vec<Duration> {
    let mut samples = Vec::with_capacity(SAMPLES);
    for _ in 0..SAMPLES {
        let started = Instant::now();
        let response = http.get(format!("{url}{path}")).send().await.expect("get");
        assert_eq!(response.status(), 200, "{path}");
        response.bytes().await.expect("body");
        samples.push(started.elapsed());
    }
    samples
}

/// The per-request figures of (a), labelled with the state of the store;
/// the turns alternate with `reference`'s when there is one.
async fn requests(
    http: &reqwest::Client,
    url: &str,
    daemon: u32,
    agent: &str,
    store: &str,
    reference: Option<&Daemon<'_>>,
) {
    let what = format!("(a) turn with a budget, {store}");
    match reference {
        None => {
            report_turns(&what, turns(http, url, daemon, agent, SAMPLES, true).await);
        }
        Some(reference) => {
            let this = Daemon {
                url,
                pid: daemon,
                agent,
            };
            let (large, empty) = paired_turns(
                http,
                Side {
                    daemon: &this,
                    fresh: true,
                },
                Side {
                    daemon: reference,
                    fresh: true,
                },
            )
            .await;
            report_paired(
                &what,
                large,
                "(a) turn with a budget, the empty-store daemon, alternating",
                empty,
                "the empty store",
            );
        }
    }
    for path in ["/api/usage/summary", "/api/health", "/api/agents"] {
        report(
            &format!("(a) GET {path}, {store}"),
            gets(http, url, path).await,
        );
    }
}

/// Writes `RECORDS` turn records of 1,000 other agents over this month into
/// the stopped daemon's database, as schema 8 had them (no totals), so the
/// next start builds the totals; and `MESSAGES` messages in sessions of ten
/// of those agents (see [`write_messages`]).
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
    write_messages(&db, &agents[..10]);
    let tx = db.begin_write().expect("tx");
    tx.delete_table(totals).expect("drop totals");
    tx.open_table(meta)
        .expect("meta")
        .insert("schema_version", 8)
        .expect("version");
    tx.commit().expect("commit");
    started.elapsed()
}

/// Writes `MESSAGES` messages, in `MESSAGE_SESSIONS` sessions of `agents`,
/// as the daemon stores them (the agents' own records are not written: what
/// grows is the tables a turn reads and writes).
fn write_messages(db: &redb::Database, agents: &[String]) {
    let sessions: redb::TableDefinition<&str, &[u8]> = redb::TableDefinition::new("sessions.v1");
    let messages: redb::TableDefinition<(&str, u64), &[u8]> =
        redb::TableDefinition::new("messages.v1");
    let per_session = MESSAGES / MESSAGE_SESSIONS;
    let now = chrono::Utc::now();
    for batch in 0..MESSAGE_SESSIONS / 100 {
        let tx = db.begin_write().expect("tx");
        {
            let mut session_table = tx.open_table(sessions).expect("sessions");
            let mut message_table = tx.open_table(messages).expect("messages");
            for i in 0..100 {
                let n = batch * 100 + i;
                let agent: uuid::Uuid = agents[(n % agents.len() as u64) as usize]
                    .parse()
                    .expect("uuid");
                let session = SessionRecord {
                    id: uuid::Uuid::new_v4(),
                    agent_id: agent,
                    label: None,
                    created_at: now,
                    updated_at: now,
                    message_count: per_session,
                    next_seq: per_session,
                    totals: Default::default(),
                    compactions: 0,
                };
                let key = session.id.to_string();
                for seq in 0..per_session {
                    let message = StoredMessage {
                        seq,
                        at: now,
                        message: if seq % 2 == 0 {
                            Message::user(format!("question {seq} of session {n}"))
                        } else {
                            Message::assistant(format!("the answer to question {}", seq - 1))
                        },
                    };
                    message_table
                        .insert(
                            (key.as_str(), seq),
                            serde_json::to_vec(&message).expect("json").as_slice(),
                        )
                        .expect("insert");
                }
                session_table
                    .insert(
                        key.as_str(),
                        serde_json::to_vec(&session).expect("json").as_slice(),
                    )
                    .expect("insert");
            }
        }
        tx.commit().expect("commit");
    }
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

    let create_agent = |url: &str| {
        tokio.block_on(async {
            let body = post(
                &http,
                &format!("{url}/api/agents"),
                serde_json::json!({ "manifest_toml": manifest }),
            )
            .await;
            body["agent_id"].as_str().expect("id").to_string()
        })
    };

    let (child, url) = daemon::spawn(home.path());
    let pid = child.id();
    let agent = create_agent(&url);
    tokio.block_on(requests(&http, &url, pid, &agent, "empty store", None));
    daemon::stop(child);

    // The empty-store side of the later comparisons, running throughout.
    let reference_home = tempfile::tempdir().expect("home");
    std::fs::write(reference_home.path().join("config.toml"), CONFIG).expect("config");
    let (reference_child, reference_url) = daemon::spawn(reference_home.path());
    let reference_agent = create_agent(&reference_url);
    let reference = Daemon {
        url: &reference_url,
        pid: reference_child.id(),
        agent: &reference_agent,
    };

    let wrote = write_records(home.path());
    let size = std::fs::metadata(home.path().join("data/talon.redb")).map_or(0, |m| m.len());
    println!(
        "wrote {RECORDS} turn records and {MESSAGES} messages in {:.1} s; database {:.0} MB",
        wrote.as_secs_f64(),
        size as f64 / 1e6
    );
    let started = Instant::now();
    let (child, url) = daemon::spawn(home.path());
    let pid = child.id();
    println!(
        "start with the migration building the totals of {RECORDS} records: {:.1} s",
        started.elapsed().as_secs_f64()
    );
    println!(
        "(c) RSS after that start: {:.1} MB",
        rss_kib(pid) as f64 / 1024.0
    );
    settle(pid);
    let store = format!("{RECORDS} other records and {MESSAGES} other messages");
    tokio.block_on(async {
        requests(&http, &url, pid, &agent, &store, Some(&reference)).await;
        report_turns(
            "(b) turn in a new session",
            turns(&http, &url, pid, &agent, SAMPLES, true).await,
        );
        post(
            &http,
            &format!("{url}/api/agents/{agent}/session/reset"),
            serde_json::json!({}),
        )
        .await;
        // 200 turns fill the 2,000-token window ("ping"/"pong" are 9 tokens
        // each): from there on, what a turn reads and sends stays the same.
        turns(&http, &url, pid, &agent, 200 - WARMUP, false).await;
        report_turns(
            "(b) turn in a session of 400+ messages (window full)",
            turns(&http, &url, pid, &agent, SAMPLES, false).await,
        );
        let started = Instant::now();
        turns(
            &http,
            &url,
            pid,
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
        report_turns(
            &format!(
                "(b) turn in a session of {}+ messages",
                LONG_SESSION_TURNS * 2
            ),
            turns(&http, &url, pid, &agent, SAMPLES, false).await,
        );
        // The same comparison in alternation on this daemon, so the
        // machine's drift falls on both sides alike.
        let this = Daemon {
            url: &url,
            pid,
            agent: &agent,
        };
        let (long, new) = paired_turns(
            &http,
            Side {
                daemon: &this,
                fresh: false,
            },
            Side {
                daemon: &this,
                fresh: true,
            },
        )
        .await;
        report_paired(
            &format!(
                "(b) turn in a session of {}+ messages, alternating",
                LONG_SESSION_TURNS * 2
            ),
            long,
            "(b) turn in a new session, alternating",
            new,
            "a new session",
        );
    });
    println!(
        "(c) RSS after the turns: {:.1} MB",
        rss_kib(pid) as f64 / 1024.0
    );
    daemon::stop(child);

    // The steady state: a restart on the large store, without the migration.
    let (child, url) = daemon::spawn(home.path());
    let pid = child.id();
    println!(
        "(c) RSS after a restart on it: {:.1} MB",
        rss_kib(pid) as f64 / 1024.0
    );
    settle(pid);
    tokio.block_on(requests(
        &http,
        &url,
        pid,
        &agent,
        &format!("{store}, after a restart"),
        Some(&reference),
    ));
    println!(
        "(c) RSS after those requests: {:.1} MB",
        rss_kib(pid) as f64 / 1024.0
    );
    daemon::stop(child);
    daemon::stop(reference_child);
}
