//! Installs, reloads and removals under pressure, end to end: concurrent
//! changes have one winner, uninstalls are final, downgrades need force,
//! packages come only from regular files, `talon plugin run` keeps to trust
//! and grants, clones are whole or absent, and a broken plugin is reported
//! and removable with the daemon running or stopped.

use base64::Engine as _;

use crate::harness::{Daemon, assert_error, json};
use crate::plugins::{Publisher, component, install, manifest, run_ok, trust};

/// A copy of a plugin's manifest with some keys changed, packed with its
/// component: an impostor or an older version of a real plugin.
pub(crate) fn pack_variant(
    daemon: &Daemon,
    publisher: &Publisher,
    dir: &str,
    wasm: &str,
    edits: &[(&str, &str)],
    out_name: &str,
) -> String {
    let mut text = std::fs::read_to_string(manifest(dir)).unwrap();
    for (from, to) in edits {
        assert!(text.contains(from), "{from} in {dir}/talon.toml");
        text = text.replace(from, to);
    }
    let variant = publisher.dir.path().join(format!("{out_name}.toml"));
    std::fs::write(&variant, text).unwrap();
    let out = publisher
        .dir
        .path()
        .join(format!("{out_name}.talon"))
        .display()
        .to_string();
    run_ok(
        daemon,
        &[
            "plugin",
            "pack",
            &variant.display().to_string(),
            &component(wasm),
            "--key",
            &publisher
                .dir
                .path()
                .join("publisher.key")
                .display()
                .to_string(),
            "--out",
            &out,
        ],
    );
    out
}

#[tokio::test]
async fn concurrent_plugin_changes_have_one_winner_and_uninstall_is_final() {
    let mut daemon = Daemon::start().await;
    let publisher = Publisher::new(&daemon);
    trust(&daemon, &publisher).await;
    let file_read = publisher.pack(&daemon, "plugins/file_read", "file_read");
    // Another plugin name offering the same tool name.
    let impostor = pack_variant(
        &daemon,
        &publisher,
        "plugins/file_read",
        "file_read",
        &[("name = \"file_read\"", "name = \"impostor\"")],
        "impostor",
    );
    let all = serde_json::json!("all");
    let (a, b) = tokio::join!(
        install(&daemon, &file_read, all.clone()),
        install(&daemon, &impostor, all.clone())
    );
    let winner = if a.status() == 201 {
        "file_read"
    } else {
        "impostor"
    };
    let mut statuses = [a.status().as_u16(), b.status().as_u16()];
    statuses.sort();
    assert_eq!(
        statuses,
        [201, 409],
        "one of two packages claiming one tool wins"
    );
    let tools = json(daemon.get("/api/tools").await).await;
    let offered = tools["tools"]
        .as_array()
        .or(tools.as_array())
        .unwrap()
        .iter()
        .filter(|t| t["name"] == "file_read")
        .count();
    assert_eq!(offered, 1, "file_read is offered once: {tools}");

    // Two installs of the same package at once: one winner.
    let file_list = publisher.pack(&daemon, "plugins/file_list", "file_list");
    let (a, b) = tokio::join!(
        install(&daemon, &file_list, all.clone()),
        install(&daemon, &file_list, all.clone())
    );
    let mut statuses = [a.status().as_u16(), b.status().as_u16()];
    statuses.sort();
    assert_eq!(statuses, [201, 409]);

    // An older version is refused unless forced.
    let older = pack_variant(
        &daemon,
        &publisher,
        "plugins/file_list",
        "file_list",
        &[("version = \"0.1.0\"", "version = \"0.0.9\"")],
        "file_list-old",
    );
    let package = base64::engine::general_purpose::STANDARD.encode(std::fs::read(&older).unwrap());
    assert_error(
        daemon
            .post(
                "/api/plugins/file_list/reload",
                serde_json::json!({ "package": package }),
            )
            .await,
        409,
        "older",
    )
    .await;
    let forced = daemon
        .post(
            "/api/plugins/file_list/reload",
            serde_json::json!({ "package": package, "force": true }),
        )
        .await;
    assert_eq!(forced.status(), 200);
    assert_eq!(json(forced).await["version"], "0.0.9");

    // An uninstall racing a reload is final, whichever runs first.
    let reload = daemon.post("/api/plugins/file_list/reload", serde_json::json!({}));
    let uninstall = daemon.post(
        "/api/plugins/uninstall",
        serde_json::json!({ "name": "file_list" }),
    );
    let (reloaded, uninstalled) = tokio::join!(reload, uninstall);
    assert!(
        [200, 404].contains(&reloaded.status().as_u16()),
        "{}",
        reloaded.status()
    );
    assert_eq!(uninstalled.status(), 200);
    assert_eq!(daemon.terminate().code(), Some(0));
    daemon.restart();
    assert_eq!(daemon.get("/api/plugins/file_list").await.status(), 404);
    assert_eq!(
        daemon.get(&format!("/api/plugins/{winner}")).await.status(),
        200
    );
}

