//! Talon as an MCP server: what a client sees (`tools/list`) and calls
//! (`tools/call`), answered by a [`Host`].

use std::borrow::Cow;
use std::sync::Arc;

use futures::future::BoxFuture;
use rmcp::ErrorData as McpError;
use rmcp::ServerHandler;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
    JsonObject, ListToolsResult, PaginatedRequestParams, ProtocolVersion, ServerCapabilities,
    ServerConfig, Tool,
};
use rmcp::service::{RequestContext, RoleServer};

/// One tool as MCP clients see it.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolSpec {
    /// The name clients call it by.
    pub name: String,
    /// What it does, for the client's model.
    pub description: String,
    /// JSON Schema of its arguments (an object schema).
    pub input_schema: JsonObject,
}

/// The answer of a call that ran.
#[derive(Debug, Clone, PartialEq)]
pub enum CallOutcome {
    /// The tool's result, as text (JSON text for most plugin tools).
    Ok(String),
    /// The tool ran and failed: the client's model reads the reason
    /// (`isError: true`), as MCP asks for tool-level failures.
    Failed(String),
}

/// Why a call did not run at all: protocol-level errors.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// No exposed tool by that name (unexposed tools are not named, so
    /// an unexposed tool looks the same as a missing one).
    #[error("no tool named {0}")]
    UnknownTool(String),
    /// The arguments are not what the tool takes.
    #[error("{0}")]
    InvalidArguments(String),
    /// Anything else that kept the call from running.
    #[error("{0}")]
    Internal(String),
}

/// What the server serves: the kernel, as the API wraps it.
pub trait Host: Send + Sync + 'static {
    /// The tools a client may list and call now (read at every request,
    /// so a changed exposure allowlist applies without a restart).
    fn tools(&self) -> BoxFuture<'_, Result<Vec<ToolSpec>, HostError>>;
    /// Calls one exposed tool.
    fn call(
        &self,
        name: String,
        arguments: JsonObject,
    ) -> BoxFuture<'_, Result<CallOutcome, HostError>>;
}

/// The MCP server handler: one per session, all sharing one [`Host`].
#[derive(Clone)]
pub struct McpServer {
    host: Arc<dyn Host>,
}

impl McpServer {
    /// A handler answering from `host`.
    pub fn new(host: Arc<dyn Host>) -> Self {
        Self { host }
    }
}

impl From<HostError> for McpError {
    fn from(error: HostError) -> Self {
        match error {
            // The spec's answer to an unknown tool and to bad arguments.
            HostError::UnknownTool(_) | HostError::InvalidArguments(_) => {
                McpError::invalid_params(error.to_string(), None)
            }
            HostError::Internal(_) => McpError::internal_error(error.to_string(), None),
        }
    }
}

impl ServerHandler for McpServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("talon", env!("CARGO_PKG_VERSION")))
            .with_instructions(
                "Talon's exposed tools, and its agents as agent_<name> tools: send a message, get the answer.",
            )
    }

    fn supported_protocol_versions(&self) -> Cow<'static, [ProtocolVersion]> {
        Cow::Borrowed(ProtocolVersion::KNOWN_VERSIONS)
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        let tools = self.host.tools().await?;
        Ok(ListToolsResult::with_all_items(
            tools
                .into_iter()
                .map(|t| Tool::new(t.name, t.description, Arc::new(t.input_schema)))
                .collect(),
        ))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let call = self.host.call(
            request.name.into_owned(),
            request.arguments.unwrap_or_default(),
        );
        // A client's `notifications/cancelled` ends the wait; the call itself
        // is bounded by the tool path's own deadline.
        let outcome = tokio::select! {
            outcome = call => outcome?,
            () = context.ct.cancelled() => {
                return Err(McpError::internal_error("the client cancelled the call", None));
            }
        };
        let result = match outcome {
            CallOutcome::Ok(text) => CallToolResult::success(vec![ContentBlock::text(text)]),
            CallOutcome::Failed(text) => CallToolResult::error(vec![ContentBlock::text(text)]),
        };
        Ok(result.into())
    }
}
