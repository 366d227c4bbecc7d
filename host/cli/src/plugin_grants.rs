//! What a plugin is granted, as people see and change it: the grant
//! `talon plugin install` asks for (shown, and never silently nothing when
//! the plugin requests permissions), and `talon plugin grant` / `revoke`,
//! which change an installed plugin's grant through
//! `PUT /api/plugins/{name}/grants` without reinstalling it.

use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;

use anyhow::{Context, bail};
use talon_kernel::home::Home;
use talon_runtime::{Filesystem, Permissions};

use crate::client::{Client, ClientArgs};

/// Permissions named on the command line, for `grant` and `revoke`.
#[derive(Debug, clap::Args)]
pub struct ChangeArgs {
    /// The installed plugin.
    pub name: String,
    /// Everything the manifest requests (`grant`), or everything granted (`revoke`).
    #[arg(long, conflicts_with_all = ["network", "memory", "env", "filesystem"])]
    pub all: bool,
    /// A host for outgoing HTTP (repeatable), as the manifest requests it.
    #[arg(long, value_name = "HOST")]
    pub network: Vec<String>,
    /// A memory key or prefix ending in `*` (repeatable).
    #[arg(long, value_name = "KEY")]
    pub memory: Vec<String>,
    /// An environment variable of the daemon (repeatable).
    #[arg(long, value_name = "VAR")]
    pub env: Vec<String>,
    /// The calling agent's workspace.
    #[arg(long)]
    pub filesystem: bool,
    #[command(flatten)]
    pub client: ClientArgs,
}

/// Whether a change adds to or takes from the grant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// `talon plugin grant`.
    Grant,
    /// `talon plugin revoke`.
    Revoke,
}

/// Permissions in words, one kind per line, for people.
pub fn describe(p: &Permissions) -> String {
    let mut lines = Vec::new();
    if p.filesystem.is_some() {
        lines.push("  filesystem: the calling agent's workspace".to_string());
    }
    for (label, items) in [
        ("network", &p.network),
        ("memory", &p.memory),
        ("env", &p.env),
    ] {
        if !items.is_empty() {
            lines.push(format!("  {label}: {}", items.join(", ")));
        }
    }
    if lines.is_empty() {
        "  nothing".to_string()
    } else {
        lines.join("\n")
    }
}

fn is_empty(p: &Permissions) -> bool {
    p.filesystem.is_none() && p.network.is_empty() && p.memory.is_empty() && p.env.is_empty()
}

/// The grant `talon plugin install` sends for a package requesting
/// `requested`: `--grant-all`, `--grant JSON` (`'{}'` grants nothing on
/// purpose), or, when neither is given and the plugin requests something,
/// the answer to a question on a terminal; elsewhere that is an error,
/// never a silent install with nothing granted.
pub fn install_grant(
    name: &str,
    requested: &Permissions,
    grant_all: bool,
    grant: Option<String>,
) -> anyhow::Result<serde_json::Value> {
    eprintln!("{name} requests:\n{}", describe(requested));
    if grant_all {
        return Ok(serde_json::json!("all"));
    }
    if let Some(json) = grant {
        let value: serde_json::Value =
            serde_json::from_str(&json).context("--grant must be a JSON object of permissions")?;
        return Ok(value);
    }
    if is_empty(requested) {
        return Ok(serde_json::json!("none"));
    }
    if !(std::io::stdin().is_terminal() && std::io::stderr().is_terminal()) {
        bail!(
            "{name} requests permissions it needs to work; say what to grant: --grant-all for \
             everything it requests, --grant '{{\"network\": [...], ...}}' for part of it, or \
             --grant '{{}}' to install it with nothing granted"
        );
    }
    eprint!(
        "Grant all of this? [y]es / [n]o, install with nothing granted / anything else cancels: "
    );
    std::io::stderr().flush().ok();
    let mut answer = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .context("cannot read the answer")?;
    match answer.trim().to_ascii_lowercase().as_str() {
        "y" | "yes" => Ok(serde_json::json!("all")),
        "n" | "no" => Ok(serde_json::json!("none")),
        _ => bail!("install cancelled; nothing was installed"),
    }
}

