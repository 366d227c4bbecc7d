//! `talon audit verify`: checks the hash chain in a data directory, offline.

use anyhow::{Context, bail};
use talon_kernel::home::Home;
use talon_kernel::store::Store;

/// Opens the database directly (the daemon must be stopped: redb locks the
/// file) and walks the chain. Exits non-zero when it is broken.
pub fn verify(home: &Home) -> anyhow::Result<()> {
    let path = home.database_file();
    if !path.exists() {
        bail!("no database at {}", path.display());
    }
    let store = Store::open(&path).with_context(|| {
        format!(
            "cannot open {} (if the daemon is running, use GET /api/audit/verify instead)",
            path.display()
        )
    })?;
    let v = talon_kernel::store::audit::verify(&store)?;
    println!("audit chain: {} entries", v.chain_length);
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
