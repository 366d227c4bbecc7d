//! Plugins end to end, as an author and an operator use them: keygen, pack,
//! verify, install with grants, invoke over HTTP, restart, uninstall, in
//! Rust, Python and JavaScript; hostile plugins and hostile packages.

use std::path::{Path, PathBuf};

use base64::Engine as _;

use crate::harness::{Daemon, assert_error, json};

const OPEN_INVOKE: &str = "[tool_invoke]\nenabled = true\nallowlist = [\"*\"]\n";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A component built by `scripts/build-plugins`.
fn component(name: &str) -> String {
    let path = repo().join("target/plugins").join(format!("{name}.wasm"));
    assert!(
        path.exists(),
        "{} is missing: run scripts/build-plugins",
        path.display()
    );
    path.display().to_string()
}

fn manifest(dir: &str) -> String {
    repo().join(dir).join("talon.toml").display().to_string()
}

fn run_ok(daemon: &Daemon, args: &[&str]) -> String {
    let out = daemon.cli(args);
    assert!(
        out.status.success(),
        "talon {}: {}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A publisher: a key made with `talon plugin keygen`, and a directory for packages.
pub(crate) struct Publisher {
    dir: tempfile::TempDir,
    key: String,
    public: String,
}

impl Publisher {
    pub(crate) fn new(daemon: &Daemon) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("publisher.key").display().to_string();
        run_ok(daemon, &["plugin", "keygen", "--out", &key]);
        let public = std::fs::read_to_string(dir.path().join("publisher.pub"))
            .unwrap()
            .trim()
            .to_string();
        Self { dir, key, public }
    }

    /// `talon plugin pack <talon.toml> <component>` signed with this key.
    pub(crate) fn pack(&self, daemon: &Daemon, dir: &str, wasm: &str) -> String {
        let out = self
            .dir
            .path()
            .join(format!("{wasm}.talon"))
            .display()
            .to_string();
        run_ok(
            daemon,
            &[
                "plugin",
                "pack",
                &manifest(dir),
                &component(wasm),
                "--key",
                &self.key,
                "--out",
                &out,
            ],
        );
        out
    }
}

/// Trusts the publisher's key through the API.
pub(crate) async fn trust(daemon: &Daemon, publisher: &Publisher) {
    let body = serde_json::json!({ "path": "plugins.trusted_keys", "value": [publisher.public] });
    assert_eq!(daemon.post("/api/config/set", body).await.status(), 200);
}

pub(crate) async fn install(
    daemon: &Daemon,
    package: &str,
    grant: serde_json::Value,
) -> reqwest::Response {
    let bytes = std::fs::read(package).unwrap();
    let body = serde_json::json!({
        "package": base64::engine::general_purpose::STANDARD.encode(bytes),
        "grant": grant,
    });
    daemon.post("/api/plugins/install", body).await
}

async fn invoke(daemon: &Daemon, tool: &str, args: serde_json::Value) -> (u16, serde_json::Value) {
    let response = daemon
        .post(&format!("/api/tools/{tool}/invoke"), args)
        .await;
    (response.status().as_u16(), json(response).await)
}

async fn spawn_agent_with_tools(daemon: &Daemon, name: &str, tools: &[&str]) -> String {
    let manifest = format!(
        "name = \"{name}\"\nversion = \"0.1.0\"\n[model]\nprovider = \"openai\"\nmodel = \"gpt-4o-mini\"\n\
         [capabilities]\ntools = {}\n",
        serde_json::to_string(tools).unwrap()
    );
    let response = daemon
        .post(
            "/api/agents",
            serde_json::json!({ "manifest_toml": manifest }),
        )
        .await;
    assert_eq!(response.status(), 201);
    json(response).await["agent_id"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn the_same_tool_in_rust_python_and_javascript() {
    let mut daemon = Daemon::start_with_config(OPEN_INVOKE).await;
    let publisher = Publisher::new(&daemon);
    trust(&daemon, &publisher).await;

    let examples = [
        ("examples/plugins/rust", "word_count_rust"),
        ("examples/plugins/python", "word_count_python"),
        ("examples/plugins/js", "word_count_js"),
    ];
    for (dir, name) in examples {
        let package = publisher.pack(&daemon, dir, name);
        let verified = run_ok(&daemon, &["plugin", "verify", &package]);
        assert!(
            verified.contains("signature: valid")
                && verified.contains("is in plugins.trusted_keys"),
            "{verified}"
        );
        // Authors try a tool without the daemon.
        let local = run_ok(
            &daemon,
            &[
                "plugin",
                "run",
                &package,
                name,
                r#"{"text":"to be or not to be"}"#,
            ],
        );
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&local).unwrap()["words"],
            6,
            "{name}: {local}"
        );
        let installed = run_ok(&daemon, &["plugin", "install", &package, "--grant-all"]);
        assert!(
            installed.contains(&format!("installed {name}")),
            "{installed}"
        );
    }

    let tools = json(daemon.get("/api/tools").await).await;
    assert_eq!(tools["total"], 3, "{tools}");
    for (_, name) in examples {
        let tool = json(daemon.get(&format!("/api/tools/{name}")).await).await;
        assert_eq!(
            tool["input_schema"]["properties"]["text"]["type"], "string",
            "{tool}"
        );
        let (status, body) = invoke(
            &daemon,
            name,
            serde_json::json!({ "text": "one two two", "top": 1 }),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["result"]["words"], 3, "{name}: {body}");
        assert_eq!(body["result"]["top"][0]["word"], "two", "{name}: {body}");
        assert!(body["cost"]["fuel"].as_u64().unwrap() > 0);
        // The tool's own argument check comes back as a 400.
        let (status, body) = invoke(&daemon, name, serde_json::json!({ "txt": "x" })).await;
        assert_eq!(status, 400, "{name}: {body}");
    }
    let listed = run_ok(&daemon, &["plugin", "list"]);
    assert!(
        listed.contains("word_count_python") && listed.contains("loaded"),
        "{listed}"
    );

    // A restart loads them again, from the compiled-component cache.
    assert!(daemon.terminate().success());
    daemon.restart();
    let (status, body) = invoke(
        &daemon,
        "word_count_js",
        serde_json::json!({ "text": "still here" }),
    )
    .await;
    assert_eq!(
        (status, body["result"]["words"].clone()),
        (200, serde_json::json!(2)),
        "{body}"
    );

    run_ok(&daemon, &["plugin", "remove", "word_count_python"]);
    assert_error(
        daemon.get("/api/tools/word_count_python").await,
        404,
        "no tool",
    )
    .await;
    let audit = json(daemon.get("/api/audit/recent?limit=50").await).await;
    let events: Vec<&str> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["event_type"].as_str())
        .collect();
    assert_eq!(
        events.iter().filter(|e| **e == "PluginInstalled").count(),
        3,
        "{events:?}"
    );
    assert!(events.contains(&"PluginUninstalled"), "{events:?}");
}

