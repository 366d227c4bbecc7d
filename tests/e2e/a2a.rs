//! A2A end to end: the official `a2a-sdk` client sends tasks to a Talon
//! agent (1.0 and 0.3, blocking and streaming); Talon discovers an a2a-sdk
//! echo agent (tests/a2a-echo) and delegates to it, from the API and from
//! an agent's `a2a_send` tool call; a task running at `kill -9` is failed
//! truthfully after the restart; and bad input of every kind gets its error.

use std::process::{Child, Command, Stdio};

use serde_json::{Value, json};
use talon_test_llm::{Reply, TestLlm};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::conversations::manifest;
use crate::harness::{Daemon, json};

const KEY: &str = "a2a-secret";

/// The venv with `a2a-sdk` that scripts/test installs.
fn python() -> String {
    std::env::var("TALON_A2A_PYTHON").unwrap_or_else(|_| {
        panic!("TALON_A2A_PYTHON is not set: run scripts/test, which installs a2a-sdk")
    })
}

fn script(name: &str) -> String {
    format!("{}/../../tests/a2a-echo/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// Runs the a2a-sdk client against `daemon`; its one JSON line.
async fn sdk_send(daemon: &Daemon, version: &str, mode: &str, text: &str, agent: &str) -> Value {
    let args = [
        script("sdk_client.py"),
        daemon.base_url().to_string(),
        KEY.to_string(),
        version.to_string(),
        mode.to_string(),
        text.to_string(),
        agent.to_string(),
    ];
    let out = tokio::task::spawn_blocking(move || Command::new(python()).args(args).output())
        .await
        .unwrap()
        .expect("run the a2a-sdk client");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "a2a-sdk client failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.lines().last().unwrap_or_default()).expect("one JSON line")
}

/// The a2a-sdk echo agent on a free port, stopped when dropped.
pub(crate) struct Echo {
    child: Child,
    /// Its base URL.
    pub(crate) url: String,
}

impl Drop for Echo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn start_echo() -> Echo {
    use std::io::BufRead;
    let mut child = Command::new(python())
        .arg(script("echo_agent.py"))
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the echo agent");
    let stdout = child.stdout.take().unwrap();
    let mut line = String::new();
    std::io::BufReader::new(stdout)
        .read_line(&mut line)
        .unwrap();
    let port = line
        .trim()
        .strip_prefix("READY ")
        .unwrap_or_else(|| panic!("the echo agent did not start: {line}"));
    Echo {
        url: format!("http://127.0.0.1:{port}"),
        child,
    }
}

/// A peer answering every request with `response` (raw HTTP), or never
/// answering at all when it is `None`.
async fn fake_peer(response: Option<String>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let mut held = Vec::new();
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            match &response {
                None => held.push(socket),
                Some(response) => {
                    let mut buf = [0u8; 4096];
                    let _ = socket.read(&mut buf).await;
                    let _ = socket.write_all(response.as_bytes()).await;
                }
            }
        }
    });
    url
}

fn http_json(body: &str) -> String {
    format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
}

async fn rpc(daemon: &Daemon, body: Value) -> Value {
    let response = daemon.post("/a2a", body).await;
    assert_eq!(response.status(), 200);
    json(response).await
}

fn send_params(text: &str) -> Value {
    json!({"message": {"messageId": uuid::Uuid::new_v4().to_string(), "role": "ROLE_USER",
        "parts": [{"text": text}]}})
}

