//! LibreFang-shaped request bodies for the operations whose body LibreFang's
//! document leaves free-form (`JsonObject`), taken from LibreFang's handlers
//! and reference pages, and the values that typed bodies need to mean
//! something on this daemon (real ids, a unique name). `{agent}`, `{session}`,
//! `{upload}`, `{job}`, `{llm}` are replaced by the fixtures' values.

use serde_json::{Value, json};

/// The body (or, for a typed body, what is merged over the example made from
/// its schema) for `METHOD /path`, in LibreFang's spelling of the path.
pub fn body(key: &str) -> Option<Value> {
    Some(match key {
        // SpawnRequest: one manifest; `template` and `signed_manifest` are
        // alternatives to it, so they are left out (null removes).
        "POST /api/agents" => {
            json!({"manifest_toml": "{manifest:compat-spawned}", "name": "compat-spawned",
                                     "template": null, "signed_manifest": null})
        }
        "POST /a2a/tasks/send" => json!({"agent_id": "{agent}",
            "message": {"role": "user", "parts": [{"text": "hello"}]}}),
        "POST /api/a2a/discover" => json!({"url": "{a2a_peer}"}),
        // LibreFang's MCP endpoint takes one JSON-RPC message: the handshake.
        "POST /mcp" => json!({"jsonrpc": "2.0", "id": 1, "method": "initialize",
            "params": {"protocolVersion": "2024-11-05", "capabilities": {},
                       "clientInfo": {"name": "compat", "version": "1"}}}),
        // LibreFang's raw spec (`transport` as an object), and a change.
        "POST /api/mcp/servers" => json!({"name": "compat-added",
            "transport": {"type": "stdio", "command": "true"}, "timeout_secs": 2}),
        "PUT /api/mcp/servers/{name}" => {
            json!({"transport": "stdio", "command": "true", "timeout_secs": 2})
        }
        "PUT /api/agents/{id}/mcp_servers" => json!(["compat"]),
        "POST /api/a2a/send" => json!({"agent_id": "{a2a_peer}", "message": "hello"}),
        "POST /api/agents/bulk" => json!({"agents": [{"manifest_toml": "{manifest:compat-bulk}"}]}),
        "POST /api/agents/bulk/start" | "POST /api/agents/bulk/stop" => {
            json!({"agent_ids": ["{agent}"]})
        }
        "DELETE /api/agents/bulk" => json!({"agent_ids": ["{bulk_victim}"]}),
        "POST /api/agents/{id}/clone" => json!({"new_name": "compat-clone"}),
        "PATCH /api/agents/{id}" => json!({"description": "patched by the compatibility check"}),
        "PATCH /api/agents/{id}/config" => json!({
            "name": null, "model": null, "provider": null, "api_key_env": null, "base_url": "{llm}",
            "max_tokens": 512, "temperature": 0.5, "fallback_models": [], "web_search_augmentation": "off",
            "description": "configured", "system_prompt": "You are the compatibility agent.",
            "emoji": "🤖", "avatar_url": "https://example.com/a.png", "color": "#336699",
            "archetype": "helper", "vibe": "calm", "greeting_style": "warm"}),
        "PATCH /api/agents/{id}/identity" => {
            json!({"avatar_url": "https://example.com/a.png", "color": "#336699"})
        }
        "PUT /api/agents/{id}/files/{filename}" => json!({"content": "notes"}),
        "POST /api/agents/{id}/memory/import" => json!({"kv": {"imported": "yes"}}),
        "POST /api/agents/{id}/message" | "POST /api/agents/{id}/message/stream" => json!({
            "message": "hello", "session_id": "{session}",
            "attachments": [{"file_id": "{upload}", "filename": "notes.txt", "content_type": "text/plain"}],
            "group_participants": [], "sender_id": "u-1", "sender_name": "Ada", "channel_type": "api",
            "thinking": false, "show_thinking": false, "ephemeral": false, "incognito": false}),
        "PUT /api/agents/{id}/mode" => json!({"mode": "full"}),
        "PUT /api/agents/{id}/model" => json!({"model": "test-model"}),
        "POST /api/agents/{id}/sessions" => json!({"label": "compat-label-2"}),
        "PUT /api/agents/{id}/skills" => json!([]),
        "PUT /api/agents/{id}/tools" => json!({"capabilities_tools": ["notify_owner", "file_read"],
                                               "tool_allowlist": ["*"], "tool_blocklist": ["file_*"]}),
        "PUT /api/budget" => json!({"daily_limit_usd": 50.0, "monthly_limit_usd": 500.0}),
        "PUT /api/budget/agents/{id}" => json!({"daily_limit_usd": 5.0, "monthly_limit_usd": 50.0}),
        "POST /api/config/set" => json!({"path": "log_level", "value": "info"}),
        "POST /api/cron/jobs" => json!({"agent_id": "{agent}", "name": "compat-job",
                                        "schedule": {"kind": "cron", "expr": "0 9 * * 1-5"},
                                        "action": {"kind": "agent_turn", "message": "Weekday briefing."}}),
        "PUT /api/cron/jobs/{id}" => json!({"name": "compat-job-renamed",
                                            "schedule": {"kind": "every", "every_secs": 3600}}),
        "PUT /api/cron/jobs/{id}/enable" => json!({"enabled": false}),
        "PUT /api/memory/agents/{id}/kv/{key}" => json!({"value": "remembered"}),
        "POST /api/models/custom" => {
            json!({"id": "compat-model", "provider": "ollama", "context_window": 8192,
                                            "max_output_tokens": 1024, "input_cost_per_m": 1.0,
                                            "output_cost_per_m": 2.0, "display_name": "Compat"})
        }
        "POST /api/plugins/install" => json!({"package": "{tool_package}", "grant": "all"}),
        "POST /api/plugins/scaffold" => json!({"name": "compat_tool", "description": "A tool."}),
        "POST /api/plugins/uninstall" => json!({"name": "file_list"}),
        "POST /api/hands/install" => json!({"package": "{hand_package}", "grant": "all"}),
        "POST /api/hands/{hand_id}/activate" => json!({"config": {"urls": ["http://127.0.0.1:9/"]},
                                                       "provider": "ollama", "model": "test-model"}),
        "PUT /api/hands/{hand_id}/settings" => {
            json!({"instance_id": "{hand_instance}", "config": {"mode": "ok"}})
        }
        "POST /api/hands/{hand_id}/secret" | "PUT /api/hands/{hand_id}/manifest" => json!({}),
        "POST /api/providers/{name}/key" => json!({"key": "sk-compat"}),
        "PUT /api/providers/{name}/url" => json!({"base_url": "{llm}"}),
        "POST /api/schedules" => {
            json!({"name": "compat-schedule", "cron": "0 8 * * *", "agent_id": "{agent}",
                                        "message": "Morning.", "enabled": true})
        }
        "PUT /api/schedules/{id}" => json!({"enabled": true, "cron": "0 7 * * *"}),
        "PUT /api/sessions/{id}/label" => json!({"label": "compat-relabelled"}),
        "POST /api/skills/create" => json!({"name": "compat_skill", "description": "A skill.",
                                            "prompt_context": "Use the compat tools for compat questions."}),
        "POST /api/skills/install" => json!({"package": "{package}", "grant": "all"}),
        "POST /api/skills/uninstall" => json!({"name": "greeter"}),
        "POST /api/tools/{name}/invoke" => json!({"text": "hello"}),
        "POST /api/triggers" => json!({"agent_id": "{agent}", "pattern": "lifecycle",
                                       "prompt_template": "Something happened: {{event}}", "max_fires": 0}),
        "PATCH /api/triggers/{id}" => json!({"enabled": false}),
        "POST /api/workflows" => json!({"name": "compat-flow", "description": "One step.",
                                        "steps": [{"name": "only", "agent_name": "compat", "prompt": "{{input}}"}]}),
        "PUT /api/workflows/{id}" => json!({"name": "compat-flow", "description": "Renamed.",
                                            "steps": [{"name": "only", "agent_name": "compat", "prompt": "{{input}}"}]}),
        "POST /api/workflows/{id}/run" => json!({"input": "go"}),
        "POST /v1/chat/completions" => json!({"model": "talon:compat",
                                              "messages": [{"role": "user", "content": "hi"}]}),
        // Seed 002's approval request; approving takes an optional TOTP code.
        "POST /api/approvals" => json!({"agent_id": "{agent}", "action": "delete_file",
                                        "description": "Agent wants to delete /important/config.toml",
                                        "payload": {"path": "/important/config.toml"}}),
        "POST /api/approvals/{id}/approve" => json!({}),
        "POST /api/approvals/{id}/modify" => json!({"arguments": {"path": "/tmp/scratch"},
                                                    "feedback": "a safer path"}),
        // The fixture session has no pending approval: say so.
        "POST /api/approvals/session/{session_id}/approve_all" => json!({"expected_count": 0,
                                                                          "expected_ids": []}),
        "POST /api/approvals/batch" => json!({"ids": ["{batch_approval}"], "decision": "reject"}),
        // LibreFang's CommsSendRequest and CommsTaskRequest (an agent may
        // send to itself; the task, with no assignee, waits).
        "POST /api/comms/send" => {
            json!({"from_agent_id": "{agent}", "to_agent_id": "{agent}", "message": "hello"})
        }
        "POST /api/comms/task" => json!({"title": "compat task",
                                         "description": "posted by the compatibility check"}),
        // LibreFang's webhook trigger bodies (`/hooks/wake`, `/hooks/agent`).
        "POST /api/hooks/wake" => json!({"text": "the build broke", "mode": "now"}),
        "POST /api/hooks/agent" => json!({"agent": "compat", "message": "hello"}),
        _ => return None,
    })
}
