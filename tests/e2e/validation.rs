//! Manifests are checked at the door: spawn, bulk spawn, templates, clone
//! and edits refuse unknown keys, a wrong `[model]` and tools or skills that
//! are not installed, with a 400 naming the line, the key and the choices;
//! LibreFang's own keys still load. The example agents of `examples/agents/`
//! spawn as they are.

use crate::harness::{Daemon, assert_error, json};
use crate::plugins::{Publisher, install, repo, trust};

const MODEL: &str = "[model]\nprovider = \"openai\"\nmodel = \"gpt-4o-mini\"\n";

async fn spawn(daemon: &Daemon, manifest: &str) -> reqwest::Response {
    daemon
        .post(
            "/api/agents",
            serde_json::json!({ "manifest_toml": manifest }),
        )
        .await
}

#[tokio::test]
async fn mistakes_are_refused_with_line_key_and_choices() {
    let daemon = Daemon::start().await;

    let typo =
        "name = \"a\"\n[model]\nprovider = \"openai\"\nprovder = \"openai\"\nmodel = \"m\"\n";
    assert_error(
        spawn(&daemon, typo).await,
        400,
        "line 4: unknown key `provder` in [model]; did you mean `provider`?",
    )
    .await;
    assert_error(
        spawn(&daemon, &format!("name = \"a\"\ndescrption = \"x\"\n{MODEL}")).await,
        400,
        "line 2: unknown key `descrption` at the top level; did you mean `description`? valid keys: name, version",
    )
    .await;
    assert_error(
        spawn(
            &daemon,
            &format!("name = \"a\"\n{MODEL}[capabilities]\ntool = []\n"),
        )
        .await,
        400,
        "line 6: unknown key `tool` in [capabilities]; did you mean `tools`?",
    )
    .await;
    assert_error(
        spawn(&daemon, &format!("name = \"a\"\ntools = [\"file_read\"]\n{MODEL}")).await,
        400,
        "line 2: top-level `tools` is LibreFang's table of per-tool settings; the tools an agent may call go in `[capabilities]`",
    )
    .await;
    assert_error(
        spawn(&daemon, "name = \"a\"\n").await,
        400,
        "missing [model] section: add `[model]` with `provider` (one of: ",
    )
    .await;
    assert_error(
        spawn(&daemon, "name = \"a\"\n[model]\nmodel = \"m\"\n").await,
        400,
        "line 2: [model] has no `provider`; valid providers: ",
    )
    .await;
    assert_error(
        spawn(&daemon, "name = \"a\"\n[model]\nprovider = \"openai\"\n").await,
        400,
        "line 2: [model] has no `model`",
    )
    .await;
    let unknown = spawn(
        &daemon,
        "name = \"a\"\n[model]\nprovider = \"opneai\"\nmodel = \"m\"\n",
    )
    .await;
    let body = json(unknown).await;
    let message = body["error"].as_str().unwrap_or_default();
    assert!(
        message.contains(
            "line 3: unknown provider `opneai`; did you mean `openai`? valid providers: "
        ) && message.contains("openai-compatible"),
        "{body}"
    );
    assert_error(
        spawn(
            &daemon,
            &format!("name = \"a\"\n{MODEL}[capabilities]\ntools = [\"notify_ownr\"]\n"),
        )
        .await,
        400,
        "line 6: tool `notify_ownr` is not installed; did you mean `notify_owner`? installed and built-in tools: ",
    )
    .await;
    assert_error(
        spawn(
            &daemon,
            &format!("name = \"a\"\nskills = [\"greeter\"]\n{MODEL}"),
        )
        .await,
        400,
        "line 2: skill `greeter` is not installed; installed skills: none",
    )
    .await;
    // Several mistakes are reported together.
    let both = spawn(
        &daemon,
        "name = \"a\"\ncolour = 1\n[model]\nprovider = \"openai\"\n",
    )
    .await;
    let body = json(both).await;
    let message = body["error"].as_str().unwrap_or_default();
    assert!(
        message.contains("`colour`") && message.contains("has no `model`"),
        "{body}"
    );

    // Bulk spawns say it per agent.
    let bulk = json(
        daemon
            .post(
                "/api/agents/bulk",
                serde_json::json!({ "agents": [{ "manifest_toml": typo }] }),
            )
            .await,
    )
    .await;
    assert!(
        bulk["results"][0]["error"]
            .as_str()
            .is_some_and(|e| e.contains("did you mean `provider`")),
        "{bulk}"
    );
    let agents = json(daemon.get("/api/agents").await).await;
    assert_eq!(agents["total"], 0, "nothing half-made: {agents}");
}

