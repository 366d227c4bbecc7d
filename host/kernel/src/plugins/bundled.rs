//! The plugins the daemon's binary ships (built and embedded by the
//! `talon-bundled` crate). At start they are packaged, installed when
//! missing (granted what their manifests request), replaced when the binary
//! carries a different build or the file on disk differs from it,
//! uninstalled when the config leaves them out (at start, or at once when
//! the config changes), and not installed again
//! once the operator removed one, until the operator restores it
//! ([`Plugins::restore_bundled`]). They are trusted because their package
//! is byte for byte the one built from the binary, not because of a key.

use std::collections::BTreeMap;
use std::sync::Arc;

use sha2::{Digest, Sha256};
use talon_runtime::{Manifest, Package, Trust};

use super::package_file::read_package_file;
use super::records::{Grant, Origin, PluginRecord, narrow, read_records, read_removed};
use super::{PluginView, Plugins, load_error, write_atomically};
use crate::KernelError;
use crate::events::Event;
use crate::store::audit::AuditEvent;
use crate::store::{self, StoreError};

/// A plugin shipped inside the daemon's binary.
#[derive(Debug, Clone, Copy)]
pub struct BundledPlugin {
    /// The plugin's name.
    pub name: &'static str,
    /// Its `talon.toml`.
    pub manifest: &'static str,
    /// Its WebAssembly component.
    pub component: &'static [u8],
    /// Hex SHA-256 of `component`, computed when the binary was built.
    pub sha256: &'static str,
}

/// A bundled plugin's package, as built at this start.
pub(super) struct Built {
    package: Package,
    bytes: Vec<u8>,
}

impl Plugins {
    /// Brings the installed bundled plugins in line with the binary and the
    /// config before the installed plugins load. Returns the packages of
    /// the bundled plugins still to install, which
    /// [`Plugins::install_bundled`] installs once the others are loaded (so
    /// their tool names are known and a clash is refused as usual).
    pub(super) async fn sync_bundled(
        &self,
        shipped: &[BundledPlugin],
    ) -> Result<Vec<Built>, KernelError> {
        let config = self.shared.config();
        let wanted = |name: &str| {
            config.plugins.bundled && !config.plugins.bundled_exclude.iter().any(|n| n == name)
        };
        let store = self.shared.store().clone();
        let (records, removed) =
            store::blocking(move || Ok((read_records(&store)?, read_removed(&store)?))).await?;
        for record in records.iter().filter(|r| r.source == Origin::Bundled) {
            let reason = if !shipped.iter().any(|p| p.name == record.name) {
                "this binary no longer ships it"
            } else if !wanted(&record.name) {
                "left out by plugins.bundled or plugins.bundled_exclude"
            } else {
                continue;
            };
            self.remove_bundled_copy(&record.name, reason).await?;
        }
        let mut missing = Vec::new();
        for plugin in shipped.iter().filter(|p| wanted(p.name)) {
            if removed.iter().any(|n| n == plugin.name) {
                continue;
            }
            let record = records.iter().find(|r| r.name == plugin.name);
            if record.is_some_and(|r| r.source != Origin::Bundled) {
                tracing::info!(
                    plugin = plugin.name,
                    "installed from a package by the operator; the bundled copy is not used"
                );
                continue;
            }
            let built = match self.build_bundled(plugin).await {
                Ok(built) => built,
                Err(e) => {
                    tracing::error!(plugin = plugin.name, error = %e, "bundled plugin not usable");
                    continue;
                }
            };
            self.bundled
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .insert(plugin.name.to_string(), built.package.digest.clone());
            match record {
                None => missing.push(built),
                Some(record) => self.refresh_bundled(record, built).await?,
            }
        }
        Ok(missing)
    }

