//! `talon`: the daemon (`talon start`) and the commands that talk to it.

mod audit_cmd;
mod client;
mod daemon;
mod daemon_file;
mod plugin_cmd;
mod plugin_grants;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// Talon, an agent operating system.
#[derive(Debug, Parser)]
#[command(name = "talon", version, about, long_about = None)]
struct Cli {
    /// Data directory (default: $TALON_HOME, else ~/.talon).
    #[arg(long, global = true, env = "TALON_HOME")]
    home: Option<PathBuf>,
    /// Configuration file (default: <home>/config.toml).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the daemon in the foreground.
    Start(daemon::StartArgs),
    /// Show the running daemon's status.
    Status(client::ClientArgs),
    /// Ask the running daemon to shut down gracefully.
    Stop(client::ClientArgs),
    /// Configuration commands.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Audit trail commands.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Plugin commands: keygen, scaffold, pack, verify, run, install, list, remove.
    #[command(subcommand)]
    Plugin(plugin_cmd::PluginCommand),
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// Verify the audit hash chain of a data directory (daemon stopped).
    Verify,
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Print the running daemon's configuration as TOML (secrets redacted).
    Show {
        /// Print JSON instead.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        client: client::ClientArgs,
    },
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let home = match cli.home {
        Some(dir) => talon_kernel::home::Home::new(dir),
        None => talon_kernel::home::Home::from_env(),
    };
    let result = match cli.command {
        Command::Start(args) => daemon::start(home, cli.config, args),
        Command::Status(args) => client::status(&home, cli.config.as_deref(), &args),
        Command::Stop(args) => client::stop(&home, cli.config.as_deref(), &args),
        Command::Config(ConfigCommand::Show { json, client }) => {
            client::config_show(&home, cli.config.as_deref(), &client, json)
        }
        Command::Audit(AuditCommand::Verify) => audit_cmd::verify(&home),
        Command::Plugin(command) => plugin_cmd::run(&home, cli.config.as_deref(), command),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("talon: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