#[tokio::test]
async fn librefang_manifests_keep_loading() {
    let daemon = Daemon::start().await;
    // Keys LibreFang defines that Talon does not implement are accepted
    // (and ignored); `[model] name` is LibreFang's name for `model`, and
    // other `[model]` keys are LibreFang's provider parameters.
    let manifest = "name = \"lf\"\nversion = \"0.1.0\"\nprofile = \"minimal\"\nsession_mode = \"persistent\"\n\
                    priority = \"normal\"\nmax_history_messages = 40\n\
                    [model]\nprovider = \"openai\"\nname = \"gpt-4o-mini\"\ntemperature = 0.2\ntop_p = 0.9\n\
                    max_completion_tokens = 100\n\
                    [resources]\nmax_cpu_time_ms = 10000\n[autonomous]\nmax_iterations = 10\n\
                    [capabilities]\ntools = [\"notify_owner\"]\nshell = [\"ls\"]\nagent_spawn = false\n\
                    [tools.notify_owner]\nanything = 1\n[metadata.routing]\naliases = [\"x\"]\n";
    let response = spawn(&daemon, manifest).await;
    assert_eq!(response.status(), 201, "{}", json(response).await);
    let agents = json(daemon.get("/api/agents").await).await;
    assert_eq!(agents["items"][0]["model_name"], "gpt-4o-mini", "{agents}");
}

#[tokio::test]
async fn templates_clones_and_edits_pass_the_same_door() {
    let daemon = Daemon::start().await;
    let templates = daemon.home().join("templates");
    std::fs::create_dir_all(&templates).unwrap();
    std::fs::write(
        templates.join("sheets.toml"),
        format!("name = \"sheets\"\n{MODEL}[capabilities]\ntools = [\"spreadsheet\"]\n"),
    )
    .unwrap();
    assert_error(
        daemon
            .post("/api/agents", serde_json::json!({ "template": "sheets" }))
            .await,
        400,
        "line 6: tool `spreadsheet` is not installed",
    )
    .await;

    // An agent whose tool is uninstalled after it was spawned.
    let publisher = Publisher::new(&daemon);
    trust(&daemon, &publisher).await;
    let package = publisher.pack(&daemon, "plugins/toolbox", "toolbox");
    assert_eq!(
        install(&daemon, &package, serde_json::json!("none"))
            .await
            .status(),
        201
    );
    let response = spawn(
        &daemon,
        &format!("name = \"timer\"\n{MODEL}[capabilities]\ntools = [\"time_now\"]\n"),
    )
    .await;
    assert_eq!(response.status(), 201);
    let agent = json(response).await["agent_id"]
        .as_str()
        .unwrap()
        .to_string();
    let removed = daemon
        .post(
            "/api/plugins/uninstall",
            serde_json::json!({ "name": "toolbox" }),
        )
        .await;
    assert_eq!(removed.status(), 200);

    // What the agent already had does not block an unrelated edit...
    let patched = daemon
        .request(reqwest::Method::PATCH, &format!("/api/agents/{agent}"))
        .json(&serde_json::json!({ "description": "tells the time" }))
        .send()
        .await
        .unwrap();
    assert_eq!(patched.status(), 200);
    // ...but an edit may not bring a new mistake.
    assert_error(
        daemon
            .put(
                &format!("/api/agents/{agent}/tools"),
                serde_json::json!({ "tools": ["time_now", "uuid"] }),
            )
            .await,
        400,
        "tool `uuid` is not installed",
    )
    .await;
    assert_error(
        daemon
            .put(
                &format!("/api/agents/{agent}/model"),
                serde_json::json!({ "model": "x", "provider": "nobody" }),
            )
            .await,
        400,
        "nobody",
    )
    .await;
    // A clone is a new agent: it passes the door like a spawn.
    assert_error(
        daemon
            .post(
                &format!("/api/agents/{agent}/clone"),
                serde_json::json!({ "new_name": "copy" }),
            )
            .await,
        400,
        "tool `time_now` is not installed",
    )
    .await;
    let without_tools = daemon
        .post(
            &format!("/api/agents/{agent}/clone"),
            serde_json::json!({ "new_name": "copy", "include_tools": false }),
        )
        .await;
    assert_eq!(without_tools.status(), 201);
}

/// The tools the example agents use, installed (unless the daemon already
/// has them) with what they request.
async fn install_missing(daemon: &Daemon, tools: &[&str]) {
    let have = json(daemon.get("/api/tools").await).await;
    let installed: Vec<&str> = have["tools"]
        .as_array()
        .map(|t| t.iter().filter_map(|t| t["name"].as_str()).collect())
        .unwrap_or_default();
    let missing: Vec<&&str> = tools.iter().filter(|t| !installed.contains(t)).collect();
    if missing.is_empty() {
        return;
    }
    let publisher = Publisher::new(daemon);
    trust(daemon, &publisher).await;
    for tool in missing {
        let package = publisher.pack(daemon, &format!("plugins/{tool}"), tool);
        let response = install(daemon, &package, serde_json::json!("all")).await;
        assert_eq!(response.status(), 201, "{tool}: {}", json(response).await);
    }
}

#[tokio::test]
async fn every_example_agent_spawns() {
    let daemon = Daemon::start().await;
    install_missing(
        &daemon,
        &["file_read", "file_write", "file_list", "web_fetch"],
    )
    .await;
    let dir = repo().join("examples/agents");
    let mut spawned = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("toml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let response = spawn(&daemon, &text).await;
        let status = response.status();
        let body = json(response).await;
        assert_eq!(status, 201, "{}: {body}", path.display());
        spawned.push(body["name"].as_str().unwrap_or_default().to_string());
    }
    spawned.sort();
    assert_eq!(spawned, ["librefang-style", "local", "notes", "researcher"]);
}
