//! `secrets.toml`: provider API keys set over the API, kept out of the
//! database in a private file (mode 0600) written atomically.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::KernelError;

/// `secrets.toml`: API keys set over the API, by provider.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Secrets {
    #[serde(default)]
    pub(super) provider_keys: BTreeMap<String, String>,
    /// The approvals' TOTP second factor (see `crate::approvals`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) approval_totp: Option<TotpSecret>,
    /// Configured channels' secret settings (passwords, tokens), by channel
    /// name then key (see `crate::channels`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub(super) channel_secrets: BTreeMap<String, BTreeMap<String, String>>,
    /// MCP servers' bearer tokens, by the name their `auth_secret` gives
    /// (see `crate::mcp`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub(super) mcp_secrets: BTreeMap<String, String>,
}

/// The TOTP secret approvals use: base32, and whether a code confirmed it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TotpSecret {
    /// The shared secret, base32.
    pub secret: String,
    /// Whether enrollment was confirmed with a valid code.
    pub confirmed: bool,
}

const SECRETS_HEADER: &str = "# API keys set with POST /api/providers/{name}/key.\n\
# Written by Talon; keep this file private (mode 0600). A key here wins over\n\
# the provider's environment variable; DELETE /api/providers/{name}/key removes it.\n";

/// Reads the secrets file; a missing file holds no keys. The parse error is
/// reduced to a line number because TOML errors quote the offending line,
/// which here would be a key.
pub(super) fn read_secrets(path: &Path) -> Result<Secrets, KernelError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Secrets::default()),
        Err(e) => {
            return Err(KernelError::Invalid(format!(
                "cannot read {}: {e}",
                path.display()
            )));
        }
    };
    tighten_permissions(path);
    toml::from_str(&text).map_err(|e| {
        let line = e
            .span()
            .map(|span| text[..span.start.min(text.len())].lines().count().max(1));
        KernelError::Invalid(format!(
            "{} is not a valid secrets file{}; fix or remove it",
            path.display(),
            line.map(|l| format!(" (line {l})")).unwrap_or_default()
        ))
    })
}

/// A secrets file others can read is made private, with a warning.
fn tighten_permissions(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(path)
            && meta.permissions().mode() & 0o077 != 0
        {
            tracing::warn!(file = %path.display(), "secrets file was readable by others; setting mode 0600");
            let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
        }
    }
}

/// Replaces the secrets file atomically; the new file is private from the
/// moment it exists.
pub(super) fn write_secrets(path: &Path, secrets: &Secrets) -> Result<(), KernelError> {
    let body = toml::to_string(secrets)
        .map_err(|e| KernelError::Invalid(format!("cannot encode the secrets file: {e}")))?;
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    let tmp = path.with_extension("toml.tmp");
    let result = (|| -> std::io::Result<()> {
        let _ = std::fs::remove_file(&tmp);
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options.open(&tmp)?;
        file.write_all(SECRETS_HEADER.as_bytes())?;
        file.write_all(body.as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(dir)?.sync_all()
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(KernelError::Invalid(format!(
            "cannot write {}: {e}",
            path.display()
        )));
    }
    Ok(())
}
