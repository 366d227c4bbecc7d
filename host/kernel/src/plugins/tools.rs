//! The tools of loaded plugins, as agents and the API see and call them.

use std::sync::atomic::Ordering;

use talon_runtime::{CallContext, Invocation};
use uuid::Uuid;

use super::Plugins;
use super::registry::{ToolView, tool_view};
use crate::KernelError;
use crate::events::Event;
use crate::store::StoreError;

impl Plugins {
    /// Every tool of every enabled, loaded plugin.
    pub fn tools(&self) -> Vec<ToolView> {
        self.tools_where(|_| true)
    }

    /// The tools of loaded plugins whose name `keep` accepts, by name. Only
    /// those are copied out (with their schemas): a turn asks for the few its
    /// agent may call, not for every tool installed.
    pub fn tools_where(&self, keep: impl Fn(&str) -> bool) -> Vec<ToolView> {
        let entries = self.registry.read();
        let mut tools: Vec<ToolView> = entries
            .values()
            .filter(|e| e.loaded.is_some())
            .flat_map(|e| {
                e.manifest
                    .tools
                    .iter()
                    .filter(|t| keep(&t.name))
                    .map(|t| tool_view(t, e))
            })
            .collect();
        tools.sort_by(|a, b| a.name.cmp(&b.name));
        tools
    }

    /// One tool.
    pub fn tool(&self, name: &str) -> Result<ToolView, KernelError> {
        let entries = self.registry.read();
        entries
            .values()
            .filter(|e| e.loaded.is_some())
            .find_map(|e| {
                e.manifest
                    .tools
                    .iter()
                    .find(|t| t.name == name)
                    .map(|t| tool_view(t, e))
            })
            .ok_or_else(|| KernelError::NotFound(format!("no tool named {name}")))
    }

    /// Calls a tool. With an agent, the call sees that agent's workspace and
    /// memory, and only tools its manifest lists may be called.
    pub async fn invoke_tool(
        &self,
        tool: &str,
        arguments: &str,
        agent: Option<Uuid>,
    ) -> Result<(String, Invocation), KernelError> {
        let (plugin, stats, plugin_name) = {
            let entries = self.registry.read();
            let entry = entries
                .values()
                .find(|e| e.loaded.is_some() && e.manifest.tools.iter().any(|t| t.name == tool))
                .ok_or_else(|| KernelError::NotFound(format!("no tool named {tool}")))?;
            (
                entry.loaded.clone(),
                entry.stats.clone(),
                entry.record.name.clone(),
            )
        };
        let plugin =
            plugin.ok_or_else(|| KernelError::NotFound(format!("no tool named {tool}")))?;
        let ctx = match agent {
            Some(id) => {
                let record = self.agents.get(id).await?;
                if !record.manifest.capabilities.tools.iter().any(|t| t == tool) {
                    return Err(KernelError::Forbidden(format!(
                        "agent {} may not call {tool}: it is not in the agent's capabilities.tools",
                        record.manifest.name
                    )));
                }
                let workspace = self.shared.home().workspace(&id);
                tokio::fs::create_dir_all(&workspace)
                    .await
                    .map_err(|e| KernelError::Store(StoreError::Io(e)))?;
                CallContext {
                    agent_id: Some(id.to_string()),
                    workspace: Some(workspace),
                }
            }
            None => CallContext::default(),
        };
        let invocation = self
            .registry
            .runtime
            .invoke(&plugin, tool, arguments, &ctx)
            .await;
        stats.calls.fetch_add(1, Ordering::Relaxed);
        self.shared.events().publish(Event::ToolCalled {
            tool: tool.to_string(),
            plugin: plugin_name.clone(),
            agent_id: agent.map(|a| a.to_string()),
            ok: invocation.result.is_ok(),
            at: self.shared.now(),
        });
        if invocation.result.is_err() {
            stats.errors.fetch_add(1, Ordering::Relaxed);
        }
        stats
            .fuel
            .fetch_add(invocation.cost.fuel, Ordering::Relaxed);
        stats
            .wall_us
            .fetch_add(invocation.cost.wall_us, Ordering::Relaxed);
        stats
            .peak_memory
            .fetch_max(invocation.cost.peak_memory, Ordering::Relaxed);
        Ok((plugin_name, invocation))
    }
}
