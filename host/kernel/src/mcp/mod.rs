//! MCP servers that agents use: the client side of `talon_mcp`.
//!
//! Servers are configured in `[mcp_servers.<name>]`: a child process on
//! stdio, or a server over streamable HTTP or legacy SSE whose bearer token
//! is read from the secrets file. A server is connected on first use and
//! kept; one that dies is restarted on a later use, after a
//! backoff that doubles with each failure in a row (up to a minute). Its
//! tools reach only agents whose manifest names the server, as
//! `mcp_<server>_<tool>`, and are called through the conversation's tool
//! path (capabilities, tool access, approvals, loop guard, result cap),
//! each call bounded by the server's `timeout_secs` and published as a
//! `ToolCalled` event like a plugin tool's.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use talon_mcp::CallOutcome;
use talon_mcp::client::{ClientError, Connection, HttpSpec, StdioSpec};
use uuid::Uuid;

pub mod catalog;

use crate::config::{McpServerEntry, McpTransport};
use crate::events::Event;
use crate::providers::Providers;
use crate::shared::Shared;

/// The prefix of every MCP tool's name as agents see it.
pub const PREFIX: &str = "mcp_";

/// Longest wait before a failed server is tried again.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// One server's tool as an agent sees it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct McpTool {
    /// `mcp_<server>_<tool>`.
    pub name: String,
    /// The server's name for it.
    pub tool: String,
    /// The server.
    pub server: String,
    /// What it does.
    pub description: String,
    /// JSON Schema of its arguments.
    pub input_schema: serde_json::Value,
}

/// A configured server's state, for the API.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServerStatus {
    /// Its name.
    pub name: String,
    /// `connected`, `disconnected` (not started yet), or `failed`.
    pub status: &'static str,
    /// Tools it offered when it connected.
    pub tools: Vec<String>,
    /// The last failure, if any.
    pub error: Option<String>,
    /// Failures in a row.
    pub failures: u32,
}

#[derive(Default)]
struct Slot {
    spec: Option<McpServerEntry>,
    connection: Option<Arc<Connection>>,
    failures: u32,
    retry_at: Option<Instant>,
    error: Option<String>,
}

/// The MCP servers domain.
pub struct McpClients {
    shared: Arc<Shared>,
    providers: Arc<Providers>,
    slots: std::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<Slot>>>>,
}

impl std::fmt::Debug for McpClients {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpClients").finish_non_exhaustive()
    }
}

fn stdio_spec(entry: &McpServerEntry) -> StdioSpec {
    StdioSpec {
        command: entry.command.clone(),
        args: entry.args.clone(),
        env: entry.env.clone(),
        env_passthrough: entry.env_passthrough.clone(),
        cwd: (!entry.cwd.is_empty()).then(|| entry.cwd.clone().into()),
    }
}

impl McpClients {
    /// The domain over `shared`.
    pub(crate) fn new(shared: Arc<Shared>, providers: Arc<Providers>) -> Self {
        Self {
            shared,
            providers,
            slots: std::sync::Mutex::new(HashMap::new()),
        }
    }

    fn slot(&self, name: &str) -> Arc<tokio::sync::Mutex<Slot>> {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        slots.entry(name.to_string()).or_default().clone()
    }

    /// The live connection to `name`, starting (or restarting) it if its
    /// backoff allows.
    async fn connection(&self, name: &str) -> Result<(Arc<Connection>, Duration), String> {
        let config = self.shared.config();
        let Some(entry) = config.mcp_servers.get(name) else {
            return Err(format!("no MCP server named {name} is configured"));
        };
        let timeout = Duration::from_secs(entry.timeout_secs.max(1));
        let slot = self.slot(name);
        let mut slot = slot.lock().await;
        if slot.spec.as_ref() != Some(entry) {
            // New or changed configuration: a fresh start.
            if let Some(old) = slot.connection.take() {
                old.close().await;
            }
            *slot = Slot {
                spec: Some(entry.clone()),
                ..Slot::default()
            };
        }
        if let Some(connection) = &slot.connection {
            if connection.is_alive() {
                return Ok((connection.clone(), timeout));
            }
            slot.connection = None;
            slot.error = Some("the server's process ended".into());
        }
        if let Some(at) = slot.retry_at
            && Instant::now() < at
        {
            return Err(format!(
                "MCP server {name} is down ({}); next start in {}s",
                slot.error.as_deref().unwrap_or("failed"),
                at.saturating_duration_since(Instant::now())
                    .as_secs()
                    .max(1)
            ));
        }
        match self.connect(name, entry, timeout).await {
            Ok(connection) => {
                tracing::info!(mcp_server = %name, tools = connection.tools().len(), "MCP server connected");
                slot.connection = Some(connection.clone());
                slot.failures = 0;
                slot.retry_at = None;
                slot.error = None;
                Ok((connection, timeout))
            }
            Err(error) => {
                slot.failures += 1;
                let backoff = Duration::from_secs(1u64 << slot.failures.min(6)).min(MAX_BACKOFF);
                slot.retry_at = Some(Instant::now() + backoff);
                slot.error = Some(error.to_string());
                tracing::warn!(mcp_server = %name, %error, "MCP server failed to start");
                Err(format!("MCP server {name} could not be started: {error}"))
            }
        }
    }

