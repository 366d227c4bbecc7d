//! Grants people understand: `talon plugin install` shows what a package
//! requests and never installs silently with nothing granted; grants change
//! after install (`talon plugin grant/revoke`, `PUT /api/plugins/{name}/grants`)
//! and a revoke holds from the next call; `[tool_invoke]` takes additions
//! and removals.

use crate::harness::{Daemon, assert_error, json};
use crate::plugins::{OPEN_INVOKE, Publisher, run_ok, spawn_agent_with_tools, trust};

#[tokio::test]
async fn grants_are_shown_asked_for_and_changed_without_reinstalling() {
    let daemon = Daemon::start_with_config(OPEN_INVOKE).await;
    let publisher = Publisher::new(&daemon);
    trust(&daemon, &publisher).await;
    let package = publisher.pack(&daemon, "plugins/file_read", "file_read");

    // Not on a terminal, a plugin that requests permissions needs a decision.
    let refused = daemon.cli(&["plugin", "install", &package]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success());
    assert!(
        stderr.contains("file_read requests:\n  filesystem: the calling agent's workspace")
            && stderr.contains("--grant-all")
            && stderr.contains("--grant '{}'"),
        "{stderr}"
    );
    assert_eq!(daemon.get("/api/plugins/file_read").await.status(), 404);

    // Nothing granted, on purpose.
    let out = run_ok(&daemon, &["plugin", "install", &package, "--grant", "{}"]);
    assert!(out.contains("granted:\n  nothing"), "{out}");
    assert!(out.contains("talon plugin grant file_read"), "{out}");

    let agent = spawn_agent_with_tools(&daemon, "reader", &["file_read"]).await;
    let put = daemon
        .put(
            &format!("/api/agents/{agent}/files/notes.txt"),
            serde_json::json!({ "content": "mine" }),
        )
        .await;
    assert!(put.status().is_success());
    let read = || async {
        let response = daemon
            .post(
                &format!("/api/tools/file_read/invoke?agent_id={agent}"),
                serde_json::json!({ "path": "notes.txt" }),
            )
            .await;
        (response.status().as_u16(), json(response).await)
    };
    let (status, body) = read().await;
    assert_ne!(status, 200, "no filesystem granted: {body}");

    // Granted after install: the next call reads the file.
    let out = run_ok(&daemon, &["plugin", "grant", "file_read", "--filesystem"]);
    assert!(
        out.contains("file_read is granted:\n  filesystem: the calling agent's workspace"),
        "{out}"
    );
    let (status, body) = read().await;
    assert_eq!(status, 200, "{body}");
    assert!(body.to_string().contains("mine"), "{body}");

    // Revoked: the very next call runs without it.
    let out = run_ok(&daemon, &["plugin", "revoke", "file_read", "--all"]);
    assert!(out.contains("file_read is granted:\n  nothing"), "{out}");
    let (status, body) = read().await;
    assert_ne!(status, 200, "revoked: {body}");

    // More than the manifest requests is refused, by the CLI and the API.
    let beyond = daemon.cli(&["plugin", "grant", "file_read", "--network", "example.com"]);
    assert!(!beyond.status.success());
    assert!(
        String::from_utf8_lossy(&beyond.stderr).contains("cannot grant"),
        "{beyond:?}"
    );
    assert_error(
        daemon
            .put(
                "/api/plugins/file_read/grants",
                serde_json::json!({ "grant": { "env": ["HOME"] } }),
            )
            .await,
        400,
        "did not request it",
    )
    .await;
    assert_error(
        daemon
            .put(
                "/api/plugins/file_read/grants",
                serde_json::json!({ "grant": { "filesytem": "workspace" } }),
            )
            .await,
        400,
        "unknown field `filesytem`",
    )
    .await;
    assert_error(
        daemon
            .put(
                "/api/plugins/file_read/grants",
                serde_json::json!({ "grant": 7 }),
            )
            .await,
        400,
        "grant must be \"all\", \"none\" or an object",
    )
    .await;
    assert_error(
        daemon
            .put("/api/plugins/file_read/grants", serde_json::json!({}))
            .await,
        400,
        "grant",
    )
    .await;
    assert_error(
        daemon
            .put(
                "/api/plugins/nothing_here/grants",
                serde_json::json!({ "grant": "all" }),
            )
            .await,
        404,
        "no plugin named nothing_here",
    )
    .await;
    let nothing_named = daemon.cli(&["plugin", "revoke", "file_read"]);
    assert!(
        String::from_utf8_lossy(&nothing_named.stderr).contains("name what to change"),
        "{nothing_named:?}"
    );

    // Over the API, `all` grants what the manifest requests; each change is audited.
    let view = json(
        daemon
            .put(
                "/api/plugins/file_read/grants",
                serde_json::json!({ "grant": "all" }),
            )
            .await,
    )
    .await;
    assert_eq!(
        view["permissions"]["granted"]["filesystem"], "workspace",
        "{view}"
    );
    let (status, _) = read().await;
    assert_eq!(status, 200);
    let audit = json(daemon.get("/api/audit/recent?limit=50").await).await;
    let changes: Vec<&serde_json::Value> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["event_type"] == "plugin_grants_changed")
        .collect();
    assert_eq!(changes.len(), 3, "{audit}");
    assert!(
        changes[0]["details"]
            .as_str()
            .is_some_and(|d| d.contains("\"before\"") && d.contains("\"after\"")),
        "{audit}"
    );
    // A restart keeps the grant.
    let mut daemon = daemon;
    assert!(daemon.terminate().success());
    daemon.restart();
    let plugin = json(daemon.get("/api/plugins/file_read").await).await;
    assert_eq!(
        plugin["permissions"]["granted"]["filesystem"], "workspace",
        "{plugin}"
    );
}

