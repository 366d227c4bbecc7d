//! Provider settings and custom models changed at runtime, and where they
//! are kept so they survive a restart.
//!
//! - Custom models live in the store (`custom_models.v1`), like every other
//!   registry the API edits.
//! - Base-URL overrides live in the store too (`provider_urls.v1`): they are
//!   not secret.
//! - API keys do not go into the database, whose file (and the backups made
//!   before each migration) is created with the default permissions and is
//!   what an operator copies around. They live in `secrets.toml` in the data
//!   directory, written atomically with mode 0600, and are never returned by
//!   the API or written to the logs or the audit trail.
//!
//! Every edit is written durably first and applied to the [`LlmClient`]
//! second, so a failed write changes nothing. Depends only on the
//! foundation.

mod records;
mod secrets;

pub use secrets::TotpSecret;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use talon_llm::{
    BreakerConfig, LlmClient, ModelInfo, ProbeReport, ResilienceConfig, RetryPolicy, Target,
    Timeouts,
};

use crate::KernelError;
use crate::config::Config;
use crate::shared::Shared;
use crate::store::audit::AuditEvent;
use crate::store::{self, Store, StoreError};

/// How long a connectivity test waits for the provider.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(15);

/// The providers domain.
pub struct Providers {
    shared: Arc<Shared>,
    llm: LlmClient,
    /// Serializes edits of keys, URLs and custom models, so the secrets file
    /// is never rewritten from a stale read.
    edit: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Providers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Providers").finish_non_exhaustive()
    }
}

/// The one client of the daemon, with `[llm]`'s retries, timeouts and breakers.
fn client(config: &Config) -> LlmClient {
    let llm = &config.llm;
    let defaults = ResilienceConfig::default();
    LlmClient::new().with_resilience(ResilienceConfig {
        retry: RetryPolicy {
            max_attempts: llm.max_attempts,
            base_delay: Duration::from_millis(llm.retry_base_delay_ms),
            ..defaults.retry
        },
        timeouts: Timeouts {
            request: Duration::from_secs(llm.request_timeout_secs),
            call_deadline: Duration::from_secs(llm.call_deadline_secs),
            stream_idle: Duration::from_secs(llm.stream_idle_secs),
            ..defaults.timeouts
        },
        breaker: BreakerConfig {
            failure_threshold: llm.breaker_failure_threshold,
            cooldown: Duration::from_secs(llm.breaker_cooldown_secs),
        },
    })
}

/// Applies what earlier runs stored to a freshly built client. Entries that
/// no longer fit (a provider this build does not know) are skipped with a
/// warning rather than stopping the daemon.
fn restore(llm: &LlmClient, store: &Store, secrets_file: &Path) -> Result<(), KernelError> {
    for model in records::list_custom_models(store)? {
        if llm.provider(&model.provider).is_err() {
            tracing::warn!(model = %model.id, provider = %model.provider, "custom model of an unknown provider skipped");
            continue;
        }
        llm.add_model(model);
    }
    for (provider, url) in records::list_provider_urls(store)? {
        if let Err(e) = llm.set_base_url(&provider, Some(&url)) {
            tracing::warn!(%provider, error = %e, "stored base URL skipped");
        }
    }
    for (provider, key) in secrets::read_secrets(secrets_file)?.provider_keys {
        // The error text never includes the key.
        if let Err(e) = llm.set_api_key(&provider, &key) {
            tracing::warn!(%provider, error = %e, "stored API key skipped");
        }
    }
    Ok(())
}

