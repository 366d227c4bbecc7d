//! The data directory: where configuration, the database and plugins live.

use std::path::{Path, PathBuf};

/// Environment variable that overrides the data directory.
pub const HOME_ENV: &str = "TALON_HOME";

/// Paths inside a Talon data directory (`~/.talon` unless `TALON_HOME` says otherwise).
#[derive(Debug, Clone)]
pub struct Home {
    root: PathBuf,
}

impl Home {
    /// A data directory rooted at `root`. Nothing is created until [`Home::ensure`].
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The data directory chosen by the environment: `TALON_HOME`, else `~/.talon`.
    pub fn from_env() -> Self {
        if let Some(dir) = std::env::var_os(HOME_ENV).filter(|v| !v.is_empty()) {
            return Self::new(dir);
        }
        let base = std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("."));
        Self::new(base.join(".talon"))
    }

    /// Creates the directory tree if it does not exist yet.
    pub fn ensure(&self) -> std::io::Result<()> {
        for dir in [
            self.root.clone(),
            self.data_dir(),
            self.workspaces_dir(),
            self.uploads_dir(),
        ] {
            std::fs::create_dir_all(dir)?;
        }
        Ok(())
    }

    /// The root of the data directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The default configuration file.
    pub fn config_file(&self) -> PathBuf {
        self.root.join("config.toml")
    }

    /// Where the database and other state files live.
    pub fn data_dir(&self) -> PathBuf {
        self.root.join("data")
    }

    /// The redb database file.
    pub fn database_file(&self) -> PathBuf {
        self.data_dir().join("talon.redb")
    }

    /// Agent workspaces, one directory per agent id.
    pub fn workspaces_dir(&self) -> PathBuf {
        self.root.join("workspaces")
    }

    /// The workspace of one agent: its files, and what its plugins see as `/`.
    pub fn workspace(&self, agent_id: &uuid::Uuid) -> PathBuf {
        self.workspaces_dir().join(agent_id.to_string())
    }

    /// Uploaded attachments, by upload id.
    pub fn uploads_dir(&self) -> PathBuf {
        self.data_dir().join("uploads")
    }

    /// Installed plugin packages, one `<name>.talon` file each.
    pub fn plugins_dir(&self) -> PathBuf {
        self.root.join("plugins")
    }

    /// Compiled components, so a restart does not recompile plugins.
    pub fn component_cache_dir(&self) -> PathBuf {
        self.root.join("cache").join("components")
    }

    /// API keys set over the API (mode 0600; see [`crate::providers`]).
    pub fn secrets_file(&self) -> PathBuf {
        self.root.join("secrets.toml")
    }

    /// Written by a running daemon so client commands can find it.
    pub fn daemon_file(&self) -> PathBuf {
        self.root.join("daemon.json")
    }
}
