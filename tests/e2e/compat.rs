//! The compatibility check (issue 14): walks LibreFang's OpenAPI document
//! (`../shared/reference/librefang-openapi.json`) and, for every operation
//! Talon serves, sends a LibreFang-shaped request (typed bodies made from
//! LibreFang's schemas with every field, free-form ones from `bodies.rs`) to
//! a real daemon with a working agent; Talon's status must be one LibreFang
//! documents, and its JSON body must validate against LibreFang's response
//! schema for that status. Every operation not served must be a JSON 404 and
//! be listed as missing in the README's status table. Any difference fails
//! unless `allowlist.rs` lists it with its reason; an allowlist entry that no
//! longer matches a difference fails too, so the list stays exact.

mod allowlist;
mod bodies;
mod sdk;
mod spec;

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};
use talon_test_llm::TestLlm;

use crate::conversations::manifest;
use crate::harness::Daemon;
use crate::plugins::{Publisher, install, trust};
use allowlist::{ALLOWLIST, Kind};
use spec::{Operation, example, merge, operations, resolve, shape};

/// Ids and names the requests' paths and bodies refer to.
struct Fixtures {
    values: BTreeMap<&'static str, String>,
    /// What must outlive the check: the A2A peer and the model that never
    /// answers the running A2A task.
    _a2a: Option<(crate::a2a::Echo, TestLlm)>,
}

impl Fixtures {
    fn get(&self, name: &str) -> &str {
        self.values
            .get(name)
            .unwrap_or_else(|| panic!("no fixture `{name}`"))
    }

    /// The concrete path for a LibreFang path template.
    fn path(&self, template: &str) -> String {
        let segments: Vec<&str> = template.split('/').collect();
        let mut out = Vec::new();
        for (i, seg) in segments.iter().enumerate() {
            if !seg.starts_with('{') {
                out.push(seg.to_string());
                continue;
            }
            let parent = segments.get(i.wrapping_sub(1)).copied().unwrap_or("");
            let value = match (parent, *seg) {
                ("agents", "{id}") if template.starts_with("/api/a2a/") => {
                    self.get("a2a_peer_name")
                }
                ("tasks", "{id}") if template.starts_with("/api/a2a/") => {
                    self.get("a2a_remote_task")
                }
                ("tasks", "{id}") if template.ends_with("/cancel") => self.get("a2a_running_task"),
                ("tasks", "{id}") if template.starts_with("/a2a/") => self.get("a2a_task"),
                ("agents" | "budget", "{id}") => self.get("agent"),
                (_, "{session_id}") => self.get("session"),
                ("sessions", "{id}") => self.get("spare_session"),
                ("jobs" | "schedules", "{id}") => self.get("job"),
                ("triggers", "{id}") => self.get("trigger"),
                ("workflows", "{id}") => self.get("workflow"),
                ("runs", "{run_id}") => self.get("run"),
                ("uploads", "{file_id}") => self.get("upload"),
                ("files", "{filename}") => "notes.md",
                ("kv", "{key}") => "compat-key",
                ("by-label", "{label}") => "compat-label",
                ("plugins", "{name}") => self.get("plugin"),
                // Activating makes an instance of another hand, so the
                // fixture hand has none left when it is uninstalled.
                ("hands", "{hand_id}") if template.ends_with("/activate") => "web_watch",
                ("hands", "{hand_id}") => "fickle",
                ("instances", "{id}") => self.get("hand_instance"),
                ("skills", "{name}") => "greeter",
                ("tools", "{name}") => "word_count_rust",
                ("providers", "{name}") => "ollama",
                ("templates", "{name}") => "assistant",
                ("profiles", "{name}") => self.get("profile"),
                ("models", "{id}") => "gpt-4o-mini",
                ("servers", "{name}") => "compat",
                ("catalog", "{id}") => "everything",
                ("custom", "{id}") => "compat-model",
                // Approving and rejecting one approval would make the second a 409.
                ("approvals", "{id}") if template.ends_with("/reject") => {
                    self.get("rejected_approval")
                }
                ("approvals", "{id}") if template.ends_with("/modify") => {
                    self.get("modified_approval")
                }
                ("approvals", "{id}") => self.get("approval"),
                _ => panic!("no fixture for {seg} in {template}"),
            };
            out.push(value.to_string());
        }
        out.join("/")
    }

