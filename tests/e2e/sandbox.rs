//! The sandbox end to end: hostile plugins (loops, memory bombs, deep
//! recursion, traps, path escapes, forbidden hosts) and hostile packages
//! (tampered, untrusted, malformed) are stopped while the daemon keeps
//! serving.

use base64::Engine as _;

use crate::harness::{Daemon, assert_error, json};
use crate::plugins::{
    OPEN_INVOKE, Publisher, component, install, invoke, manifest, run_ok, spawn_agent_with_tools,
    trust,
};

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

/// The total size of the regular files under `dir`.
fn tree_size(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .map(|e| {
            let meta = e.path().symlink_metadata().unwrap();
            match meta.is_dir() {
                true => tree_size(&e.path()),
                false => meta.len(),
            }
        })
        .sum()
}

#[tokio::test]
async fn writes_past_the_workspace_quota_are_refused_and_what_came_before_is_intact() {
    const MIB: u64 = 1 << 20;
    let config = format!("{OPEN_INVOKE}[plugins]\nmax_workspace_mib_per_agent = 4\n");
    let daemon = Daemon::start_with_config(&config).await;
    let publisher = Publisher::new(&daemon);
    trust(&daemon, &publisher).await;
    let package = publisher.pack(&daemon, "tests/plugins/hostile", "hostile");
    // Packing filled the compile cache; emptied, the install compiles.
    std::fs::remove_dir_all(daemon.home().join("cache/components")).unwrap();
    let grant = serde_json::json!({ "filesystem": "workspace" });
    assert_eq!(install(&daemon, &package, grant).await.status(), 201);
    // The install compiled the component in a child process (the daemon's
    // heap never held the compiler's memory).
    assert!(
        daemon
            .log()
            .contains("component compiled in a child process"),
        "{}",
        daemon.log()
    );
    let agent = spawn_agent_with_tools(&daemon, "filler", &["fill", "read"]).await;
    let workspace = daemon.home().join("workspaces").join(&agent);
    let put = daemon
        .put(
            &format!("/api/agents/{agent}/files/keep.txt"),
            serde_json::json!({ "content": "before" }),
        )
        .await;
    assert!(put.status().is_success(), "{}", put.status());
    let fill = |args: serde_json::Value| {
        let daemon = &daemon;
        let agent = &agent;
        async move {
            let response = daemon
                .post(&format!("/api/tools/fill/invoke?agent_id={agent}"), args)
                .await;
            (response.status().as_u16(), json(response).await)
        }
    };

    // Within the quota: written.
    let (status, body) = fill(serde_json::json!({ "path": "a.bin", "mb": 2 })).await;
    assert_eq!(status, 200, "{body}");

    // Past it: the guest's write fails with ENOSPC and the call is named.
    let (status, body) = fill(serde_json::json!({ "path": "b.bin", "mb": 64 })).await;
    assert_eq!(
        (status, body["kind"].as_str()),
        (422, Some("workspace_quota")),
        "{body}"
    );
    let error = body["error"].as_str().unwrap();
    assert!(
        error.contains("4194304 bytes") && error.to_lowercase().contains("space"),
        "{error}"
    );
    assert!(
        tree_size(&workspace) <= 4 * MIB,
        "{}",
        tree_size(&workspace)
    );

    // Growing a file without writing it (a sparse file) counts too.
    let (status, body) =
        fill(serde_json::json!({ "path": "c.bin", "mb": 0, "grow_mb": 1024 })).await;
    assert_eq!(
        (status, body["kind"].as_str()),
        (422, Some("workspace_quota")),
        "{body}"
    );
    assert!(
        tree_size(&workspace) <= 4 * MIB,
        "{}",
        tree_size(&workspace)
    );

    // The daemon answers, and what was written before is intact.
    assert_eq!(daemon.get("/api/health").await.status(), 200);
    let keep = daemon
        .get(&format!("/api/agents/{agent}/files/keep.txt"))
        .await;
    assert_eq!(keep.status(), 200);
    assert!(keep.text().await.unwrap().contains("before"));
    assert_eq!(
        std::fs::metadata(workspace.join("a.bin")).unwrap().len(),
        2 * MIB
    );

    // The file API is held to the same quota: 413, nothing written.
    let big = "y".repeat(1_500_000);
    assert_error(
        daemon
            .put(
                &format!("/api/agents/{agent}/files/big.txt"),
                serde_json::json!({ "content": big }),
            )
            .await,
        413,
        "max_workspace_mib_per_agent",
    )
    .await;
    assert!(!workspace.join("big.txt").exists());

    // Space freed between calls is counted again by the next call.
    let delete = daemon
        .request(
            reqwest::Method::DELETE,
            &format!("/api/agents/{agent}/files/a.bin"),
        )
        .send()
        .await
        .unwrap();
    assert!(delete.status().is_success(), "{}", delete.status());
    let (status, body) = fill(serde_json::json!({ "path": "d.bin", "mb": 2 })).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        tree_size(&workspace) <= 4 * MIB,
        "{}",
        tree_size(&workspace)
    );
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

/// A tool call's status, `kind` and body, with its `Retry-After` header.
async fn call(
    daemon: &Daemon,
    tool: &str,
    args: serde_json::Value,
) -> (u16, serde_json::Value, Option<String>) {
    let response = daemon
        .post(&format!("/api/tools/{tool}/invoke"), args)
        .await;
    let status = response.status().as_u16();
    let retry = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    (status, json(response).await, retry)
}

