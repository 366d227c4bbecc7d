//! The built-in catalog of well-known MCP servers and how to start them:
//! data in the binary, read by `GET /api/mcp/catalog` and used by
//! `POST /api/mcp/servers {"template_id": ...}` to fill in a server's entry.

use serde::Serialize;

use crate::config::{McpServerEntry, McpTransport};

/// A setting a catalog server needs from the operator.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RequiredEnv {
    /// The variable (for stdio) or, for an HTTP server, `token`.
    pub name: &'static str,
    /// What it is.
    pub label: &'static str,
    /// Where to get it.
    pub help: &'static str,
    /// Whether it is a secret (kept in the secrets file, never echoed).
    pub is_secret: bool,
}

/// One well-known server.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CatalogEntry {
    /// Its id (`template_id` when adding it).
    pub id: &'static str,
    /// Its display name.
    pub name: &'static str,
    /// What it offers.
    pub description: &'static str,
    /// A coarse category.
    pub category: &'static str,
    /// `stdio`, `http` or `sse`.
    pub transport: McpTransport,
    /// The program (stdio).
    pub command: &'static str,
    /// Its arguments (stdio).
    pub args: &'static [&'static str],
    /// Its URL (http, sse).
    pub url: &'static str,
    /// What the operator must supply.
    pub required_env: &'static [RequiredEnv],
    /// How to set it up beyond that.
    pub setup_instructions: &'static str,
    /// Where it is documented.
    pub homepage: &'static str,
}

impl CatalogEntry {
    /// The server entry this template describes (the caller adds the
    /// operator's settings).
    pub fn to_entry(&self) -> McpServerEntry {
        McpServerEntry {
            transport: self.transport,
            url: self.url.to_string(),
            command: self.command.to_string(),
            args: self.args.iter().map(|a| a.to_string()).collect(),
            ..McpServerEntry::default()
        }
    }
}

const NPX_NOTE: &str =
    "Needs Node.js (npx) on the daemon's PATH; the package is downloaded on first start.";
const UVX_NOTE: &str =
    "Needs uv (uvx) on the daemon's PATH; the package is downloaded on first start.";

/// Every catalog entry.
pub const CATALOG: &[CatalogEntry] = &[
    CatalogEntry {
        id: "everything",
        name: "Everything (reference)",
        description: "The MCP reference test server: echo, add, long-running operations, sample resources and prompts.",
        category: "development",
        transport: McpTransport::Stdio,
        command: "npx",
        args: &["-y", "@modelcontextprotocol/server-everything"],
        url: "",
        required_env: &[],
        setup_instructions: NPX_NOTE,
        homepage: "https://github.com/modelcontextprotocol/servers/tree/main/src/everything",
    },
    CatalogEntry {
        id: "filesystem",
        name: "Filesystem",
        description: "Read, write, search and list files under the directories it is given.",
        category: "files",
        transport: McpTransport::Stdio,
        command: "npx",
        args: &["-y", "@modelcontextprotocol/server-filesystem", "."],
        url: "",
        required_env: &[],
        setup_instructions: "Needs Node.js (npx). It may reach only the directories named after the package in `args` (the server's working directory by default): set `cwd` or replace `.`.",
        homepage: "https://github.com/modelcontextprotocol/servers/tree/main/src/filesystem",
    },
    CatalogEntry {
        id: "fetch",
        name: "Fetch",
        description: "Fetches a URL and returns its content as markdown.",
        category: "web",
        transport: McpTransport::Stdio,
        command: "uvx",
        args: &["mcp-server-fetch"],
        url: "",
        required_env: &[],
        setup_instructions: UVX_NOTE,
        homepage: "https://github.com/modelcontextprotocol/servers/tree/main/src/fetch",
    },
    CatalogEntry {
        id: "git",
        name: "Git",
        description: "Reads and edits a git repository: status, diff, log, commit, branches.",
        category: "development",
        transport: McpTransport::Stdio,
        command: "uvx",
        args: &["mcp-server-git"],
        url: "",
        required_env: &[],
        setup_instructions: "Needs uv (uvx). Add `--repository <path>` to `args`, or set `cwd` to the repository.",
        homepage: "https://github.com/modelcontextprotocol/servers/tree/main/src/git",
    },
    CatalogEntry {
        id: "memory",
        name: "Memory",
        description: "A knowledge graph kept in a local file: entities, relations and observations.",
        category: "data",
        transport: McpTransport::Stdio,
        command: "npx",
        args: &["-y", "@modelcontextprotocol/server-memory"],
        url: "",
        required_env: &[],
        setup_instructions: NPX_NOTE,
        homepage: "https://github.com/modelcontextprotocol/servers/tree/main/src/memory",
    },
    CatalogEntry {
        id: "sequential-thinking",
        name: "Sequential thinking",
        description: "A tool for step-by-step problem solving with revisable thoughts.",
        category: "reasoning",
        transport: McpTransport::Stdio,
        command: "npx",
        args: &["-y", "@modelcontextprotocol/server-sequential-thinking"],
        url: "",
        required_env: &[],
        setup_instructions: NPX_NOTE,
        homepage: "https://github.com/modelcontextprotocol/servers/tree/main/src/sequentialthinking",
    },
    CatalogEntry {
        id: "time",
        name: "Time",
        description: "Current time and conversions between time zones.",
        category: "utilities",
        transport: McpTransport::Stdio,
        command: "uvx",
        args: &["mcp-server-time"],
        url: "",
        required_env: &[],
        setup_instructions: UVX_NOTE,
        homepage: "https://github.com/modelcontextprotocol/servers/tree/main/src/time",
    },
    CatalogEntry {
        id: "github",
        name: "GitHub",
        description: "GitHub's hosted server: repositories, issues, pull requests, actions.",
        category: "development",
        transport: McpTransport::Http,
        command: "",
        args: &[],
        url: "https://api.githubcopilot.com/mcp/",
        required_env: &[RequiredEnv {
            name: "token",
            label: "GitHub personal access token",
            help: "https://github.com/settings/personal-access-tokens",
            is_secret: true,
        }],
        setup_instructions: "Sent as a bearer token; give the token only the scopes the agents need.",
        homepage: "https://github.com/github/github-mcp-server",
    },
];

/// The entry with `id`.
pub fn find(id: &str) -> Option<&'static CatalogEntry> {
    CATALOG.iter().find(|e| e.id == id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_entry_makes_a_valid_server_with_a_unique_id() {
        let mut ids = std::collections::HashSet::new();
        for entry in CATALOG {
            assert!(ids.insert(entry.id), "duplicate id {}", entry.id);
            assert_eq!(entry.to_entry().check(), Ok(()), "{}", entry.id);
        }
        assert_eq!(find("everything").map(|e| e.command), Some("npx"));
        assert!(find("nope").is_none());
    }
}