/// Checks a custom model on its own and against the catalog. Names clash
/// case-insensitively when either side is an alias, since aliases match so.
fn validate_custom_model(
    llm: &LlmClient,
    builtin: &[ModelInfo],
    info: &mut ModelInfo,
) -> Result<(), KernelError> {
    info.id = info.id.trim().to_string();
    if info.id.is_empty() {
        return Err(KernelError::Invalid(
            "custom model needs a non-empty `id`".into(),
        ));
    }
    if info.id.len() > 256 || info.id.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(KernelError::Invalid(format!(
            "custom model id {:?} must be at most 256 characters without spaces or control characters",
            info.id
        )));
    }
    info.provider = llm
        .provider(info.provider.trim())
        .map_err(|e| KernelError::Invalid(format!("custom model `{}`: {e}", info.id)))?
        .name;
    if info.context_window == 0 {
        return Err(KernelError::Invalid(
            "`context_window` must be positive".into(),
        ));
    }
    if info.max_output_tokens == 0 || info.max_output_tokens > info.context_window {
        return Err(KernelError::Invalid(format!(
            "`max_output_tokens` must be between 1 and the context window ({})",
            info.context_window
        )));
    }
    for (name, price) in [
        ("input_price_per_mtok", info.input_price_per_mtok),
        ("output_price_per_mtok", info.output_price_per_mtok),
    ] {
        if !price.is_finite() || price < 0.0 {
            return Err(KernelError::Invalid(format!(
                "`{name}` must be a non-negative number of USD per million tokens"
            )));
        }
    }
    info.aliases = info.aliases.iter().map(|a| a.trim().to_string()).collect();
    if info.aliases.iter().any(|a| a.is_empty()) {
        return Err(KernelError::Invalid("aliases must not be empty".into()));
    }
    let names: Vec<&str> = std::iter::once(info.id.as_str())
        .chain(info.aliases.iter().map(String::as_str))
        .collect();
    let clashes = |other: &ModelInfo| {
        names.iter().any(|name| {
            other.id == *name
                || other.aliases.iter().any(|a| a.eq_ignore_ascii_case(name))
                || info
                    .aliases
                    .iter()
                    .any(|a| a.eq_ignore_ascii_case(&other.id))
        })
    };
    if let Some(other) = builtin.iter().find(|m| clashes(m)) {
        return Err(KernelError::Invalid(format!(
            "custom model `{}` clashes with the built-in model `{}` ({}); pick another id or alias",
            info.id, other.id, other.provider
        )));
    }
    if let Some(other) = llm.models().iter().find(|m| clashes(m)) {
        return Err(KernelError::Conflict(format!(
            "custom model `{}` clashes with the custom model `{}` ({}); delete it first",
            info.id, other.id, other.provider
        )));
    }
    Ok(())
}

impl Providers {
    /// The domain over `shared`: the client built from `[llm]`, with what
    /// earlier runs stored (custom models, URLs, keys) applied.
    pub(crate) fn new(shared: Arc<Shared>) -> Result<Self, KernelError> {
        let llm = client(&shared.config());
        restore(&llm, shared.store(), &shared.home().secrets_file())?;
        Ok(Self {
            shared,
            llm,
            edit: tokio::sync::Mutex::new(()),
        })
    }

    /// The model providers, their catalog and circuit breakers.
    pub fn llm(&self) -> &LlmClient {
        &self.llm
    }

    /// The models added with [`Providers::add_custom_model`].
    pub async fn custom_models(&self) -> Result<Vec<ModelInfo>, KernelError> {
        let store = self.shared.store().clone();
        Ok(store::blocking(move || records::list_custom_models(&store)).await?)
    }

    /// Whether `id` is one of the built-in models (which cannot be removed).
    pub fn is_builtin_model(&self, id: &str) -> bool {
        talon_llm::ModelCatalog::builtin()
            .models()
            .iter()
            .any(|m| m.id == id)
    }

    /// Adds a model to the catalog, durably. Its prices price the usage of
    /// agents that use it. Refused when it is malformed, names an unknown
    /// provider or clashes with a built-in model ([`KernelError::Invalid`]),
    /// or clashes with another custom model ([`KernelError::Conflict`]).
    pub async fn add_custom_model(&self, mut info: ModelInfo) -> Result<ModelInfo, KernelError> {
        let _edit = self.edit.lock().await;
        let builtin = talon_llm::ModelCatalog::builtin();
        validate_custom_model(&self.llm, builtin.models(), &mut info)?;
        let store = self.shared.store().clone();
        let stored = info.clone();
        store::blocking(move || records::insert_custom_model(&store, &stored)).await?;
        self.llm.add_model(info.clone());
        self.shared
            .audit(AuditEvent::new(
                "model_added",
                format!("custom model {} ({}) added", info.id, info.provider),
            ))
            .await?;
        Ok(info)
    }

