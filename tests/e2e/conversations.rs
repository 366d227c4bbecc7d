//! Agents in conversation, end to end: the real daemon talks to a local
//! server speaking the OpenAI wire format (`talon-test-llm`) with scripted
//! answers, and agents call real WebAssembly tools.

use std::time::Duration;

use serde_json::json;
use talon_test_llm::{Reply, TestLlm};

use crate::harness::{Daemon, assert_error, json, sse_frames};
use crate::plugins::{Publisher, install, trust};

/// A manifest whose model is served by `llm` (provider `ollama`: the OpenAI
/// format, no key needed), with `model` priced by the catalog when it knows it.
pub(crate) fn manifest(name: &str, llm: &TestLlm, model: &str, tools: &[&str]) -> String {
    format!(
        "name = \"{name}\"\nversion = \"0.1.0\"\nsystem_prompt = \"You are {name}.\"\n\
         [model]\nprovider = \"ollama\"\nmodel = \"{model}\"\nbase_url = \"{}\"\n\
         [capabilities]\ntools = {}\n",
        llm.openai_url(),
        serde_json::to_string(tools).unwrap()
    )
}

pub(crate) async fn say_ok(daemon: &Daemon, agent: &str, text: &str) -> serde_json::Value {
    let response = daemon.message(agent, text).await;
    assert_eq!(response.status(), 200, "message `{text}`");
    json(response).await
}

/// The roles and texts of the messages of a recorded OpenAI request.
pub(crate) fn sent_messages(request: &talon_test_llm::RecordedRequest) -> Vec<(String, String)> {
    request.body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let content = match &m["content"] {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            (m["role"].as_str().unwrap_or("").to_string(), content)
        })
        .collect()
}

