//! Helpers for channel tests, whatever the platform: install a channel
//! plugin (packed, signed and trusted like any third-party package) with a
//! grant, spawn an agent answering from talon-test-llm, configure the
//! channel bound to it, and wait for its status. A platform's own test
//! brings its server and its client (IRC: `crate::ngircd`).

use std::time::Duration;

use talon_test_llm::TestLlm;

use crate::conversations::manifest;
use crate::harness::{Daemon, json};
use crate::plugins::{Publisher, install, trust};

/// Packs `plugins/<dir>` with `target/plugins/<wasm>.wasm`, trusts the
/// publisher and installs it with `grant` (a permissions object, such as
/// `{"sockets": ["127.0.0.1:6667"]}`).
pub(crate) async fn install_channel(
    daemon: &Daemon,
    dir: &str,
    wasm: &str,
    grant: serde_json::Value,
) {
    let publisher = Publisher::new(daemon);
    let package = publisher.pack(daemon, dir, wasm);
    trust(daemon, &publisher).await;
    let response = install(daemon, &package, grant).await;
    let status = response.status().as_u16();
    let body = json(response).await;
    assert!(
        status == 200 || status == 201,
        "installing {dir}: {status} {body}"
    );
    assert_eq!(body["status"], "loaded", "{body}");
}

/// Spawns an agent named `name` whose model is talon-test-llm; its id.
pub(crate) async fn spawn_llm_agent(daemon: &Daemon, llm: &TestLlm, name: &str) -> String {
    daemon
        .spawn_manifest(manifest(name, llm, "test-model", &[]))
        .await
}

/// `POST /api/channels/{name}/configure` with `body`; the channel as the
/// daemon answers it (the status code is checked).
pub(crate) async fn configure(
    daemon: &Daemon,
    name: &str,
    body: serde_json::Value,
) -> serde_json::Value {
    let response = daemon
        .post(&format!("/api/channels/{name}/configure"), body)
        .await;
    let status = response.status().as_u16();
    let body = json(response).await;
    assert_eq!(status, 200, "configure {name}: {body}");
    body
}

/// Polls `GET /api/channels/{name}` until `done` holds for it (bounded,
/// so a broken build fails instead of hanging); the last view.
pub(crate) async fn channel_until(
    daemon: &Daemon,
    name: &str,
    what: &str,
    done: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let mut last = serde_json::Value::Null;
    for _ in 0..2400 {
        let response = daemon.get(&format!("/api/channels/{name}")).await;
        if response.status() == 200 {
            last = json(response).await;
            if done(&last) {
                return last;
            }
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("channel {name}: {what} never happened; last status {last}");
}

/// Waits until channel `name` is connected.
pub(crate) async fn wait_connected(daemon: &Daemon, name: &str) -> serde_json::Value {
    channel_until(daemon, name, "connected", |c| c["connected"] == true).await
}

/// The number of inbound messages of channel `name` in `state`.
pub(crate) fn inbound(view: &serde_json::Value, state: &str) -> u64 {
    view["inbound"][state].as_u64().unwrap_or(0)
}

/// Whether the server program at `path` (Debian package `package`) is
/// installed. Absent outside CI, the test says so and is skipped; absent in
/// CI (`CI` set), it fails: CI must run every channel test.
pub(crate) fn server_installed(path: &str, package: &str) -> bool {
    if std::path::Path::new(path).exists() {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{path} is missing in CI: apt-get install -y {package} (scripts/test installs it)"
    );
    eprintln!(
        "SKIPPED: {path} is not installed (apt-get install -y {package}, or run scripts/test)"
    );
    false
}

/// Waits until the daemon has recorded `count` of `agent`'s replies as
/// sent (the platform takes a reply before the daemon records it); the
/// receipts.
pub(crate) async fn sent_recorded(daemon: &Daemon, agent: &str, count: usize) -> serde_json::Value {
    let mut receipts = serde_json::Value::Null;
    for _ in 0..2400 {
        receipts = json(daemon.get(&format!("/api/agents/{agent}/deliveries")).await).await;
        let sent = receipts["receipts"]
            .as_array()
            .map_or(0, |r| r.iter().filter(|d| d["status"] == "sent").count());
        if sent >= count {
            return receipts;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("{count} replies were never recorded as sent: {receipts}");
}
