//! Talon as an MCP client: other servers' tools, called for agents.
//!
//! A server is reached over stdio (a child process), streamable HTTP
//! ([`crate::http`]) or the legacy HTTP+SSE transport ([`crate::sse`]),
//! with an optional bearer token on every HTTP request. A stdio server's
//! environment is only what the operator lists (nothing of the daemon's is
//! inherited but `PATH` and what `env_passthrough` names), it runs in the
//! given working directory, is killed when its connection is dropped, its
//! stderr goes to the logs line by line, and a stdout line longer than the
//! cap is discarded, never buffered whole. Every call is bounded by its
//! timeout whatever the server does (hangs, dies, answers with a wrong id).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use rmcp::model::{CallToolRequestParams, ContentBlock, JsonObject, Tool};
use rmcp::service::{RoleClient, RunningService, ServiceExt};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::async_rw::AsyncRwTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::Mutex;

use crate::server::CallOutcome;

/// Longest stdout line (one JSON-RPC message) read from a server; longer
/// ones are discarded as they stream in.
pub const MAX_MESSAGE_BYTES: usize = 4 << 20;

/// How a stdio server is started.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StdioSpec {
    /// The program.
    pub command: String,
    /// Its arguments.
    pub args: Vec<String>,
    /// Variables set for it, with their values.
    pub env: BTreeMap<String, String>,
    /// Names of the daemon's own variables passed through (when set).
    pub env_passthrough: Vec<String>,
    /// Its working directory (the daemon's when `None`).
    pub cwd: Option<PathBuf>,
}

/// How an HTTP server (streamable HTTP or legacy SSE) is reached.
#[derive(Clone, PartialEq, Default)]
pub struct HttpSpec {
    /// Its URL (the MCP endpoint, or the SSE stream for the legacy transport).
    pub url: String,
    /// The bearer token sent with every request, if any.
    pub token: Option<String>,
}

impl std::fmt::Debug for HttpSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The token is a secret: never in logs.
        f.debug_struct("HttpSpec")
            .field("url", &self.url)
            .field("token", &self.token.as_ref().map(|_| "***"))
            .finish()
    }
}

/// Why a server could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The process could not be started.
    #[error("could not start `{command}`: {source}")]
    Spawn {
        /// The program.
        command: String,
        /// Why.
        source: std::io::Error,
    },
    /// The MCP handshake or a request failed (the server closed, answered
    /// garbage, or refused).
    #[error("the MCP server failed: {0}")]
    Protocol(String),
    /// No answer within the deadline.
    #[error("the MCP server did not answer within {0:?}")]
    Timeout(Duration),
}

/// A live connection to one server: its process, session and tools.
pub struct Connection {
    service: Mutex<Option<RunningService<RoleClient, ()>>>,
    peer: rmcp::service::Peer<RoleClient>,
    tools: Vec<Tool>,
    // Held so a stdio server's process is killed (kill_on_drop) with the
    // connection, or by `close`.
    child: Mutex<Option<Child>>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("tools", &self.tools.len())
            .finish_non_exhaustive()
    }
}

