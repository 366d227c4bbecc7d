//! `talon cron ...`: the daemon's cron jobs (`/api/cron/jobs`, see
//! docs/SCHEDULER.md for the schedule syntax).

use std::path::Path;

use anyhow::bail;
use serde_json::{Value, json};
use talon_kernel::home::Home;

use crate::agent_cmd;
use crate::client::{Client, ClientArgs, with_query};
use crate::output::{self, BOLD, DIM};

/// Cron commands.
#[derive(Debug, clap::Subcommand)]
pub enum CronCommand {
    /// List the cron jobs, oldest first.
    #[command(visible_alias = "ls")]
    List {
        /// Only the jobs of this agent (name or id).
        #[arg(long)]
        agent: Option<String>,
        /// Print the API's JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Add a job that sends a prompt to an agent on a schedule.
    Add {
        /// The agent (name or id).
        #[arg(long)]
        agent: String,
        /// When: `0 9 * * 1-5`, `@hourly`, `every 15m`, `at 2026-01-01T09:00:00Z`.
        #[arg(long)]
        schedule: String,
        /// What to send to the agent at each run.
        #[arg(long)]
        prompt: String,
        /// The job's name (default: job-<id prefix>).
        #[arg(long)]
        name: Option<String>,
        /// IANA time zone of a cron expression (default UTC).
        #[arg(long)]
        tz: Option<String>,
        /// Create it disabled.
        #[arg(long)]
        disabled: bool,
        /// Print the API's JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Delete a job (its past runs stay in the run log).
    #[command(visible_alias = "remove")]
    Rm {
        /// The job's id or name.
        job: String,
        #[command(flatten)]
        client: ClientArgs,
    },
}

/// Runs a cron command.
pub fn run(home: &Home, config: Option<&Path>, command: CronCommand) -> anyhow::Result<()> {
    match command {
        CronCommand::List {
            agent,
            json,
            client,
        } => list(&Client::new(home, config, &client)?, agent.as_deref(), json),
        CronCommand::Add {
            agent,
            schedule,
            prompt,
            name,
            tz,
            disabled,
            json,
            client,
        } => {
            let client = Client::new(home, config, &client)?;
            let mut body = json!({
                "agent_id": agent_cmd::resolve(&client, &agent)?,
                "schedule": schedule,
                "prompt": prompt,
                "enabled": !disabled,
            });
            if let Some(name) = name {
                body["name"] = json!(name);
            }
            if let Some(tz) = tz {
                body["tz"] = json!(tz);
            }
            let job = client.call_with(reqwest::Method::POST, "/api/cron/jobs", Some(&body))?;
            if json {
                return output::print_json(&job);
            }
            anstream::println!(
                "added {BOLD}{}{BOLD:#} {DIM}{}{DIM:#}, next run: {}",
                output::text(&job["name"]),
                output::text(&job["job_id"]),
                output::time(&job["next_run"])
            );
            Ok(())
        }
        CronCommand::Rm { job, client } => rm(&Client::new(home, config, &client)?, &job),
    }
}

fn jobs(client: &Client, agent: Option<&str>) -> anyhow::Result<Value> {
    let path = match agent {
        Some(agent) => {
            let id = agent_cmd::resolve(client, agent)?;
            with_query("/api/cron/jobs", &[("agent_id", &id)])
        }
        None => "/api/cron/jobs".to_string(),
    };
    client.get(&path)
}

fn list(client: &Client, agent: Option<&str>, json: bool) -> anyhow::Result<()> {
    let body = jobs(client, agent)?;
    if json {
        return output::print_json(&body);
    }
    let jobs = body["jobs"].as_array().cloned().unwrap_or_default();
    if jobs.is_empty() {
        anstream::println!(
            "no cron jobs; add one with `talon cron add --agent <name> --schedule <when> --prompt <text>`"
        );
        return Ok(());
    }
    let rows: Vec<Vec<String>> = jobs
        .iter()
        .map(|j| {
            vec![
                output::text(&j["name"]),
                output::text(&j["cron"]),
                match j["enabled"].as_bool() {
                    Some(false) => "disabled".to_string(),
                    _ => "enabled".to_string(),
                },
                output::time(&j["next_run"]),
                output::text(&j["agent_id"]),
                output::text(&j["job_id"]),
            ]
        })
        .collect();
    output::table(
        &["NAME", "SCHEDULE", "STATE", "NEXT RUN", "AGENT", "ID"],
        &rows,
    );
    Ok(())
}

fn rm(client: &Client, job: &str) -> anyhow::Result<()> {
    let all = jobs(client, None)?;
    let matching: Vec<&str> = all["jobs"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|j| j["job_id"].as_str() == Some(job) || j["name"].as_str() == Some(job))
        .filter_map(|j| j["job_id"].as_str())
        .collect();
    let id = match matching.as_slice() {
        [id] => *id,
        [] => bail!("no cron job `{job}`\n  hint: `talon cron list` shows the jobs"),
        _ => bail!("several cron jobs are named `{job}`: name one by its id"),
    };
    client.call_with(
        reqwest::Method::DELETE,
        &format!("/api/cron/jobs/{id}"),
        None,
    )?;
    anstream::println!("deleted {job}");
    Ok(())
}