#[tokio::test]
async fn install_from_a_path_reads_only_regular_files_within_the_limit() {
    let daemon = Daemon::start().await;
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo.talon");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    let sparse = dir.path().join("huge.talon");
    std::fs::File::create(&sparse)
        .unwrap()
        .set_len(1 << 30)
        .unwrap();
    let cases = [
        ("/dev/zero".to_string(), "not a regular file"),
        (fifo.display().to_string(), "not a regular file"),
        (dir.path().display().to_string(), "not a regular file"),
        (sparse.display().to_string(), "a package is at most"),
    ];
    for (path, needle) in cases {
        assert_error(
            daemon
                .post(
                    "/api/plugins/install",
                    serde_json::json!({ "path": path, "grant": "all" }),
                )
                .await,
            400,
            needle,
        )
        .await;
    }
    assert_eq!(daemon.get("/api/health").await.status(), 200);
    assert_eq!(
        json(daemon.get("/api/plugins").await).await["plugins"]
            .as_array()
            .map(Vec::len),
        Some(0)
    );
}

#[tokio::test]
async fn plugin_run_checks_trust_and_passes_only_granted_variables() {
    let daemon = Daemon::start().await;
    let publisher = Publisher::new(&daemon);
    let package = publisher.pack(&daemon, "tests/plugins/envprobe", "envprobe");
    let run = |args: &[&str]| {
        std::process::Command::new(crate::harness::talon_bin())
            .arg("--home")
            .arg(daemon.home())
            .args(["plugin", "run"])
            .args(args)
            .env("TALON_PROBE_SECRET", "sk-do-not-leak")
            .env("OPENAI_API_KEY", "sk-never-granted")
            .output()
            .unwrap()
    };
    let probe = r#"{"name":"TALON_PROBE_SECRET"}"#;
    // Signed by a key this home does not trust: refused, as the daemon would.
    let refused = run(&[&package, "env", probe]);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("--dev") && stderr.contains("trusted"),
        "{stderr}"
    );
    // With --dev it runs, and sees no variable it was not granted.
    let ungranted = run(&["--dev", &package, "env", probe]);
    assert!(ungranted.status.success(), "{ungranted:?}");
    let seen: serde_json::Value = serde_json::from_slice(&ungranted.stdout).unwrap();
    assert_eq!(seen["value"], serde_json::Value::Null, "{seen}");
    assert_eq!(seen["visible"], 0, "{seen}");
    let granted = run(&["--dev", "--grant-all", &package, "env", probe]);
    let seen: serde_json::Value = serde_json::from_slice(&granted.stdout).unwrap();
    assert_eq!(seen["value"], "sk-do-not-leak");
    assert_eq!(seen["visible"], 1, "only the granted variable: {seen}");
    let other = run(&[
        "--dev",
        "--grant-all",
        &package,
        "env",
        r#"{"name":"OPENAI_API_KEY"}"#,
    ]);
    let seen: serde_json::Value = serde_json::from_slice(&other.stdout).unwrap();
    assert_eq!(seen["value"], serde_json::Value::Null);
    // Trusted, it runs without --dev.
    trust(&daemon, &publisher).await;
    assert!(run(&[&package, "env", probe]).status.success());
}

