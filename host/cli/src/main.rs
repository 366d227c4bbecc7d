//! `talon`: the daemon (`talon start`) and the commands that talk to it.

mod agent_cmd;
mod audit_cmd;
mod channel_cmd;
mod client;
mod compile_cmd;
mod cron_cmd;
mod daemon;
mod daemon_file;
mod db_cmd;
mod doctor;
mod hand_cmd;
mod logs_cmd;
mod output;
mod plugin_author;
mod plugin_cmd;
mod plugin_grants;
mod progress;

use std::path::PathBuf;

use clap::{CommandFactory, Parser, Subcommand};

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
    Status {
        /// Print the API's JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        client: client::ClientArgs,
    },
    /// Ask the running daemon to shut down gracefully.
    Stop(client::ClientArgs),
    /// Configuration commands.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Audit trail commands.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Plugin commands: new, build, dev, keygen, pack, verify, run, install, list, remove.
    #[command(subcommand)]
    Plugin(plugin_cmd::PluginCommand),
    /// Agent commands: list, new, templates, show, rm, chat.
    #[command(subcommand)]
    Agent(agent_cmd::AgentCommand),
    /// Cron jobs: list, add, rm.
    #[command(subcommand)]
    Cron(cron_cmd::CronCommand),
    /// Chat channels bound to agents: list, add, test, remove.
    #[command(subcommand)]
    Channel(channel_cmd::ChannelCommand),
    /// Hands: list, install, activate, pause, resume, stats.
    #[command(subcommand)]
    Hand(hand_cmd::HandCommand),
    /// The database file: stats, compact (daemon stopped).
    #[command(subcommand)]
    Db(db_cmd::DbCommand),
    /// Print the audit trail, or one agent's log; --follow keeps printing.
    Logs(logs_cmd::LogsArgs),
    /// Check this machine and home: config, disk, daemon, port, plugins,
    /// provider keys, plugin toolchains.
    Doctor(doctor::DoctorArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// The daemon's compiler process: compiles the component on stdin.
    #[command(name = "__compile", hide = true)]
    Compile(compile_cmd::CompileArgs),
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// Verify the audit hash chain of a data directory (daemon stopped).
    Verify,
    /// Checkpoint the audit chain at its head and remove the entries
    /// before the cut (daemon stopped; `POST /api/audit/checkpoint` while
    /// it runs).
    Prune,
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
    if !matches!(cli.command, Command::Start(_)) {
        output::die_quietly_on_closed_pipe();
    }
    let home = match cli.home {
        Some(dir) => talon_kernel::home::Home::new(dir),
        None => talon_kernel::home::Home::from_env(),
    };
    let result = match cli.command {
        Command::Start(args) => daemon::start(home, cli.config, args),
        Command::Status { json, client } => {
            client::status(&home, cli.config.as_deref(), &client, json)
        }
        Command::Stop(args) => client::stop(&home, cli.config.as_deref(), &args),
        Command::Config(ConfigCommand::Show { json, client }) => {
            client::config_show(&home, cli.config.as_deref(), &client, json)
        }
        Command::Audit(AuditCommand::Verify) => audit_cmd::verify(&home),
        Command::Audit(AuditCommand::Prune) => audit_cmd::prune(&home),
        Command::Plugin(command) => plugin_cmd::run(&home, cli.config.as_deref(), command),
        Command::Agent(command) => agent_cmd::run(&home, cli.config.as_deref(), command),
        Command::Cron(command) => cron_cmd::run(&home, cli.config.as_deref(), command),
        Command::Channel(command) => channel_cmd::run(&home, cli.config.as_deref(), command),
        Command::Hand(command) => hand_cmd::run(&home, cli.config.as_deref(), command),
        Command::Db(command) => db_cmd::run(&home, command),
        Command::Logs(args) => logs_cmd::run(&home, cli.config.as_deref(), args),
        Command::Doctor(args) => doctor::run(&home, cli.config.as_deref(), args),
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "talon", &mut std::io::stdout());
            Ok(())
        }
        Command::Compile(args) => compile_cmd::run(args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            let fail = output::FAIL;
            anstream::eprintln!("{fail}error:{fail:#} {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
