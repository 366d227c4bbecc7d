//! `talon db stats`, `talon db prune` and `talon db compact`: the database
//! file of a data directory, with the daemon stopped.
//!
//! Both open the file directly, as `talon audit verify` does: redb locks it,
//! so a running daemon makes them fail with a clear message instead of
//! racing it, and compaction needs the file with no reader at all, which a
//! daemon serving requests cannot promise. `GET /api/health/detail` reports
//! the file's size while the daemon runs.

use anyhow::{Context, bail};
use clap::Subcommand;
use talon_kernel::config::Config;
use talon_kernel::home::Home;
use talon_kernel::store::{Store, stats};

/// `talon db ...`.
#[derive(Debug, Subcommand)]
pub enum DbCommand {
    /// Tables, row counts and bytes of the database, and the file's size
    /// (daemon stopped).
    Stats {
        /// Print JSON instead.
        #[arg(long)]
        json: bool,
    },
    /// Remove the turn records `[retention]` does not keep, as the daemon's
    /// sweep does (daemon stopped); `compact` then gives the space back.
    Prune,
    /// Give the database's free pages back to the file system (daemon stopped).
    Compact,
}

/// Runs one `db` command.
pub fn run(home: &Home, command: DbCommand) -> anyhow::Result<()> {
    let path = home.database_file();
    if !path.exists() {
        bail!("no database at {}", path.display());
    }
    let busy = || {
        format!(
            "cannot open {} (is the daemon running? stop it first with `talon stop`)",
            path.display()
        )
    };
    match command {
        DbCommand::Stats { json } => {
            let store = Store::open(&path).with_context(busy)?;
            let s = stats::stats(&store)?;
            if json {
                return crate::output::print_json(&serde_json::to_value(&s)?);
            }
            println!("database: {}", path.display());
            println!(
                "  file {} bytes, allocated {} bytes, journal {} bytes",
                s.file_bytes, s.allocated_bytes, s.journal_bytes
            );
            let rows: Vec<Vec<String>> = s
                .tables
                .iter()
                .map(|t| {
                    vec![
                        t.name.clone(),
                        t.rows.to_string(),
                        t.stored_bytes.to_string(),
                        (t.metadata_bytes + t.fragmented_bytes).to_string(),
                    ]
                })
                .collect();
            crate::output::table(&["TABLE", "ROWS", "BYTES", "OVERHEAD"], &rows);
            Ok(())
        }
        DbCommand::Prune => {
            let file = home.config_file();
            let config = if file.exists() {
                Config::load(&file).with_context(|| format!("cannot read {}", file.display()))?
            } else {
                Config::default()
            };
            let store = Store::open(&path).with_context(busy)?;
            let swept = talon_kernel::conversation::retention::sweep(&store, &config.retention)?;
            println!(
                "pruned {}: {} turn records removed ({} of them failed turns)",
                path.display(),
                swept.turns,
                swept.failed_turns
            );
            Ok(())
        }
        DbCommand::Compact => {
            let done = stats::compact(&path).with_context(busy)?;
            println!(
                "compacted {}: {} -> {} bytes",
                path.display(),
                done.before_bytes,
                done.after_bytes
            );
            Ok(())
        }
    }
}
