//! Plugins end to end, as an author and an operator use them: keygen, pack,
//! verify, install with grants, invoke over HTTP, restart, uninstall, in
//! Rust, Python and JavaScript. Hostile plugins and packages: `sandbox.rs`.

use std::path::{Path, PathBuf};

use base64::Engine as _;

use crate::harness::{Daemon, assert_error, json};

pub(crate) const OPEN_INVOKE: &str = "[tool_invoke]\nenabled = true\nallowlist = [\"*\"]\n";

pub(crate) fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A component built by `scripts/build-plugins`.
pub(crate) fn component(name: &str) -> String {
    let path = repo().join("target/plugins").join(format!("{name}.wasm"));
    assert!(
        path.exists(),
        "{} is missing: run scripts/build-plugins",
        path.display()
    );
    path.display().to_string()
}

pub(crate) fn manifest(dir: &str) -> String {
    repo().join(dir).join("talon.toml").display().to_string()
}

pub(crate) fn run_ok(daemon: &Daemon, args: &[&str]) -> String {
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
    pub(crate) dir: tempfile::TempDir,
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

pub(crate) async fn invoke(
    daemon: &Daemon,
    tool: &str,
    args: serde_json::Value,
) -> (u16, serde_json::Value) {
    let response = daemon
        .post(&format!("/api/tools/{tool}/invoke"), args)
        .await;
    (response.status().as_u16(), json(response).await)
}

pub(crate) async fn spawn_agent_with_tools(daemon: &Daemon, name: &str, tools: &[&str]) -> String {
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
        // The install compiles the component (packing above compiled it
        // into this home's cache: emptied, so the daemon compiles again);
        // meanwhile its status says so.
        let _ = std::fs::remove_dir_all(daemon.home().join("cache"));
        let install = {
            let (bin, home, package) = (
                crate::harness::talon_bin(),
                daemon.home().to_path_buf(),
                package.clone(),
            );
            std::thread::spawn(move || {
                std::process::Command::new(bin)
                    .arg("--home")
                    .arg(home)
                    .args(["plugin", "install", &package, "--grant-all"])
                    .env_remove("TALON_URL")
                    .output()
                    .unwrap()
            })
        };
        let mut seen_compiling = false;
        while !install.is_finished() {
            let status = daemon.get(&format!("/api/plugins/{name}/status")).await;
            if status.status() == 200 {
                let body = json(status).await;
                seen_compiling |= body["status"] == "compiling" && body["compiling_ms"].is_u64();
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        let out = install.join().unwrap();
        assert!(out.status.success(), "{out:?}");
        let installed = String::from_utf8_lossy(&out.stdout).into_owned();
        if name != "word_count_rust" {
            // Python and JavaScript components take seconds to compile.
            assert!(seen_compiling, "{name} was never seen compiling");
        }
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
        events.iter().filter(|e| **e == "plugin_installed").count(),
        3,
        "{events:?}"
    );
    assert!(events.contains(&"plugin_uninstalled"), "{events:?}");
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
    // A misspelt tool is a 404, not "closed".
    assert_error(
        daemon
            .post("/api/tools/word_count_rusty/invoke", serde_json::json!({}))
            .await,
        404,
        "word_count_rusty",
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
    let body = serde_json::json!({ "name": "hello_tool", "language": "rust", "directory": "mine/hello_tool" });
    let response = daemon.post("/api/plugins/scaffold", body.clone()).await;
    assert_eq!(response.status(), 201);
    assert!(json(response).await["files"].as_array().unwrap().len() >= 4);
    assert!(
        daemon
            .home()
            .join("plugin-projects/mine/hello_tool/talon.toml")
            .is_file()
    );
    // Only under the home's plugin-projects/: not elsewhere on the machine.
    let outside = tempfile::tempdir().unwrap();
    for directory in [
        outside.path().display().to_string(),
        "../escape".to_string(),
        "a/../../b".to_string(),
        "tab\there".to_string(),
    ] {
        let body = serde_json::json!({ "name": "hello_tool", "directory": directory });
        assert_error(
            daemon.post("/api/plugins/scaffold", body).await,
            400,
            "plugin-projects",
        )
        .await;
    }
    assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 0);
    assert!(!daemon.home().join("escape").exists());
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
