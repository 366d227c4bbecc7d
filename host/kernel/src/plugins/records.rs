//! What the store keeps about installed plugins (`plugins.v1`), and the
//! grants an operator gives them.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use redb::{ReadableDatabase, ReadableTable};
use serde::{Deserialize, Serialize};
use talon_runtime::{Manifest, Permissions};

use crate::KernelError;
use crate::store::audit::{self, AuditEntry, AuditEvent};
use crate::store::tables::{BUNDLED_REMOVED, PLUGINS};
use crate::store::{self, Store, StoreError};

const TABLE: &str = "plugins.v1";
const REMOVED_TABLE: &str = "bundled_removed.v1";

/// Where an installed plugin came from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// A package the operator installed.
    #[default]
    Package,
    /// Shipped inside the daemon's binary, installed and upgraded by it.
    Bundled,
}

/// Why a bundled plugin is not installed again: the operator removed it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Removal {
    /// When it was removed.
    pub removed_at: DateTime<Utc>,
}

/// What the store keeps about an installed plugin; the package file holds
/// the rest.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PluginRecord {
    /// The plugin's name (also its package file's name).
    pub name: String,
    /// SHA-256 of the package file installed.
    pub digest: String,
    /// What the operator granted.
    pub granted: Permissions,
    /// Settings the plugin reads through `talon:plugin/settings`.
    pub settings: BTreeMap<String, String>,
    /// Whether its tools are offered.
    pub enabled: bool,
    /// When it was installed.
    pub installed_at: DateTime<Utc>,
    /// When its package, grants or state last changed.
    pub updated_at: DateTime<Utc>,
    /// Installed by the operator or shipped with the binary. Records
    /// written before bundled plugins existed are the operator's.
    #[serde(default)]
    pub source: Origin,
}

/// What the operator grants at install.
#[derive(Debug, Clone, Default)]
pub enum Grant {
    /// Nothing: the plugin runs with no files, hosts, keys or variables.
    #[default]
    Nothing,
    /// Everything the manifest requests.
    All,
    /// Exactly this, which must be within what the manifest requests.
    Exactly(Permissions),
}

/// Every installed plugin's record.
pub(super) fn read_records(store: &Store) -> Result<Vec<PluginRecord>, StoreError> {
    let tx = store.db()?.begin_read()?;
    let table = match tx.open_table(PLUGINS) {
        Ok(table) => table,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    let mut out = Vec::new();
    for row in table.iter()? {
        let (_, value) = row?;
        out.push(store::decode(TABLE, value.value())?);
    }
    Ok(out)
}

/// The names of the bundled plugins the operator removed.
pub(super) fn read_removed(store: &Store) -> Result<Vec<String>, StoreError> {
    let tx = store.db()?.begin_read()?;
    let table = match tx.open_table(BUNDLED_REMOVED) {
        Ok(table) => table,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    let mut out = Vec::new();
    for row in table.iter()? {
        let (name, _) = row?;
        out.push(name.value().to_string());
    }
    Ok(out)
}

/// What [`save_record`] does to the list of removed bundled plugins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Removed {
    /// Nothing.
    Unchanged,
    /// Adds the name: the operator removed a bundled plugin for good.
    Remember,
    /// Drops the name: the bundled plugin is installed again.
    Forget,
}

/// Writes (or with `None`, removes) a record and its audit entry in one
/// transaction; with [`Removed::Remember`], also remembers that the bundled
/// plugin of that name was removed, with [`Removed::Forget`] forgets it.
pub(super) fn save_record(
    store: &Store,
    name: &str,
    record: Option<&PluginRecord>,
    removed: Removed,
    event: AuditEvent,
) -> Result<AuditEntry, StoreError> {
    let tx = store.db()?.begin_write()?;
    {
        let mut table = tx.open_table(PLUGINS)?;
        match record {
            Some(record) => {
                let bytes = store::encode(TABLE, record)?;
                table.insert(name, bytes.as_slice())?;
            }
            None => {
                table.remove(name)?;
            }
        }
    }
    match removed {
        Removed::Unchanged => {}
        Removed::Remember => {
            let removal = Removal {
                removed_at: store.now(),
            };
            let bytes = store::encode(REMOVED_TABLE, &removal)?;
            tx.open_table(BUNDLED_REMOVED)?
                .insert(name, bytes.as_slice())?;
        }
        Removed::Forget => {
            tx.open_table(BUNDLED_REMOVED)?.remove(name)?;
        }
    }
    let entry = audit::append_in(&tx, store.now(), event)?;
    tx.commit()?;
    Ok(entry)
}

/// The permissions `grant` gives a plugin with `manifest`; never more than it requests.
pub(super) fn granted_for(grant: &Grant, manifest: &Manifest) -> Result<Permissions, KernelError> {
    let granted = match grant {
        Grant::Nothing => Permissions::default(),
        Grant::All => manifest.permissions.clone(),
        Grant::Exactly(p) => p.clone(),
    };
    granted.validate().map_err(KernelError::Invalid)?;
    if let Some(extra) = granted.first_not_in(&manifest.permissions) {
        return Err(KernelError::Invalid(format!(
            "cannot grant {extra}: plugin {} did not request it (it requests {})",
            manifest.name,
            serde_json::to_string(&manifest.permissions).unwrap_or_default()
        )));
    }
    Ok(granted)
}

/// Grants kept across an upgrade: only what the new version still requests.
pub(super) fn narrow(granted: &Permissions, requested: &Permissions) -> Permissions {
    let within = |probe: Permissions| probe.first_not_in(requested).is_none();
    Permissions {
        filesystem: granted
            .filesystem
            .filter(|_| requested.filesystem.is_some()),
        network: granted
            .network
            .iter()
            .filter(|h| {
                within(Permissions {
                    network: vec![(*h).clone()],
                    ..Default::default()
                })
            })
            .cloned()
            .collect(),
        memory: granted
            .memory
            .iter()
            .filter(|k| {
                within(Permissions {
                    memory: vec![(*k).clone()],
                    ..Default::default()
                })
            })
            .cloned()
            .collect(),
        env: granted
            .env
            .iter()
            .filter(|e| requested.env.contains(e))
            .cloned()
            .collect(),
        sockets: granted
            .sockets
            .iter()
            .filter(|p| {
                within(Permissions {
                    sockets: vec![(*p).clone()],
                    ..Default::default()
                })
            })
            .cloned()
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_from_before_bundled_plugins_are_the_operators() {
        let stored = r#"{"name":"old","digest":"00","granted":{},"settings":{},"enabled":true,
            "installed_at":"2026-01-01T00:00:00Z","updated_at":"2026-01-01T00:00:00Z"}"#;
        let record: PluginRecord = store::decode(TABLE, stored.as_bytes()).unwrap();
        assert_eq!(record.source, Origin::Package);
        let bundled = PluginRecord {
            source: Origin::Bundled,
            ..record
        };
        let again: PluginRecord =
            store::decode(TABLE, &store::encode(TABLE, &bundled).unwrap()).unwrap();
        assert_eq!(again.source, Origin::Bundled);
    }
}