#[tokio::test]
async fn hostile_plugins_are_stopped_and_the_daemon_keeps_serving() {
    // 100 concurrent calls from one client would exceed the default rate limit.
    let config = format!("{OPEN_INVOKE}[rate_limit]\nexempt_loopback = true\n");
    let daemon = Daemon::start_with_config(&config).await;
    let publisher = Publisher::new(&daemon);
    trust(&daemon, &publisher).await;
    let package = publisher.pack(&daemon, "tests/plugins/hostile", "hostile");
    assert_eq!(
        install(&daemon, &package, serde_json::json!("all"))
            .await
            .status(),
        201
    );

    for (tool, args, kind) in [
        ("spin", serde_json::json!({}), "out_of_fuel"),
        ("sleep_forever", serde_json::json!({}), "timeout"),
        ("alloc", serde_json::json!({ "mb": 200 }), "memory_limit"),
        ("trap", serde_json::json!({}), "trap"),
    ] {
        let (status, body) = invoke(&daemon, tool, args).await;
        assert_eq!(
            (status, body["kind"].as_str()),
            (422, Some(kind)),
            "{tool}: {body}"
        );
        assert!(
            body["error"].as_str().unwrap().len() > 10,
            "a clear message: {body}"
        );
    }
    let (status, body) = invoke(
        &daemon,
        "recurse",
        serde_json::json!({ "depth": 100_000_000u64 }),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert!(
        matches!(body["kind"].as_str(), Some("stack_overflow" | "trap")),
        "{body}"
    );
    let (_, body) = invoke(&daemon, "trap", serde_json::json!({})).await;
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("panicked on purpose"),
        "{body}"
    );

    // Still serving, and the plugin still answers.
    assert_eq!(daemon.get("/api/health").await.status(), 200);
    let health = json(daemon.get("/api/plugins/hostile/health").await).await;
    assert_eq!(health["healthy"], true, "{health}");

    // 100 concurrent invocations over HTTP.
    let calls = (0..100).map(|i| invoke(&daemon, "echo", serde_json::json!({ "i": i })));
    for (i, (status, body)) in futures::future::join_all(calls)
        .await
        .into_iter()
        .enumerate()
    {
        assert_eq!(
            (status, body["result"]["i"].as_u64()),
            (200, Some(i as u64)),
            "{body}"
        );
    }
    let status = json(daemon.get("/api/plugins/hostile/status").await).await;
    assert!(
        status["stats"]["calls"].as_u64().unwrap() >= 106,
        "{status}"
    );
    assert!(status["stats"]["errors"].as_u64().unwrap() >= 6, "{status}");
}

