//! [`LlmClient`]: the one object the kernel holds. It knows the providers
//! and models, finds API keys, builds drivers that share connection pools
//! and circuit breakers (one per provider and base URL), and reports
//! breaker status.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use crate::catalog::{ModelCatalog, ModelInfo, ProviderInfo, builtin_providers};
use crate::driver::{Driver, DriverConfig, build_driver};
use crate::error::LlmError;
use crate::probe::{ProbeReport, ProbeRequest, probe};
use crate::resilience::{BreakerStatus, CircuitBreaker, ResilienceConfig};
use crate::stream::EventStream;
use crate::transport::http_client;
use crate::types::{CompletionRequest, CompletionResponse, Usage};

/// Where to send a request: a provider, optionally with an explicit key
/// and base URL (both override the provider's defaults).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Provider name (`openai`, `anthropic`, `ollama`...).
    pub provider: String,
    /// API key; when `None` the provider's environment variable is read.
    pub api_key: Option<String>,
    /// Base URL; when `None` the provider's default.
    pub base_url: Option<String>,
    /// Deadline of each call to this target (all attempts and the whole
    /// stream); when `None` the provider's
    /// [`Timeouts::call_deadline`](crate::Timeouts::call_deadline).
    pub call_deadline: Option<Duration>,
}

impl Target {
    /// A target using the provider's defaults.
    pub fn new(provider: impl Into<String>) -> Self {
        Target {
            provider: provider.into(),
            api_key: None,
            base_url: None,
            call_deadline: None,
        }
    }

    /// Sets the API key.
    pub fn with_api_key(mut self, api_key: impl Into<String>) -> Self {
        self.api_key = Some(api_key.into());
        self
    }

    /// Sets the base URL.
    pub fn with_base_url(mut self, base_url: impl Into<String>) -> Self {
        self.base_url = Some(base_url.into());
        self
    }

    /// Sets the deadline of each call.
    pub fn with_call_deadline(mut self, deadline: Duration) -> Self {
        self.call_deadline = Some(deadline);
        self
    }
}

/// A model name resolved against the catalog.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedModel {
    /// The provider serving it.
    pub provider: String,
    /// The id to send to the provider.
    pub model: String,
    /// What the catalog knows about it (`None` for models it does not list,
    /// which are passed to the provider as given).
    pub info: Option<ModelInfo>,
}

type EnvLookup = dyn Fn(&str) -> Option<String> + Send + Sync;

/// The facade over providers, models and drivers.
pub struct LlmClient {
    providers: RwLock<BTreeMap<String, ProviderInfo>>,
    models: RwLock<ModelCatalog>,
    default_resilience: ResilienceConfig,
    provider_resilience: HashMap<String, ResilienceConfig>,
    /// By provider, then base URL (trailing slashes trimmed).
    breakers: Mutex<BTreeMap<(String, String), Arc<CircuitBreaker>>>,
    /// One client (connection pool) per connect timeout in use.
    http: Mutex<HashMap<Duration, reqwest::Client>>,
    env: Arc<EnvLookup>,
    /// Keys set at runtime (the daemon's `POST /api/providers/{name}/key`),
    /// by provider; they win over the environment.
    key_overrides: RwLock<HashMap<String, String>>,
    /// Base URLs set at runtime, by provider; they win over the catalog's.
    url_overrides: RwLock<HashMap<String, String>>,
}

impl std::fmt::Debug for LlmClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LlmClient")
            .field("providers", &self.provider_names())
            .field("default_resilience", &self.default_resilience)
            .finish_non_exhaustive()
    }
}

impl Default for LlmClient {
    fn default() -> Self {
        Self::new()
    }
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    // Registries are only ever replaced entry by entry; a panic elsewhere
    // cannot leave them half-written, so a poisoned lock is still usable.
    lock.read().unwrap_or_else(PoisonError::into_inner)
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(PoisonError::into_inner)
}