    /// Installs the bundled plugins [`Plugins::sync_bundled`] found
    /// missing, granted what their manifests request. One that cannot be
    /// installed (another plugin offers one of its tools) is logged and left
    /// out; the daemon starts anyway.
    pub(super) async fn install_bundled(&self, missing: Vec<Built>) -> usize {
        let mut installed = 0;
        for built in missing {
            let name = built.package.manifest.name.clone();
            let outcome = self.install_built(built).await;
            match outcome {
                Ok(_) => installed += 1,
                Err(e) => {
                    tracing::warn!(plugin = %name, error = %e, "bundled plugin not installed")
                }
            }
        }
        installed
    }

    /// Applies a change of `[plugins] bundled` or `bundled_exclude` at
    /// once (a config reload or set): bundled copies the config now leaves
    /// out are uninstalled, and those it asks for again installed, granted
    /// what their manifests request. Plugins the operator removed stay
    /// removed. Returns how many were installed.
    /// Before the start's own loading is done this does nothing: that
    /// reads the config in force when it gets there.
    pub async fn apply_bundled_config(&self) -> Result<usize, KernelError> {
        let shipped = self
            .shipped
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let Some(shipped) = shipped else {
            return Ok(0);
        };
        let missing = self.sync_bundled(&shipped).await?;
        Ok(self.install_bundled(missing).await)
    }