#[tokio::test]
async fn files_stay_in_the_agent_workspace_and_agents_call_only_their_tools() {
    let daemon = Daemon::start_with_config(OPEN_INVOKE).await;
    let publisher = Publisher::new(&daemon);
    trust(&daemon, &publisher).await;
    let package = publisher.pack(&daemon, "tests/plugins/hostile", "hostile");
    let grant = serde_json::json!({ "filesystem": "workspace" });
    assert_eq!(install(&daemon, &package, grant).await.status(), 201);
    let agent = spawn_agent_with_tools(&daemon, "reader", &["read", "write"]).await;
    let other = spawn_agent_with_tools(&daemon, "bystander", &[]).await;
    let put = daemon
        .put(
            &format!("/api/agents/{agent}/files/notes.txt"),
            serde_json::json!({ "content": "mine" }),
        )
        .await;
    assert!(put.status().is_success(), "{}", put.status());

    let call = |tool: &'static str, args: serde_json::Value, agent: String| {
        let daemon = &daemon;
        async move {
            let response = daemon
                .post(&format!("/api/tools/{tool}/invoke?agent_id={agent}"), args)
                .await;
            (response.status().as_u16(), json(response).await)
        }
    };
    let (status, body) = call(
        "read",
        serde_json::json!({ "path": "notes.txt" }),
        agent.clone(),
    )
    .await;
    assert_eq!(
        (status, body["result"].as_str()),
        (200, Some("mine")),
        "{body}"
    );
    for path in [
        "../../config.toml",
        "/../../config.toml",
        "../",
        "/etc/passwd",
    ] {
        let (status, body) = call("read", serde_json::json!({ "path": path }), agent.clone()).await;
        assert_eq!(status, 422, "{path}: {body}");
    }
    let (status, _) = call(
        "write",
        serde_json::json!({ "path": "../../escaped.txt", "text": "x" }),
        agent.clone(),
    )
    .await;
    assert_eq!(status, 422);
    assert!(!daemon.home().join("escaped.txt").exists());
    assert!(!daemon.home().join("workspaces/escaped.txt").exists());

    // An agent may only call the tools its manifest lists.
    assert_error(
        daemon
            .post(
                &format!("/api/tools/read/invoke?agent_id={other}"),
                serde_json::json!({ "path": "x" }),
            )
            .await,
        403,
        "capabilities.tools",
    )
    .await;

    // Memory keys outside the grant are refused (this grant has none).
    let (status, body) = call(
        "remember",
        serde_json::json!({ "key": "own/x", "value": "1" }),
        agent.clone(),
    )
    .await;
    assert_eq!(status, 403, "{body}");
}