#[tokio::test]
async fn the_a2a_sdk_client_gets_answers_from_a_talon_agent_in_1_0_and_0_3() {
    let llm = TestLlm::start().await;
    let mut daemon = Daemon::start_with_config(&format!("api_key = \"{KEY}\"\n")).await;
    daemon.use_key(KEY);
    let helper = daemon
        .spawn_manifest(manifest("helper", &llm, "test-model", &[]))
        .await;
    daemon
        .spawn_manifest(manifest("other", &llm, "test-model", &[]))
        .await;

    // The card is public (the spec's discovery) and lists the agents as skills.
    let anonymous = reqwest::Client::new();
    for path in ["/.well-known/agent.json", "/.well-known/agent-card.json"] {
        let response = anonymous
            .get(format!("{}{path}", daemon.base_url()))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{path}");
        let card: Value = response.json().await.unwrap();
        assert_eq!(card["supportedInterfaces"][0]["protocolVersion"], "1.0");
        let skills: Vec<&str> = card["skills"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["name"].as_str().unwrap())
            .collect();
        assert!(
            skills.contains(&"helper") && skills.contains(&"other"),
            "{card}"
        );
    }
    // The endpoint is not.
    let response = anonymous
        .post(format!("{}/a2a", daemon.base_url()))
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "GetTask", "params": {"id": "x"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);

    for (version, mode) in [
        ("1.0", "send"),
        ("1.0", "stream"),
        ("0.3", "send"),
        ("0.3", "stream"),
    ] {
        let answer = format!("answer over {version} {mode}");
        llm.push(Reply::text(answer.clone()));
        let out = sdk_send(
            &daemon,
            version,
            mode,
            &format!("question {version} {mode}"),
            "helper",
        )
        .await;
        assert_eq!(
            out["state"], "TASK_STATE_COMPLETED",
            "{version} {mode}: {out}"
        );
        assert_eq!(out["text"], answer.as_str(), "{version} {mode}: {out}");
        assert_eq!(out["get_state"], "TASK_STATE_COMPLETED", "{out}");
        assert_eq!(out["get_text"], answer.as_str(), "{out}");
        if mode == "stream" {
            assert!(out["events"].as_array().unwrap().len() >= 2, "{out}");
        }
        // The turn ran in the agent's session for the task's context.
        let last = llm.last_request().unwrap();
        assert!(
            last.body
                .to_string()
                .contains(&format!("question {version} {mode}"))
        );
    }
    // LibreFang's routes see the same tasks.
    llm.push(Reply::text("librefang answer"));
    let task = json(
        daemon
            .post(
                "/a2a/tasks/send",
                json!({"agent_id": helper, "message": {"role": "user", "parts": [{"text": "hi"}]}}),
            )
            .await,
    )
    .await;
    assert_eq!(task["status"], "completed", "{task}");
    assert_eq!(task["result"]["parts"][0]["text"], "librefang answer");
    let id = task["task_id"].as_str().unwrap();
    let again = json(daemon.get(&format!("/a2a/tasks/{id}")).await).await;
    assert_eq!(again["status"], "completed");
    let cards = json(daemon.get("/a2a/agents").await).await;
    assert_eq!(cards["total"], 2, "{cards}");
    assert!(
        cards["agents"][0]["supportedInterfaces"][0]["url"]
            .as_str()
            .unwrap()
            .contains("/a2a?agent="),
        "{cards}"
    );
}

#[tokio::test]
async fn a_task_running_at_kill_9_is_failed_after_restart_and_cancel_works() {
    let llm = TestLlm::start().await;
    let mut daemon = Daemon::start().await;
    daemon
        .spawn_manifest(manifest("slow", &llm, "test-model", &[]))
        .await;

    // A turn that never ends: the task is `working` until canceled.
    llm.push(Reply::hang());
    let mut params = send_params("wait forever");
    params["configuration"] = json!({"returnImmediately": true});
    let sent = rpc(
        &daemon,
        json!({"jsonrpc": "2.0", "id": 1, "method": "SendMessage", "params": params}),
    )
    .await;
    assert_eq!(
        sent["result"]["task"]["status"]["state"], "TASK_STATE_WORKING",
        "{sent}"
    );
    let id = sent["result"]["task"]["id"].as_str().unwrap().to_string();
    let canceled = rpc(
        &daemon,
        json!({"jsonrpc": "2.0", "id": 2, "method": "tasks/cancel", "params": {"id": id}}),
    )
    .await;
    assert_eq!(
        canceled["result"]["status"]["state"], "canceled",
        "{canceled}"
    );
    let twice = rpc(
        &daemon,
        json!({"jsonrpc": "2.0", "id": 3, "method": "CancelTask", "params": {"id": id}}),
    )
    .await;
    assert_eq!(twice["error"]["code"], -32002, "{twice}");
    let resubscribe = rpc(
        &daemon,
        json!({"jsonrpc": "2.0", "id": 4, "method": "SubscribeToTask", "params": {"id": id}}),
    )
    .await;
    assert_eq!(resubscribe["error"]["code"], -32004, "{resubscribe}");

    // Another hanging task, then a crash.
    llm.push(Reply::hang());
    let mut params = send_params("crash while I work");
    params["configuration"] = json!({"blocking": false});
    let sent = rpc(
        &daemon,
        json!({"jsonrpc": "2.0", "id": 5, "method": "message/send", "params": params}),
    )
    .await;
    assert_eq!(sent["result"]["status"]["state"], "working", "{sent}");
    let id = sent["result"]["id"].as_str().unwrap().to_string();
    daemon.kill9();
    daemon.restart();
    let got = rpc(
        &daemon,
        json!({"jsonrpc": "2.0", "id": 6, "method": "GetTask", "params": {"id": id}}),
    )
    .await;
    let status = &got["result"]["status"];
    assert_eq!(status["state"], "TASK_STATE_FAILED", "{got}");
    assert!(
        status["message"]["parts"][0]["text"]
            .as_str()
            .unwrap()
            .contains("interrupted"),
        "{got}"
    );
    let librefang = json(daemon.get(&format!("/a2a/tasks/{id}")).await).await;
    assert_eq!(librefang["status"], "failed");
}

