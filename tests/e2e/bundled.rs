//! The plugins the binary ships: installed and granted on a fresh home,
//! usable by the README's agent unchanged, removable for good (until
//! restored), revocable in config, replaced when the binary's build differs from the installed one,
//! and never trusted when the file on disk is not the binary's.

use serde_json::json;
use talon_test_llm::{Reply, TestLlm};

use crate::harness::{Daemon, assert_error, json};

const SHIPPED: [&str; 5] = [
    "file_list",
    "file_read",
    "file_write",
    "toolbox",
    "web_fetch",
];
const TOOLS: [&str; 8] = [
    "calculate",
    "file_list",
    "file_read",
    "file_write",
    "json_query",
    "time_now",
    "uuid",
    "web_fetch",
];

async fn tool_names(daemon: &Daemon) -> Vec<String> {
    let tools = json(daemon.get("/api/tools").await).await;
    let mut names: Vec<String> = tools["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect();
    names.sort();
    names
}

async fn plugin_names(daemon: &Daemon) -> Vec<String> {
    let plugins = json(daemon.get("/api/plugins").await).await;
    let list = plugins["plugins"]
        .as_array()
        .or(plugins.as_array())
        .unwrap()
        .clone();
    let mut names: Vec<String> = list
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_string())
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn a_fresh_home_has_the_tools_and_the_readme_agent_reads_a_file() {
    let llm = TestLlm::start().await;
    let daemon = Daemon::start_bundled("", &[("OPENAI_API_KEY", "sk-test")]).await;
    assert_eq!(tool_names(&daemon).await, TOOLS);
    for name in SHIPPED {
        let plugin = json(daemon.get(&format!("/api/plugins/{name}")).await).await;
        assert_eq!(plugin["status"], "loaded", "{plugin}");
        assert_eq!(plugin["source"], "bundled", "{plugin}");
        assert_eq!(plugin["signature"]["status"], "bundled", "{plugin}");
        // Granted what the manifest documents (web_fetch: any public host).
        assert_eq!(
            plugin["permissions"]["granted"], plugin["permissions"]["requested"],
            "{plugin}"
        );
    }
    let web_fetch = json(daemon.get("/api/plugins/web_fetch").await).await;
    assert_eq!(web_fetch["permissions"]["granted"]["network"], json!(["*"]));

    // The README's agent, verbatim, with the openai provider pointed at the
    // test server.
    let set = daemon
        .put(
            "/api/providers/openai/url",
            json!({ "base_url": llm.openai_url() }),
        )
        .await;
    assert_eq!(set.status(), 200);
    let agent = daemon
        .spawn_manifest(
            "name = \"helper\"\n[model]\nprovider = \"openai\"\nmodel = \"gpt-4o-mini\"\n[capabilities]\ntools = [\"file_read\"]\n"
                .to_string(),
        )
        .await;
    let put = daemon
        .put(
            &format!("/api/agents/{agent}/files/notes.txt"),
            json!({ "content": "the bundled tools work" }),
        )
        .await;
    assert!(put.status().is_success(), "{}", put.status());
    llm.push_all([
        Reply::tool_call("file_read", r#"{"path": "notes.txt"}"#),
        Reply::text("It says the bundled tools work."),
    ]);
    let answer = json(daemon.message(&agent, "What do my notes say?").await).await;
    assert!(
        answer["response"]
            .as_str()
            .unwrap_or_default()
            .contains("bundled tools work"),
        "{answer}"
    );
    let tool_message = llm.last_request().unwrap().body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["role"] == "tool")
        .cloned()
        .expect("the tool's result went back to the model");
    assert!(
        tool_message["content"]
            .to_string()
            .contains("the bundled tools work"),
        "{tool_message}"
    );

    // The built-in templates only name tools that exist.
    let tools = tool_names(&daemon).await;
    for template in ["coder", "researcher"] {
        let text = std::fs::read_to_string(
            crate::plugins::repo().join(format!("host/kernel/templates/{template}.toml")),
        )
        .unwrap();
        let manifest: toml::Value = toml::from_str(&text).unwrap();
        for tool in manifest["capabilities"]["tools"].as_array().unwrap() {
            let tool = tool.as_str().unwrap();
            assert!(tools.iter().any(|t| t == tool), "{template} calls {tool}");
        }
    }
}

#[tokio::test]
async fn removed_stays_removed_and_disabled_stays_disabled_across_restarts() {
    let mut daemon = Daemon::start_bundled("", &[]).await;
    let removed = daemon
        .post("/api/plugins/uninstall", json!({ "name": "web_fetch" }))
        .await;
    assert_eq!(removed.status(), 200);
    let disabled = daemon
        .post("/api/plugins/file_list/disable", json!({}))
        .await;
    assert_eq!(disabled.status(), 200);
    assert_eq!(daemon.terminate().code(), Some(0));
    daemon.restart();
    assert!(
        !plugin_names(&daemon)
            .await
            .contains(&"web_fetch".to_string())
    );
    let file_list = json(daemon.get("/api/plugins/file_list").await).await;
    assert_eq!(file_list["status"], "disabled", "{file_list}");
    assert!(!tool_names(&daemon).await.contains(&"web_fetch".to_string()));

    // Removed with the daemon stopped: the same.
    assert_eq!(daemon.terminate().code(), Some(0));
    let out = daemon.cli(&["plugin", "remove", "toolbox"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    daemon.restart();
    assert_eq!(
        plugin_names(&daemon).await,
        ["file_list", "file_read", "file_write"]
    );
}

#[tokio::test]
async fn a_removed_plugin_is_restored_by_name_and_works() {
    let mut daemon = Daemon::start_bundled(
        "[tool_invoke]\nenabled = true\nallowlist = [\"calculate\"]\n",
        &[],
    )
    .await;
    let out = daemon.cli(&["plugin", "remove", "toolbox"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("talon plugin restore toolbox"), "{stdout}");
    assert_eq!(daemon.terminate().code(), Some(0));
    daemon.restart();
    assert!(!plugin_names(&daemon).await.contains(&"toolbox".to_string()));
    let (status, _) =
        crate::plugins::invoke(&daemon, "calculate", json!({"expression": "6*7"})).await;
    assert_eq!(status, 404);

    // Names the binary does not ship, hostile ones included, are a 404
    // listing those it ships; an installed one is a 409.
    assert_error(
        daemon.post("/api/plugins/toolbx/restore", json!({})).await,
        404,
        "toolbox",
    )
    .await;
    assert_error(
        daemon
            .post("/api/plugins/..%2Fetc/restore", json!({}))
            .await,
        404,
        "no bundled plugin",
    )
    .await;
    let long = format!("/api/plugins/{}/restore", "a".repeat(5000));
    let status = daemon.post(&long, json!({})).await.status();
    assert!(status.is_client_error(), "{status}");
    assert_error(
        daemon
            .post("/api/plugins/file_read/restore", json!({}))
            .await,
        409,
        "installed already",
    )
    .await;

    let out = daemon.cli(&["plugin", "restore", "toolbox"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("restored toolbox"), "{stdout}");
    let toolbox = json(daemon.get("/api/plugins/toolbox").await).await;
    assert_eq!(toolbox["source"], "bundled", "{toolbox}");
    assert_eq!(toolbox["signature"]["status"], "bundled", "{toolbox}");
    let (status, answer) =
        crate::plugins::invoke(&daemon, "calculate", json!({"expression": "6*7"})).await;
    assert_eq!(status, 200, "{answer}");
    assert!(answer.to_string().contains("42"), "{answer}");
    // Restored for good: the next start keeps it (and upgrades it with the binary).
    assert_eq!(daemon.terminate().code(), Some(0));
    daemon.restart();
    assert_eq!(plugin_names(&daemon).await, SHIPPED);

    // Left out by the config: the config is what to change, and the error says so.
    let removed = daemon
        .post("/api/plugins/uninstall", json!({ "name": "web_fetch" }))
        .await;
    assert_eq!(json(removed).await["source"], "bundled");
    let set = daemon
        .post(
            "/api/config/set",
            json!({ "path": "plugins.bundled_exclude", "value": ["web_fetch"] }),
        )
        .await;
    assert_eq!(set.status(), 200);
    assert_error(
        daemon
            .post("/api/plugins/web_fetch/restore", json!({}))
            .await,
        409,
        "bundled_exclude",
    )
    .await;
    let out = daemon.cli(&["plugin", "restore", "web_fetch"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("bundled_exclude"));
}

#[tokio::test]
async fn config_leaves_them_out_and_brings_them_back_at_once() {
    let daemon = Daemon::start_bundled("[plugins]\nbundled = false\n", &[]).await;
    let tools = json(daemon.get("/api/tools").await).await;
    assert_eq!(tools["total"], 0, "{tools}");
    drop(daemon);

    let mut daemon = Daemon::start_bundled("", &[]).await;
    let set = daemon
        .post(
            "/api/config/set",
            json!({ "path": "plugins.bundled_exclude", "value": ["web_fetch", "toolbox"] }),
        )
        .await;
    assert_eq!(set.status(), 200);
    // At once, and still so after a restart.
    let three = ["file_list", "file_read", "file_write"];
    assert_eq!(plugin_names(&daemon).await, three);
    assert!(!tool_names(&daemon).await.contains(&"web_fetch".to_string()));
    assert_eq!(daemon.terminate().code(), Some(0));
    daemon.restart();
    assert_eq!(plugin_names(&daemon).await, three);
    // Left out by config is not removed for good: back when the config says
    // so, at once, through an edit of the file and a reload too.
    let config = std::fs::read_to_string(daemon.config_file()).unwrap();
    assert!(
        config.contains("bundled_exclude = [\"web_fetch\", \"toolbox\"]"),
        "{config}"
    );
    std::fs::write(
        daemon.config_file(),
        config.replace(
            "bundled_exclude = [\"web_fetch\", \"toolbox\"]",
            "bundled_exclude = []",
        ),
    )
    .unwrap();
    let reload = daemon.post("/api/config/reload", json!({})).await;
    assert_eq!(reload.status(), 200);
    assert_eq!(plugin_names(&daemon).await, SHIPPED);
    assert_eq!(tool_names(&daemon).await, TOOLS);
}

/// A package of the installed file_read with another version, unsigned.
fn older_file_read(daemon: &Daemon) -> (Vec<u8>, String) {
    let path = daemon.home().join("plugins/file_read.talon");
    let installed = talon_runtime::Package::parse(&std::fs::read(path).unwrap()).unwrap();
    let mut manifest = installed.manifest.clone();
    manifest.version = "0.0.9".into();
    let bytes = talon_runtime::Package::build(&manifest, &installed.component, None).unwrap();
    let digest = talon_runtime::Package::parse(&bytes).unwrap().digest;
    (bytes, digest)
}

#[tokio::test]
async fn a_different_build_is_replaced_and_a_changed_file_is_not_trusted() {
    let mut daemon = Daemon::start_bundled("", &[]).await;
    let shipped = json(daemon.get("/api/plugins/file_read").await).await;
    let (older, older_digest) = older_file_read(&daemon);
    let package = daemon.home().join("plugins/file_read.talon");

    // A file on disk that is not the binary's is not trusted.
    std::fs::write(&package, &older).unwrap();
    let reload = daemon
        .post("/api/plugins/file_read/reload", json!({}))
        .await;
    assert_eq!(reload.status(), 403, "{}", json(reload).await);
    // Still the shipped build meanwhile; the next start puts the binary's back.
    assert_eq!(
        json(daemon.get("/api/plugins/file_read").await).await["status"],
        "loaded"
    );
    assert_eq!(daemon.terminate().code(), Some(0));
    daemon.restart();
    let repaired = json(daemon.get("/api/plugins/file_read").await).await;
    assert_eq!(repaired["status"], "loaded", "{repaired}");
    assert_eq!(repaired["digest"], shipped["digest"]);

    // As if an older binary had installed 0.0.9: its file and its record.
    assert_eq!(daemon.terminate().code(), Some(0));
    std::fs::write(&package, &older).unwrap();
    {
        use redb::ReadableDatabase;
        let table: redb::TableDefinition<&str, &[u8]> = redb::TableDefinition::new("plugins.v1");
        let db = redb::Database::create(daemon.home().join("data/talon.redb")).unwrap();
        let mut record: serde_json::Value = {
            let tx = db.begin_read().unwrap();
            let t = tx.open_table(table).unwrap();
            serde_json::from_slice(t.get("file_read").unwrap().unwrap().value()).unwrap()
        };
        assert_eq!(record["source"], "bundled");
        record["digest"] = json!(older_digest);
        let tx = db.begin_write().unwrap();
        tx.open_table(table)
            .unwrap()
            .insert("file_read", serde_json::to_vec(&record).unwrap().as_slice())
            .unwrap();
        tx.commit().unwrap();
    }
    daemon.restart();
    let upgraded = json(daemon.get("/api/plugins/file_read").await).await;
    assert_eq!(upgraded["status"], "loaded", "{upgraded}");
    assert_eq!(upgraded["version"], "0.1.0");
    assert_eq!(upgraded["digest"], shipped["digest"]);
    assert_eq!(upgraded["installed_at"], shipped["installed_at"]);
    let audit = json(daemon.get("/api/audit/recent?limit=50").await).await;
    assert!(
        audit["entries"].as_array().unwrap().iter().any(|e| {
            let details = e["details"].as_str().unwrap_or_default();
            details.contains("\"upgrade\":true") && details.contains("file_read")
        }),
        "{audit}"
    );
}