/// A one-shot HTTP server on loopback.
async fn local_server() -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let mut buf = vec![0u8; 4096];
            let _ = socket.read(&mut buf).await;
            let body = "<html><body><p>internal secrets</p></body></html>";
            let head = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: {}\r\n\r\n",
                body.len()
            );
            let _ = socket.write_all(format!("{head}{body}").as_bytes()).await;
        }
    });
    port
}

#[tokio::test]
async fn network_access_is_limited_to_granted_public_hosts() {
    let daemon = Daemon::start_with_config(OPEN_INVOKE).await;
    let publisher = Publisher::new(&daemon);
    trust(&daemon, &publisher).await;
    let package = publisher.pack(&daemon, "plugins/web_fetch", "web_fetch");
    assert_eq!(
        install(&daemon, &package, serde_json::json!("all"))
            .await
            .status(),
        201
    );
    let port = local_server().await;
    for host in ["127.0.0.1", "localhost"] {
        let url = format!("http://{host}:{port}/");
        let (status, body) = invoke(&daemon, "web_fetch", serde_json::json!({ "url": url })).await;
        assert_eq!(status, 403, "{host}: {body}");
        assert!(
            body["error"].as_str().unwrap().contains("loopback"),
            "{body}"
        );
    }

    // Upgrading the grant to name this exact host lets it through.
    run_ok(&daemon, &["plugin", "remove", "web_fetch"]);
    let grant = serde_json::json!({ "network": [format!("127.0.0.1:{port}")] });
    assert_eq!(install(&daemon, &package, grant).await.status(), 201);
    let (status, body) = invoke(
        &daemon,
        "web_fetch",
        serde_json::json!({ "url": format!("http://127.0.0.1:{port}/") }),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body.to_string().contains("internal secrets"), "{body}");
    let (status, body) = invoke(
        &daemon,
        "web_fetch",
        serde_json::json!({ "url": "http://example.com/" }),
    )
    .await;
    assert_eq!(status, 403, "{body}");
}