    /// Installs again a bundled plugin the operator removed, as on a first
    /// start: the binary's build, granted what its manifest requests, and
    /// upgraded with the binary from then on. Refused while the config
    /// leaves it out (that is the config's to change) or while a plugin of
    /// that name is installed.
    pub async fn restore_bundled(&self, name: &str) -> Result<PluginView, KernelError> {
        let plugin = {
            let shipped = self.shipped.read().unwrap_or_else(|p| p.into_inner());
            let Some(shipped) = shipped.as_ref() else {
                return Err(KernelError::Conflict(
                    "the daemon is still loading its plugins; try again when GET /api/plugins shows none loading"
                        .into(),
                ));
            };
            match shipped.iter().find(|p| p.name == name) {
                Some(plugin) => *plugin,
                None => {
                    let names: Vec<&str> = shipped.iter().map(|p| p.name).collect();
                    return Err(KernelError::NotFound(format!(
                        "no bundled plugin named {name}; this binary ships {}",
                        if names.is_empty() {
                            "none".to_string()
                        } else {
                            names.join(", ")
                        }
                    )));
                }
            }
        };
        let config = self.shared.config();
        if !config.plugins.bundled {
            return Err(KernelError::Conflict(format!(
                "bundled plugins are turned off (plugins.bundled = false); set it to true to get {name} back"
            )));
        }
        if config.plugins.bundled_exclude.iter().any(|n| n == name) {
            return Err(KernelError::Conflict(format!(
                "{name} is left out by plugins.bundled_exclude; take it out of that list to get it back"
            )));
        }
        if let Some(source) = self.registry.read().get(name).map(|e| e.record.source) {
            return Err(KernelError::Conflict(match source {
                Origin::Bundled => format!("the bundled plugin {name} is installed already"),
                Origin::Package => format!(
                    "plugin {name} is installed from a package; remove it first to go back to the bundled copy"
                ),
            }));
        }
        let built = self.build_bundled(&plugin).await?;
        self.bundled
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name.to_string(), built.package.digest.clone());
        self.install_built(built).await
    }

    /// Installs a bundled plugin as the binary ships it: trusted by its
    /// pinned hash and granted what its manifest requests.
    async fn install_built(&self, built: Built) -> Result<PluginView, KernelError> {
        self.install_opened(
            built.package,
            Trust::Bundled,
            built.bytes,
            Grant::All,
            BTreeMap::new(),
            None,
            Origin::Bundled,
        )
        .await
    }

    /// Packages one embedded plugin the way `talon plugin pack` would
    /// (asking the component for its tools), unsigned: its trust is that it
    /// is this binary's.
    async fn build_bundled(&self, plugin: &BundledPlugin) -> Result<Built, KernelError> {
        let digest = hex::encode(Sha256::digest(plugin.component));
        if digest != plugin.sha256 {
            return Err(KernelError::Invalid(format!(
                "the embedded component of {} does not match its pin ({digest}, pinned {})",
                plugin.name, plugin.sha256
            )));
        }
        let manifest = Manifest::from_toml(plugin.manifest).map_err(load_error)?;
        if manifest.name != plugin.name {
            return Err(KernelError::Invalid(format!(
                "the embedded manifest of {} names plugin {}",
                plugin.name, manifest.name
            )));
        }
        let component = Arc::new(plugin.component.to_vec());
        let manifest = self
            .registry
            .runtime
            .complete_manifest(manifest, component)
            .await
            .map_err(load_error)?;
        let bytes = Package::build(&manifest, plugin.component, None).map_err(load_error)?;
        let package = Package::parse(&bytes).map_err(load_error)?;
        Ok(Built { package, bytes })
    }

    /// Makes an installed bundled plugin's package file the binary's: after
    /// an upgrade of the binary, or when the file was changed or lost.
    /// Grants are kept where the new build still requests them, settings
    /// and the enabled state are kept.
    async fn refresh_bundled(
        &self,
        record: &PluginRecord,
        built: Built,
    ) -> Result<(), KernelError> {
        let name = record.name.as_str();
        let _lock = self.locks.lock(name).await;
        let path = self.package_path(name);
        let on_disk = {
            let path = path.clone();
            tokio::task::spawn_blocking(move || read_package_file(&path).ok())
                .await
                .map_err(|e| KernelError::Store(StoreError::Task(e.to_string())))?
        };
        let upgrade = record.digest != built.package.digest;
        if !upgrade && on_disk.as_deref() == Some(built.bytes.as_slice()) {
            return Ok(());
        }
        let reason = if upgrade {
            "this binary ships a different build"
        } else {
            "the package file differed from the bundled copy"
        };
        tracing::info!(
            plugin = name,
            reason,
            "replacing the bundled plugin's package"
        );
        let bytes = built.bytes;
        tokio::task::spawn_blocking(move || write_atomically(&path, &bytes))
            .await
            .map_err(|e| KernelError::Store(StoreError::Task(e.to_string())))?
            .map_err(|e| KernelError::Store(StoreError::Io(e)))?;
        let manifest = &built.package.manifest;
        let mut record = record.clone();
        record.granted = narrow(&record.granted, &manifest.permissions);
        record.digest = built.package.digest.clone();
        record.updated_at = self.shared.now();
        let details = serde_json::json!({
            "plugin": name, "version": manifest.version, "digest": record.digest,
            "upgrade": upgrade, "source": Origin::Bundled, "reason": reason,
        });
        self.save_plugin(
            name,
            Some(&record),
            AuditEvent::new("plugin_reloaded", details.to_string()),
        )
        .await
    }

    /// Uninstalls a bundled copy the config leaves out (or the binary no
    /// longer ships), without remembering it as removed: it comes back when
    /// the config asks for it again. Calls in flight finish.
    async fn remove_bundled_copy(&self, name: &str, reason: &str) -> Result<(), KernelError> {
        let _lock = self.locks.lock(name).await;
        tracing::info!(plugin = name, reason, "uninstalling the bundled plugin");
        let details =
            serde_json::json!({ "plugin": name, "source": Origin::Bundled, "reason": reason });
        self.save_plugin(
            name,
            None,
            AuditEvent::new("plugin_uninstalled", details.to_string()),
        )
        .await?;
        if self.registry.write().remove(name).is_some() {
            self.shared.events().publish(Event::PluginUninstalled {
                name: name.to_string(),
                at: self.shared.now(),
            });
        }
        let path = self.package_path(name);
        if let Err(e) = tokio::fs::remove_file(&path).await
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(path = %path.display(), error = %e, "could not remove the package file");
        }
        Ok(())
    }
}
