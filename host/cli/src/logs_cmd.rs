//! `talon logs`: the daemon's audit trail (`/api/audit/recent`, and
//! `/api/logs/stream` to follow it), or one agent's log
//! (`/api/agents/{id}/logs`, which also filters by level).

use std::path::Path;

use serde_json::Value;
use talon_kernel::home::Home;

use crate::agent_cmd;
use crate::client::{Client, ClientArgs, with_query};
use crate::output::{self, DIM, FAIL, WARN};

/// Flags of `talon logs`.
#[derive(Debug, clap::Args)]
pub struct LogsArgs {
    /// Keep printing new entries as they happen (the newest 200 first).
    #[arg(long, short)]
    follow: bool,
    /// Only what concerns this agent (name or id).
    #[arg(long)]
    agent: Option<String>,
    /// With --agent: only lines of this level (info, warn, error, ok).
    #[arg(long, requires = "agent", conflicts_with = "follow")]
    level: Option<String>,
    /// How many of the newest entries to print (audit: at most 500; agent: 1000).
    #[arg(long, short = 'n', default_value_t = 50, conflicts_with = "follow")]
    lines: usize,
    /// One JSON object per entry.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    client: ClientArgs,
}

/// Runs `talon logs`.
pub fn run(home: &Home, config: Option<&Path>, args: LogsArgs) -> anyhow::Result<()> {
    let client = Client::new(home, config, &args.client)?;
    let agent = match &args.agent {
        Some(agent) => Some(agent_cmd::resolve(&client, agent)?),
        None => None,
    };
    if args.follow {
        return follow(&client, agent.as_deref(), args.json);
    }
    let lines = args.lines.to_string();
    match &agent {
        Some(id) => {
            let mut query = vec![("n", lines.as_str())];
            if let Some(level) = &args.level {
                query.push(("level", level));
            }
            let body = client.get(&with_query(&format!("/api/agents/{id}/logs"), &query))?;
            let mut entries = body["logs"].as_array().cloned().unwrap_or_default();
            entries.reverse();
            for entry in &entries {
                print_agent_line(entry, args.json);
            }
        }
        None => {
            let body = client.get(&with_query("/api/audit/recent", &[("limit", &lines)]))?;
            let mut entries = body["entries"].as_array().cloned().unwrap_or_default();
            entries.reverse();
            for entry in &entries {
                print_audit_entry(entry, args.json);
            }
        }
    }
    Ok(())
}

fn follow(client: &Client, agent: Option<&str>, json: bool) -> anyhow::Result<()> {
    client.stream(reqwest::Method::GET, "/api/logs/stream", None, |event| {
        let data: Value = serde_json::from_str(&event.data).unwrap_or(Value::Null);
        if event.event.as_deref() == Some("lagged") {
            anstream::eprintln!(
                "{WARN}missed {} entries (reading too slowly){WARN:#}",
                output::text(&data["missed"])
            );
        } else if agent.is_none_or(|id| data["agent_id"].as_str() == Some(id)) {
            print_audit_entry(&data, json);
        }
        Ok(true)
    })?;
    anstream::eprintln!("{DIM}the daemon closed the log stream (it is stopping){DIM:#}");
    Ok(())
}

fn print_audit_entry(entry: &Value, json: bool) {
    if json {
        anstream::println!("{entry}");
        return;
    }
    let outcome = entry["outcome"].as_str().unwrap_or("ok");
    let agent = entry["agent_id"]
        .as_str()
        .map(|id| format!(" {DIM}agent {}{DIM:#}", id.get(..8).unwrap_or(id)))
        .unwrap_or_default();
    let tail = match outcome {
        "ok" => String::new(),
        "denied" => format!(" {WARN}denied{WARN:#}"),
        error => format!(" {FAIL}{error}{FAIL:#}"),
    };
    anstream::println!(
        "{DIM}{}{DIM:#} {}{agent} {}{tail}",
        output::time(&entry["timestamp"]),
        output::text(&entry["event_type"]),
        output::text(&entry["details"]),
    );
}

fn print_agent_line(entry: &Value, json: bool) {
    if json {
        anstream::println!("{entry}");
        return;
    }
    let level = output::text(&entry["level"]);
    let styled = match level.as_str() {
        "error" => format!("{FAIL}{level:<5}{FAIL:#}"),
        "warn" => format!("{WARN}{level:<5}{WARN:#}"),
        _ => format!("{level:<5}"),
    };
    let outcome = match entry["outcome"].as_str() {
        Some("ok") | None => String::new(),
        Some(other) => format!(" ({other})"),
    };
    anstream::println!(
        "{DIM}{}{DIM:#} {styled} {} {}{outcome}",
        output::time(&entry["timestamp"]),
        output::text(&entry["action"]),
        output::text(&entry["detail"]),
    );
}