#[tokio::test]
async fn untrusted_tampered_and_malformed_packages_are_refused() {
    let daemon = Daemon::start_with_config(OPEN_INVOKE).await;
    let publisher = Publisher::new(&daemon);
    let signed = publisher.pack(&daemon, "examples/plugins/rust", "word_count_rust");

    // Signed, but the key is not trusted yet.
    assert_error(
        install(&daemon, &signed, serde_json::json!("all")).await,
        403,
        "not trusted",
    )
    .await;
    // Unsigned.
    let unsigned = publisher
        .dir
        .path()
        .join("unsigned.talon")
        .display()
        .to_string();
    run_ok(
        &daemon,
        &[
            "plugin",
            "pack",
            &manifest("examples/plugins/rust"),
            &component("word_count_rust"),
            "--unsigned",
            "--out",
            &unsigned,
        ],
    );
    assert_error(
        install(&daemon, &unsigned, serde_json::json!("all")).await,
        403,
        "not signed",
    )
    .await;

    trust(&daemon, &publisher).await;
    // One flipped byte in the middle of the component.
    let mut bytes = std::fs::read(&signed).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    let tampered = publisher.dir.path().join("tampered.talon");
    std::fs::write(&tampered, &bytes).unwrap();
    assert_error(
        install(
            &daemon,
            &tampered.display().to_string(),
            serde_json::json!("all"),
        )
        .await,
        400,
        "tampered",
    )
    .await;
    let verify = daemon.cli(&["plugin", "verify", &tampered.display().to_string()]);
    assert!(!verify.status.success());

    for (body, needle) in [
        (serde_json::json!({ "package": "%%% not base64" }), "base64"),
        (
            serde_json::json!({ "package": "aGVsbG8=" }),
            "talon plugin pack",
        ),
        (serde_json::json!({}), "missing package"),
        (
            serde_json::json!({ "name": "from-the-marketplace" }),
            "not supported",
        ),
        (
            serde_json::json!({ "path": "/nonexistent.talon" }),
            "cannot read",
        ),
        (
            serde_json::json!({ "package": "aGVsbG8=", "surprise": 1 }),
            "surprise",
        ),
    ] {
        assert_error(daemon.post("/api/plugins/install", body).await, 400, needle).await;
    }
    // A grant beyond the request.
    let greedy = serde_json::json!({ "network": ["evil.example"] });
    assert_error(
        install(&daemon, &signed, greedy).await,
        400,
        "did not request",
    )
    .await;
    // Nothing was half-installed by any of that.
    assert_eq!(json(daemon.get("/api/plugins").await).await["total"], 0);
    let leftovers = std::fs::read_dir(daemon.home().join("plugins"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(leftovers, 0);

    assert_eq!(
        install(&daemon, &signed, serde_json::json!("none"))
            .await
            .status(),
        201
    );
    assert_error(
        install(&daemon, &signed, serde_json::json!("none")).await,
        409,
        "already installed",
    )
    .await;
    assert_error(
        daemon
            .post(
                "/api/plugins/uninstall",
                serde_json::json!({ "name": "nope" }),
            )
            .await,
        404,
        "nope",
    )
    .await;
}

#[tokio::test]
async fn direct_invocation_is_closed_by_default() {
    let daemon = Daemon::start().await;
    let publisher = Publisher::new(&daemon);
    trust(&daemon, &publisher).await;
    let package = publisher.pack(&daemon, "examples/plugins/rust", "word_count_rust");
    assert_eq!(
        install(&daemon, &package, serde_json::json!("none"))
            .await
            .status(),
        201
    );
    let response = daemon
        .post(
            "/api/tools/word_count_rust/invoke",
            serde_json::json!({ "text": "x" }),
        )
        .await;
    assert_error(response, 403, "tool_invoke.allowlist").await;
    assert_error(
        daemon
            .post("/api/tools/nope/invoke", serde_json::json!({}))
            .await,
        403,
        "closed",
    )
    .await;
}

#[tokio::test]
async fn skills_reload_enable_and_the_operator_endpoints() {
    let daemon = Daemon::start_with_config(OPEN_INVOKE).await;
    let publisher = Publisher::new(&daemon);
    trust(&daemon, &publisher).await;
    let package = publisher.pack(&daemon, "tests/plugins/greeter", "greeter");
    let word_count = publisher.pack(&daemon, "examples/plugins/rust", "word_count_rust");
    let bytes = base64::engine::general_purpose::STANDARD.encode(std::fs::read(&package).unwrap());

    // A tool plugin is not a skill.
    let body = serde_json::json!({ "path": word_count, "grant": "all" });
    assert_error(
        daemon.post("/api/skills/install", body).await,
        400,
        "not a skill",
    )
    .await;
    let response = daemon
        .post(
            "/api/skills/install",
            serde_json::json!({ "package": bytes, "grant": "all" }),
        )
        .await;
    assert_eq!(response.status(), 200);
    let skills = json(daemon.get("/api/skills").await).await;
    assert_eq!(skills["skills"][0]["name"], "greeter", "{skills}");
    let skill = json(daemon.get("/api/skills/greeter").await).await;
    assert!(
        skill["instructions"]
            .as_str()
            .unwrap()
            .contains("call `greet`"),
        "{skill}"
    );
    assert_error(daemon.get("/api/skills/nope").await, 404, "no skill").await;

    // Memory is scoped to the calling agent and the plugin.
    let agent = spawn_agent_with_tools(&daemon, "greeter-user", &["greet"]).await;
    let greet = |agent: String| {
        let daemon = &daemon;
        async move {
            let response = daemon
                .post(
                    &format!("/api/tools/greet/invoke?agent_id={agent}"),
                    serde_json::json!({ "name": "Ada" }),
                )
                .await;
            json(response).await
        }
    };
    assert_eq!(greet(agent.clone()).await["result"]["seen_before"], 0);
    assert_eq!(greet(agent.clone()).await["result"]["seen_before"], 1);
    let kv = json(
        daemon
            .get(&format!(
                "/api/memory/agents/{agent}/kv/plugin:greeter:greeted%2FAda"
            ))
            .await,
    )
    .await;
    assert_eq!(kv["value"], "2", "{kv}");

    // Reload while calls are in flight: none of them fails.
    let calls = (0..20).map(|_| invoke(&daemon, "greet", serde_json::json!({ "name": "x" })));
    let reload = daemon.post(
        "/api/plugins/greeter/reload",
        serde_json::json!({ "package": bytes }),
    );
    let (results, reloaded) = tokio::join!(futures::future::join_all(calls), reload);
    assert_eq!(reloaded.status(), 200);
    assert!(
        results.iter().all(|(status, _)| *status == 200),
        "{results:?}"
    );

    // Disable hides the tools; enable brings them back.
    assert_eq!(
        json(
            daemon
                .post("/api/plugins/greeter/disable", serde_json::json!({}))
                .await
        )
        .await["status"],
        "disabled"
    );
    assert_error(daemon.get("/api/tools/greet").await, 404, "no tool").await;
    assert_eq!(
        json(
            daemon
                .post("/api/plugins/greeter/enable", serde_json::json!({}))
                .await
        )
        .await["status"],
        "loaded"
    );
    assert_eq!(daemon.get("/api/tools/greet").await.status(), 200);

    let view = json(daemon.get("/api/plugins/greeter").await).await;
    assert_eq!(
        view["permissions"]["requested"]["memory"][0], "greeted/*",
        "{view}"
    );
    assert_eq!(
        view["permissions"]["granted"]["memory"][0], "greeted/*",
        "{view}"
    );
    for path in ["status", "health", "env", "export", "lint"] {
        let response = daemon.get(&format!("/api/plugins/greeter/{path}")).await;
        assert_eq!(response.status(), 200, "{path}");
    }
    assert_eq!(
        json(daemon.get("/api/plugins/doctor").await).await["ok"],
        true
    );
    let lint = json(daemon.get("/api/plugins/greeter/lint").await).await;
    assert!(
        lint["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f.as_str().unwrap().contains("author")),
        "{lint}"
    );

    // Scaffolding a new project, then refusing to overwrite it.
    let dir = daemon
        .home()
        .join("projects/hello_tool")
        .display()
        .to_string();
    let body = serde_json::json!({ "name": "hello_tool", "language": "rust", "directory": dir });
    let response = daemon.post("/api/plugins/scaffold", body.clone()).await;
    assert_eq!(response.status(), 201);
    assert!(json(response).await["files"].as_array().unwrap().len() >= 4);
    assert_error(
        daemon.post("/api/plugins/scaffold", body).await,
        409,
        "already exists",
    )
    .await;
    let body = serde_json::json!({ "name": "Bad Name" });
    assert_error(
        daemon.post("/api/plugins/scaffold", body).await,
        400,
        "lowercase",
    )
    .await;

    let removed = daemon
        .post(
            "/api/skills/uninstall",
            serde_json::json!({ "name": "greeter" }),
        )
        .await;
    assert_eq!(removed.status(), 200);
    assert_eq!(json(daemon.get("/api/skills").await).await["total"], 0);
}
