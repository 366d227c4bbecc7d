//! `talon channel ...`: the daemon's configured chat channels
//! (`/api/channels`, see docs/CHANNELS.md).

use std::path::Path;

use anyhow::{Context, bail};
use serde_json::{Map, Value, json};
use talon_kernel::home::Home;

use crate::client::{Client, ClientArgs};
use crate::output::{self, BOLD, DIM};

/// Channel commands.
#[derive(Debug, clap::Subcommand)]
pub enum ChannelCommand {
    /// List the configured channels with their state.
    #[command(visible_alias = "ls")]
    List {
        /// Print the API's JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Configure a channel (or change one) bound to an agent, and start it.
    Add {
        /// The channel's name (`irc`, `irc-work`).
        name: String,
        /// The agent that answers (name or id).
        #[arg(long)]
        agent: Option<String>,
        /// The installed channel plugin (default: the channel's name).
        #[arg(long)]
        plugin: Option<String>,
        /// A configuration key: `--set server=irc.example.org --set port=6697`;
        /// a value that parses as JSON (numbers, booleans, lists) is taken as JSON.
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
        /// Keep it configured but not running.
        #[arg(long)]
        disabled: bool,
        /// Print the API's JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Ask a channel, now, whether its platform is reachable.
    Test {
        /// The channel's name.
        name: String,
        /// Also send a test message to this chat.
        #[arg(long)]
        chat: Option<String>,
        /// Print the API's JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Stop a channel and remove its configuration and secrets.
    #[command(visible_alias = "rm")]
    Remove {
        /// The channel's name.
        name: String,
        #[command(flatten)]
        client: ClientArgs,
    },
}

/// `KEY=VALUE` pairs as a JSON object; values that parse as JSON are JSON.
fn settings(pairs: &[String]) -> anyhow::Result<Map<String, Value>> {
    let mut out = Map::new();
    for pair in pairs {
        let Some((key, value)) = pair.split_once('=') else {
            bail!("`--set {pair}`: write KEY=VALUE");
        };
        let value = serde_json::from_str(value).unwrap_or_else(|_| json!(value));
        out.insert(key.trim().to_string(), value);
    }
    Ok(out)
}

/// Runs a channel command.
pub fn run(home: &Home, config: Option<&Path>, command: ChannelCommand) -> anyhow::Result<()> {
    match command {
        ChannelCommand::List { json, client } => list(&Client::new(home, config, &client)?, json),
        ChannelCommand::Add {
            name,
            agent,
            plugin,
            set,
            disabled,
            json,
            client,
        } => {
            let client = Client::new(home, config, &client)?;
            let mut body = json!({ "config": settings(&set)?, "enabled": !disabled });
            if let Some(agent) = agent {
                body["agent"] = json!(agent);
            }
            if let Some(plugin) = plugin {
                body["plugin"] = json!(plugin);
            }
            let channel = client
                .call_with(
                    reqwest::Method::POST,
                    &format!("/api/channels/{name}/configure"),
                    Some(&body),
                )
                .with_context(|| format!("configuring channel {name}"))?;
            if json {
                return output::print_json(&channel);
            }
            anstream::println!(
                "configured {BOLD}{name}{BOLD:#} ({}) {DIM}{}{DIM:#}",
                output::text(&channel["plugin"]),
                output::text(&channel["state"]),
            );
            Ok(())
        }
        ChannelCommand::Test {
            name,
            chat,
            json,
            client,
        } => {
            let client = Client::new(home, config, &client)?;
            let body = json!({ "chat_id": chat });
            let outcome = client.call_with(
                reqwest::Method::POST,
                &format!("/api/channels/{name}/test"),
                Some(&body),
            )?;
            if json {
                return output::print_json(&outcome);
            }
            let detail = output::text(&outcome["detail"]);
            if outcome["success"].as_bool() != Some(true) {
                bail!("channel {name} is not reachable: {detail}");
            }
            anstream::println!("{name}: reachable ({detail})");
            if outcome["sent"].as_bool() == Some(true) {
                anstream::println!("test message queued");
            }
            Ok(())
        }
        ChannelCommand::Remove { name, client } => {
            let client = Client::new(home, config, &client)?;
            client.call_with(
                reqwest::Method::DELETE,
                &format!("/api/channels/{name}/configure"),
                None,
            )?;
            anstream::println!("removed {name}");
            Ok(())
        }
    }
}

fn list(client: &Client, json: bool) -> anyhow::Result<()> {
    let body = client.get("/api/channels")?;
    if json {
        return output::print_json(&body);
    }
    let channels = body["channels"].as_array().cloned().unwrap_or_default();
    if channels.is_empty() {
        anstream::println!(
            "no channels; add one with `talon channel add <name> --agent <agent> --set key=value`"
        );
        return Ok(());
    }
    let rows: Vec<Vec<String>> = channels
        .iter()
        .map(|c| {
            vec![
                output::text(&c["name"]),
                output::text(&c["plugin"]),
                output::text(&c["state"]),
                output::text(&c["agent_id"]),
                output::text(&c["restarts"]),
                output::summary(&output::text(&c["last_error"]), 60),
            ]
        })
        .collect();
    output::table(
        &["NAME", "PLUGIN", "STATE", "AGENT", "RESTARTS", "LAST ERROR"],
        &rows,
    );
    Ok(())
}