impl LlmClient {
    /// A client with the built-in providers and models, default resilience,
    /// and API keys read from the process environment.
    pub fn new() -> Self {
        LlmClient {
            providers: RwLock::new(
                builtin_providers()
                    .into_iter()
                    .map(|info| (info.name.clone(), info))
                    .collect(),
            ),
            models: RwLock::new(ModelCatalog::builtin()),
            default_resilience: ResilienceConfig::default(),
            provider_resilience: HashMap::new(),
            breakers: Mutex::new(BTreeMap::new()),
            http: Mutex::new(HashMap::new()),
            env: Arc::new(|name: &str| std::env::var(name).ok()),
            key_overrides: RwLock::new(HashMap::new()),
            url_overrides: RwLock::new(HashMap::new()),
        }
    }

    /// Sets the resilience settings of every provider without its own.
    pub fn with_resilience(mut self, resilience: ResilienceConfig) -> Self {
        self.default_resilience = resilience;
        self
    }

    /// Sets one provider's resilience settings.
    pub fn with_provider_resilience(
        mut self,
        provider: &str,
        resilience: ResilienceConfig,
    ) -> Self {
        self.provider_resilience
            .insert(provider.to_ascii_lowercase(), resilience);
        self
    }

    /// Replaces how environment variables are read (the daemon may keep
    /// secrets elsewhere; tests must not depend on the real environment).
    pub fn with_env_lookup(
        mut self,
        lookup: impl Fn(&str) -> Option<String> + Send + Sync + 'static,
    ) -> Self {
        self.env = Arc::new(lookup);
        self
    }

    /// Adds or replaces a provider (e.g. another OpenAI-compatible server).
    pub fn register_provider(&self, mut info: ProviderInfo) {
        info.name = info.name.to_ascii_lowercase();
        write(&self.providers).insert(info.name.clone(), info);
    }

    /// A provider by name (case-insensitive).
    pub fn provider(&self, name: &str) -> Result<ProviderInfo, LlmError> {
        let providers = read(&self.providers);
        providers
            .get(&name.to_ascii_lowercase())
            .cloned()
            .ok_or_else(|| LlmError::UnknownProvider {
                provider: name.to_string(),
                known: providers.keys().cloned().collect(),
            })
    }

    /// All providers, by name.
    pub fn providers(&self) -> Vec<ProviderInfo> {
        read(&self.providers).values().cloned().collect()
    }

    fn provider_names(&self) -> Vec<String> {
        read(&self.providers).keys().cloned().collect()
    }

    /// Adds or replaces a model in the catalog.
    pub fn add_model(&self, info: ModelInfo) {
        write(&self.models).add(info);
    }

    /// Removes the model with this exact id from the catalog and returns it.
    pub fn remove_model(&self, id: &str) -> Option<ModelInfo> {
        write(&self.models).remove(id)
    }

    /// All catalogued models.
    pub fn models(&self) -> Vec<ModelInfo> {
        read(&self.models).models().to_vec()
    }

    /// Finds a model by id, alias or `provider/model` (see [`ModelCatalog::find`]).
    pub fn find_model(&self, name: &str) -> Option<ModelInfo> {
        read(&self.models).find(name).cloned()
    }

    /// What `usage` costs on `model`, in USD.
    pub fn cost_usd(&self, model: &str, usage: &Usage) -> Result<f64, LlmError> {
        read(&self.models).cost_usd(model, usage)
    }

    /// Resolves a model name to the provider and id to use.
    ///
    /// With a provider: the catalog entry of that provider (by id, alias or
    /// `provider/` prefix) if any, else the name unchanged, since providers
    /// serve many models the catalog does not list. Without one: the
    /// catalog decides, or a `provider/model` name whose prefix is a known
    /// provider; anything else is [`LlmError::UnknownModel`].
    pub fn resolve_model(
        &self,
        provider: Option<&str>,
        model: &str,
    ) -> Result<ResolvedModel, LlmError> {
        let catalog = read(&self.models);
        if let Some(provider) = provider {
            let provider = self.provider(provider)?.name;
            return Ok(match catalog.find_for_provider(&provider, model) {
                Some(info) => ResolvedModel {
                    provider,
                    model: info.id.clone(),
                    info: Some(info.clone()),
                },
                None => ResolvedModel {
                    provider,
                    model: model.to_string(),
                    info: None,
                },
            });
        }
        if let Some(info) = catalog.find(model) {
            return Ok(ResolvedModel {
                provider: info.provider.clone(),
                model: info.id.clone(),
                info: Some(info.clone()),
            });
        }
        if let Some((prefix, rest)) = model.split_once('/')
            && let Ok(info) = self.provider(prefix)
            && !rest.is_empty()
        {
            return Ok(ResolvedModel {
                provider: info.name,
                model: rest.to_string(),
                info: None,
            });
        }
        Err(LlmError::UnknownModel {
            model: model.to_string(),
        })
    }

