//! The dashboard: how the daemon serves it (pages, assets, headers, the
//! API's priority, the key), then the whole of it in a real browser
//! (tests/dashboard/browser_test.py, Debian's Chromium driven by Python
//! playwright; scripts/test installs both and sets TALON_PLAYWRIGHT_PYTHON).

use std::path::PathBuf;

use talon_test_llm::{Reply, TestLlm};

use crate::hands::Page;
use crate::harness::Daemon;
use crate::ngircd::Ngircd;
use crate::plugins::{Publisher, install, repo, trust};

const KEY: &str = "dashboard-test-key-0123456789";

fn python() -> String {
    std::env::var("TALON_PLAYWRIGHT_PYTHON").unwrap_or_else(|_| {
        panic!("TALON_PLAYWRIGHT_PYTHON is not set: run scripts/test, which installs chromium and playwright")
    })
}

#[tokio::test]
async fn pages_and_assets_are_served_with_their_headers() {
    let mut daemon = Daemon::start_with_config(&format!("api_key = \"{KEY}\"\n")).await;
    let http = reqwest::Client::new();
    let base = daemon.base_url().to_string();

    // The page and every client-side route: the same HTML, no key needed.
    let page = http.get(format!("{base}/")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert_eq!(
        page.headers()["content-type"],
        "text/html; charset=utf-8",
        "{:?}",
        page.headers()
    );
    assert_eq!(page.headers()["cache-control"], "no-cache");
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    let html = page.text().await.unwrap();
    // Nothing inline: every script and style is a file the CSP allows.
    assert!(!html.contains("<style"), "{html}");
    for script in html.split("<script").skip(1) {
        assert!(script.split('>').next().unwrap().contains("src="), "{html}");
    }
    for route in ["/agents", "/chat", "/settings"] {
        let r = http.get(format!("{base}{route}")).send().await.unwrap();
        assert_eq!(r.status(), 200, "{route}");
        assert_eq!(r.text().await.unwrap(), html, "{route}");
    }

    // Its assets: content-hashed names, cached for good, gzip when accepted.
    let js = html
        .split('"')
        .find(|s| s.starts_with("/assets/") && s.ends_with(".js"))
        .expect("a script under /assets/")
        .to_string();
    let gz = http
        .get(format!("{base}{js}"))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(gz.status(), 200);
    assert_eq!(
        gz.headers()["cache-control"],
        "public, max-age=31536000, immutable"
    );
    assert_eq!(gz.headers()["content-encoding"], "gzip");
    assert_eq!(
        gz.headers()["content-type"],
        "text/javascript; charset=utf-8"
    );
    let compressed = gz.bytes().await.unwrap().len();
    let plain = reqwest::Client::builder()
        .no_gzip()
        .build()
        .unwrap()
        .get(format!("{base}{js}"))
        .header("accept-encoding", "gzip;q=0, identity")
        .send()
        .await
        .unwrap();
    assert!(plain.headers().get("content-encoding").is_none());
    let plain = plain.bytes().await.unwrap().len();
    assert!(compressed < plain, "{compressed} >= {plain}");

    // The API keeps its routes and its key.
    let r = http.get(format!("{base}/api/status")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    daemon.use_key(KEY);
    assert_eq!(daemon.get("/api/status").await.status(), 200);
    assert_eq!(daemon.get("/api/nope").await.status(), 404);
    // Pages are read-only.
    let r = daemon.post("/agents", serde_json::json!({})).await;
    assert_eq!(r.status(), 405);
    // Unknown paths, with the key: JSON 404s, nothing else served.
    let long = format!("/assets/{}.js", "a".repeat(8000));
    for path in [
        "/assets/nope.js",
        "/assets/..%2fCargo.toml",
        "/assets/%00.js",
        "/assets/",
        long.as_str(),
        "/agentsx",
    ] {
        let r = daemon.get(path).await;
        assert_eq!(r.status(), 404, "{path}");
        let body: serde_json::Value = r.json().await.unwrap();
        assert!(body["error"].is_string(), "{path}: {body}");
    }
}

#[tokio::test]
async fn the_dashboard_in_a_real_browser() {
    let python = python();
    let llm = TestLlm::start().await;
    // The model calls the browser's steps make, in order (see the script):
    // the chat's tool call and its answer, then waiter's call that waits
    // for an approval. Later calls (the cron job's) get the default reply.
    llm.push_all([
        Reply::tool_call("notify_owner", r#"{"text": "hello"}"#),
        Reply::text("I left you a note: hello."),
        Reply::tool_call("notify_owner", r#"{"text": "wait"}"#),
    ]);
    let mut daemon = Daemon::start_with_env(
        &format!("api_key = \"{KEY}\"\n"),
        &[("OPENAI_API_KEY", "sk-test")],
    )
    .await;
    daemon.use_key(KEY);
    let set = daemon
        .put(
            "/api/providers/openai/url",
            serde_json::json!({ "base_url": llm.openai_url() }),
        )
        .await;
    assert_eq!(set.status(), 200);
    let publisher = Publisher::new(&daemon);
    trust(&daemon, &publisher).await;
    let package = publisher.pack(&daemon, "plugins/file_read", "file_read");
    // Requests any host and its memory keys: granted in part from the page.
    let matrix_package = publisher.pack(&daemon, "plugins/matrix", "matrix");
    // A real IRC server for the channels page; the IRC plugin installed with
    // its socket granted, signed by the same (only trusted) publisher; the
    // page configures the channel itself.
    let irc = Ngircd::start().await;
    let irc_package = publisher.pack(&daemon, "plugins/irc", "irc");
    let grant = serde_json::json!({ "sockets": [format!("127.0.0.1:{}", irc.port)] });
    let installed = install(&daemon, &irc_package, grant).await;
    assert_eq!(
        installed.status(),
        201,
        "{}",
        installed.text().await.unwrap_or_default()
    );

    // The web_watch hand for the hands page, granted one local page's
    // address only (a plugin never reaches the daemon's own). The page
    // never changes, so its ticks fetch and compare without asking its
    // agent anything (the model's scripted replies stay the chat's).
    let watched = Page::start("price: 10\n").await;
    let hand_package = publisher.pack(&daemon, "plugins/web_watch", "web_watch");
    let host = format!("127.0.0.1:{}", watched.port);
    let grant = serde_json::json!({ "network": [host], "memory": ["page:*", "last_check"] });
    let installed = install(&daemon, &hand_package, grant).await;
    assert_eq!(
        installed.status(),
        201,
        "{}",
        installed.text().await.unwrap_or_default()
    );

    let shots = repo().join("target/dashboard-screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let script: PathBuf = repo().join("tests/dashboard/browser_test.py");
    let mut command = std::process::Command::new(python);
    command
        .arg(&script)
        .env("TALON_URL", daemon.base_url())
        .env("TALON_API_KEY", KEY)
        .env("TALON_PACKAGE", &package)
        .env("TALON_MATRIX_PACKAGE", &matrix_package)
        .env("TALON_IRC_PORT", irc.port.to_string())
        .env("TALON_WATCH_URL", watched.url())
        .env("TALON_SCREENSHOTS", &shots);
    let out = tokio::task::spawn_blocking(move || command.output())
        .await
        .expect("the browser test's thread")
        .expect("run the browser test");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "browser test failed:\n{stdout}\n{stderr}\ndaemon log:\n{}",
        daemon.log()
    );
    // The files attached in the browser reached the model with the message.
    let sent: Vec<String> = llm.requests().iter().map(|r| r.body.to_string()).collect();
    assert!(
        sent.iter()
            .any(|b| b.contains("dropped words") && b.contains("picked words")),
        "{sent:?}"
    );
    // What the hands and topology pages did, as the API sees it: the
    // instance deactivated from the page, the message sent from it.
    let active: serde_json::Value = daemon.get("/api/hands/active").await.json().await.unwrap();
    assert_eq!(active["total"], 0, "{active}");
    let topology: serde_json::Value = daemon
        .get("/api/comms/topology")
        .await
        .json()
        .await
        .unwrap();
    let names: std::collections::HashMap<&str, &str> = topology["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| (n["id"].as_str().unwrap(), n["name"].as_str().unwrap()))
        .collect();
    let edges: Vec<(&str, &str, &str)> = topology["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                names[e["from"].as_str().unwrap()],
                names[e["to"].as_str().unwrap()],
                e["kind"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(edges, [("helper", "waiter", "peer")], "{topology}");
    // The figures docs/BENCHMARKS.md records.
    let figures: serde_json::Value =
        serde_json::from_str(stdout.lines().last().unwrap_or("")).expect("figures as JSON");
    println!("dashboard figures: {figures}");
    assert!(
        figures["first_load_bytes"].as_u64().unwrap() < 200 * 1024,
        "{figures}"
    );
    for page in [
        "login-overview",
        "agents-bad-manifest",
        "agents",
        "chat",
        "approvals",
        "plugins",
        "schedules",
        "audit",
        "usage",
        "logs",
        "settings",
        "workflows",
        "tasks",
        "overview",
        "agents-390px",
        "usage-dark",
        "channels",
        "channels-390px",
        "channels-dark",
        "workflow-form",
        "plugin-grants",
        "hands",
        "hands-bad-setting",
        "topology",
        "topology-390px",
        "topology-dark",
    ] {
        assert!(shots.join(format!("{page}.png")).is_file(), "{page}");
    }
}