#[tokio::test]
async fn hostile_plugins_of_every_class_are_refused_by_name_while_health_answers() {
    let config = format!(
        "{OPEN_INVOKE}[rate_limit]\nexempt_loopback = true\n\
         [plugins]\nmax_instances_per_plugin = 2\nslot_wait_ms = 200\nmax_memory_keys_per_agent = 3\n"
    );
    let mut daemon = Daemon::start_with_config(&config).await;
    let publisher = Publisher::new(&daemon);
    trust(&daemon, &publisher).await;
    let hostile = publisher.pack(&daemon, "tests/plugins/hostile", "hostile");
    assert_eq!(
        install(&daemon, &hostile, serde_json::json!("all"))
            .await
            .status(),
        201
    );

    // Guests that spend their time in host calls are preempted: health
    // answers while they spin; past the plugin's two slots calls are
    // refused at once with 503 and Retry-After, not queued forever.
    let spinners: Vec<_> = (0..4)
        .map(|_| {
            let request = daemon
                .request(reqwest::Method::POST, "/api/tools/spin_in_host/invoke")
                .json(&serde_json::json!({}));
            tokio::spawn(async move { request.send().await.unwrap() })
        })
        .collect();
    for _ in 0..20 {
        assert_eq!(daemon.get("/api/health").await.status(), 200);
    }
    let mut kinds = Vec::new();
    for spinner in spinners {
        let response = spinner.await.unwrap();
        let status = response.status().as_u16();
        let retry = response.headers().get("retry-after").cloned();
        let body = json(response).await;
        match status {
            503 => assert!(retry.is_some(), "503 without Retry-After: {body}"),
            422 => {}
            other => panic!("spin_in_host answered {other}: {body}"),
        }
        kinds.push(body["kind"].as_str().unwrap_or("").to_string());
    }
    kinds.sort();
    assert!(kinds.contains(&"busy".to_string()), "{kinds:?}");
    assert!(kinds.contains(&"timeout".to_string()), "{kinds:?}");

    // Host resources, results, exits: each refused by name.
    let (status, body, _) = call(&daemon, "fields_bomb", serde_json::json!({ "kib": 1 })).await;
    assert_eq!(
        (status, body["kind"].as_str()),
        (422, Some("resource_limit")),
        "{body}"
    );
    let (status, body, _) = call(&daemon, "huge_result", serde_json::json!({ "mb": 2 })).await;
    assert_eq!(
        (status, body["kind"].as_str()),
        (422, Some("result_too_large")),
        "{body}"
    );
    let (status, body, _) = call(&daemon, "exit", serde_json::json!({ "code": 3 })).await;
    assert_eq!(
        (status, body["kind"].as_str()),
        (422, Some("exited")),
        "{body}"
    );
    assert!(body["error"].as_str().unwrap().contains('3'), "{body}");

    // A plugin's share of an agent's memory is capped.
    let agent = spawn_agent_with_tools(&daemon, "keeper", &["remember"]).await;
    for i in 0..4 {
        let response = daemon
            .post(
                &format!("/api/tools/remember/invoke?agent_id={agent}"),
                serde_json::json!({ "key": format!("own/{i}"), "value": "v" }),
            )
            .await;
        let status = response.status().as_u16();
        let body = json(response).await;
        if i < 3 {
            assert_eq!(status, 200, "key {i}: {body}");
        } else {
            assert_eq!(status, 403, "{body}");
            assert!(
                body["error"]
                    .as_str()
                    .unwrap()
                    .contains("memory quota exceeded"),
                "{body}"
            );
        }
    }

    // A log flood is cut, and a newline in a message forges no line.
    let (status, body, _) = call(&daemon, "log_flood", serde_json::json!({ "lines": 5000 })).await;
    assert_eq!(status, 200, "{body}");
    let log = daemon.log();
    assert!(
        !log.lines().any(|l| l.starts_with("FORGED")),
        "a forged line reached the log"
    );
    let flood_lines = log.matches("admin login accepted").count();
    assert!(
        flood_lines > 0 && flood_lines < 5000,
        "{flood_lines} flood lines logged"
    );

    // A skill that blocks in instructions() at load is refused, in time.
    let stuck = publisher.pack(&daemon, "tests/plugins/stuck", "stuck");
    let bytes = std::fs::read(&stuck).unwrap();
    let response = daemon
        .post(
            "/api/plugins/install",
            serde_json::json!({
                "package": base64::engine::general_purpose::STANDARD.encode(&bytes),
                "grant": "all",
                "settings": { "block": "instructions" },
            }),
        )
        .await;
    assert!(response.status().is_client_error(), "{}", response.status());
    assert_eq!(daemon.get("/api/health").await.status(), 200);
    assert_eq!(
        install(&daemon, &stuck, serde_json::json!("all"))
            .await
            .status(),
        201
    );

    // The daemon's own address is out of reach even with a literal grant.
    let web_fetch = publisher.pack(&daemon, "plugins/web_fetch", "web_fetch");
    let own = daemon.base_url().trim_start_matches("http://").to_string();
    let grant = serde_json::json!({ "network": [own.clone()] });
    assert_eq!(install(&daemon, &web_fetch, grant).await.status(), 201);
    let (status, body, _) = call(
        &daemon,
        "web_fetch",
        serde_json::json!({ "url": format!("http://{own}/api/config") }),
    )
    .await;
    assert_eq!(status, 403, "{body}");

    // Every hostile package installed, the daemon restarts cleanly.
    assert_eq!(daemon.terminate().code(), Some(0));
    daemon.restart();
    for name in ["hostile", "stuck", "web_fetch"] {
        let plugin = json(daemon.get(&format!("/api/plugins/{name}")).await).await;
        assert_eq!(plugin["status"], "loaded", "{plugin}");
    }
    let (status, body, _) = call(&daemon, "echo", serde_json::json!({ "still": "here" })).await;
    assert_eq!(status, 200, "{body}");
}