    /// The API key for a target: the explicit one, else the one set with
    /// [`LlmClient::set_api_key`], else the provider's environment variable.
    /// `Ok(None)` for providers that need no key.
    pub fn api_key(&self, target: &Target) -> Result<Option<String>, LlmError> {
        let provider = self.provider(&target.provider)?;
        if let Some(key) = target.api_key.as_ref().filter(|key| !key.is_empty()) {
            return Ok(Some(key.clone()));
        }
        if let Some(key) = read(&self.key_overrides).get(&provider.name) {
            return Ok(Some(key.clone()));
        }
        // An empty variable (`OPENAI_API_KEY=`) counts as unset.
        match (self.env)(&provider.api_key_env).filter(|key| !key.trim().is_empty()) {
            Some(key) => Ok(Some(key)),
            None if provider.key_required => Err(LlmError::MissingApiKey {
                provider: provider.name,
                env: provider.api_key_env,
            }),
            None => Ok(None),
        }
    }

    /// Sets a provider's API key for every later call that does not bring
    /// its own; it wins over the provider's environment variable. The key
    /// must be non-empty and usable in an HTTP header.
    pub fn set_api_key(&self, provider: &str, key: &str) -> Result<(), LlmError> {
        let provider = self.provider(provider)?;
        let key = validate_api_key(key)?;
        write(&self.key_overrides).insert(provider.name, key);
        Ok(())
    }

    /// Forgets a key set with [`LlmClient::set_api_key`], so the environment
    /// variable applies again; true when there was one.
    pub fn clear_api_key(&self, provider: &str) -> Result<bool, LlmError> {
        let provider = self.provider(provider)?;
        Ok(write(&self.key_overrides).remove(&provider.name).is_some())
    }

    /// Whether a key was set with [`LlmClient::set_api_key`] (never the key).
    pub fn has_api_key_override(&self, provider: &str) -> bool {
        read(&self.key_overrides).contains_key(&provider.to_ascii_lowercase())
    }

    /// Sets (`Some`) or clears (`None`) a provider's base URL for every later
    /// call whose target does not name its own. The URL must be absolute
    /// `http` or `https` (see [`validate_base_url`]).
    pub fn set_base_url(&self, provider: &str, url: Option<&str>) -> Result<(), LlmError> {
        let provider = self.provider(provider)?;
        match url {
            Some(url) => {
                let url = validate_base_url(url)?;
                write(&self.url_overrides).insert(provider.name, url);
            }
            None => {
                write(&self.url_overrides).remove(&provider.name);
            }
        }
        Ok(())
    }

    /// The base URL set with [`LlmClient::set_base_url`], if any.
    pub fn base_url_override(&self, provider: &str) -> Option<String> {
        read(&self.url_overrides)
            .get(&provider.to_ascii_lowercase())
            .cloned()
    }

    /// Where a target's calls go: its own base URL, else the provider's
    /// override, else the catalog's default.
    pub fn base_url(&self, target: &Target) -> Result<String, LlmError> {
        let provider = self.provider(&target.provider)?;
        if let Some(url) = target.base_url.as_ref().filter(|url| !url.is_empty()) {
            return Ok(url.clone());
        }
        let url = self
            .base_url_override(&provider.name)
            .unwrap_or(provider.base_url);
        if url.is_empty() {
            return Err(LlmError::InvalidRequest {
                detail: format!(
                    "provider {} has no base URL of its own: set `base_url` in the agent's [model] \
                     section, or PUT /api/providers/{}/url",
                    provider.name, provider.name
                ),
            });
        }
        Ok(url)
    }