    /// Removes a custom model, durably. Built-in models cannot be removed
    /// ([`KernelError::Invalid`]); an unknown id is [`KernelError::NotFound`].
    pub async fn remove_custom_model(&self, id: &str) -> Result<ModelInfo, KernelError> {
        let _edit = self.edit.lock().await;
        if self.is_builtin_model(id) {
            return Err(KernelError::Invalid(format!(
                "`{id}` is a built-in model; only custom models can be removed"
            )));
        }
        let store = self.shared.store().clone();
        let key = id.to_string();
        let removed = store::blocking(move || records::remove_custom_model(&store, &key)).await?;
        let Some(removed) = removed else {
            return Err(KernelError::NotFound(format!("no custom model `{id}`")));
        };
        self.llm.remove_model(&removed.id);
        self.shared
            .audit(AuditEvent::new(
                "model_removed",
                format!("custom model {} ({}) removed", removed.id, removed.provider),
            ))
            .await?;
        Ok(removed)
    }

    fn known_provider(&self, name: &str) -> Result<String, KernelError> {
        self.llm
            .provider(name)
            .map(|p| p.name)
            .map_err(|e| KernelError::NotFound(e.to_string()))
    }

    /// Sets a provider's API key, durably (see the module docs for where).
    /// It wins over the provider's environment variable from the next call on.
    pub async fn set_provider_key(&self, provider: &str, key: &str) -> Result<(), KernelError> {
        let provider = self.known_provider(provider)?;
        let key =
            talon_llm::validate_api_key(key).map_err(|e| KernelError::Invalid(e.to_string()))?;
        let _edit = self.edit.lock().await;
        let path = self.shared.home().secrets_file();
        let name = provider.clone();
        let stored = key.clone();
        tokio::task::spawn_blocking(move || {
            let mut secrets = secrets::read_secrets(&path)?;
            secrets.provider_keys.insert(name, stored);
            secrets::write_secrets(&path, &secrets)
        })
        .await
        .map_err(|e| KernelError::Store(StoreError::Task(e.to_string())))??;
        self.llm.set_api_key(&provider, &key)?;
        self.shared
            .audit(AuditEvent::new(
                "provider_key_set",
                format!("API key of {provider} set"),
            ))
            .await?;
        Ok(())
    }

    /// The approvals' TOTP secret kept in the secrets file, if any.
    pub async fn approval_totp(&self) -> Result<Option<TotpSecret>, KernelError> {
        let path = self.shared.home().secrets_file();
        tokio::task::spawn_blocking(move || Ok(secrets::read_secrets(&path)?.approval_totp))
            .await
            .map_err(|e| KernelError::Store(StoreError::Task(e.to_string())))?
    }

    /// Replaces (or, with `None`, removes) the approvals' TOTP secret in the
    /// secrets file.
    pub async fn set_approval_totp(&self, totp: Option<TotpSecret>) -> Result<(), KernelError> {
        let _edit = self.edit.lock().await;
        let path = self.shared.home().secrets_file();
        tokio::task::spawn_blocking(move || {
            let mut secrets = secrets::read_secrets(&path)?;
            secrets.approval_totp = totp;
            secrets::write_secrets(&path, &secrets)
        })
        .await
        .map_err(|e| KernelError::Store(StoreError::Task(e.to_string())))?
    }

    /// A configured channel's secret settings kept in the secrets file.
    pub async fn channel_secrets(
        &self,
        channel: &str,
    ) -> Result<BTreeMap<String, String>, KernelError> {
        let path = self.shared.home().secrets_file();
        let channel = channel.to_string();
        tokio::task::spawn_blocking(move || {
            let mut secrets = secrets::read_secrets(&path)?;
            Ok(secrets.channel_secrets.remove(&channel).unwrap_or_default())
        })
        .await
        .map_err(|e| KernelError::Store(StoreError::Task(e.to_string())))?
    }

    /// Replaces (or, with an empty map, removes) a channel's secret
    /// settings in the secrets file.
    pub async fn set_channel_secrets(
        &self,
        channel: &str,
        values: BTreeMap<String, String>,
    ) -> Result<(), KernelError> {
        let _edit = self.edit.lock().await;
        let path = self.shared.home().secrets_file();
        let channel = channel.to_string();
        tokio::task::spawn_blocking(move || {
            let mut secrets = secrets::read_secrets(&path)?;
            let had = secrets.channel_secrets.contains_key(&channel);
            if values.is_empty() {
                secrets.channel_secrets.remove(&channel);
            } else {
                secrets.channel_secrets.insert(channel, values);
            }
            if had || !secrets.channel_secrets.is_empty() {
                secrets::write_secrets(&path, &secrets)?;
            }
            Ok(())
        })
        .await
        .map_err(|e| KernelError::Store(StoreError::Task(e.to_string())))?
    }