#[tokio::test]
async fn a_conversation_is_recorded_and_survives_a_restart() {
    let llm = TestLlm::start().await;
    let mut daemon = Daemon::start().await;
    let agent = daemon
        .spawn_manifest(manifest("chatty", &llm, "gpt-4o-mini", &[]))
        .await;

    llm.push(Reply::text("Hello! How can I help?").with_usage(120, 30));
    let reply = say_ok(&daemon, &agent, "Hello").await;
    assert_eq!(reply["response"], "Hello! How can I help?");
    assert_eq!(reply["input_tokens"], 120);
    assert_eq!(reply["output_tokens"], 30);
    assert_eq!(reply["iterations"], 1);
    assert!(reply["cost_usd"].as_f64().unwrap() > 0.0, "priced: {reply}");
    let session = reply["session_id"].as_str().unwrap().to_string();
    let sent = sent_messages(&llm.last_request().unwrap());
    assert_eq!(sent[0], ("system".into(), "You are chatty.".into()));
    assert_eq!(sent[1], ("user".into(), "Hello".into()));

    let view = json(daemon.get(&format!("/api/agents/{agent}/session")).await).await;
    assert_eq!(view["session_id"], session.as_str());
    assert_eq!(view["message_count"], 2);
    assert_eq!(view["messages"][0]["role"], "User");
    assert_eq!(view["messages"][1]["content"], "Hello! How can I help?");

    // Acknowledged turns survive a crash.
    daemon.kill9();
    daemon.restart();
    llm.push(Reply::text("You said hello.").with_usage(200, 10));
    let reply = say_ok(&daemon, &agent, "What did I say?").await;
    assert_eq!(reply["session_id"], session.as_str());
    let sent = sent_messages(&llm.last_request().unwrap());
    assert_eq!(
        sent.len(),
        4,
        "system, the first exchange, the new question"
    );
    assert_eq!(
        sent[2],
        ("assistant".into(), "Hello! How can I help?".into())
    );

    let traces = json(daemon.get(&format!("/api/agents/{agent}/traces")).await).await;
    assert_eq!(traces["traces"].as_array().unwrap().len(), 2);
    assert_eq!(traces["traces"][0]["input_tokens"], 200, "newest first");
    let metrics = json(daemon.get(&format!("/api/agents/{agent}/metrics")).await).await;
    assert_eq!(metrics["turns"], 2);
    assert_eq!(metrics["input_tokens"], 320);
    let usage = json(daemon.get("/api/usage?period=day").await).await;
    assert_eq!(usage["total_input_tokens"], 320);
    assert_eq!(usage["total_output_tokens"], 40);
    assert_eq!(usage["active_agents"], 1);
    let by_model = json(daemon.get("/api/usage/by-model").await).await;
    assert_eq!(by_model["models"][0]["model"], "gpt-4o-mini");

    // Sessions: a new one, switching, labels, the per-request override.
    let created = daemon
        .post(
            &format!("/api/agents/{agent}/sessions"),
            json!({ "label": "side" }),
        )
        .await;
    assert_eq!(created.status(), 200, "LibreFang answers 200 here");
    let side = json(created).await["session_id"]
        .as_str()
        .unwrap()
        .to_string();
    llm.push(Reply::text("side answer"));
    let response = daemon
        .post(
            &format!("/api/agents/{agent}/message"),
            json!({ "message": "in the side session", "session_id": side }),
        )
        .await;
    assert_eq!(json(response).await["session_id"], side.as_str());
    assert_eq!(
        sent_messages(&llm.last_request().unwrap()).len(),
        2,
        "fresh history"
    );
    let found = json(
        daemon
            .get(&format!("/api/agents/{agent}/sessions/by-label/side"))
            .await,
    )
    .await;
    assert_eq!(found["session_id"], side.as_str());
    let list = json(daemon.get(&format!("/api/agents/{agent}/sessions")).await).await;
    assert_eq!(list["total"], 2);
    assert_eq!(list["current_session_id"], session.as_str());
    let response = daemon
        .post(
            &format!("/api/agents/{agent}/sessions/{side}/switch"),
            json!({}),
        )
        .await;
    assert_eq!(response.status(), 200);
    let search = json(daemon.get("/api/sessions/search?q=SIDE%20answer").await).await;
    assert_eq!(search["total"], 1);

    // Reset starts a fresh current session; history delete empties it.
    let reset = json(
        daemon
            .post(&format!("/api/agents/{agent}/session/reset"), json!({}))
            .await,
    )
    .await;
    assert_eq!(reset["status"], "reset");
    let fresh = json(daemon.get(&format!("/api/agents/{agent}/session")).await).await;
    assert_eq!(fresh["message_count"], 0);
    assert_eq!(fresh["session_id"], reset["new_session_id"]);

    // Malformed and hostile input.
    let bad = daemon
        .post(
            &format!("/api/agents/{agent}/message"),
            json!({ "message": "x", "session_id": "not-a-uuid" }),
        )
        .await;
    assert_eq!(bad.status(), 400);
    let unknown = daemon
        .post(
            &format!("/api/agents/{agent}/message"),
            json!({ "message": "x", "session_id": uuid_like() }),
        )
        .await;
    assert_error(unknown, 404, "session").await;
    let huge = daemon.message(&agent, &"x".repeat(300 * 1024)).await;
    assert_eq!(huge.status(), 413);
    assert_error(daemon.message(&agent, "   ").await, 400, "empty").await;
    let extra = daemon
        .post(
            &format!("/api/agents/{agent}/message"),
            json!({ "message": "x", "bogus": 1 }),
        )
        .await;
    assert_eq!(extra.status(), 400);
    assert_error(
        daemon
            .message("00000000-0000-0000-0000-000000000000", "hi")
            .await,
        404,
        "not found",
    )
    .await;
}

pub(crate) fn uuid_like() -> &'static str {
    "6f1c0d7e-1111-4222-8333-944455556666"
}