/// The grant after adding (or taking away) what `args` names.
fn changed(
    current: &Permissions,
    requested: &Permissions,
    args: &ChangeArgs,
    direction: Direction,
) -> Permissions {
    if args.all {
        return match direction {
            Direction::Grant => requested.clone(),
            Direction::Revoke => Permissions::default(),
        };
    }
    let mut next = current.clone();
    let apply = |list: &mut Vec<String>, items: &[String]| match direction {
        Direction::Grant => {
            for item in items {
                if !list.contains(item) {
                    list.push(item.clone());
                }
            }
        }
        Direction::Revoke => list.retain(|i| !items.contains(i)),
    };
    apply(&mut next.network, &args.network);
    apply(&mut next.memory, &args.memory);
    apply(&mut next.env, &args.env);
    if args.filesystem {
        next.filesystem = match direction {
            Direction::Grant => Some(Filesystem::Workspace),
            Direction::Revoke => None,
        };
    }
    next
}

/// `talon plugin grant` and `talon plugin revoke`: reads the plugin's
/// grant, changes it as asked and sends the whole new grant; the daemon
/// refuses more than the manifest requests.
pub fn change(
    home: &Home,
    config: Option<&Path>,
    args: &ChangeArgs,
    direction: Direction,
) -> anyhow::Result<()> {
    let nothing_named = !args.all
        && !args.filesystem
        && args.network.is_empty()
        && args.memory.is_empty()
        && args.env.is_empty();
    if nothing_named {
        bail!(
            "name what to change: --all, --network HOST, --memory KEY, --env VAR or --filesystem"
        );
    }
    let client = Client::new(home, config, &args.client)?;
    let path = format!("/api/plugins/{}", crate::client::path_segment(&args.name));
    let view = client.call_with(reqwest::Method::GET, &path, None)?;
    let permissions = |which: &str| -> anyhow::Result<Permissions> {
        serde_json::from_value(view["permissions"][which].clone())
            .with_context(|| format!("the daemon's {which} permissions are unreadable"))
    };
    let (requested, current) = (permissions("requested")?, permissions("granted")?);
    let next = changed(&current, &requested, args, direction);
    let body = serde_json::json!({ "grant": next });
    let view = client.call_with(reqwest::Method::PUT, &format!("{path}/grants"), Some(&body))?;
    let granted: Permissions = serde_json::from_value(view["permissions"]["granted"].clone())
        .context("the daemon's answer is unreadable")?;
    println!("{} is granted:\n{}", args.name, describe(&granted));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(clap::Parser)]
    struct Line {
        #[command(flatten)]
        args: ChangeArgs,
    }

    fn args(all: bool, network: &[&str], filesystem: bool) -> ChangeArgs {
        let mut words = vec!["talon", "p"];
        if all {
            words.push("--all");
        }
        for host in network {
            words.extend(["--network", host]);
        }
        if filesystem {
            words.push("--filesystem");
        }
        <Line as clap::Parser>::parse_from(words).args
    }

    #[test]
    fn grants_add_and_revokes_take_away() {
        let requested = Permissions {
            filesystem: Some(Filesystem::Workspace),
            network: vec!["a.example".into(), "b.example".into()],
            ..Default::default()
        };
        let none = Permissions::default();
        let one = changed(
            &none,
            &requested,
            &args(false, &["a.example"], true),
            Direction::Grant,
        );
        assert_eq!(one.network, ["a.example"]);
        assert_eq!(one.filesystem, Some(Filesystem::Workspace));
        let again = changed(
            &one,
            &requested,
            &args(false, &["a.example"], false),
            Direction::Grant,
        );
        assert_eq!(again.network, ["a.example"], "no duplicates");
        let back = changed(
            &one,
            &requested,
            &args(false, &["a.example"], true),
            Direction::Revoke,
        );
        assert!(is_empty(&back));
        assert_eq!(
            changed(&none, &requested, &args(true, &[], false), Direction::Grant),
            requested
        );
        assert!(is_empty(&changed(
            &requested,
            &requested,
            &args(true, &[], false),
            Direction::Revoke
        )));
    }

    #[test]
    fn nothing_requested_reads_as_nothing() {
        assert_eq!(describe(&Permissions::default()), "  nothing");
    }
}
