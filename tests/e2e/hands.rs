//! Hands through the daemon: `web_watch` installed (signed) with a grant
//! for a local page, activated, ticked on the scheduler, a change of the
//! page summarised by its agent (talon-test-llm) and told to its owner;
//! pause and resume, a restart and `kill -9` keep its state and never tick
//! an occurrence twice; `fickle` instances that trap, hang or refuse their
//! settings fail with the reason while another keeps ticking; bad
//! settings answered 400 naming the field; the CLI once; a hand built
//! against 0.1.0 installed and ticked through its adapter.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use serde_json::{Value, json};
use talon_test_llm::TestLlm;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::harness::{Daemon, assert_error, json};
use crate::plugins::{Publisher, run_ok, trust};

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

/// A page served over HTTP/1.1 on a local port, whose text can change
/// (also the page the dashboard's browser test has web_watch watch).
pub(crate) struct Page {
    pub(crate) port: u16,
    text: Arc<Mutex<String>>,
}

impl Page {
    pub(crate) async fn start(text: &str) -> Page {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let text = Arc::new(Mutex::new(text.to_string()));
        let served = text.clone();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                socket.set_nodelay(true).unwrap();
                let body = served.lock().unwrap().clone();
                tokio::spawn(async move {
                    let mut request = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                        match socket.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => request.extend_from_slice(&buf[..n]),
                        }
                    }
                    let response = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = socket.write_all(response.as_bytes()).await;
                    let _ = socket.shutdown().await;
                });
            }
        });
        Page { port, text }
    }

    pub(crate) fn url(&self) -> String {
        format!("http://127.0.0.1:{}/page", self.port)
    }

    fn set(&self, text: &str) {
        *self.text.lock().unwrap() = text.to_string();
    }
}

/// Packs `dir` with `wasm`, trusts its publisher and installs it through
/// `POST /api/hands/install` with `grant`.
async fn install_hand(daemon: &Daemon, dir: &str, wasm: &str, grant: Value) -> Value {
    let publisher = Publisher::new(daemon);
    let package = publisher.pack(daemon, dir, wasm);
    trust(daemon, &publisher).await;
    let bytes = std::fs::read(&package).unwrap();
    let response = daemon
        .post(
            "/api/hands/install",
            json!({
                "package": base64::engine::general_purpose::STANDARD.encode(bytes),
                "grant": grant,
            }),
        )
        .await;
    let status = response.status().as_u16();
    let body = json(response).await;
    assert_eq!(status, 200, "installing {dir}: {body}");
    assert_eq!(body["status"], "loaded", "{body}");
    body
}

/// Points the `ollama` provider at talon-test-llm, so hands' agents
/// (`provider = "ollama"`, `model = "test-model"`) answer from it.
async fn use_test_llm(daemon: &Daemon, llm: &TestLlm) {
    let response = daemon
        .put(
            "/api/providers/ollama/url",
            json!({ "base_url": llm.openai_url() }),
        )
        .await;
    assert_eq!(response.status(), 200, "{}", json(response).await);
}

async fn activate(daemon: &Daemon, hand: &str, config: Value) -> Value {
    let response = daemon
        .post(
            &format!("/api/hands/{hand}/activate"),
            json!({ "config": config, "provider": "ollama", "model": "test-model" }),
        )
        .await;
    let status = response.status().as_u16();
    let body = json(response).await;
    assert_eq!(status, 200, "activate {hand}: {body}");
    body
}

async fn stats(daemon: &Daemon, instance: &str) -> Value {
    let response = daemon
        .get(&format!("/api/hands/instances/{instance}/stats"))
        .await;
    assert_eq!(response.status(), 200);
    json(response).await
}