    /// Tests the connection to a target's provider with one free request
    /// (its model list), using the same key and base URL a call would.
    /// Retries and the circuit breaker are bypassed: this reports the
    /// provider's state now and does not count against the agents' calls.
    pub async fn probe(&self, target: &Target, timeout: Duration) -> Result<ProbeReport, LlmError> {
        let provider = self.provider(&target.provider)?;
        let api_key = self.api_key(target)?;
        let base_url = self.base_url(target)?;
        let connect = self.resilience(&provider.name).timeouts.connect;
        probe(ProbeRequest {
            provider: &provider.name,
            kind: provider.kind,
            base_url: &base_url,
            api_key: api_key.as_deref(),
            http: self.http(&provider.name, connect)?,
            timeout,
        })
        .await
    }

    fn resilience(&self, provider: &str) -> ResilienceConfig {
        self.provider_resilience
            .get(provider)
            .unwrap_or(&self.default_resilience)
            .clone()
    }

    fn breakers(
        &self,
    ) -> std::sync::MutexGuard<'_, BTreeMap<(String, String), Arc<CircuitBreaker>>> {
        // Entries are only ever added whole; a poisoned map is still sound.
        self.breakers.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The breaker of `provider` at `base_url`, made on first use.
    pub(crate) fn breaker(&self, provider: &str, base_url: &str) -> Arc<CircuitBreaker> {
        let endpoint = base_url.trim_end_matches('/').to_string();
        let mut breakers = self.breakers();
        Arc::clone(
            breakers
                .entry((provider.to_string(), endpoint.clone()))
                .or_insert_with(|| {
                    Arc::new(CircuitBreaker::new(
                        provider,
                        endpoint,
                        self.resilience(provider).breaker,
                    ))
                }),
        )
    }

    fn http(&self, provider: &str, connect_timeout: Duration) -> Result<reqwest::Client, LlmError> {
        let mut clients = self.http.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(client) = clients.get(&connect_timeout) {
            return Ok(client.clone());
        }
        let client = http_client(provider, connect_timeout)?;
        clients.insert(connect_timeout, client.clone());
        Ok(client)
    }

    /// A driver for the target, sharing this client's connection pool and
    /// the provider's circuit breaker. Cheap: build one per call if convenient.
    pub fn driver(&self, target: &Target) -> Result<Arc<dyn Driver>, LlmError> {
        let provider = self.provider(&target.provider)?;
        let api_key = self.api_key(target)?;
        let mut resilience = self.resilience(&provider.name);
        if let Some(deadline) = target.call_deadline {
            resilience.timeouts.call_deadline = deadline;
        }
        let base_url = self.base_url(target)?;
        let config = DriverConfig {
            provider: provider.name.clone(),
            http: Some(self.http(&provider.name, resilience.timeouts.connect)?),
            breaker: Some(self.breaker(&provider.name, &base_url)),
            base_url,
            api_key,
            resilience,
            max_tokens_field: provider.max_tokens_field,
        };
        build_driver(provider.kind, config)
    }

    fn prepare(
        &self,
        target: &Target,
        mut request: CompletionRequest,
    ) -> Result<CompletionRequest, LlmError> {
        request.model = self
            .resolve_model(Some(&target.provider), &request.model)?
            .model;
        Ok(request)
    }

    /// Resolves the model alias and asks for a whole answer.
    pub async fn complete(
        &self,
        target: &Target,
        request: CompletionRequest,
    ) -> Result<CompletionResponse, LlmError> {
        let driver = self.driver(target)?;
        let request = self.prepare(target, request)?;
        driver.complete(&request).await
    }

    /// Resolves the model alias and asks for a streamed answer.
    pub async fn stream(
        &self,
        target: &Target,
        request: CompletionRequest,
    ) -> Result<EventStream, LlmError> {
        let driver = self.driver(target)?;
        let request = self.prepare(target, request)?;
        driver.stream(&request).await
    }