    /// Replaces `"{name}"` placeholders in a body by fixture values.
    fn fill(&self, body: &mut Value) {
        match body {
            Value::String(s) => {
                if let Some(name) = s
                    .strip_prefix("{manifest:")
                    .and_then(|r| r.strip_suffix('}'))
                {
                    *s = self.get("manifest").replace("compat-agent-name", name);
                } else if s.starts_with('{')
                    && s.ends_with('}')
                    && !s.contains("{{")
                    && let Some(v) = self.values.get(&s[1..s.len() - 1])
                {
                    *s = v.clone();
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|v| self.fill(v)),
            Value::Object(map) => map.values_mut().for_each(|v| self.fill(v)),
            _ => {}
        }
    }
}

async fn id_of(response: reqwest::Response, field: &str) -> String {
    let status = response.status();
    let body: Value = response.json().await.expect("JSON");
    assert!(status.is_success(), "fixture: {status} {body}");
    body[field]
        .as_str()
        .unwrap_or_else(|| panic!("no {field} in {body}"))
        .to_string()
}

/// A daemon with a working agent (talon-test-llm), a session, an upload, a
/// file, a key, a job, a trigger, a workflow with a run and a plugin.
async fn fixtures(daemon: &Daemon, llm: &TestLlm) -> Fixtures {
    let mut values = BTreeMap::new();
    let agent_manifest = manifest("compat-agent-name", llm, "test-model", &["notify_owner"]);
    values.insert("manifest", agent_manifest.clone());
    values.insert("llm", llm.openai_url());
    let agent = daemon
        .spawn_manifest(agent_manifest.replace("compat-agent-name", "compat"))
        .await;
    let victim = daemon
        .spawn_manifest(agent_manifest.replace("compat-agent-name", "compat-victim"))
        .await;
    let reply = daemon.message(&agent, "hello").await;
    let session = id_of(reply, "session_id").await;
    let spare = daemon
        .post(
            &format!("/api/agents/{agent}/sessions"),
            json!({"label": "compat-label"}),
        )
        .await;
    let spare = id_of(spare, "session_id").await;
    let upload = daemon
        .request(
            reqwest::Method::POST,
            &format!("/api/agents/{agent}/upload"),
        )
        .header("content-type", "text/plain")
        .header("x-filename", "notes.txt")
        .body("some notes")
        .send()
        .await
        .unwrap();
    let upload = id_of(upload, "file_id").await;
    daemon
        .put(
            &format!("/api/agents/{agent}/files/notes.md"),
            json!({"content": "x"}),
        )
        .await;
    daemon
        .put(
            &format!("/api/memory/agents/{agent}/kv/compat-key"),
            json!({"value": 1}),
        )
        .await;
    let job = daemon
        .post(
            "/api/cron/jobs",
            json!({"agent_id": agent, "schedule": "0 9 * * *", "prompt": "tick"}),
        )
        .await;
    let job = id_of(job, "job_id").await;
    let trigger = daemon
        .post(
            "/api/triggers",
            json!({"agent_id": agent, "pattern": {"agent_spawned": {"name_pattern": "nobody-*"}},
                   "prompt_template": "{{event}}"}),
        )
        .await;
    let trigger = id_of(trigger, "trigger_id").await;
    let workflow = daemon
        .post(
            "/api/workflows",
            json!({"name": "fixture-flow", "steps": [{"name": "s", "agent_name": "compat"}]}),
        )
        .await;
    let workflow = id_of(workflow, "workflow_id").await;
    let run = daemon
        .post(
            &format!("/api/workflows/{workflow}/run"),
            json!({"input": "x"}),
        )
        .await;
    let run = id_of(run, "run_id").await;
    let approval = daemon
        .post(
            "/api/approvals",
            json!({"agent_id": agent, "action": "delete_file", "description": "fixture"}),
        )
        .await;
    let approval = id_of(approval, "id").await;
    let rejected_approval = daemon
        .post(
            "/api/approvals",
            json!({"agent_id": agent, "action": "delete_file", "description": "fixture"}),
        )
        .await;
    let rejected_approval = id_of(rejected_approval, "id").await;
    let mut more_approvals = Vec::new();
    for _ in ["modified", "batch"] {
        let response = daemon
            .post(
                "/api/approvals",
                json!({"agent_id": agent, "action": "delete_file", "description": "fixture"}),
            )
            .await;
        more_approvals.push(id_of(response, "id").await);
    }
    let [modified_approval, batch_approval] = <[String; 2]>::try_from(more_approvals).unwrap();
    let profiles: Value = daemon.get("/api/profiles").await.json().await.unwrap();
    let profiles = profiles.get("profiles").unwrap_or(&profiles);
    let profile = profiles[0]["name"].as_str().expect("a profile").to_string();
    let publisher = Publisher::new(daemon);
    trust(daemon, &publisher).await;
    // The trusted key is also the home's default signing key (bodyless sign).
    let keys = daemon.home().join("keys");
    std::fs::create_dir_all(&keys).unwrap();
    std::fs::copy(
        publisher.dir.path().join("publisher.key"),
        keys.join("publisher.key"),
    )
    .unwrap();
    let package = publisher.pack(daemon, "examples/plugins/rust", "word_count_rust");
    assert_eq!(install(daemon, &package, json!("all")).await.status(), 201);
    use base64::Engine as _;
    let encode = |path: String| {
        base64::engine::general_purpose::STANDARD.encode(std::fs::read(path).unwrap())
    };
    let skill = encode(publisher.pack(daemon, "tests/plugins/greeter", "greeter"));
    let hand = encode(publisher.pack(daemon, "tests/plugins/fickle", "fickle"));
    let installed = daemon
        .post(
            "/api/hands/install",
            json!({"package": hand, "grant": "all"}),
        )
        .await;
    assert_eq!(installed.status(), 200);
    let hand_instance = daemon
        .post(
            "/api/hands/fickle/activate",
            json!({"config": {"mode": "ok"}, "provider": "ollama", "model": "test-model"}),
        )
        .await;
    let hand_instance = id_of(hand_instance, "instance_id").await;
    let hand_package = encode(publisher.pack(daemon, "plugins/web_watch", "web_watch"));
    let tool = encode(publisher.pack(daemon, "plugins/file_list", "file_list"));
    for (k, v) in [
        ("agent", agent),
        ("bulk_victim", victim),
        ("session", session),
        ("spare_session", spare),
        ("upload", upload),
        ("job", job),
        ("trigger", trigger),
        ("workflow", workflow),
        ("run", run),
        ("plugin", "word_count_rust".to_string()),
        ("package", skill),
        ("tool_package", tool),
        ("hand_instance", hand_instance),
        ("hand_package", hand_package),
        ("profile", profile),
        ("approval", approval),
        ("rejected_approval", rejected_approval),
        ("modified_approval", modified_approval),
        ("batch_approval", batch_approval),
    ] {
        values.insert(k, v);
    }
    let agent = values["agent"].clone();
    let a2a = a2a_fixtures(daemon, &agent, &mut values).await;
    Fixtures {
        values,
        _a2a: Some(a2a),
    }
}

/// A2A: a task a local agent answered, one still running (its model never
/// answers), and a discovered a2a-sdk echo agent with a task it ran.
async fn a2a_fixtures(
    daemon: &Daemon,
    agent: &str,
    values: &mut BTreeMap<&'static str, String>,
) -> (crate::a2a::Echo, TestLlm) {
    let done = daemon
        .post(
            "/a2a/tasks/send",
            json!({"agent_id": agent, "message": "fixture"}),
        )
        .await;
    values.insert("a2a_task", id_of(done, "task_id").await);
    let silent = TestLlm::start().await;
    silent.push(talon_test_llm::Reply::hang());
    let slow = daemon
        .spawn_manifest(manifest("compat-a2a-slow", &silent, "test-model", &[]))
        .await;
    let running: Value = daemon
        .post(
            "/a2a",
            json!({"jsonrpc": "2.0", "id": 1, "method": "SendMessage", "params": {
                "message": {"messageId": "fixture", "role": "ROLE_USER", "parts": [{"text": "wait"}],
                            "metadata": {"agent": slow}},
                "configuration": {"returnImmediately": true}}}),
        )
        .await
        .json()
        .await
        .unwrap();
    let running = running["result"]["task"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no running task: {running}"))
        .to_string();
    values.insert("a2a_running_task", running);
    let echo = crate::a2a::start_echo();
    let peer = daemon
        .post("/api/a2a/discover", json!({"url": echo.url}))
        .await;
    values.insert("a2a_peer_name", id_of(peer, "name").await);
    let sent = daemon
        .post(
            "/api/a2a/send",
            json!({"agent_id": echo.url, "message": "fixture"}),
        )
        .await;
    values.insert("a2a_remote_task", id_of(sent, "task_id").await);
    values.insert("a2a_peer", echo.url.clone());
    (echo, silent)
}

/// When an operation runs: reads first, destructive ones last.
fn phase(op: &Operation) -> u8 {
    let ends = ["uninstall", "/stop", "/history", "/reset"];
    match op.method.as_str() {
        // After the agent's other deletions, which need it.
        "DELETE" if op.path == "/api/agents/{id}" || op.path == "/api/agents/bulk" => 3,
        // The skill it reads is installed by `POST /api/skills/install`.
        "GET" if op.path == "/api/skills/{name}" => 1,
        "GET" => 0,
        "POST" | "PUT" | "PATCH" if !ends.iter().any(|e| op.path.ends_with(e)) => 1,
        _ => 2,
    }
}

/// Values for LibreFang's required query parameters.
fn query_pairs(op: &Operation, fixtures: &Fixtures) -> Vec<(String, String)> {
    let mut pairs = Vec::new();
    for param in op.op["parameters"].as_array().into_iter().flatten() {
        if param["in"] == "query" && param["required"] == true {
            let name = param["name"].as_str().unwrap_or_default();
            let value = if name == "agent_id" {
                fixtures.get("agent")
            } else if name == "url" && op.path.starts_with("/api/a2a/") {
                fixtures.get("a2a_peer")
            } else {
                "hello"
            };
            pairs.push((name.to_string(), value.to_string()));
        }
    }
    pairs
}

/// The query string for LibreFang's required query parameters.
fn query(op: &Operation, fixtures: &Fixtures) -> String {
    let pairs: Vec<String> = query_pairs(op, fixtures)
        .into_iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    if pairs.is_empty() {
        String::new()
    } else {
        format!("?{}", pairs.join("&"))
    }
}

/// LibreFang's request body for `op`, if it takes one.
fn request_body(doc: &Value, op: &Operation, fixtures: &Fixtures) -> Option<Value> {
    let schema = op
        .op
        .pointer("/requestBody/content/application~1json/schema")?;
    let typed = !matches!(
        schema.get("$ref").and_then(Value::as_str),
        Some("#/components/schemas/JsonObject" | "#/components/schemas/JsonArray")
    ) && schema != &json!({});
    let mut body = if typed {
        example(doc, schema, true)
    } else {
        json!({})
    };
    match bodies::body(&op.key()) {
        Some(patch) if typed => merge(&mut body, &patch),
        Some(whole) => body = whole,
        None if typed => {}
        None => panic!(
            "{}: a free-form body; add LibreFang's shape to bodies.rs",
            op.key()
        ),
    }
    fixtures.fill(&mut body);
    Some(body)
}

/// Validates `body` against LibreFang's response schema for `status`.
fn schema_error(doc: &Value, op: &Operation, status: u16, body: &Value) -> Option<String> {
    let schema = op.op.pointer(&format!(
        "/responses/{status}/content/application~1json/schema"
    ))?;
    let mut root = resolve(doc, schema).clone();
    if let Value::Object(map) = &mut root {
        map.insert("components".into(), doc["components"].clone());
    }
    let validator = jsonschema::validator_for(&root).expect("LibreFang's schema compiles");
    let errors: Vec<String> = validator.iter_errors(body).map(|e| e.to_string()).collect();
    (!errors.is_empty()).then(|| errors.join("; "))
}

/// Paths the README's status table lists as missing (`METHOD /path`, `/path`
/// or a `/prefix/*`), from its "Not served" table.
fn readme_missing() -> Vec<String> {
    let readme = std::fs::read_to_string(crate::plugins::repo().join("README.md")).unwrap();
    let section = readme
        .split("## Status")
        .nth(1)
        .and_then(|s| s.split("\n## ").next())
        .expect("README has a Status section");
    let mut out = Vec::new();
    for line in section.lines().filter(|l| l.starts_with('|')) {
        let missing_part = match line.find("Missing:") {
            Some(at) => &line[at..],
            None if line.contains("| missing |") || line.contains("| not served |") => line,
            None => continue,
        };
        out.extend(
            missing_part
                .split('`')
                .skip(1)
                .step_by(2)
                .map(str::to_string),
        );
    }
    out
}

fn listed_missing(listed: &[String], op: &Operation) -> bool {
    listed.iter().any(|t| {
        let (method, path) = match t.split_once(' ') {
            Some((m, p)) => (Some(m), p),
            None => (None, t.as_str()),
        };
        method.is_none_or(|m| m == op.method)
            && match path.strip_suffix('*') {
                Some(prefix) => op.path.starts_with(prefix),
                None => shape(path) == shape(&op.path),
            }
    })
}

/// A daemon with a working agent and one of everything, ready for
/// LibreFang's requests.
struct Served {
    /// The provider the agent answers from, kept running.
    llm: TestLlm,
    daemon: Daemon,
    /// The (method, path shape) pairs Talon's own document lists.
    served: BTreeSet<(String, String)>,
    fixtures: Fixtures,
}

impl Served {
    async fn start() -> Served {
        let llm = TestLlm::start().await;
        let daemon = Daemon::start_with_config(concat!(
            "[tool_invoke]\nenabled = true\nallowlist = [\"*\"]\n",
            // An MCP server for `/api/mcp/servers/{name}`: a program that
            // exits at once (tests/e2e/mcp.rs talks to real servers).
            "[mcp_servers.compat]\ncommand = \"true\"\ntimeout_secs = 2\n",
            "[mcp_server]\nenabled = true\nallowlist = [\"*\"]\n",
        ))
        .await;
        let talon: Value = daemon.get("/api/openapi.json").await.json().await.unwrap();
        let served = operations(&talon)
            .into_iter()
            .map(|o| (o.method, shape(&o.path)))
            .collect();
        let fixtures = fixtures(&daemon, &llm).await;
        Served {
            llm,
            daemon,
            served,
            fixtures,
        }
    }
}

#[tokio::test]
async fn every_served_librefang_operation_answers_what_librefang_answers() {
    let doc = spec::librefang();
    let Served {
        llm: _llm,
        daemon,
        served,
        fixtures,
    } = Served::start().await;
    let listed = readme_missing();

    let mut ops = operations(&doc);
    ops.sort_by_key(|o| (phase(o), o.path.clone(), o.method.clone()));
    let mut differences: BTreeSet<(String, Kind, String)> = BTreeSet::new();
    let mut served_count = 0;
    for op in &ops {
        let key = op.key();
        if ALLOWLIST
            .iter()
            .any(|a| a.operation == key && a.kind == Kind::NotSent)
        {
            differences.insert((key, Kind::NotSent, String::new()));
            continue;
        }
        let is_served = served.contains(&(op.method.clone(), shape(&op.path)));
        if !is_served {
            let path = op.path.replace(['{', '}'], "x");
            let method = reqwest::Method::from_bytes(op.method.as_bytes()).unwrap();
            let response = daemon.request(method, &path).send().await.unwrap();
            let status = response.status().as_u16();
            // 405 where the path is served with another method, else 404.
            let path_served = served.iter().any(|(_, p)| *p == shape(&op.path));
            let expected = if path_served { 405 } else { 404 };
            let json_error = status == expected
                && response
                    .json::<Value>()
                    .await
                    .is_ok_and(|b| b["error"].is_string());
            if !json_error {
                differences.insert((
                    key.clone(),
                    Kind::Unserved,
                    format!("answers {status}, not a JSON {expected}"),
                ));
            }
            if !listed_missing(&listed, op) {
                differences.insert((
                    key,
                    Kind::Unserved,
                    "not listed as missing in README's status table".into(),
                ));
            }
            continue;
        }
        served_count += 1;
        let path = format!("{}{}", fixtures.path(&op.path), query(op, &fixtures));
        let method = reqwest::Method::from_bytes(op.method.as_bytes()).unwrap();
        let mut request = daemon.request(method, &path);
        if op
            .op
            .pointer("/requestBody/content/application~1octet-stream")
            .is_some()
        {
            request = request.body("raw bytes");
        } else if let Some(body) = request_body(&doc, op, &fixtures) {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let streamed = response
            .headers()
            .get("content-type")
            .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
        let documented: Vec<u16> = op.op["responses"]
            .as_object()
            .map(|r| r.keys().filter_map(|k| k.parse().ok()).collect())
            .unwrap_or_default();
        if !documented.contains(&status) || !(200..300).contains(&status) {
            let text = if streamed {
                String::new()
            } else {
                response.text().await.unwrap_or_default()
            };
            differences.insert((
                key,
                Kind::Status,
                format!(
                    "answered {status} (LibreFang documents {documented:?}): {}",
                    text.chars().take(300).collect::<String>()
                ),
            ));
            continue;
        }
        if streamed {
            continue; // An event stream: its events are checked by the streaming tests.
        }
        let text = response.text().await.unwrap_or_default();
        if let Ok(body) = serde_json::from_str::<Value>(&text)
            && let Some(error) = schema_error(&doc, op, status, &body)
        {
            differences.insert((key, Kind::Body, error.chars().take(300).collect()));
        }
    }

    // Compare with the allowlist: every difference listed, every entry used.
    let unexplained: Vec<String> = differences
        .iter()
        .filter(|(op, kind, _)| {
            !ALLOWLIST
                .iter()
                .any(|a| a.operation == op && a.kind == *kind)
        })
        .map(|(op, kind, detail)| format!("{op} [{kind:?}] {detail}"))
        .collect();
    let stale: Vec<String> = ALLOWLIST
        .iter()
        .filter(|a| {
            !differences
                .iter()
                .any(|(op, kind, _)| a.operation == op && a.kind == *kind)
        })
        .map(|a| format!("{} [{:?}]", a.operation, a.kind))
        .collect();
    for a in ALLOWLIST {
        println!(
            "compat: allowed deviation {} [{:?}]: {}",
            a.operation, a.kind, a.why
        );
    }
    println!(
        "compat: {} LibreFang operations, {served_count} served and sent, {} differences, all allowlisted: {}",
        ops.len(),
        differences.len(),
        unexplained.is_empty()
    );
    assert!(
        unexplained.is_empty() && stale.is_empty(),
        "differences from LibreFang not in tests/e2e/compat/allowlist.rs:\n  {}\n\
         allowlist entries that no longer match a difference:\n  {}",
        unexplained.join("\n  "),
        stale.join("\n  ")
    );
    assert!(served_count >= 140, "only {served_count} operations served");
}