#[tokio::test]
async fn a_failed_clone_leaves_nothing_behind() {
    let daemon = Daemon::start().await;
    let agent = daemon.spawn_agent("original").await;
    let put = daemon
        .put(
            &format!("/api/agents/{agent}/files/notes.md"),
            serde_json::json!({ "content": "kept" }),
        )
        .await;
    assert!(put.status().is_success(), "{}", put.status());
    let workspace = daemon.home().join("workspaces").join(&agent);
    std::os::unix::fs::symlink("/etc/passwd", workspace.join("escape")).unwrap();
    assert_error(
        daemon
            .post(
                &format!("/api/agents/{agent}/clone"),
                serde_json::json!({ "new_name": "copy" }),
            )
            .await,
        400,
        "outside the workspace",
    )
    .await;
    let agents = json(daemon.get("/api/agents").await).await;
    let names: Vec<&str> = agents["items"]
        .as_array()
        .or(agents.as_array())
        .unwrap()
        .iter()
        .filter_map(|a| a["name"].as_str())
        .collect();
    assert_eq!(names, ["original"], "no half-made clone: {agents}");
    let leftovers: Vec<_> = std::fs::read_dir(daemon.home().join("workspaces"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers.len(), 1, "{leftovers:?}");
    // With the bad link gone, the clone is whole.
    std::fs::remove_file(workspace.join("escape")).unwrap();
    let cloned = daemon
        .post(
            &format!("/api/agents/{agent}/clone"),
            serde_json::json!({ "new_name": "copy" }),
        )
        .await;
    assert_eq!(cloned.status(), 201, "{}", daemon.log());
}

#[tokio::test]
async fn a_broken_plugin_is_reported_and_removable_with_the_daemon_running_or_not() {
    let mut daemon = Daemon::start().await;
    let publisher = Publisher::new(&daemon);
    trust(&daemon, &publisher).await;
    for (dir, name) in [
        ("plugins/file_read", "file_read"),
        ("plugins/file_list", "file_list"),
    ] {
        let package = publisher.pack(&daemon, dir, name);
        assert_eq!(
            install(&daemon, &package, serde_json::json!("all"))
                .await
                .status(),
            201
        );
    }
    assert_eq!(daemon.terminate().code(), Some(0));
    // A package file damaged while the daemon was down: it fails to load,
    // is reported with its reason, and the daemon serves anyway.
    let package = daemon.home().join("plugins").join("file_read.talon");
    let mut bytes = std::fs::read(&package).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&package, bytes).unwrap();
    daemon.restart();
    let plugin = json(daemon.get("/api/plugins/file_read").await).await;
    assert_eq!(plugin["status"], "error", "{plugin}");
    assert!(
        plugin["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{plugin}"
    );
    assert_eq!(
        json(daemon.get("/api/plugins/file_list").await).await["status"],
        "loaded"
    );
    let removed = daemon
        .post(
            "/api/plugins/uninstall",
            serde_json::json!({ "name": "file_read" }),
        )
        .await;
    assert_eq!(removed.status(), 200);
    // With the daemon stopped, the CLI removes a plugin from the data directory.
    assert_eq!(daemon.terminate().code(), Some(0));
    let out = run_ok(&daemon, &["plugin", "remove", "file_list"]);
    assert!(out.contains("uninstalled file_list"), "{out}");
    daemon.restart();
    assert_eq!(daemon.get("/api/plugins/file_list").await.status(), 404);
    assert!(
        !daemon
            .home()
            .join("plugins")
            .join("file_list.talon")
            .exists()
    );
}

/// Issue 19: a Python tool answers as soon as its baseline (Winch) build is
/// ready; the optimized (Cranelift) build replaces it in the background,
/// for new calls, and is what a restart loads, from the cache. Nothing
/// here asserts a duration: the status says which build calls run on.
#[tokio::test]
async fn the_python_example_answers_on_its_baseline_build_until_the_optimized_one_replaces_it() {
    let mut daemon = Daemon::start_with_config(crate::plugins::OPEN_INVOKE).await;
    let publisher = Publisher::new(&daemon);
    trust(&daemon, &publisher).await;
    let package = publisher.pack(&daemon, "examples/plugins/python", "word_count_python");
    // Packing compiled it into this home's cache: emptied, so the daemon
    // compiles it as on an operator's machine.
    let _ = std::fs::remove_dir_all(daemon.home().join("cache"));
    let response = install(&daemon, &package, serde_json::json!("all")).await;
    assert_eq!(response.status(), 201);
    let installed = json(response).await;
    // Its optimized build takes tens of seconds on 2 cores: the install
    // answers long before it, on the baseline build.
    assert_eq!(installed["compiler"], "baseline", "{installed}");
    let status = json(daemon.get("/api/plugins/word_count_python/status").await).await;
    assert!(
        status["compiler"] == "baseline" || status["compiler"] == "optimized",
        "{status}"
    );
    let (status, body) = crate::plugins::invoke(
        &daemon,
        "word_count_python",
        serde_json::json!({ "text": "one two two", "top": 1 }),
    )
    .await;
    assert_eq!(
        (status, &body["result"]["words"]),
        (200, &serde_json::json!(3)),
        "{body}"
    );

    // Calls keep answering until, and after, the optimized build is in. A
    // background compile may take a CPU-time limit of 120 s at the lowest
    // priority, far longer in wall time on a busy machine; a build that never
    // arrives fails the test with the daemon's word for it.
    let waiting = std::time::Instant::now();
    loop {
        assert!(
            waiting.elapsed() < std::time::Duration::from_secs(30 * 60),
            "the optimized build never replaced the baseline one: {}",
            daemon
                .log()
                .lines()
                .filter(|line| line.contains("optimized"))
                .collect::<Vec<_>>()
                .join("\n")
        );
        let (status, body) = crate::plugins::invoke(
            &daemon,
            "word_count_python",
            serde_json::json!({ "text": "a b" }),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        let status = json(daemon.get("/api/plugins/word_count_python/status").await).await;
        if status["compiler"] == "optimized" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    // Only the optimized build stays in the cache.
    let cached: Vec<_> = std::fs::read_dir(daemon.home().join("cache/components"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".cwasm"))
        .collect();
    assert_eq!(cached.len(), 1, "{cached:?}");

    assert!(daemon.terminate().success());
    daemon.restart();
    // Plugins load after the API answers.
    let view = loop {
        let view = json(daemon.get("/api/plugins/word_count_python").await).await;
        if view["status"] != "loading" {
            break view;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!(
        (&view["status"], &view["compiler"]),
        (
            &serde_json::json!("loaded"),
            &serde_json::json!("optimized")
        ),
        "{view}"
    );
    let (status, body) = crate::plugins::invoke(
        &daemon,
        "word_count_python",
        serde_json::json!({ "text": "still here" }),
    )
    .await;
    assert_eq!(
        (status, &body["result"]["words"]),
        (200, &serde_json::json!(2)),
        "{body}"
    );
}