    /// The circuit-breaker state of every endpoint called so far, by
    /// provider, and a closed entry without an endpoint for each provider
    /// never called.
    pub fn status(&self) -> Vec<BreakerStatus> {
        let breakers: Vec<Arc<CircuitBreaker>> = self.breakers().values().cloned().collect();
        let mut statuses = Vec::new();
        for name in self.provider_names() {
            let before = statuses.len();
            statuses.extend(
                breakers
                    .iter()
                    .filter(|b| b.provider() == name)
                    .map(|b| b.status()),
            );
            if statuses.len() == before {
                statuses.push(BreakerStatus {
                    provider: name,
                    endpoint: None,
                    state: crate::resilience::BreakerState::Closed,
                    consecutive_failures: 0,
                    opened_at: None,
                    retry_in_secs: None,
                });
            }
        }
        statuses
    }

    /// Closes the breakers of every endpoint of a provider and forgets
    /// their failures.
    pub fn reset(&self, provider: &str) -> Result<(), LlmError> {
        let provider = self.provider(provider)?;
        let breakers: Vec<Arc<CircuitBreaker>> = self.breakers().values().cloned().collect();
        for breaker in breakers.iter().filter(|b| b.provider() == provider.name) {
            breaker.reset();
        }
        Ok(())
    }
}

/// A key fit to send: trimmed, non-empty, visible ASCII only (anything else
/// cannot travel in an HTTP header, and would fail on every call).
pub fn validate_api_key(key: &str) -> Result<String, LlmError> {
    let key = key.trim();
    if key.is_empty() {
        return Err(LlmError::invalid("the API key is empty"));
    }
    if !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(LlmError::invalid(
            "the API key contains spaces, control or non-ASCII characters",
        ));
    }
    Ok(key.to_string())
}