    /// Opens a connection over the entry's transport.
    async fn connect(
        &self,
        name: &str,
        entry: &McpServerEntry,
        timeout: Duration,
    ) -> Result<Arc<Connection>, ClientError> {
        if entry.transport == McpTransport::Stdio {
            return Connection::stdio(name, &stdio_spec(entry), timeout).await;
        }
        let token = if entry.auth_secret.is_empty() {
            None
        } else {
            let token = (self.providers.mcp_secret(&entry.auth_secret).await)
                .map_err(|e| ClientError::Protocol(e.to_string()))?;
            Some(token.ok_or_else(|| {
                ClientError::Protocol(format!(
                    "its token `{}` is not in the secrets file's [mcp_secrets]",
                    entry.auth_secret
                ))
            })?)
        };
        let spec = HttpSpec {
            url: entry.url.clone(),
            token,
        };
        match entry.transport {
            McpTransport::Sse => Connection::sse(&spec, timeout).await,
            _ => Connection::http(&spec, timeout).await,
        }
    }

    /// Closes the connections of servers no longer configured, and of
    /// every server when `all`: each is connected again on its next use.
    pub async fn reset(&self, all: bool) {
        let config = self.shared.config();
        let dropped: Vec<Arc<tokio::sync::Mutex<Slot>>> = {
            let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
            let names: Vec<String> = (slots.keys())
                .filter(|n| all || !config.mcp_servers.contains_key(*n))
                .cloned()
                .collect();
            names.iter().filter_map(|n| slots.remove(n)).collect()
        };
        for slot in dropped {
            if let Some(connection) = slot.lock().await.connection.take() {
                connection.close().await;
            }
        }
    }

    /// Connects every configured server now (all at once), for a reload.
    pub async fn connect_all(&self) -> Vec<ServerStatus> {
        let names: Vec<String> = self.shared.config().mcp_servers.keys().cloned().collect();
        futures::future::join_all(names.iter().map(|n| self.connection(n))).await;
        self.status().await
    }

    /// The tools of `servers` (an agent's manifest list), connecting as
    /// needed; a server that cannot be reached contributes none (and says
    /// why in the logs).
    pub async fn tools_for(&self, servers: &[String]) -> Vec<McpTool> {
        let mut tools = Vec::new();
        for server in servers {
            match self.connection(server).await {
                Ok((connection, _)) => tools.extend(connection.tools().iter().map(|t| McpTool {
                    name: format!("{PREFIX}{server}_{}", t.name),
                    tool: t.name.to_string(),
                    server: server.clone(),
                    description: t.description.as_deref().unwrap_or_default().to_string(),
                    input_schema: serde_json::Value::Object((*t.input_schema).clone()),
                })),
                Err(error) => {
                    tracing::warn!(mcp_server = %server, %error, "MCP tools left out of the turn")
                }
            }
        }
        tools
    }

    /// Calls `tool` of `server` for `agent`; the error is text the model reads.
    pub async fn call(
        &self,
        agent: Option<Uuid>,
        server: &str,
        tool: &str,
        arguments: &serde_json::Value,
    ) -> Result<String, String> {
        let outcome = async {
            let arguments = match arguments {
                serde_json::Value::Object(map) => map.clone(),
                serde_json::Value::Null => serde_json::Map::new(),
                _ => return Err("the arguments must be a JSON object".to_string()),
            };
            let (connection, timeout) = self.connection(server).await?;
            match connection.call(tool, arguments, timeout).await {
                Ok(CallOutcome::Ok(text)) => Ok(text),
                Ok(CallOutcome::Failed(text)) => Err(text),
                Err(error) => {
                    // A server that timed out may be stuck or flooding: it is
                    // stopped, and started again on a later use.
                    if matches!(error, ClientError::Timeout(_)) || !connection.is_alive() {
                        self.mark_failed(server, error.to_string()).await;
                    }
                    Err(format!("{PREFIX}{server}_{tool}: {error}"))
                }
            }
        }
        .await;
        self.shared.events().publish(Event::ToolCalled {
            tool: format!("{PREFIX}{server}_{tool}"),
            plugin: format!("mcp:{server}"),
            agent_id: agent.map(|a| a.to_string()),
            ok: outcome.is_ok(),
            at: self.shared.now(),
        });
        outcome
    }

    async fn mark_failed(&self, server: &str, error: String) {
        let slot = self.slot(server);
        let mut slot = slot.lock().await;
        if let Some(connection) = slot.connection.take() {
            connection.close().await;
        }
        slot.failures += 1;
        slot.retry_at = Some(
            Instant::now() + Duration::from_secs(1u64 << slot.failures.min(6)).min(MAX_BACKOFF),
        );
        slot.error = Some(error);
    }

    /// Every configured server's state.
    pub async fn status(&self) -> Vec<ServerStatus> {
        let config = self.shared.config();
        let mut out = Vec::new();
        for name in config.mcp_servers.keys() {
            let slot = self.slot(name);
            let slot = slot.lock().await;
            let (status, tools) = match &slot.connection {
                Some(c) if c.is_alive() => (
                    "connected",
                    c.tools().iter().map(|t| t.name.to_string()).collect(),
                ),
                _ if slot.error.is_some() => ("failed", Vec::new()),
                _ => ("disconnected", Vec::new()),
            };
            out.push(ServerStatus {
                name: name.clone(),
                status,
                tools,
                error: slot.error.clone(),
                failures: slot.failures,
            });
        }
        out
    }

    /// Stops `name` (if running) and starts it again now, backoff or not.
    pub async fn reconnect(&self, name: &str) -> Result<ServerStatus, String> {
        {
            let slot = self.slot(name);
            let mut slot = slot.lock().await;
            if let Some(connection) = slot.connection.take() {
                connection.close().await;
            }
            slot.retry_at = None;
        }
        self.connection(name).await?;
        (self.status().await.into_iter())
            .find(|s| s.name == name)
            .ok_or_else(|| format!("no MCP server named {name} is configured"))
    }
}