#[tokio::test]
async fn talon_discovers_an_a2a_sdk_agent_and_delegates_to_it() {
    let llm = TestLlm::start().await;
    let daemon = Daemon::start().await;
    let echo = start_echo();

    let peer = json(
        daemon
            .post("/api/a2a/discover", json!({"url": echo.url}))
            .await,
    )
    .await;
    assert_eq!(peer["name"], "echo", "{peer}");
    assert_eq!(peer["protocol_version"], "1.0", "{peer}");
    let peers = json(daemon.get("/api/a2a/agents").await).await;
    assert_eq!(peers["total"], 1);
    let by_name = json(daemon.get("/api/a2a/agents/echo").await).await;
    assert_eq!(by_name["url"], echo.url.as_str());

    // From the API.
    let sent = json(
        daemon
            .post(
                "/api/a2a/send",
                json!({"agent_id": "echo", "message": "hello"}),
            )
            .await,
    )
    .await;
    assert_eq!(sent["status"], "completed", "{sent}");
    assert_eq!(sent["result"], "echo: hello");
    let task_id = sent["task_id"].as_str().unwrap();
    let status = json(
        daemon
            .request(
                reqwest::Method::GET,
                &format!("/api/a2a/tasks/{task_id}/status"),
            )
            .query(&[("url", echo.url.as_str())])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status["status"], "completed", "{status}");
    assert_eq!(status["result"], "echo: hello");

    // From an agent's tool call: the echo is the tool's result.
    let agent = daemon
        .spawn_manifest(manifest("delegator", &llm, "test-model", &["a2a_send"]))
        .await;
    llm.push_all([
        Reply::tool_call("a2a_send", r#"{"agent": "echo", "message": "ping"}"#),
        Reply::text("the echo said ping"),
    ]);
    let reply = json(daemon.message(&agent, "ask the echo").await).await;
    assert_eq!(reply["response"], "the echo said ping", "{reply}");
    let last = llm.last_request().unwrap();
    let messages = last.body["messages"].as_array().unwrap();
    let tool = messages.iter().rev().find(|m| m["role"] == "tool").unwrap();
    assert_eq!(tool["content"], "echo: ping", "{last:?}");
    // An agent that is not discovered is an error the model reads.
    llm.push_all([
        Reply::tool_call("a2a_send", r#"{"agent": "nobody", "message": "ping"}"#),
        Reply::text("no such agent"),
    ]);
    json(daemon.message(&agent, "ask nobody").await).await;
    let last = llm.last_request().unwrap();
    assert!(
        last.body.to_string().contains("no discovered A2A agent"),
        "{last:?}"
    );
    // The delegation is in the audit trail.
    let audit = json(daemon.get("/api/audit/recent?limit=50").await).await;
    assert!(audit.to_string().contains("a2a_task_sent"), "{audit}");
}

#[tokio::test]
async fn bad_a2a_input_gets_the_specs_errors() {
    let daemon =
        Daemon::start_with_config("[a2a]\ntimeout_secs = 1\n[limits]\nmax_body_bytes = 65536\n")
            .await;

    // JSON-RPC: malformed, not a request, unknown method, bad params, unknown task.
    let raw = |body: &'static str| {
        daemon
            .request(reqwest::Method::POST, "/a2a")
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let parse = raw("{not json").await.unwrap();
    assert_eq!(parse.status(), 400);
    let parse: Value = parse.json().await.unwrap();
    assert_eq!(parse["error"]["code"], -32700, "{parse}");
    assert_eq!(parse["id"], Value::Null);
    let batch = raw("[]").await.unwrap();
    assert_eq!(batch.status(), 400);
    let batch: Value = batch.json().await.unwrap();
    assert_eq!(batch["error"]["code"], -32600, "{batch}");
    let unknown = rpc(
        &daemon,
        json!({"jsonrpc": "2.0", "id": "u", "method": "tasks/explode", "params": {}}),
    )
    .await;
    assert_eq!(
        (unknown["error"]["code"].as_i64(), unknown["id"].as_str()),
        (Some(-32601), Some("u"))
    );
    let push = rpc(&daemon, json!({"jsonrpc": "2.0", "id": 1, "method": "CreateTaskPushNotificationConfig", "params": {}})).await;
    assert_eq!(push["error"]["code"], -32003, "{push}");
    let no_message = rpc(
        &daemon,
        json!({"jsonrpc": "2.0", "id": 1, "method": "SendMessage", "params": {}}),
    )
    .await;
    assert_eq!(no_message["error"]["code"], -32602, "{no_message}");
    let file = rpc(&daemon, json!({"jsonrpc": "2.0", "id": 1, "method": "message/send",
        "params": {"message": {"messageId": "m", "parts": [{"kind": "file", "file": {"uri": "x"}}]}}})).await;
    assert_eq!(file["error"]["code"], -32005, "{file}");
    let no_agent = rpc(
        &daemon,
        json!({"jsonrpc": "2.0", "id": 1, "method": "SendMessage", "params": send_params("hi")}),
    )
    .await;
    assert_eq!(no_agent["error"]["code"], -32602, "{no_agent}");
    let missing = rpc(
        &daemon,
        json!({"jsonrpc": "2.0", "id": 1, "method": "GetTask", "params": {"id": "nope"}}),
    )
    .await;
    assert_eq!(missing["error"]["code"], -32001, "{missing}");
    // Its own connection: the daemon closes it after refusing the body.
    let oversized = reqwest::Client::new()
        .post(format!("{}/a2a", daemon.base_url()))
        .header("content-type", "application/json")
        .body(format!(
            r#"{{"jsonrpc":"2.0","id":1,"method":"SendMessage","params":{{"x":"{}"}}}}"#,
            "a".repeat(70_000)
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(oversized.status(), 413);
    let body: Value = oversized.json().await.unwrap();
    assert_eq!(body["error"]["code"], -32600, "{body}");
    let missing = daemon.get("/a2a/tasks/nope").await;
    assert_eq!(missing.status(), 404);
    let empty = daemon
        .post("/a2a/tasks/send", json!({"message": {"parts": []}}))
        .await;
    assert_eq!(empty.status(), 400);

    // The client: not a URL, an invalid card, a card that is not JSON, a
    // slow peer (bounded by [a2a] timeout_secs), an agent never discovered.
    let response = daemon
        .post("/api/a2a/discover", json!({"url": "ftp://x"}))
        .await;
    assert_eq!(response.status(), 400);
    let invalid = fake_peer(Some(http_json(r#"{"name": "", "skills": 3}"#))).await;
    let response = daemon
        .post("/api/a2a/discover", json!({"url": invalid}))
        .await;
    assert_eq!(response.status(), 400);
    let text = response.text().await.unwrap();
    assert!(
        text.contains("`name`") && text.contains("`skills`"),
        "{text}"
    );
    let garbage = fake_peer(Some(http_json("<html>"))).await;
    let response = daemon
        .post("/api/a2a/discover", json!({"url": garbage}))
        .await;
    assert_eq!(response.status(), 400);
    assert!(response.text().await.unwrap().contains("not JSON"));
    let slow = fake_peer(None).await;
    let response = daemon.post("/api/a2a/discover", json!({"url": slow})).await;
    assert_eq!(response.status(), 504);
    let response = daemon
        .post(
            "/api/a2a/send",
            json!({"agent_id": "ghost", "message": "hi"}),
        )
        .await;
    assert_eq!(response.status(), 404);
    let response = daemon
        .post(
            "/api/a2a/send",
            json!({"agent_id": "ghost", "message": " "}),
        )
        .await;
    assert_eq!(response.status(), 400);
    let peers = json(daemon.get("/api/a2a/agents").await).await;
    assert_eq!(peers["total"], 0, "nothing half-written: {peers}");
}