impl Connection {
    /// Starts `spec`, completes the handshake and lists its tools, all
    /// within `timeout`. `name` labels its stderr lines in the logs.
    pub async fn stdio(
        name: &str,
        spec: &StdioSpec,
        timeout: Duration,
    ) -> Result<Arc<Connection>, ClientError> {
        let mut command = Command::new(&spec.command);
        command
            .args(&spec.args)
            .env_clear()
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        // The program is found on the daemon's PATH; nothing else leaks.
        if let Some(path) = std::env::var_os("PATH") {
            command.env("PATH", path);
        }
        for var in &spec.env_passthrough {
            if let Some(value) = std::env::var_os(var) {
                command.env(var, value);
            }
        }
        command.envs(&spec.env);
        if let Some(cwd) = &spec.cwd {
            command.current_dir(cwd);
        }
        let spawn_error = |source| ClientError::Spawn {
            command: spec.command.clone(),
            source,
        };
        let mut child = command.spawn().map_err(spawn_error)?;
        let (Some(stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            return Err(spawn_error(std::io::Error::other("no stdio pipes")));
        };
        let label = name.to_string();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                tracing::info!(mcp_server = %label, "{}", line.chars().take(4096).collect::<String>());
            }
        });
        let transport =
            AsyncRwTransport::new_client(stdout, stdin).with_max_line_length(MAX_MESSAGE_BYTES);
        Self::start(async { Ok(transport) }, Some(child), timeout).await
    }

    /// Connects to a streamable HTTP server, completes the handshake and
    /// lists its tools, all within `timeout`.
    pub async fn http(spec: &HttpSpec, timeout: Duration) -> Result<Arc<Connection>, ClientError> {
        let mut config = StreamableHttpClientTransportConfig::with_uri(spec.url.as_str());
        config.auth_header = spec.token.clone();
        config.max_json_response_size = MAX_MESSAGE_BYTES;
        config.max_sse_event_size = MAX_MESSAGE_BYTES;
        let transport = StreamableHttpClientTransport::with_client(
            crate::http::HttpClient(http_client(timeout)?),
            config,
        );
        Self::start(async { Ok(transport) }, None, timeout).await
    }

    /// Connects to a legacy HTTP+SSE server (its event stream at
    /// `spec.url`), completes the handshake and lists its tools, all within
    /// `timeout`.
    pub async fn sse(spec: &HttpSpec, timeout: Duration) -> Result<Arc<Connection>, ClientError> {
        let client = http_client(timeout)?;
        let connect = async {
            crate::sse::SseTransport::connect(
                client,
                &spec.url,
                spec.token.clone(),
                MAX_MESSAGE_BYTES,
            )
            .await
            .map_err(|e| ClientError::Protocol(e.to_string()))
        };
        Self::start(connect, None, timeout).await
    }

    /// Opens `transport`, runs the handshake and lists the tools within
    /// `timeout`.
    async fn start<T, E, A>(
        transport: impl Future<Output = Result<T, ClientError>>,
        child: Option<Child>,
        timeout: Duration,
    ) -> Result<Arc<Connection>, ClientError>
    where
        T: rmcp::transport::IntoTransport<RoleClient, E, A>,
        E: std::error::Error + Send + Sync + 'static,
    {
        let started = async {
            let service =
                ().serve(transport.await?)
                    .await
                    .map_err(|e| ClientError::Protocol(e.to_string()))?;
            let tools = service
                .list_all_tools()
                .await
                .map_err(|e| ClientError::Protocol(e.to_string()))?;
            Ok::<_, ClientError>((service, tools))
        };
        let (service, tools) = tokio::time::timeout(timeout, started)
            .await
            .map_err(|_| ClientError::Timeout(timeout))??;
        Ok(Arc::new(Connection {
            peer: service.peer().clone(),
            service: Mutex::new(Some(service)),
            tools,
            child: Mutex::new(child),
        }))
    }

    /// The server's tools, as listed at connection.
    pub fn tools(&self) -> &[Tool] {
        &self.tools
    }

    /// Whether the session still runs (the process has not closed it).
    pub fn is_alive(&self) -> bool {
        !self.peer.is_transport_closed()
    }

    /// Calls `tool`, waiting at most `timeout`. A tool-level failure is a
    /// [`CallOutcome::Failed`]; the text of non-text content is described.
    pub async fn call(
        &self,
        tool: &str,
        arguments: JsonObject,
        timeout: Duration,
    ) -> Result<CallOutcome, ClientError> {
        let params = CallToolRequestParams::new(tool.to_string()).with_arguments(arguments);
        let result = tokio::time::timeout(timeout, self.peer.call_tool(params))
            .await
            .map_err(|_| ClientError::Timeout(timeout))?
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
        let text = result
            .content
            .iter()
            .map(describe)
            .collect::<Vec<_>>()
            .join("\n");
        let text = match (&result.structured_content, text.is_empty()) {
            (Some(structured), true) => structured.to_string(),
            _ => text,
        };
        Ok(if result.is_error == Some(true) {
            CallOutcome::Failed(text)
        } else {
            CallOutcome::Ok(text)
        })
    }

    /// Ends the session and the process.
    pub async fn close(&self) {
        if let Some(service) = self.service.lock().await.take() {
            let _ = service.cancel().await;
        }
        if let Some(child) = self.child.lock().await.as_mut() {
            let _ = child.start_kill();
        }
    }
}

/// The HTTP client for one server: bounded connection time, no redirects
/// (a redirect could carry the bearer token to another origin). Calls are
/// bounded by their own timeout, not the client's: the event stream stays
/// open for the whole session.
fn http_client(timeout: Duration) -> Result<reqwest::Client, ClientError> {
    reqwest::Client::builder()
        .connect_timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| ClientError::Protocol(format!("cannot build the HTTP client: {e}")))
}

/// One content block as text a model can read.
fn describe(block: &ContentBlock) -> String {
    match block {
        ContentBlock::Text(text) => text.text.clone(),
        other => match serde_json::to_value(other) {
            Ok(value) => {
                let kind = value["type"].as_str().unwrap_or("content").to_string();
                let mime = value["mimeType"]
                    .as_str()
                    .or_else(|| value["resource"]["mimeType"].as_str())
                    .unwrap_or("");
                format!("[{kind} {mime}]")
            }
            Err(_) => "[content]".to_string(),
        },
    }
}