/// The owner notifications of `instance` recorded in the audit chain.
pub(crate) async fn notifications(daemon: &Daemon, instance: &str) -> Vec<String> {
    let body = json(daemon.get("/api/audit/recent?limit=500").await).await;
    body["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["event_type"] == "hand_owner_notified")
        .filter_map(|e| serde_json::from_str::<Value>(e["details"].as_str()?).ok())
        .filter(|d| d["instance_id"] == instance)
        .filter_map(|d| d["message"].as_str().map(str::to_string))
        .collect()
}

#[tokio::test]
async fn web_watch_reports_a_changed_page_and_keeps_its_state_across_pause_and_restart() {
    let llm = TestLlm::start().await;
    llm.set_default_reply("The price went from 10 to 12.");
    let page = Page::start("price: 10\n").await;
    let mut daemon = Daemon::start().await;
    use_test_llm(&daemon, &llm).await;
    let host = format!("127.0.0.1:{}", page.port);
    let hand = install_hand(
        &daemon,
        "plugins/web_watch",
        "web_watch",
        json!({ "network": [host], "memory": ["page:*", "last_check"] }),
    )
    .await;
    assert_eq!(hand["id"], "web_watch");
    assert_eq!(hand["tick_interval_secs"], 1);
    assert!(hand["agent_role"].as_str().unwrap().contains("web pages"));
    assert_eq!(hand["settings_schema"]["required"][0], "urls");

    // What it needs: its network grant is narrower than its request.
    let deps = json(
        daemon
            .post("/api/hands/web_watch/check-deps", json!({}))
            .await,
    )
    .await;
    assert_eq!(deps["satisfied"], false, "{deps}");
    assert_eq!(deps["missing"], json!(["network:*"]), "{deps}");

    // Settings that do not fit the schema: 400 naming the field, nothing created.
    let agents_before = json(daemon.get("/api/agents").await).await;
    for (config, field) in [
        (json!({}), "settings"),
        (json!({ "urls": ["ftp://example.com"] }), "settings.urls[0]"),
        (
            json!({ "urls": [page.url()], "interval_secs": 0 }),
            "settings.interval_secs",
        ),
        (json!({ "urls": [page.url()], "extra": true }), "settings"),
    ] {
        let response = daemon
            .post(
                "/api/hands/web_watch/activate",
                json!({ "config": config, "provider": "ollama", "model": "test-model" }),
            )
            .await;
        assert_error(response, 400, field).await;
    }
    for (body, needle) in [
        (
            json!({ "config": {"urls": [page.url()]}, "provider": "ollama" }),
            "model",
        ),
        (
            json!({ "config": {"urls": [page.url()]}, "settings": {}, "provider": "ollama", "model": "m" }),
            "once",
        ),
        (
            json!({ "config": {"urls": [page.url()]}, "provider": "ollama", "model": "test-model", "tick_interval_secs": 0 }),
            "tick_interval_secs",
        ),
    ] {
        let response = daemon.post("/api/hands/web_watch/activate", body).await;
        assert_error(response, 400, needle).await;
    }
    let response = daemon
        .post(
            "/api/hands/nope/activate",
            json!({ "provider": "ollama", "model": "m" }),
        )
        .await;
    assert_error(response, 404, "nope").await;
    assert_eq!(json(daemon.get("/api/agents").await).await, agents_before);

    let instance = activate(
        &daemon,
        "web_watch",
        json!({ "urls": [page.url()], "interval_secs": 1 }),
    )
    .await;
    let id = instance["instance_id"].as_str().unwrap().to_string();
    let agent = instance["agent_id"].as_str().unwrap().to_string();
    assert_eq!(instance["status"], "active");
    let active = json(daemon.get("/api/hands/active").await).await;
    assert_eq!(active["total"], 1);

    // The first look is the baseline; then the page changes.
    wait_for("the baseline check", async || {
        let s = stats(&daemon, &id).await;
        (s["metrics"]["checks"]["value"].as_str()? != "0").then_some(())
    })
    .await;
    page.set("price: 12\n");
    let told = wait_for("the owner told of the change", async || {
        notifications(&daemon, &id).await.into_iter().next()
    })
    .await;
    assert!(told.contains(&page.url()), "{told}");
    assert!(told.contains("The price went from 10 to 12."), "{told}");
    // The agent saw the diff, under the hand's role.
    let asked = llm
        .requests()
        .into_iter()
        .find(|r| r.body.to_string().contains("price: 12"))
        .expect("the agent was asked about the change");
    assert!(
        asked.body.to_string().contains("web pages"),
        "{}",
        asked.body
    );

    // Pause: no ticks, the agent and its memory stay.
    let paused = json(
        daemon
            .post(&format!("/api/hands/instances/{id}/pause"), json!({}))
            .await,
    )
    .await;
    assert_eq!(paused["status"], "paused", "{paused}");
    assert_eq!(paused["next_tick_at"], Value::Null);
    let memory = json(daemon.get(&format!("/api/memory/agents/{agent}/kv")).await).await;
    assert!(memory.to_string().contains("price: 12"), "{memory}");
    let s = stats(&daemon, &id).await;
    assert!(
        s["metrics_error"].as_str().unwrap().contains("paused"),
        "{s}"
    );
    let resumed = json(
        daemon
            .post(&format!("/api/hands/instances/{id}/resume"), json!({}))
            .await,
    )
    .await;
    assert_eq!(resumed["status"], "active", "{resumed}");
    // A new instance compares with the stored page: unchanged, not a change.
    wait_for("a check after resuming", async || {
        let s = stats(&daemon, &id).await;
        (s["metrics"]["checks"]["value"].as_str()? != "0").then_some(())
    })
    .await;
    assert_eq!(notifications(&daemon, &id).await.len(), 1);

    // A restart activates it again; its memory is still the baseline.
    daemon.terminate();
    daemon.restart();
    let after = wait_for("ticks after the restart", async || {
        let s = stats(&daemon, &id).await;
        (s["metrics"]["checks"]["value"].as_str()? != "0").then_some(s)
    })
    .await;
    assert_eq!(after["status"], "active", "{after}");
    assert_eq!(notifications(&daemon, &id).await.len(), 1);
    page.set("price: 15\n");
    wait_for("the change after the restart", async || {
        (notifications(&daemon, &id).await.len() == 2).then_some(())
    })
    .await;

    // Deactivated for good: the instance and its agent are gone.
    let gone = daemon
        .request(
            reqwest::Method::DELETE,
            &format!("/api/hands/instances/{id}"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), 200);
    assert_eq!(
        daemon.get(&format!("/api/agents/{agent}")).await.status(),
        404
    );
    let response = daemon
        .post(&format!("/api/hands/instances/{id}/pause"), json!({}))
        .await;
    assert_error(response, 404, &id).await;
    let removed = daemon
        .request(reqwest::Method::DELETE, "/api/hands/web_watch")
        .send()
        .await
        .unwrap();
    assert_eq!(removed.status(), 200);
    assert_eq!(json(daemon.get("/api/hands").await).await["total"], 0);
}

#[tokio::test]
async fn crashing_hands_fail_with_the_reason_and_ticks_are_never_doubled_across_kill_9() {
    let llm = TestLlm::start().await;
    llm.set_default_reply("Noted.");
    let mut daemon = Daemon::start().await;
    use_test_llm(&daemon, &llm).await;
    install_hand(&daemon, "tests/plugins/fickle", "fickle", json!("all")).await;
    let steady = activate(&daemon, "fickle", json!({ "mode": "ok" })).await;
    let steady = steady["instance_id"].as_str().unwrap().to_string();
    let trap = activate(&daemon, "fickle", json!({ "mode": "trap" })).await;
    let trap = trap["instance_id"].as_str().unwrap().to_string();
    let hang = activate(&daemon, "fickle", json!({ "mode": "hang" })).await;
    let hang = hang["instance_id"].as_str().unwrap().to_string();
    let refuse = activate(&daemon, "fickle", json!({ "mode": "refuse" })).await;
    let refuse = refuse["instance_id"].as_str().unwrap().to_string();

    let reasons: [(&String, &[&str]); 2] = [
        (&trap, &["trapped on purpose"]),
        (&hang, &["timed out", "out of fuel"]),
    ];
    for (id, reason) in reasons {
        let failed = wait_for("a crashing hand marked failed", async || {
            let s = stats(&daemon, id).await;
            (s["status"] == "failed" && s["restarts"].as_u64()? >= 1).then_some(s)
        })
        .await;
        let error = failed["last_error"]
            .as_str()
            .unwrap_or_default()
            .to_lowercase();
        assert!(
            reason.iter().any(|r| error.contains(r)),
            "{reason:?}: {failed}"
        );
    }
    let refused = wait_for("a refusing hand marked failed", async || {
        let s = stats(&daemon, &refuse).await;
        (s["state"] == "refused").then_some(s)
    })
    .await;
    assert_eq!(refused["status"], "failed");
    assert!(
        refused["last_error"]
            .as_str()
            .unwrap()
            .contains("refused on purpose")
    );
    // The well-behaved one keeps ticking meanwhile, each tick asking its agent.
    wait_for("the steady hand ticking", async || {
        let s = stats(&daemon, &steady).await;
        (s["metrics"]["ticks"]["value"]
            .as_str()?
            .parse::<u64>()
            .ok()?
            >= 3)
            .then_some(())
    })
    .await;
    assert!(
        notifications(&daemon, &steady)
            .await
            .iter()
            .any(|m| m.contains("Noted."))
    );
    assert_eq!(daemon.get("/api/health").await.status(), 200);

    // New settings bring a crashing instance back.
    let response = daemon
        .put(
            "/api/hands/fickle/settings",
            json!({ "instance_id": trap, "config": { "mode": "ok" } }),
        )
        .await;
    assert_eq!(response.status(), 200);
    let response = daemon
        .put(
            "/api/hands/fickle/settings",
            json!({ "config": { "mode": "ok" } }),
        )
        .await;
    assert_error(response, 400, "instance_id").await;
    let response = daemon
        .put(
            "/api/hands/fickle/settings",
            json!({ "instance_id": trap, "config": { "mode": "sideways" } }),
        )
        .await;
    assert_error(response, 400, "settings.mode").await;
    let settings = json(daemon.get("/api/hands/fickle/settings").await).await;
    assert_eq!(settings["instances"][&trap]["mode"], "ok", "{settings}");
    wait_for("the mended hand ticking", async || {
        let s = stats(&daemon, &trap).await;
        (s["status"] == "active" && s["ticks"].as_u64()? >= 1).then_some(())
    })
    .await;

    // Every completed tick had its own committed occurrence: the count the
    // hand keeps in memory never passes the occurrences started, across a
    // kill -9 in the middle of ticking.
    daemon.kill9();
    daemon.restart();
    let started_before = stats(&daemon, &steady).await["ticks_started"]
        .as_u64()
        .unwrap();
    let s = wait_for("ticks after kill -9", async || {
        let s = stats(&daemon, &steady).await;
        (s["ticks"].as_u64()? >= 2).then_some(s)
    })
    .await;
    let counted: u64 = s["metrics"]["ticks"]["value"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let started = s["ticks_started"].as_u64().unwrap();
    assert!(started > started_before, "{s}");
    assert!(counted <= started, "a tick ran twice: {s}");
    // The hand's count survived the crash.
    assert!(counted >= 3 + 2, "{s}");
    // The CLI, once: list, stats, pause, resume.
    let listed = run_ok(&daemon, &["hand", "list"]);
    assert!(
        listed.contains("fickle") && listed.contains(&steady),
        "{listed}"
    );
    let shown = run_ok(&daemon, &["hand", "stats", &steady]);
    assert!(shown.contains("ticks"), "{shown}");
    assert!(run_ok(&daemon, &["hand", "pause", &steady]).contains("paused"));
    assert!(run_ok(&daemon, &["hand", "resume", &steady]).contains("active"));
    // The uninstall waits for its instances.
    let response = daemon
        .request(reqwest::Method::DELETE, "/api/hands/fickle")
        .send()
        .await
        .unwrap();
    assert_error(response, 409, "deactivate").await;
}

/// A hand built against `talon:plugin@0.1.0` (`tests/plugins/elder`, no
/// `describe`) packed, installed and activated through the daemon like a
/// 0.2.0 one: its role and interval are its manifest's `[hand]`, its
/// settings schema its own, and its ticks reach its agent (talon-test-llm)
/// through the 0.1.0 `agent` import and the owner hears the answer.
#[tokio::test]
async fn a_hand_built_against_0_1_0_installs_and_its_ticks_reach_its_agent() {
    let llm = TestLlm::start().await;
    llm.set_default_reply("The owls are counted.");
    let daemon = Daemon::start().await;
    use_test_llm(&daemon, &llm).await;
    let hand = install_hand(&daemon, "tests/plugins/elder", "elder", json!("all")).await;
    assert_eq!(hand["id"], "elder");
    assert_eq!(hand["name"], "Elder");
    assert_eq!(hand["tick_interval_secs"], 1);
    assert!(
        hand["agent_role"]
            .as_str()
            .unwrap()
            .contains("the elder hand's agent"),
        "{hand}"
    );
    assert_eq!(hand["settings_schema"]["required"][0], "topic");

    // Its own schema is enforced: 400 naming the field.
    let response = daemon
        .post(
            "/api/hands/elder/activate",
            json!({ "config": { "topic": "" }, "provider": "ollama", "model": "test-model" }),
        )
        .await;
    assert_error(response, 400, "settings.topic").await;

    let instance = activate(&daemon, "elder", json!({ "topic": "owls" })).await;
    let id = instance["instance_id"].as_str().unwrap().to_string();
    let agent = instance["agent_id"].as_str().unwrap().to_string();
    assert_eq!(instance["status"], "active", "{instance}");
    let told = wait_for("the owner told of a tick", async || {
        notifications(&daemon, &id).await.into_iter().next()
    })
    .await;
    assert_eq!(told, "elder tick 1: The owls are counted.");
    // The agent was asked under the role from the manifest.
    let asked = llm
        .requests()
        .into_iter()
        .find(|r| {
            r.body
                .to_string()
                .contains("Elder tick number 1 about owls.")
        })
        .expect("the tick reached the agent");
    assert!(
        asked.body.to_string().contains("the elder hand's agent"),
        "{}",
        asked.body
    );
    let s = stats(&daemon, &id).await;
    assert_eq!(s["metrics"]["topic"]["value"], "owls", "{s}");
    assert_ne!(s["metrics"]["ticks"]["value"], "0", "{s}");
    let memory = json(daemon.get(&format!("/api/memory/agents/{agent}/kv")).await).await;
    assert!(
        memory.to_string().contains("plugin:elder:ticks"),
        "{memory}"
    );

    // Pause deactivates it: `deactivate` (0.1.0) records itself in memory.
    let paused = json(
        daemon
            .post(&format!("/api/hands/instances/{id}/pause"), json!({}))
            .await,
    )
    .await;
    assert_eq!(paused["status"], "paused", "{paused}");
    let memory = json(daemon.get(&format!("/api/memory/agents/{agent}/kv")).await).await;
    assert!(
        memory.to_string().contains("plugin:elder:deactivated"),
        "{memory}"
    );
}