#[tokio::test]
async fn tool_invoke_takes_additions_and_removals() {
    let daemon =
        Daemon::start_with_config("[tool_invoke]\nenabled = true\nallowlist = [\"a\"]\n").await;
    let change = |op: &str, value: serde_json::Value| {
        daemon.post(
            "/api/config/set",
            serde_json::json!({ "path": "tool_invoke.allowlist", "op": op, "value": value }),
        )
    };
    let allowlist = || async {
        json(daemon.get("/api/config").await).await["tool_invoke"]["allowlist"].clone()
    };
    assert_eq!(change("add", serde_json::json!("b")).await.status(), 200);
    assert_eq!(allowlist().await, serde_json::json!(["a", "b"]));
    assert_eq!(
        change("add", serde_json::json!(["b", "c"])).await.status(),
        200
    );
    assert_eq!(allowlist().await, serde_json::json!(["a", "b", "c"]));
    assert_eq!(
        change("remove", serde_json::json!(["a", "c"]))
            .await
            .status(),
        200
    );
    assert_eq!(allowlist().await, serde_json::json!(["b"]));
    // The file says so too, for the next start.
    let text = std::fs::read_to_string(daemon.home().join("config.toml")).unwrap();
    assert!(text.contains("allowlist = [\"b\"]"), "{text}");

    assert_error(
        daemon
            .post(
                "/api/config/set",
                serde_json::json!({ "path": "tool_invoke.enabled", "op": "add", "value": true }),
            )
            .await,
        400,
        "`tool_invoke.enabled` is not a list",
    )
    .await;
    assert_error(
        daemon
            .post(
                "/api/config/set",
                serde_json::json!({ "path": "tool_invoke.allowlist", "op": "append", "value": "x" }),
            )
            .await,
        400,
        "unknown variant `append`",
    )
    .await;
    assert_error(
        daemon
            .post(
                "/api/config/set",
                serde_json::json!({ "path": "tool_invoke.nope", "op": "add", "value": "x" }),
            )
            .await,
        400,
        "unknown config key `tool_invoke.nope`",
    )
    .await;
    assert_error(change("add", serde_json::json!(5)).await, 400, "invalid").await;
    assert_eq!(
        allowlist().await,
        serde_json::json!(["b"]),
        "nothing written"
    );
    let audit = json(daemon.get("/api/audit/recent").await).await;
    assert!(
        audit["entries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["details"] == "removed from tool_invoke.allowlist"),
        "{audit}"
    );
}
