//! `talon audit verify` and `talon audit prune`: the hash chain of a data
//! directory, offline.

use anyhow::{Context, bail};
use talon_kernel::home::Home;
use talon_kernel::store::Store;

/// Opens the database directly (the daemon must be stopped: redb locks the
/// file) and walks the chain. Exits non-zero when it is broken.
pub fn verify(home: &Home) -> anyhow::Result<()> {
    let store = open(home, "GET /api/audit/verify")?;
    let v = talon_kernel::store::audit::verify(&store)?;
    println!("audit chain: {} entries", v.chain_length);
    if let Some(cut) = &v.checkpoint {
        println!(
            "  checkpoint: after entry {} (head {}), made {}; verified from entry {}",
            cut.seq, cut.head_hash, cut.created_at, cut.entry_id
        );
        if v.before_checkpoint > 0 {
            println!(
                "  {} entries before the checkpoint not yet pruned (not verified)",
                v.before_checkpoint
            );
        }
    }
    if let (Some(first), Some(last)) = (v.first_entry, v.last_entry) {
        println!("  first: {first}\n  last:  {last}");
    }
    match v.first_broken {
        None => {
            println!("  status: valid");
            Ok(())
        }
        Some(broken) => bail!("chain broken at entry {}: {}", broken.id, broken.reason),
    }
}

/// Checkpoints the chain at its head and removes the entries before the
/// cut; a broken chain is refused (the entries that show where it broke
/// would be lost).
pub fn prune(home: &Home) -> anyhow::Result<()> {
    let store = open(home, "POST /api/audit/checkpoint")?;
    let done = talon_kernel::store::audit_checkpoint::checkpoint_and_prune(&store)?;
    println!(
        "checkpoint after entry {} (head {}): {} entries removed; the chain now starts at entry {}",
        done.checkpoint.seq, done.checkpoint.head_hash, done.pruned, done.checkpoint.entry_id
    );
    Ok(())
}

/// Opens the database directly; `instead` is the route to use while the
/// daemon runs (redb locks the file).
fn open(home: &Home, instead: &str) -> anyhow::Result<Store> {
    let path = home.database_file();
    if !path.exists() {
        bail!("no database at {}", path.display());
    }
    Store::open(&path).with_context(|| {
        format!(
            "cannot open {} (if the daemon is running, use {instead} instead)",
            path.display()
        )
    })
}