#[tokio::test]
async fn the_agent_calls_wasm_tools_and_survives_bad_calls() {
    let llm = TestLlm::start().await;
    let daemon = Daemon::start().await;
    let publisher = Publisher::new(&daemon);
    trust(&daemon, &publisher).await;
    for plugin in ["file_write", "file_read"] {
        let package = publisher.pack(&daemon, &format!("plugins/{plugin}"), plugin);
        let response = install(&daemon, &package, json!("all")).await;
        assert_eq!(response.status(), 201, "{}", json(response).await);
    }
    let agent = daemon
        .spawn_manifest(manifest(
            "writer",
            &llm,
            "gpt-4o-mini",
            &["file_write", "file_read", "notify_owner"],
        ))
        .await;

    llm.push_all([
        Reply::tool_call(
            "file_write",
            r#"{"path": "note.txt", "content": "remember the milk"}"#,
        ),
        Reply::tool_calls([
            ("file_read", r#"{"path": "note.txt"}"#),
            ("notify_owner", r#"{"text": "user keeps notes"}"#),
        ]),
        Reply::text("The note says: remember the milk."),
    ]);
    let response = daemon
        .post(
            &format!("/api/agents/{agent}/message/stream"),
            json!({ "message": "write a note, then read it" }),
        )
        .await;
    let frames = sse_frames(response).await;
    let names: Vec<&str> = frames.iter().map(|f| f.event.as_str()).collect();
    assert!(
        names.contains(&"tool_use") && names.contains(&"tool_result"),
        "{names:?}"
    );
    let read = frames
        .iter()
        .find(|f| f.event == "tool_result" && f.data["tool"] == "file_read")
        .expect("file_read result");
    assert_eq!(read.data["input"]["path"], "note.txt");
    assert!(
        read.data["result"]
            .as_str()
            .unwrap()
            .contains("remember the milk")
    );
    assert_eq!(read.data["is_error"], false);
    let notice = frames
        .iter()
        .find(|f| f.event == "owner_notice")
        .expect("notice");
    assert_eq!(notice.data["text"], "user keeps notes");
    let done = frames.last().unwrap();
    assert_eq!(done.event, "done");
    assert_eq!(done.data["done"], true);
    assert_eq!(done.data["iterations"], 3);
    assert_eq!(done.data["response"], "The note says: remember the milk.");
    let text: String = frames
        .iter()
        .filter(|f| f.event == "chunk")
        .map(|f| f.data["content"].as_str().unwrap())
        .collect();
    assert_eq!(text, "The note says: remember the milk.");
    let file = daemon
        .get(&format!("/api/agents/{agent}/files/note.txt"))
        .await;
    assert_eq!(json(file).await["content"], "remember the milk");

    // The model's malformed arguments, a tool outside the manifest, and a path
    // escaping the workspace all come back to the model as errors.
    llm.push_all([
        Reply::tool_calls([
            ("file_read", r#"{"path": "note.txt"#),
            ("web_fetch", r#"{"url": "http://example.com"}"#),
            ("file_read", r#"{"path": "../../etc/passwd"}"#),
        ]),
        Reply::text("Sorry, that did not work."),
    ]);
    let reply = say_ok(&daemon, &agent, "break things").await;
    assert_eq!(reply["response"], "Sorry, that did not work.");
    let last = llm.last_request().unwrap();
    let results: Vec<&serde_json::Value> = last.body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["role"] == "tool")
        .collect();
    let tail: Vec<String> = results[results.len() - 3..]
        .iter()
        .map(|m| m["content"].to_string())
        .collect();
    assert!(tail[0].contains("not valid JSON"), "{}", tail[0]);
    assert!(
        tail[1].contains("not one of this agent's tools"),
        "{}",
        tail[1]
    );
    assert!(!tail[2].contains("root:"), "no escape: {}", tail[2]);
    let traces = json(
        daemon
            .get(&format!("/api/agents/{agent}/traces?limit=1"))
            .await,
    )
    .await;
    let calls = traces["traces"][0]["tool_calls"].as_array().unwrap();
    assert_eq!(calls.len(), 3);
    assert!(calls.iter().all(|c| c["is_error"] == true));

    // The same call over and over is cut off by the loop guard; the
    // iteration limit ends the turn.
    let again = r#"{"path": "note.txt"}"#;
    for _ in 0..4 {
        llm.push(Reply::tool_call("file_read", again));
    }
    llm.push(Reply::text("giving up"));
    let reply = say_ok(&daemon, &agent, "read it again and again").await;
    let last = llm.last_request().unwrap();
    let guarded = last.body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["role"] == "tool")
        .any(|m| m["content"].to_string().contains("already called"));
    assert!(guarded, "loop guard answered");
    assert_eq!(reply["response"], "giving up");
}

#[tokio::test]
async fn interrupt_stop_and_co_watching() {
    let llm = TestLlm::start().await;
    let daemon = Daemon::start().await;
    let agent = daemon
        .spawn_manifest(manifest("slow", &llm, "test-model", &["notify_owner"]))
        .await;
    let session =
        json(daemon.get(&format!("/api/agents/{agent}/session")).await).await["session_id"]
            .as_str()
            .unwrap()
            .to_string();

    // A watcher attached before the turn sees it, without taking part.
    let watcher = {
        let request = daemon.request(reqwest::Method::GET, &format!("/api/agents/{agent}/attach"));
        tokio::spawn(async move { sse_frames(request.send().await.unwrap()).await })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;

    // Interrupt while the model thinks: its tool call is not run.
    llm.push(
        Reply::tool_call("notify_owner", r#"{"text": "should not arrive"}"#)
            .with_delay(Duration::from_millis(1500)),
    );
    let turn = daemon.message_in_background(&agent, "do something slow");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let response = daemon
        .post(
            &format!("/api/agents/{agent}/sessions/{session}/interrupt"),
            json!({}),
        )
        .await;
    assert_eq!(response.status(), 204);
    let reply = json(turn.await.unwrap()).await;
    assert_eq!(reply["status"], "interrupted", "{reply}");
    assert!(reply.get("owner_notice").is_none(), "the tool never ran");
    let watched = watcher.await.unwrap();
    let last = watched.last().expect("watcher frames");
    assert_eq!(last.event, "done");
    assert_eq!(last.data["status"], "interrupted");

    // The next turn starts clean (the interrupt was cleared) and the
    // history stays valid: the unanswered call got an error result.
    llm.push(Reply::text("fine"));
    let reply = say_ok(&daemon, &agent, "next").await;
    assert_eq!(reply["status"], "completed");
    let roles: Vec<String> = llm.last_request().unwrap().body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["role"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(roles, ["system", "user", "assistant", "tool", "user"]);

    // Stop cancels a turn mid-generation.
    llm.push(Reply::text("never finished").with_delay(Duration::from_secs(20)));
    let turn = daemon.message_in_background(&agent, "take forever");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let stop = json(
        daemon
            .post(&format!("/api/agents/{agent}/stop"), json!({}))
            .await,
    )
    .await;
    assert_eq!(stop["status"], "stopped");
    assert_eq!(stop["cancelled"], 1);
    let reply = json(turn.await.unwrap()).await;
    assert_eq!(reply["status"], "stopped");
    assert_eq!(
        daemon
            .post(
                &format!("/api/agents/{agent}/sessions/{}/interrupt", uuid_like()),
                json!({})
            )
            .await
            .status(),
        404
    );
}

#[tokio::test]
async fn long_sessions_are_compacted_by_the_model() {
    let llm = TestLlm::start().await;
    let config = "[agents]\ndefault_context_window = 1000\ncompact_at_ratio = 0.5\ncompact_keep_recent = 2\n";
    let daemon = Daemon::start_with_config(config).await;
    let agent = daemon
        .spawn_manifest(manifest("talker", &llm, "test-model", &[]))
        .await;
    let long = "word ".repeat(200);
    llm.push(Reply::text("first answer"));
    say_ok(&daemon, &agent, &format!("one {long}")).await;
    llm.push(Reply::text("second answer"));
    say_ok(&daemon, &agent, &format!("two {long}")).await;
    // The third message pushes the session past half the window: the model
    // first summarizes the oldest messages, then answers.
    llm.push_all([
        Reply::text("SUMMARY: two long messages"),
        Reply::text("third answer"),
    ]);
    let reply = say_ok(&daemon, &agent, "three").await;
    assert_eq!(reply["response"], "third answer");
    let requests = llm.requests();
    let summary_request = &requests[requests.len() - 2];
    assert!(
        summary_request.body["messages"][0]["content"]
            .as_str()
            .unwrap()
            .contains("Summarize"),
        "the summary request: {}",
        summary_request.body
    );
    let sent = sent_messages(&requests[requests.len() - 1]);
    assert!(sent[1].1.contains("SUMMARY: two long messages"), "{sent:?}");
    let view = json(daemon.get(&format!("/api/agents/{agent}/session")).await).await;
    assert_eq!(view["compactions"], 1);
    assert_eq!(
        view["message_count"], 5,
        "summary, two kept, the new exchange"
    );

    // The manual endpoint, with nothing left to compact past the kept tail.
    llm.push(Reply::text("SUMMARY again"));
    let compacted = json(
        daemon
            .post(&format!("/api/agents/{agent}/session/compact"), json!({}))
            .await,
    )
    .await;
    assert_eq!(compacted["status"], "compacted", "{compacted}");
    assert_eq!(compacted["kept"], 2);
}

#[tokio::test]
async fn budgets_missing_keys_failing_providers_and_the_breaker() {
    let llm = TestLlm::start().await;
    let config = "[llm]\nmax_attempts = 2\nretry_base_delay_ms = 10\nbreaker_failure_threshold = 2\nbreaker_cooldown_secs = 60\n";
    let daemon = Daemon::start_with_config(config).await;

    // A provider without its key: a clear 412 before anything runs.
    let keyless = daemon
        .spawn_manifest(
            "name = \"keyless\"\n[model]\nprovider = \"openai\"\nmodel = \"gpt-4o-mini\"\n".into(),
        )
        .await;
    assert_error(daemon.message(&keyless, "hi").await, 412, "OPENAI_API_KEY").await;

    // Budget: one priced turn spends the whole daily budget; the next is refused.
    let agent = daemon
        .spawn_manifest(manifest("spender", &llm, "gpt-4o-mini", &[]))
        .await;
    let response = daemon
        .put("/api/budget", json!({ "daily_limit_usd": 0.0001 }))
        .await;
    assert_eq!(response.status(), 200);
    llm.push(Reply::text("expensive").with_usage(100_000, 10_000));
    say_ok(&daemon, &agent, "spend").await;
    assert_error(daemon.message(&agent, "again").await, 429, "budget").await;
    let budget = json(daemon.get("/api/budget").await).await;
    assert_eq!(budget["status"], "exceeded");
    let response = daemon
        .put("/api/budget", json!({ "daily_limit_usd": -1 }))
        .await;
    assert_eq!(response.status(), 400);
    let response = daemon
        .put("/api/budget", json!({ "daily_limit_usd": 0 }))
        .await;
    assert_eq!(response.status(), 200);

    // A failing provider: retried, reported as 502; after two failed calls
    // the breaker opens and calls fail fast with 503.
    llm.clear_requests();
    for _ in 0..4 {
        llm.push(Reply::error(500, "upstream exploded"));
    }
    assert_error(
        daemon.message(&agent, "one").await,
        502,
        "upstream exploded",
    )
    .await;
    assert_eq!(llm.request_count(), 2, "one retry");
    assert_error(
        daemon.message(&agent, "two").await,
        502,
        "upstream exploded",
    )
    .await;
    assert_error(
        daemon.message(&agent, "three").await,
        503,
        "circuit breaker",
    )
    .await;
    assert_eq!(llm.request_count(), 4, "no call while open");
    let status = json(daemon.get("/api/breaker/status").await).await;
    let ollama = status["breakers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["provider"] == "ollama")
        .unwrap()
        .clone();
    assert_eq!(ollama["state"], "open");
    let reset = daemon.post("/api/breaker/reset/ollama", json!({})).await;
    assert_eq!(reset.status(), 200);
    llm.push(Reply::text("back"));
    assert_eq!(say_ok(&daemon, &agent, "four").await["response"], "back");
    // The failed turns left the session as it was.
    let view = json(daemon.get(&format!("/api/agents/{agent}/session")).await).await;
    assert_eq!(view["message_count"], 4);
}

#[tokio::test]
async fn the_openai_compatible_api() {
    let llm = TestLlm::start().await;
    let daemon = Daemon::start().await;
    let agent = daemon
        .spawn_manifest(manifest("helper", &llm, "gpt-4o-mini", &[]))
        .await;

    let models = json(daemon.get("/v1/models").await).await;
    assert_eq!(models["object"], "list");
    assert!(
        models["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["id"] == "talon:helper"),
        "{models}"
    );

    llm.push(Reply::text("Hi from helper").with_usage(10, 4));
    let body = json!({ "model": "talon:helper", "messages": [
        { "role": "system", "content": "ignored: the agent has its own" },
        { "role": "user", "content": "Hello" } ] });
    let completion = json(daemon.post("/v1/chat/completions", body).await).await;
    assert_eq!(completion["object"], "chat.completion");
    assert_eq!(
        completion["choices"][0]["message"]["content"],
        "Hi from helper"
    );
    assert_eq!(completion["choices"][0]["finish_reason"], "stop");
    assert_eq!(completion["usage"]["total_tokens"], 14);

    llm.push(Reply::text("streamed answer").in_chunks(3));
    let body = json!({ "model": agent, "stream": true,
        "messages": [{ "role": "user", "content": [{ "type": "text", "text": "Stream" }] }] });
    let response = daemon.post("/v1/chat/completions", body).await;
    let text = response.text().await.unwrap();
    let lines: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .collect();
    assert_eq!(lines.last(), Some(&"[DONE]"));
    let chunks: Vec<serde_json::Value> = lines[..lines.len() - 1]
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let content: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(content, "streamed answer");
    assert_eq!(
        chunks.last().unwrap()["choices"][0]["finish_reason"],
        "stop"
    );

    let unknown = daemon
        .post(
            "/v1/chat/completions",
            json!({ "model": "talon:nobody", "messages": [{ "role": "user", "content": "x" }] }),
        )
        .await;
    assert_eq!(unknown.status(), 404);
    assert_eq!(json(unknown).await["error"]["code"], "model_not_found");
    let malformed = daemon
        .request(reqwest::Method::POST, "/v1/chat/completions")
        .header("content-type", "application/json")
        .body("{\"model\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(malformed.status(), 400);
    assert_eq!(
        json(malformed).await["error"]["type"],
        "invalid_request_error"
    );

    // The official Python client, unchanged, when the test environment has it
    // (scripts/test installs it and sets TALON_OPENAI_PYTHON).
    if let Ok(python) = std::env::var("TALON_OPENAI_PYTHON") {
        llm.push(Reply::text("from python"));
        llm.push(Reply::text("streamed from python").in_chunks(2));
        let script = format!(
            r#"
import openai
client = openai.OpenAI(base_url="{base}/v1", api_key="unused")
models = [m.id for m in client.models.list()]
assert "talon:helper" in models, models
reply = client.chat.completions.create(model="talon:helper", messages=[{{"role": "user", "content": "hi"}}])
assert reply.choices[0].message.content == "from python", reply
stream = client.chat.completions.create(model="talon:helper", stream=True, messages=[{{"role": "user", "content": "hi"}}])
text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
assert text == "streamed from python", text
print("ok")
"#,
            base = daemon.base_url()
        );
        let out = std::process::Command::new(python)
            .args(["-c", &script])
            .output()
            .expect("run python");
        assert!(
            out.status.success(),
            "openai client: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[tokio::test]
async fn every_acknowledged_turn_survives_kill_9() {
    let llm = TestLlm::start().await;
    llm.set_default_reply("noted");
    let mut daemon = Daemon::start().await;
    let agent = daemon
        .spawn_manifest(manifest("scribe", &llm, "test-model", &[]))
        .await;
    // As many as the rate limit lets through in a burst.
    for i in 0..12 {
        say_ok(&daemon, &agent, &format!("note {i}")).await;
    }
    daemon.kill9();
    daemon.restart();
    let view = json(daemon.get(&format!("/api/agents/{agent}/session")).await).await;
    assert_eq!(view["message_count"], 24, "{view}");
    assert_eq!(view["messages"][22]["content"], "note 11");
    let metrics = json(daemon.get(&format!("/api/agents/{agent}/metrics")).await).await;
    assert_eq!(metrics["turns"], 12);
    // The daemon goes on from the replayed state.
    let reply = say_ok(&daemon, &agent, "note 12").await;
    assert_eq!(reply["response"], "noted");
    let view = json(daemon.get(&format!("/api/agents/{agent}/session")).await).await;
    assert_eq!(view["message_count"], 26);
}
