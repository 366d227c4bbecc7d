//! `talon hand ...`: the daemon's hands and their instances
//! (`/api/hands`, see docs/HANDS.md).

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde_json::{Value, json};
use talon_kernel::home::Home;

use crate::client::{Client, ClientArgs};
use crate::output::{self, BOLD, DIM};

/// Hand commands.
#[derive(Debug, clap::Subcommand)]
pub enum HandCommand {
    /// List the installed hands and their instances.
    #[command(visible_alias = "ls")]
    List {
        /// Print the API's JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Install a signed hand package.
    Install {
        /// The package file.
        package: PathBuf,
        /// Grant everything the manifest requests.
        #[arg(long, conflicts_with = "grant")]
        grant_all: bool,
        /// Grant exactly this, as JSON: {"network": [...], "memory": [...]}.
        #[arg(long)]
        grant: Option<String>,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Activate a hand: an agent of its own, ticked on its schedule.
    Activate {
        /// The hand (its plugin's name).
        hand: String,
        /// Its settings, as JSON (checked against the hand's schema).
        #[arg(long, default_value = "{}")]
        settings: String,
        /// The provider of its agent's model.
        #[arg(long)]
        provider: String,
        /// Its agent's model.
        #[arg(long)]
        model: String,
        /// Seconds between ticks (at least the hand's own interval).
        #[arg(long)]
        every: Option<u64>,
        /// Print the API's JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Pause an instance: no ticks; its agent and state stay.
    Pause {
        /// The instance's id.
        instance: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Resume a paused instance.
    Resume {
        /// The instance's id.
        instance: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// An instance's state and the hand's own figures.
    Stats {
        /// The instance's id.
        instance: String,
        /// Print the API's JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        client: ClientArgs,
    },
}

/// Runs a hand command.
pub fn run(home: &Home, config: Option<&Path>, command: HandCommand) -> anyhow::Result<()> {
    match command {
        HandCommand::List { json, client } => list(&Client::new(home, config, &client)?, json),
        HandCommand::Install {
            package,
            grant_all,
            grant,
            client,
        } => {
            let (_, body) =
                crate::plugin_cmd::install_body(&package, grant_all, grant, Vec::new())?;
            let client = Client::new(home, config, &client)?;
            let hand =
                client.call_with(reqwest::Method::POST, "/api/hands/install", Some(&body))?;
            anstream::println!(
                "installed hand {BOLD}{}{BOLD:#} {}",
                output::text(&hand["id"]),
                output::text(&hand["version"])
            );
            Ok(())
        }
        HandCommand::Activate {
            hand,
            settings,
            provider,
            model,
            every,
            json,
            client,
        } => {
            let settings: Value =
                serde_json::from_str(&settings).context("--settings must be JSON")?;
            let mut body = json!({ "config": settings, "provider": provider, "model": model });
            if let Some(every) = every {
                body["tick_interval_secs"] = json!(every);
            }
            let client = Client::new(home, config, &client)?;
            let instance = client
                .call_with(
                    reqwest::Method::POST,
                    &format!("/api/hands/{hand}/activate"),
                    Some(&body),
                )
                .with_context(|| format!("activating hand {hand}"))?;
            if json {
                return output::print_json(&instance);
            }
            anstream::println!(
                "activated {BOLD}{hand}{BOLD:#}: instance {} driving agent {} {DIM}every {} s{DIM:#}",
                output::text(&instance["instance_id"]),
                output::text(&instance["agent_id"]),
                output::text(&instance["tick_interval_secs"]),
            );
            Ok(())
        }
        HandCommand::Pause { instance, client } => {
            change(&Client::new(home, config, &client)?, &instance, "pause")
        }
        HandCommand::Resume { instance, client } => {
            change(&Client::new(home, config, &client)?, &instance, "resume")
        }
        HandCommand::Stats {
            instance,
            json,
            client,
        } => {
            let client = Client::new(home, config, &client)?;
            let stats = client.get(&format!("/api/hands/instances/{instance}/stats"))?;
            if json {
                return output::print_json(&stats);
            }
            anstream::println!(
                "{BOLD}{}{BOLD:#} {instance}: {} {DIM}({}, {} ticks, {} failed, {} restarts){DIM:#}",
                output::text(&stats["hand_id"]),
                output::text(&stats["status"]),
                output::text(&stats["state"]),
                output::text(&stats["ticks"]),
                output::text(&stats["failed_ticks"]),
                output::text(&stats["restarts"]),
            );
            if let Some(error) = stats["last_error"].as_str() {
                anstream::println!("last error: {error}");
            }
            let metrics = stats["metrics"].as_object().cloned().unwrap_or_default();
            let rows: Vec<Vec<String>> = metrics
                .iter()
                .map(|(label, m)| vec![label.clone(), output::text(&m["value"])])
                .collect();
            if !rows.is_empty() {
                output::table(&["METRIC", "VALUE"], &rows);
            }
            if let Some(error) = stats["metrics_error"].as_str() {
                anstream::println!("{DIM}no metrics: {error}{DIM:#}");
            }
            Ok(())
        }
    }
}

fn change(client: &Client, instance: &str, action: &str) -> anyhow::Result<()> {
    let view = client.call_with(
        reqwest::Method::POST,
        &format!("/api/hands/instances/{instance}/{action}"),
        Some(&json!({})),
    )?;
    let status = output::text(&view["status"]);
    if status == "failed" {
        bail!("{instance}: failed: {}", output::text(&view["last_error"]));
    }
    anstream::println!("{instance}: {status}");
    Ok(())
}

fn list(client: &Client, json: bool) -> anyhow::Result<()> {
    let hands = client.get("/api/hands")?;
    let active = client.get("/api/hands/active")?;
    if json {
        return output::print_json(
            &json!({ "hands": hands["hands"], "active": active["instances"] }),
        );
    }
    let hands = hands["hands"].as_array().cloned().unwrap_or_default();
    if hands.is_empty() {
        anstream::println!("no hands; install one with `talon hand install <package>`");
        return Ok(());
    }
    let rows: Vec<Vec<String>> = hands
        .iter()
        .map(|h| {
            vec![
                output::text(&h["id"]),
                output::text(&h["version"]),
                output::text(&h["status"]),
                h["instances"].as_array().map_or(0, Vec::len).to_string(),
                output::summary(&output::text(&h["description"]), 60),
            ]
        })
        .collect();
    output::table(
        &["HAND", "VERSION", "STATUS", "INSTANCES", "DESCRIPTION"],
        &rows,
    );
    let instances = active["instances"].as_array().cloned().unwrap_or_default();
    if !instances.is_empty() {
        anstream::println!();
        let rows: Vec<Vec<String>> = instances
            .iter()
            .map(|i| {
                vec![
                    output::text(&i["instance_id"]),
                    output::text(&i["hand_id"]),
                    output::text(&i["status"]),
                    output::text(&i["ticks"]),
                    output::summary(&output::text(&i["last_error"]), 50),
                ]
            })
            .collect();
        output::table(
            &["INSTANCE", "HAND", "STATUS", "TICKS", "LAST ERROR"],
            &rows,
        );
    }
    Ok(())
}
