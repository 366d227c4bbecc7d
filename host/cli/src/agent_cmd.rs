//! `talon agent ...`: list, spawn, inspect, remove and talk to agents of the
//! running daemon. Agents are named by id or by name everywhere.

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde_json::{Value, json};
use talon_kernel::home::Home;
use talon_llm::sse::SseEvent;

use crate::client::{Client, ClientArgs, with_query};
use crate::output::{self, BOLD, DIM, FAIL, TOOL, WARN};
use crate::progress::Spinner;

/// Agent commands.
#[derive(Debug, clap::Subcommand)]
pub enum AgentCommand {
    /// List the agents.
    #[command(visible_alias = "ls")]
    List {
        /// Print the API's JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Spawn an agent from a manifest file or a template.
    New {
        /// A manifest file (TOML), or the name of a template (`talon agent templates`).
        source: String,
        /// With a template: the new agent's name (a manifest names its own agent).
        #[arg(long)]
        name: Option<String>,
        /// Print the API's JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// List the templates agents can be spawned from.
    Templates {
        /// Print the API's JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Show one agent in detail.
    Show {
        /// The agent's name or id.
        agent: String,
        /// Print the API's JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Remove (kill) an agent.
    #[command(visible_alias = "remove")]
    Rm {
        /// The agent's name or id.
        agent: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Talk to an agent: its answer streams as it is written, tool calls
    /// shown as they finish. Without -m, reads one message per line
    /// (interactively on a terminal; /exit or Ctrl-D leaves).
    Chat {
        /// The agent's name or id.
        agent: String,
        /// Send this one message, print the answer and exit.
        #[arg(long, short)]
        message: Option<String>,
        /// A session of the agent other than its current one.
        #[arg(long)]
        session: Option<String>,
        /// Print each streamed event as a JSON line instead of text.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        client: ClientArgs,
    },
}

/// Runs an agent command.
pub fn run(home: &Home, config: Option<&Path>, command: AgentCommand) -> anyhow::Result<()> {
    match command {
        AgentCommand::List { json, client } => list(&Client::new(home, config, &client)?, json),
        AgentCommand::New {
            source,
            name,
            json,
            client,
        } => new(&Client::new(home, config, &client)?, &source, name, json),
        AgentCommand::Templates { json, client } => {
            templates(&Client::new(home, config, &client)?, json)
        }
        AgentCommand::Show {
            agent,
            json,
            client,
        } => show(&Client::new(home, config, &client)?, &agent, json),
        AgentCommand::Rm { agent, client } => rm(&Client::new(home, config, &client)?, &agent),
        AgentCommand::Chat {
            agent,
            message,
            session,
            json,
            client,
        } => {
            let client = Client::new(home, config, &client)?;
            let id = resolve(&client, &agent)?;
            let chat = Chat {
                client: &client,
                id,
                session,
                json,
            };
            match message {
                Some(message) => chat.turn(&message),
                None => chat.read_lines(),
            }
        }
    }
}

/// Whether `s` has the shape of a UUID (the API's agent ids).
fn is_uuid(s: &str) -> bool {
    s.len() == 36
        && s.char_indices().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_hexdigit(),
        })
}

/// The id of the agent called `agent` (a name or an id).
pub(crate) fn resolve(client: &Client, agent: &str) -> anyhow::Result<String> {
    if is_uuid(agent) {
        return Ok(agent.to_string());
    }
    let found = client.get(&with_query("/api/agents", &[("q", agent)]))?;
    let ids: Vec<&str> = found["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|a| a["name"].as_str() == Some(agent))
        .filter_map(|a| a["id"].as_str())
        .collect();
    match ids.as_slice() {
        [id] => Ok(id.to_string()),
        [] => bail!("no agent named `{agent}`\n  hint: `talon agent list` shows the agents"),
        _ => bail!("several agents are named `{agent}`: name one by its id"),
    }
}

fn list(client: &Client, json: bool) -> anyhow::Result<()> {
    let body = client.get("/api/agents")?;
    if json {
        return output::print_json(&body);
    }
    let agents = body["items"].as_array().cloned().unwrap_or_default();
    if agents.is_empty() {
        anstream::println!("no agents; spawn one with `talon agent new <manifest.toml>`");
        return Ok(());
    }
    let rows: Vec<Vec<String>> = agents
        .iter()
        .map(|a| {
            vec![
                output::text(&a["name"]),
                output::text(&a["state"]),
                format!(
                    "{}/{}",
                    output::text(&a["model_provider"]),
                    output::text(&a["model_name"])
                ),
                output::text(&a["id"]),
            ]
        })
        .collect();
    output::table(&["NAME", "STATE", "MODEL", "ID"], &rows);
    Ok(())
}

fn new(client: &Client, source: &str, name: Option<String>, json: bool) -> anyhow::Result<()> {
    let path = PathBuf::from(source);
    let looks_like_a_file =
        path.extension().is_some() || source.contains(std::path::MAIN_SEPARATOR);
    let body = if path.is_file() || looks_like_a_file {
        if name.is_some() {
            bail!("--name goes with a template; a manifest names its agent itself (`name = ...`)");
        }
        let manifest = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read the manifest {}", path.display()))?;
        json!({ "manifest_toml": manifest })
    } else {
        json!({ "template": source, "name": name })
    };
    let spawned = client
        .call_with(reqwest::Method::POST, "/api/agents", Some(&body))
        .with_context(|| format!("cannot spawn from {source}"))?;
    if json {
        return output::print_json(&spawned);
    }
    anstream::println!(
        "spawned {BOLD}{}{BOLD:#} {DIM}{}{DIM:#}",
        output::text(&spawned["name"]),
        output::text(&spawned["agent_id"])
    );
    anstream::println!(
        "talk to it with `talon agent chat {} -m \"...\"`",
        output::text(&spawned["name"])
    );
    Ok(())
}

fn templates(client: &Client, json: bool) -> anyhow::Result<()> {
    let body = client.get("/api/templates")?;
    if json {
        return output::print_json(&body);
    }
    let rows: Vec<Vec<String>> = body["templates"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| {
            vec![
                output::text(&t["name"]),
                format!(
                    "{}/{}",
                    output::text(&t["model"]["provider"]),
                    output::text(&t["model"]["model"])
                ),
                output::summary(&output::text(&t["description"]), 60),
            ]
        })
        .collect();
    output::table(&["TEMPLATE", "MODEL", "DESCRIPTION"], &rows);
    Ok(())
}

fn show(client: &Client, agent: &str, json: bool) -> anyhow::Result<()> {
    let id = resolve(client, agent)?;
    let a = client.get(&format!("/api/agents/{id}"))?;
    if json {
        return output::print_json(&a);
    }
    anstream::println!(
        "{BOLD}{}{BOLD:#} {DIM}{}{DIM:#}",
        output::text(&a["name"]),
        output::text(&a["id"])
    );
    let field = |label: &str, value: String| anstream::println!("  {label:<12} {value}");
    field("state", output::text(&a["state"]));
    field("mode", output::text(&a["mode"]));
    field(
        "model",
        format!(
            "{}/{}",
            output::text(&a["model"]["provider"]),
            output::text(&a["model"]["model"])
        ),
    );
    field("tools", list_text(&a["tools"]));
    field("skills", list_text(&a["skills"]));
    field("session", output::text(&a["session_id"]));
    field("created", output::time(&a["created_at"]));
    field("last active", output::time(&a["last_active"]));
    if let Some(description) = a["description"].as_str().filter(|d| !d.is_empty()) {
        field("description", output::summary(description, 200));
    }
    if let Some(prompt) = a["system_prompt"].as_str() {
        field("prompt", output::summary(prompt, 200));
    }
    Ok(())
}

fn list_text(value: &Value) -> String {
    let items: Vec<String> = value
        .as_array()
        .into_iter()
        .flatten()
        .map(output::text)
        .collect();
    match items.is_empty() {
        true => "-".to_string(),
        false => items.join(", "),
    }
}

fn rm(client: &Client, agent: &str) -> anyhow::Result<()> {
    let id = resolve(client, agent)?;
    let answer = client.call_with(reqwest::Method::DELETE, &format!("/api/agents/{id}"), None)?;
    match answer["status"].as_str() {
        Some("already-deleted") => anstream::println!("{agent} was already removed"),
        _ => anstream::println!("removed {agent}"),
    }
    Ok(())
}

/// A conversation with one agent over the SSE stream.
struct Chat<'a> {
    client: &'a Client,
    id: String,
    session: Option<String>,
    json: bool,
}

impl Chat<'_> {
    /// One message per line of stdin, until end of input or `/exit`.
    fn read_lines(&self) -> anyhow::Result<()> {
        let interactive = std::io::stdin().is_terminal();
        if interactive {
            anstream::eprintln!("{DIM}one message per line; /exit or Ctrl-D to leave{DIM:#}");
        }
        let mut lines = std::io::stdin().lock().lines();
        loop {
            if interactive {
                anstream::print!("{BOLD}you>{BOLD:#} ");
                std::io::stdout().flush()?;
            }
            let Some(line) = lines.next() else { break };
            let line = line.context("cannot read stdin")?;
            let line = line.trim();
            match line {
                "" => continue,
                "/exit" | "/quit" => break,
                _ => {}
            }
            if let Err(e) = self.turn(line) {
                // One failed turn does not end a conversation at a terminal.
                if !interactive {
                    return Err(e);
                }
                anstream::eprintln!("{FAIL}error:{FAIL:#} {e:#}");
            }
        }
        if interactive {
            anstream::println!();
        }
        Ok(())
    }

    /// Sends `message` and renders the turn as it streams.
    fn turn(&self, message: &str) -> anyhow::Result<()> {
        let mut body = json!({ "message": message });
        if let Some(session) = &self.session {
            body["session_id"] = json!(session);
        }
        let path = format!("/api/agents/{}/message/stream", self.id);
        let mut view = TurnView::new(self.json);
        self.client
            .stream(reqwest::Method::POST, &path, Some(&body), |event| {
                view.show(event)
            })?;
        view.finish()
    }
}

/// How far a streamed turn got, and what is on the screen.
struct TurnView {
    json: bool,
    spinner: Option<Spinner>,
    /// Whether the cursor is at the start of a line on stdout.
    line_start: bool,
    /// Whether any answer text was printed (else `done`'s response is).
    printed_text: bool,
    done: Option<Value>,
    failure: Option<String>,
}

impl TurnView {
    fn new(json: bool) -> Self {
        Self {
            json,
            spinner: (!json).then(|| Spinner::start("waiting for the agent")),
            line_start: true,
            printed_text: false,
            done: None,
            failure: None,
        }
    }

    fn end_line(&mut self) {
        if !self.line_start {
            anstream::println!();
            self.line_start = true;
        }
    }

    /// Renders one event; false once the turn is over.
    fn show(&mut self, event: SseEvent) -> anyhow::Result<bool> {
        let data: Value = serde_json::from_str(&event.data).unwrap_or(Value::String(event.data));
        let name = event.event.as_deref().unwrap_or("message");
        if self.json {
            anstream::println!("{}", json!({ "event": name, "data": data }));
        }
        match name {
            "chunk" => {
                let text = data["content"].as_str().unwrap_or_default();
                if !self.json && !text.is_empty() {
                    self.spinner = None;
                    anstream::print!("{text}");
                    std::io::stdout().flush()?;
                    self.line_start = text.ends_with('\n');
                    self.printed_text = true;
                }
            }
            "phase" => match data["phase"].as_str() {
                Some("error") => {
                    self.failure = Some(output::text(&data["detail"]));
                    return Ok(false);
                }
                Some("thinking") if !self.json && self.spinner.is_none() => {
                    self.spinner = Some(Spinner::start("thinking"));
                }
                Some("context_warning") if !self.json => {
                    if let Some(spinner) = &self.spinner {
                        spinner.set_message("compacting the session");
                    }
                }
                _ => {}
            },
            "tool_use" if !self.json => {
                let message = format!("running {}", output::text(&data["tool"]));
                match &self.spinner {
                    Some(spinner) => spinner.set_message(message),
                    None => self.spinner = Some(Spinner::start(message)),
                }
            }
            "tool_result" if !self.json => {
                self.spinner = None;
                self.end_line();
                let input = output::summary(&data["input"].to_string(), 120);
                let result = output::summary(&output::text(&data["result"]), 160);
                let tool = output::text(&data["tool"]);
                match data["is_error"].as_bool() == Some(true) {
                    true => anstream::println!(
                        "{TOOL}[tool] {tool}{TOOL:#} {DIM}{input}{DIM:#}\n       {FAIL}failed:{FAIL:#} {result}"
                    ),
                    false => anstream::println!(
                        "{TOOL}[tool] {tool}{TOOL:#} {DIM}{input}{DIM:#}\n       {TOOL}=>{TOOL:#} {result}"
                    ),
                }
            }
            "owner_notice" if !self.json => {
                self.end_line();
                anstream::eprintln!(
                    "{WARN}notice for the owner:{WARN:#} {}",
                    output::text(&data["text"])
                );
            }
            "done" => {
                self.done = Some(data);
                return Ok(false);
            }
            _ => {}
        }
        Ok(true)
    }

    fn finish(mut self) -> anyhow::Result<()> {
        self.spinner = None;
        if let Some(why) = self.failure.take() {
            self.end_line();
            bail!("the turn failed: {why}");
        }
        let Some(done) = self.done.take() else {
            self.end_line();
            bail!("the stream ended before the turn did (the daemon may have stopped)");
        };
        if self.json {
            return Ok(());
        }
        if !self.printed_text
            && let Some(response) = done["response"].as_str()
        {
            anstream::print!("{response}");
            self.line_start = response.ends_with('\n') || response.is_empty();
        }
        self.end_line();
        let usage = &done["usage"];
        anstream::eprintln!(
            "{DIM}({} iterations, {} in + {} out tokens, ${}){DIM:#}",
            output::text(&done["iterations"]),
            output::text(&usage["input_tokens"]),
            output::text(&usage["output_tokens"]),
            output::text(&done["cost_usd"]),
        );
        match done["status"].as_str() {
            None | Some("completed") => Ok(()),
            Some(status) => bail!("the turn ended early: {status}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::is_uuid;

    #[test]
    fn ids_are_told_from_names() {
        assert!(is_uuid("0192f0c4-7d1e-7a3b-9c2d-123456789abc"));
        assert!(!is_uuid("writer"));
        assert!(!is_uuid("0192f0c4x7d1e-7a3b-9c2d-123456789abc"));
    }
}
