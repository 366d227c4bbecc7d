//! The `digest` hand through the daemon: installed signed with a grant for
//! the daemon's own address (behind a local forwarder, so the address
//! survives a restart) and for the API key in its environment; after some
//! activity (an agent turn, a task that completes and one that fails) its
//! digest prompt counts that activity, its agent (talon-test-llm) writes the
//! summary and the owner is told; a restart does not send the digest again;
//! an address not granted fails each tick with the reason, sending nothing;
//! settings that do not fit are answered 400 naming the field.

use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Duration;

use base64::Engine as _;
use serde_json::json;
use talon_test_llm::{Reply, TestLlm};

use crate::hands::notifications;
use crate::harness::{Daemon, assert_error, json};
use crate::plugins::{Publisher, trust};

const KEY: &str = "digest-test-key";
const SUMMARY: &str = "Two turns ran; the task `flaky` failed because the provider was down.";

/// Polls `check` (every 50 ms, up to 60 s) until it gives a value.
async fn wait_for<T>(what: &str, mut check: impl AsyncFnMut() -> Option<T>) -> T {
    for _ in 0..1200 {
        if let Some(value) = check().await {
            return value;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("never happened: {what}");
}

/// A fixed local port forwarding every connection to the daemon's current
/// one, as a front would: the daemon listens on a new port after a restart,
/// the hand keeps its settings and grant.
struct Forwarder {
    port: u16,
    target: Arc<AtomicU16>,
}

impl Forwarder {
    async fn start(target: u16) -> Forwarder {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let target = Arc::new(AtomicU16::new(target));
        let to = target.clone();
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let port = to.load(Ordering::SeqCst);
                tokio::spawn(async move {
                    if let Ok(mut outbound) =
                        tokio::net::TcpStream::connect(("127.0.0.1", port)).await
                    {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        });
        Forwarder { port, target }
    }

    fn point_at(&self, daemon: &Daemon) {
        self.target.store(port_of(daemon), Ordering::SeqCst);
    }
}

fn port_of(daemon: &Daemon) -> u16 {
    daemon
        .base_url()
        .rsplit(':')
        .next()
        .and_then(|p| p.trim_end_matches('/').parse().ok())
        .expect("the daemon's port")
}

async fn ticks(daemon: &Daemon, instance: &str) -> u64 {
    let response = daemon
        .get(&format!("/api/hands/instances/{instance}/stats"))
        .await;
    assert_eq!(response.status(), 200);
    json(response).await["ticks"].as_u64().unwrap_or(0)
}

async fn wait_task(daemon: &Daemon, id: &str, status: &str) {
    wait_for(&format!("task {id} {status}"), async || {
        let list = json(daemon.get("/api/tasks/list").await).await;
        list["tasks"]
            .as_array()?
            .iter()
            .any(|t| t["id"] == id && t["status"] == status)
            .then_some(())
    })
    .await;
}

#[tokio::test]
async fn the_digest_counts_the_days_activity_and_is_sent_once_across_a_restart() {
    let llm = TestLlm::start().await;
    let mut daemon = Daemon::start_with_env(
        // One attempt per provider call, so the failing task fails at once.
        &format!("api_key = \"{KEY}\"\n[llm]\nmax_attempts = 1\n"),
        &[("TALON_DIGEST_API_KEY", KEY)],
    )
    .await;
    daemon.use_key(KEY);
    let front = Forwarder::start(port_of(&daemon)).await;
    let response = daemon
        .put(
            "/api/providers/ollama/url",
            json!({ "base_url": llm.openai_url() }),
        )
        .await;
    assert_eq!(response.status(), 200, "{}", json(response).await);

    // The day's activity: a turn, a task done and a task failed.
    let worker = daemon
        .spawn_manifest(
            "name = \"worker\"\nversion = \"0.1.0\"\n[model]\nprovider = \"ollama\"\nmodel = \"test-model\"\n"
                .into(),
        )
        .await;
    llm.push(Reply::text("hello back"));
    assert_eq!(daemon.message(&worker, "hello").await.status(), 200);
    llm.push(Reply::text("the report is done"));
    let done = json(
        daemon
            .post(
                "/api/tasks",
                json!({ "title": "report", "description": "write it", "assignee": worker }),
            )
            .await,
    )
    .await;
    wait_task(&daemon, done["id"].as_str().unwrap(), "completed").await;
    llm.push(Reply::error(500, "provider down"));
    let failed = json(
        daemon
            .post(
                "/api/tasks",
                json!({ "title": "flaky", "description": "try it", "assignee": worker }),
            )
            .await,
    )
    .await;
    wait_task(&daemon, failed["id"].as_str().unwrap(), "failed").await;
    // Set only now: the activity above is answered by the replies pushed.
    llm.set_default_reply(SUMMARY);
    let usage = json(daemon.get("/api/usage/summary").await).await;
    let requests = usage["today"]["requests"].as_u64().unwrap();

    // Installed signed, granted the daemon's address (through the front)
    // and the key's variable.
    let publisher = Publisher::new(&daemon);
    let package = publisher.pack(&daemon, "plugins/digest", "digest");
    trust(&daemon, &publisher).await;
    let address = format!("127.0.0.1:{}", front.port);
    let response = daemon
        .post(
            "/api/hands/install",
            json!({
                "package": base64::engine::general_purpose::STANDARD.encode(std::fs::read(&package).unwrap()),
                "grant": { "network": [address], "memory": ["last_digest"], "env": ["TALON_DIGEST_API_KEY"] },
            }),
        )
        .await;
    let hand = json(response).await;
    assert_eq!(hand["status"], "loaded", "{hand}");
    assert_eq!(hand["settings_schema"]["required"][0], "base_url");

    // Settings that do not fit: 400 naming the field, nothing created.
    let base_url = format!("http://{address}");
    let agents_before = json(daemon.get("/api/agents").await).await;
    for (config, field) in [
        (json!({}), "settings"),
        (json!({ "base_url": "ftp://x" }), "settings.base_url"),
        (
            json!({ "base_url": base_url, "sections": ["mail"] }),
            "settings.sections[0]",
        ),
        (
            json!({ "base_url": base_url, "every_secs": 0 }),
            "settings.every_secs",
        ),
        (json!({ "base_url": base_url, "at": "7:00" }), "settings.at"),
        (
            json!({ "base_url": base_url, "at": "07:00", "every_secs": 60 }),
            "settings.every_secs",
        ),
        (
            json!({ "base_url": base_url, "max_items": 51 }),
            "settings.max_items",
        ),
    ] {
        let response = daemon
            .post(
                "/api/hands/digest/activate",
                json!({ "config": config, "provider": "ollama", "model": "test-model" }),
            )
            .await;
        assert_error(response, 400, field).await;
    }
    assert_eq!(json(daemon.get("/api/agents").await).await, agents_before);

    // Weekly: the first digest goes at once, the next one next week.
    let response = daemon
        .post(
            "/api/hands/digest/activate",
            json!({ "config": { "base_url": base_url, "every_secs": 604800 },
                    "provider": "ollama", "model": "test-model" }),
        )
        .await;
    let instance = json(response).await;
    assert_eq!(instance["status"], "active", "{instance}");
    let id = instance["instance_id"].as_str().unwrap().to_string();
    let told = wait_for("the digest told to the owner", async || {
        notifications(&daemon, &id).await.into_iter().next()
    })
    .await;
    assert!(told.starts_with("Digest "), "{told}");
    assert!(told.ends_with(SUMMARY), "{told}");

    // What the agent was asked counts the activity, under the hand's role.
    let asked = llm
        .requests()
        .into_iter()
        .map(|r| r.body.to_string())
        .find(|b| b.contains("What happened in the agent daemon"))
        .expect("the agent was asked for the digest");
    assert!(asked.contains("daily digest"), "{asked}");
    assert!(
        asked.contains(&format!("Usage today: {requests} requests")),
        "{asked}"
    );
    assert!(
        asked.contains("Tasks: 2 posted (completed 1, failed 1)."),
        "{asked}"
    );
    assert!(asked.contains("- failed: flaky: "), "{asked}");
    assert!(asked.contains("provider down"), "{asked}");
    // The audit's counts: the worker and the hand's agent spawned, two
    // tasks posted, one activation.
    for count in ["agent_spawned 2", "task_posted 2", "hand_activated 1"] {
        assert!(asked.contains(count), "{count}: {asked}");
    }
    // The key went in the header, never into what the agent saw.
    assert!(!asked.contains(KEY), "{asked}");

    // A restart: the instance ticks again and does not repeat the digest.
    daemon.terminate();
    daemon.restart();
    front.point_at(&daemon);
    wait_for("ticks after the restart", async || {
        (ticks(&daemon, &id).await >= 3).then_some(())
    })
    .await;
    assert_eq!(notifications(&daemon, &id).await.len(), 1);
    let stats = json(
        daemon
            .get(&format!("/api/hands/instances/{id}/stats"))
            .await,
    )
    .await;
    assert_eq!(stats["metrics"]["errors"]["value"], "0", "{stats}");
    assert_ne!(stats["metrics"]["last_digest"]["value"], "never", "{stats}");

    // An address it was not granted: each tick fails with the reason,
    // nothing is sent, and the next tick tries again.
    let response = daemon
        .post(
            "/api/hands/digest/activate",
            json!({ "config": { "base_url": "http://127.0.0.1:9/", "sections": ["usage"] },
                    "provider": "ollama", "model": "test-model" }),
        )
        .await;
    let refused = json(response).await["instance_id"]
        .as_str()
        .unwrap()
        .to_string();
    let stats = wait_for("two failed ticks", async || {
        let s = json(
            daemon
                .get(&format!("/api/hands/instances/{refused}/stats"))
                .await,
        )
        .await;
        (s["failed_ticks"].as_u64()? >= 2).then_some(s)
    })
    .await;
    assert!(
        stats["last_error"]
            .as_str()
            .unwrap()
            .contains("127.0.0.1:9"),
        "{stats}"
    );
    assert!(notifications(&daemon, &refused).await.is_empty());
    assert!(!daemon.log().contains(KEY), "the key was logged");
}