/// A base URL fit to call: absolute `http` or `https` with a host, no
/// credentials (they would show wherever the URL is listed), no query or
/// fragment (paths are appended to it). Returned without a trailing slash.
pub fn validate_base_url(url: &str) -> Result<String, LlmError> {
    let trimmed = url.trim();
    let parsed = reqwest::Url::parse(trimmed)
        .map_err(|e| LlmError::invalid(format!("base URL {trimmed:?} is not a valid URL: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(LlmError::invalid(format!(
            "base URL {trimmed:?} must start with http:// or https://"
        )));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(LlmError::invalid(format!(
            "base URL {trimmed:?} has no host"
        )));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(LlmError::invalid(
            "base URL must not contain credentials; set the key with POST /api/providers/{name}/key",
        ));
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(LlmError::invalid(format!(
            "base URL {trimmed:?} must not have a query or fragment"
        )));
    }
    Ok(trimmed.trim_end_matches('/').to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client() -> LlmClient {
        LlmClient::new()
            .with_env_lookup(|name| (name == "OPENAI_API_KEY").then(|| "env-key".to_string()))
    }

    #[test]
    fn a_key_set_at_runtime_wins_over_the_environment_until_cleared() {
        let client = client();
        let target = Target::new("openai");
        assert_eq!(client.api_key(&target).unwrap().as_deref(), Some("env-key"));
        client.set_api_key("OpenAI", " api-key ").unwrap();
        assert!(client.has_api_key_override("openai"));
        assert_eq!(client.api_key(&target).unwrap().as_deref(), Some("api-key"));
        // A target's own key still wins.
        let own = Target::new("openai").with_api_key("own");
        assert_eq!(client.api_key(&own).unwrap().as_deref(), Some("own"));
        assert!(client.clear_api_key("openai").unwrap());
        assert!(!client.clear_api_key("openai").unwrap());
        assert_eq!(client.api_key(&target).unwrap().as_deref(), Some("env-key"));
        // Without either, a required key is missing.
        client.set_api_key("anthropic", "k").unwrap();
        client.clear_api_key("anthropic").unwrap();
        assert!(matches!(
            client.api_key(&Target::new("anthropic")),
            Err(LlmError::MissingApiKey { .. })
        ));
    }

    #[test]
    fn bad_keys_and_unknown_providers_are_refused() {
        let client = client();
        for bad in ["", "   ", "with space", "new\nline", "caf\u{e9}"] {
            assert!(
                matches!(
                    client.set_api_key("openai", bad),
                    Err(LlmError::InvalidRequest { .. })
                ),
                "{bad:?}"
            );
        }
        assert!(!client.has_api_key_override("openai"));
        assert!(matches!(
            client.set_api_key("nope", "k"),
            Err(LlmError::UnknownProvider { .. })
        ));
    }

    #[test]
    fn base_url_override_applies_to_targets_without_their_own() {
        let client = client();
        let target = Target::new("ollama");
        assert_eq!(
            client.base_url(&target).unwrap(),
            "http://localhost:11434/v1"
        );
        client
            .set_base_url("ollama", Some("http://10.0.0.5:11434/v1/"))
            .unwrap();
        assert_eq!(
            client.base_url(&target).unwrap(),
            "http://10.0.0.5:11434/v1"
        );
        let own = Target::new("ollama").with_base_url("http://own/v1");
        assert_eq!(client.base_url(&own).unwrap(), "http://own/v1");
        client.set_base_url("ollama", None).unwrap();
        assert_eq!(
            client.base_url(&target).unwrap(),
            "http://localhost:11434/v1"
        );
    }

    #[test]
    fn malformed_base_urls_are_refused() {
        for bad in [
            "",
            "localhost:11434",
            "ftp://host/v1",
            "http://",
            "http://user:pass@host/v1",
            "http://host/v1?x=1",
            "not a url",
        ] {
            assert!(validate_base_url(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            validate_base_url(" https://h:8/v1/ ").unwrap(),
            "https://h:8/v1"
        );
    }

    #[test]
    fn breakers_are_keyed_by_provider_and_endpoint() {
        let client = client();
        let a = client.breaker("ollama", "http://a:1/v1");
        // Same endpoint (a trailing slash is the same URL): same breaker.
        assert!(Arc::ptr_eq(&a, &client.breaker("ollama", "http://a:1/v1/")));
        let b = client.breaker("ollama", "http://b:1/v1");
        assert!(!Arc::ptr_eq(&a, &b));
        // Same URL under another provider name: its own breaker.
        assert!(!Arc::ptr_eq(&a, &client.breaker("vllm", "http://a:1/v1")));
        a.acquire().expect("closed").failure();
        for _ in 0..10 {
            if let Ok(permit) = a.acquire() {
                permit.failure();
            }
        }
        assert_eq!(a.status().state, crate::BreakerState::Open);
        assert_eq!(b.status().state, crate::BreakerState::Closed);
        b.acquire().expect("the other endpoint still calls");
        let statuses: Vec<_> = client
            .status()
            .into_iter()
            .filter(|s| s.provider == "ollama")
            .collect();
        assert_eq!(statuses.len(), 2, "{statuses:?}");
        assert!(
            statuses
                .iter()
                .any(|s| s.endpoint.as_deref() == Some("http://a:1/v1")
                    && s.state == crate::BreakerState::Open)
        );
        // Never-called providers are listed closed, without an endpoint.
        let openai: Vec<_> = client
            .status()
            .into_iter()
            .filter(|s| s.provider == "openai")
            .collect();
        assert_eq!(openai.len(), 1);
        assert_eq!(openai[0].endpoint, None);
        client.reset("ollama").expect("reset");
        assert_eq!(a.status().state, crate::BreakerState::Closed);
    }

    #[test]
    fn removed_models_are_gone_from_the_catalog() {
        let client = client();
        let mut info = client.find_model("gpt-4o").unwrap();
        info.id = "my-model".into();
        client.add_model(info);
        assert!(client.find_model("my-model").is_some());
        assert_eq!(client.remove_model("my-model").unwrap().id, "my-model");
        assert!(client.find_model("my-model").is_none());
        assert!(client.remove_model("my-model").is_none());
    }
}