    /// An MCP server's bearer token kept in the secrets file under `name`.
    pub async fn mcp_secret(&self, name: &str) -> Result<Option<String>, KernelError> {
        let path = self.shared.home().secrets_file();
        let name = name.to_string();
        tokio::task::spawn_blocking(move || {
            Ok(secrets::read_secrets(&path)?.mcp_secrets.remove(&name))
        })
        .await
        .map_err(|e| KernelError::Store(StoreError::Task(e.to_string())))?
    }

    /// Sets (or, with `None`, removes) an MCP server's bearer token in the
    /// secrets file under `name`.
    pub async fn set_mcp_secret(
        &self,
        name: &str,
        token: Option<String>,
    ) -> Result<(), KernelError> {
        let _edit = self.edit.lock().await;
        let path = self.shared.home().secrets_file();
        let name = name.to_string();
        tokio::task::spawn_blocking(move || {
            let mut secrets = secrets::read_secrets(&path)?;
            let changed = match token {
                Some(token) => {
                    secrets.mcp_secrets.insert(name, token);
                    true
                }
                None => secrets.mcp_secrets.remove(&name).is_some(),
            };
            if changed {
                secrets::write_secrets(&path, &secrets)?;
            }
            Ok(())
        })
        .await
        .map_err(|e| KernelError::Store(StoreError::Task(e.to_string())))?
    }

    /// Removes a key set with [`Providers::set_provider_key`], durably; the
    /// environment variable applies again. True when there was one.
    pub async fn delete_provider_key(&self, provider: &str) -> Result<bool, KernelError> {
        let provider = self.known_provider(provider)?;
        let _edit = self.edit.lock().await;
        let path = self.shared.home().secrets_file();
        let name = provider.clone();
        let existed = tokio::task::spawn_blocking(move || {
            let mut secrets = secrets::read_secrets(&path)?;
            let existed = secrets.provider_keys.remove(&name).is_some();
            if existed {
                secrets::write_secrets(&path, &secrets)?;
            }
            Ok::<_, KernelError>(existed)
        })
        .await
        .map_err(|e| KernelError::Store(StoreError::Task(e.to_string())))??;
        self.llm.clear_api_key(&provider)?;
        if existed {
            self.shared
                .audit(AuditEvent::new(
                    "provider_key_removed",
                    format!("API key of {provider} removed"),
                ))
                .await?;
        }
        Ok(existed)
    }

    /// Sets (`Some`) or clears (`None`) a provider's base URL, durably. It
    /// applies to every agent whose manifest does not set its own
    /// `base_url`. Returns the URL now in force.
    pub async fn set_provider_url(
        &self,
        provider: &str,
        url: Option<&str>,
    ) -> Result<String, KernelError> {
        let provider = self.known_provider(provider)?;
        let url = url
            .map(talon_llm::validate_base_url)
            .transpose()
            .map_err(|e| KernelError::Invalid(e.to_string()))?;
        let _edit = self.edit.lock().await;
        let store = self.shared.store().clone();
        let (name, stored) = (provider.clone(), url.clone());
        store::blocking(move || records::set_provider_url(&store, &name, stored.as_deref()))
            .await?;
        self.llm.set_base_url(&provider, url.as_deref())?;
        let in_force = self.llm.base_url(&Target::new(provider.clone()))?;
        self.shared
            .audit(AuditEvent::new(
                "provider_url_set",
                match &url {
                    Some(url) => format!("base URL of {provider} set to {url}"),
                    None => format!("base URL of {provider} reset to {in_force}"),
                },
            ))
            .await?;
        Ok(in_force)
    }

    /// Tests a provider with the key and base URL its agents would use: one
    /// free request (its model list). The error is the provider's answer,
    /// or why no request could be made (a missing key, for one).
    pub async fn test_provider(
        &self,
        provider: &str,
    ) -> Result<Result<ProbeReport, talon_llm::LlmError>, KernelError> {
        let provider = self.known_provider(provider)?;
        Ok(self
            .llm()
            .probe(&Target::new(provider), PROBE_TIMEOUT)
            .await)
    }
}

