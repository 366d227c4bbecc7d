//! Who may change a plugin now.
//!
//! Installing, reloading, enabling and uninstalling a plugin each take its
//! name's lock for their whole course (reading the package, compiling,
//! writing the file and the record), so two changes of one plugin never
//! interleave: an uninstall waits for a reload in flight and is final, and of
//! two concurrent installs of one name the second is refused at once. Tool
//! names are reserved by the change that claims them until it is done, so two
//! packages installed at the same time cannot both offer one tool.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::OwnedMutexGuard;

/// The lifecycle locks of every plugin name, and the tools being claimed.
#[derive(Default)]
pub(super) struct Locks {
    names: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Tool name -> the plugin whose change in flight claims it.
    claimed: Mutex<BTreeMap<String, String>>,
    /// Plugins being compiled and loaded, since when.
    compiling: Mutex<BTreeMap<String, Instant>>,
}

/// A plugin marked as compiling until this is dropped.
pub(super) struct Compiling<'a> {
    locks: &'a Locks,
    name: String,
}

impl Drop for Compiling<'_> {
    fn drop(&mut self) {
        self.locks.compiling_map().remove(&self.name);
    }
}

/// Tools claimed by one change, released when it ends (done or failed).
pub(super) struct Claim<'a> {
    locks: &'a Locks,
    tools: Vec<String>,
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        let mut claimed = self.locks.claimed();
        for tool in &self.tools {
            claimed.remove(tool);
        }
    }
}

impl Locks {
    fn name_lock(&self, name: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut names = self.names.lock().unwrap_or_else(|p| p.into_inner());
        names.entry(name.to_string()).or_default().clone()
    }

    fn claimed(&self) -> MutexGuard<'_, BTreeMap<String, String>> {
        self.claimed.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn compiling_map(&self) -> MutexGuard<'_, BTreeMap<String, Instant>> {
        self.compiling.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Marks `name` as compiling until the returned guard is dropped.
    pub(super) fn compiling(&self, name: &str) -> Compiling<'_> {
        self.compiling_map()
            .insert(name.to_string(), Instant::now());
        Compiling {
            locks: self,
            name: name.to_string(),
        }
    }

    /// For how long `name` has been compiling, if it is.
    pub(super) fn compiling_for(&self, name: &str) -> Option<Duration> {
        self.compiling_map().get(name).map(Instant::elapsed)
    }

    /// Waits for `name`'s lock.
    pub(super) async fn lock(&self, name: &str) -> OwnedMutexGuard<()> {
        self.name_lock(name).lock_owned().await
    }

    /// `name`'s lock if nobody holds it.
    pub(super) fn try_lock(&self, name: &str) -> Option<OwnedMutexGuard<()>> {
        self.name_lock(name).try_lock_owned().ok()
    }

    /// Claims `tools` for `plugin` unless `taken` (the installed plugin that
    /// already offers a tool) or another change in flight claims one: the
    /// first conflict as `(tool, holder)`.
    pub(super) fn claim(
        &self,
        plugin: &str,
        tools: &[String],
        taken: impl Fn(&str) -> Option<String>,
    ) -> Result<Claim<'_>, (String, String)> {
        let mut claimed = self.claimed();
        for tool in tools {
            if let Some(holder) = claimed.get(tool).filter(|h| *h != plugin) {
                return Err((tool.clone(), holder.clone()));
            }
            if let Some(holder) = taken(tool) {
                return Err((tool.clone(), holder));
            }
        }
        for tool in tools {
            claimed.insert(tool.clone(), plugin.to_string());
        }
        Ok(Claim {
            locks: self,
            tools: tools.to_vec(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tool_is_claimed_once_until_the_claim_ends() {
        let locks = Locks::default();
        let tools = vec!["file_read".to_string()];
        let first = locks.claim("a", &tools, |_| None).expect("free");
        assert_eq!(
            locks.claim("b", &tools, |_| None).err(),
            Some(("file_read".into(), "a".into()))
        );
        drop(first);
        assert!(locks.claim("b", &tools, |_| None).is_ok());
        assert_eq!(
            locks.claim("c", &tools, |_| Some("installed".into())).err(),
            Some(("file_read".into(), "installed".into()))
        );
    }

    #[tokio::test]
    async fn one_change_of_a_plugin_at_a_time() {
        let locks = Locks::default();
        let held = locks.lock("p").await;
        assert!(locks.try_lock("p").is_none());
        assert!(locks.try_lock("q").is_some());
        drop(held);
        assert!(locks.try_lock("p").is_some());
    }
}
