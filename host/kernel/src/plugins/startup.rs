//! Loading the installed plugins when the daemon starts, while its API
//! already answers; and removing one while the daemon is stopped.

use std::sync::Arc;

use talon_runtime::{Manifest, Trust};

use super::bundled::BundledPlugin;
use super::records::{Origin, PluginRecord, read_records};
use super::registry::{Entry, Loaded, placeholder_manifest};
use super::{Plugins, Source};
use crate::KernelError;
use crate::store;

impl Plugins {
    /// Loads every enabled installed plugin, one after the other, each with
    /// its name's lock held and at most `[plugins] load_timeout_secs`. Every
    /// installed plugin is listed first (status `loading`), so the API shows
    /// them while they load. A plugin that fails or takes too long (a
    /// missing or altered file, a key no longer trusted, a guest that hangs
    /// at load) is kept with its error, so `GET /api/plugins` and the doctor
    /// show it and it can be disabled or removed; the daemon still starts.
    ///
    /// `shipped` are the plugins the binary ships: installed ones are first
    /// brought up to date with it, missing ones installed after the rest
    /// loaded (see `bundled.rs`). Returns how many plugins run.
    pub async fn load_plugins(&self, shipped: &[BundledPlugin]) -> Result<usize, KernelError> {
        let missing = self.sync_bundled(shipped).await?;
        let records = self.register_installed().await?;
        let timeout =
            std::time::Duration::from_secs(self.shared.config().plugins.load_timeout_secs.max(1));
        let mut loaded = 0;
        for record in records.into_iter().filter(|r| r.enabled) {
            let name = record.name.clone();
            let _lock = self.locks.lock(&name).await;
            // Removed or reloaded over the API while it waited its turn.
            let still_waiting = self.registry.read().get(&name).is_some_and(|e| e.loading);
            if !still_waiting {
                continue;
            }
            let outcome = tokio::time::timeout(timeout, self.load_installed(&record))
                .await
                .unwrap_or_else(|_| {
                    Err(format!(
                        "loading took longer than {} s (plugins.load_timeout_secs); disable or remove it",
                        timeout.as_secs()
                    ))
                });
            let mut entries = self.registry.write();
            let Some(entry) = entries.get_mut(&name) else {
                continue;
            };
            entry.loading = false;
            match outcome {
                Ok((manifest, trust, plugin)) => {
                    loaded += 1;
                    entry.manifest = manifest;
                    entry.trust = Some(trust);
                    entry.set_loaded(plugin);
                }
                Err(e) => {
                    tracing::error!(plugin = %name, error = %e, "plugin not loaded");
                    entry.error = Some(e);
                }
            }
        }
        let installed = self.install_bundled(missing).await;
        *self.shipped.write().unwrap_or_else(|p| p.into_inner()) = Some(shipped.to_vec());
        Ok(loaded + installed)
    }

    /// Lists every installed plugin in the registry without loading it:
    /// enabled ones as `loading`. Their records, for the loader.
    async fn register_installed(&self) -> Result<Vec<PluginRecord>, KernelError> {
        let store = self.shared.store().clone();
        let records = store::blocking(move || read_records(&store)).await?;
        let mut entries = self.registry.write();
        for record in &records {
            entries.insert(
                record.name.clone(),
                Entry {
                    record: record.clone(),
                    manifest: placeholder_manifest(&record.name),
                    trust: None,
                    loaded: None,
                    channel: None,
                    hand: None,
                    error: None,
                    loading: record.enabled,
                    stats: Arc::default(),
                },
            );
        }
        Ok(records)
    }

    /// Reads, checks and loads one installed plugin from its package file.
    async fn load_installed(
        &self,
        record: &PluginRecord,
    ) -> Result<(Manifest, Trust, Loaded), String> {
        let name = &record.name;
        let (package, trust, _) = self
            .open_package(Source::Path(self.package_path(name)))
            .await
            .map_err(|e| e.to_string())?;
        if package.manifest.name != *name {
            return Err(format!(
                "the package file holds plugin {:?}",
                package.manifest.name
            ));
        }
        let manifest = package.manifest.clone();
        let _compiling = self.locks.compiling(name);
        let plugin = self
            .load_component(
                manifest.clone(),
                package.component,
                record.granted.clone(),
                record.settings.clone(),
            )
            .await
            .map_err(|e| e.to_string())?;
        Ok((manifest, trust, plugin))
    }

    /// Removes an installed plugin while the daemon is stopped (`talon
    /// plugin remove` without a daemon): its record and package file, with
    /// an audit entry, without loading anything. Returns where it came from.
    pub async fn uninstall_offline(&self, name: &str) -> Result<Origin, KernelError> {
        self.register_installed().await?;
        self.uninstall_plugin(name, None).await
    }
}