#[cfg(test)]
mod tests {
    use super::records::CUSTOM_MODELS_TABLE;
    use super::secrets::{Secrets, read_secrets, write_secrets};
    use super::*;
    use crate::store::tables::{CUSTOM_MODELS, PROVIDER_URLS};

    fn model(id: &str, provider: &str) -> ModelInfo {
        ModelInfo {
            id: id.into(),
            provider: provider.into(),
            aliases: vec![],
            context_window: 1000,
            max_output_tokens: 100,
            input_price_per_mtok: 1.0,
            output_price_per_mtok: 2.0,
            supports_tools: true,
            supports_vision: false,
        }
    }

    fn check(info: ModelInfo) -> Result<ModelInfo, KernelError> {
        let llm = LlmClient::new();
        let builtin = talon_llm::ModelCatalog::builtin();
        let mut info = info;
        validate_custom_model(&llm, builtin.models(), &mut info).map(|()| info)
    }

    #[test]
    fn custom_models_are_validated() {
        let ok = check(model(" my-model ", "OpenRouter")).unwrap();
        assert_eq!(ok.id, "my-model");
        assert_eq!(ok.provider, "openrouter");
        let invalid = |info: ModelInfo| matches!(check(info), Err(KernelError::Invalid(_)));
        assert!(invalid(model("", "openai")));
        assert!(invalid(model("has space", "openai")));
        assert!(invalid(model("m", "nope")));
        assert!(invalid(model("gpt-4o", "openrouter")), "built-in id");
        let mut alias = model("m", "openai");
        alias.aliases = vec!["SONNET".into()];
        assert!(invalid(alias), "built-in alias");
        let mut zero = model("m", "openai");
        zero.context_window = 0;
        assert!(invalid(zero));
        let mut big = model("m", "openai");
        big.max_output_tokens = 2000;
        assert!(invalid(big));
        let mut price = model("m", "openai");
        price.input_price_per_mtok = -1.0;
        assert!(invalid(price));
    }

    #[test]
    fn secrets_round_trip_privately() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secrets.toml");
        assert!(read_secrets(&path).unwrap().provider_keys.is_empty());
        let mut secrets = Secrets::default();
        secrets
            .provider_keys
            .insert("openai".into(), "sk-test".into());
        write_secrets(&path, &secrets).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert_eq!(
            read_secrets(&path).unwrap().provider_keys["openai"],
            "sk-test"
        );
    }

    #[test]
    fn a_corrupt_secrets_file_is_named_without_its_contents() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secrets.toml");
        std::fs::write(&path, "[provider_keys]\nopenai = sk-unquoted-secret\n").unwrap();
        let error = read_secrets(&path).unwrap_err().to_string();
        assert!(error.contains("line 2"), "{error}");
        assert!(!error.contains("sk-unquoted-secret"), "{error}");
    }

    #[test]
    fn stored_settings_are_restored_into_a_new_client() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("t.redb")).unwrap();
        let tx = store.db().unwrap().begin_write().unwrap();
        {
            let bytes = store::encode(CUSTOM_MODELS_TABLE, &model("mine", "openai")).unwrap();
            tx.open_table(CUSTOM_MODELS)
                .unwrap()
                .insert("mine", bytes.as_slice())
                .unwrap();
            tx.open_table(PROVIDER_URLS)
                .unwrap()
                .insert("ollama", "http://10.1.1.1:11434/v1")
                .unwrap();
        }
        tx.commit().unwrap();
        let secrets = dir.path().join("secrets.toml");
        let mut keys = Secrets::default();
        keys.provider_keys.insert("anthropic".into(), "sk-a".into());
        keys.provider_keys.insert("gone".into(), "sk-b".into());
        write_secrets(&secrets, &keys).unwrap();

        let llm = LlmClient::new().with_env_lookup(|_| None);
        restore(&llm, &store, &secrets).unwrap();
        assert_eq!(llm.find_model("mine").unwrap().input_price_per_mtok, 1.0);
        assert_eq!(
            llm.base_url(&Target::new("ollama")).unwrap(),
            "http://10.1.1.1:11434/v1"
        );
        assert_eq!(
            llm.api_key(&Target::new("anthropic")).unwrap().as_deref(),
            Some("sk-a")
        );
    }
}
