//! The intentional deviations from LibreFang, one entry per operation and
//! kind of difference, each with the reason. The compatibility check fails
//! on a difference that is not here, and on an entry here that no longer
//! matches a difference.

/// What differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// The operation is not sent at all.
    NotSent,
    /// A status LibreFang does not document for this request (or not a 2xx).
    Status,
    /// A body that does not validate against LibreFang's response schema.
    Body,
    /// Not served: not a JSON 404, or not listed as missing in the README.
    Unserved,
}

/// One deviation.
pub struct Deviation {
    /// `METHOD /path` as LibreFang's document writes it.
    pub operation: &'static str,
    /// What differs.
    pub kind: Kind,
    /// Why it is so.
    pub why: &'static str,
}

/// Every intentional deviation.
pub const ALLOWLIST: &[Deviation] = &[
    Deviation {
        operation: "POST /api/shutdown",
        kind: Kind::NotSent,
        why: "it stops the daemon under test; tests/e2e/system.rs covers it",
    },
    Deviation {
        operation: "POST /api/agents",
        kind: Kind::Status,
        why: "201: LibreFang's handler answers 201 on spawn; its document says 200 (docs/COMPATIBILITY.md)",
    },
    Deviation {
        operation: "POST /api/agents/{id}/clone",
        kind: Kind::Status,
        why: "201 like spawning, since a clone is a new agent; LibreFang's document says 200",
    },
    Deviation {
        operation: "POST /api/agents/{id}/upload",
        kind: Kind::Status,
        why: "201: LibreFang's handler answers 201 for an upload (issue 14); its document says 200",
    },
    Deviation {
        operation: "POST /api/comms/task",
        kind: Kind::Status,
        why: "201 {ok, task_id}: LibreFang's handler answers 201 (CREATED); its document says 200",
    },
    Deviation {
        operation: "POST /api/cron/jobs",
        kind: Kind::Status,
        why: "201 {job_id, status: created}: LibreFang's handler (issue 14); its document says 200",
    },
    Deviation {
        operation: "POST /api/schedules",
        kind: Kind::Status,
        why: "201 like cron jobs (the same jobs, issue 14); LibreFang's document says 200",
    },
    Deviation {
        operation: "POST /api/models/custom",
        kind: Kind::Status,
        why: "201: LibreFang's handler answers 201 for a custom model (issue 14); its document says 200",
    },
    Deviation {
        operation: "POST /api/workflows",
        kind: Kind::Status,
        why: "201 for a created workflow; LibreFang's document says 200, unverified against its handler",
    },
    Deviation {
        operation: "GET /api/cron/jobs",
        kind: Kind::Body,
        why: "{jobs, total}: LibreFang's handler (issue 14); its document says a bare array",
    },
    Deviation {
        operation: "GET /api/workflows",
        kind: Kind::Body,
        why: "{items, total, offset, limit}: LibreFang's handler (issue 14); its document says a bare array",
    },
    Deviation {
        operation: "GET /api/audit/recent",
        kind: Kind::Body,
        why: "{items, total, offset, limit, tip_hash}: LibreFang's handler; its document says a bare array",
    },
    Deviation {
        operation: "GET /api/tools",
        kind: Kind::Body,
        why: "{tools, total}: LibreFang's handler (reference notes, list shapes); its document says a bare array",
    },
    Deviation {
        operation: "GET /api/models",
        kind: Kind::Body,
        why: "{models, total}, as the reference pages show; LibreFang's document says a bare array, unverified against its handler",
    },
    Deviation {
        operation: "GET /api/providers",
        kind: Kind::Body,
        why: "{providers, total}, as the reference pages show; LibreFang's document says a bare array, unverified against its handler",
    },
    Deviation {
        operation: "GET /api/templates",
        kind: Kind::Body,
        why: "{templates, total}, as the reference pages show; LibreFang's document says a bare array, unverified against its handler",
    },
    Deviation {
        operation: "GET /api/budget/agents",
        kind: Kind::Body,
        why: "a bare array of per-agent spending; LibreFang's document says an object, unverified against its handler: to be checked with LibreFang's handler",
    },
    Deviation {
        operation: "GET /api/agents/identities",
        kind: Kind::Unserved,
        why: "400, not 404: the path is read as GET /api/agents/{id} with an id that is not a UUID; identities are not served",
    },
    Deviation {
        operation: "DELETE /api/models/aliases/{alias}",
        kind: Kind::Unserved,
        why: "405, not 404: /api/models/{*id} (ids with slashes) is served for GET, so the path exists; aliases cannot be removed",
    },
    Deviation {
        operation: "POST /api/hooks/wake",
        kind: Kind::Status,
        why: "404 (documented: webhook triggers not enabled): the hook is off until webhooks.wake_token is set, and this daemon sets none; tests/e2e/webhooks.rs covers it on",
    },
    Deviation {
        operation: "POST /api/hooks/agent",
        kind: Kind::Status,
        why: "404 (documented: webhook triggers not enabled): the hook is off until webhooks.agent_token is set, and this daemon sets none; tests/e2e/webhooks.rs covers it on",
    },
    Deviation {
        operation: "POST /api/mcp/servers/{name}/reconnect",
        kind: Kind::Status,
        why: "502: the check's MCP server is a program that exits at once (no MCP server is installed for it), and a server that cannot be started answers 502, which LibreFang does not document; tests/e2e/mcp.rs reconnects to a real server for the 200",
    },
    Deviation {
        operation: "POST /mcp",
        kind: Kind::Status,
        why: "406: streamable HTTP requires a client to accept both application/json and text/event-stream, and the check sends no Accept header; the official SDKs send it (tests/e2e/mcp.rs)",
    },
];
