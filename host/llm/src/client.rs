//! [`LlmClient`]: the one object the kernel holds. It knows the providers
//! and models, finds API keys, builds drivers that share connection pools
//! and circuit breakers, and reports breaker status.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use crate::catalog::{ModelCatalog, ModelInfo, ProviderInfo, builtin_providers};
use crate::driver::{Driver, DriverConfig, build_driver};
use crate::error::LlmError;
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
}

impl Target {
    /// A target using the provider's defaults.
    pub fn new(provider: impl Into<String>) -> Self {
        Target {
            provider: provider.into(),
            api_key: None,
            base_url: None,
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
    breakers: Mutex<BTreeMap<String, Arc<CircuitBreaker>>>,
    /// One client (connection pool) per connect timeout in use.
    http: Mutex<HashMap<Duration, reqwest::Client>>,
    env: Arc<EnvLookup>,
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

    /// The API key for a target: the explicit one, else the provider's
    /// environment variable. `Ok(None)` for providers that need no key.
    pub fn api_key(&self, target: &Target) -> Result<Option<String>, LlmError> {
        let provider = self.provider(&target.provider)?;
        if let Some(key) = target.api_key.as_ref().filter(|key| !key.is_empty()) {
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

    fn resilience(&self, provider: &str) -> ResilienceConfig {
        self.provider_resilience
            .get(provider)
            .unwrap_or(&self.default_resilience)
            .clone()
    }

    fn breaker(&self, provider: &str) -> Arc<CircuitBreaker> {
        let mut breakers = self.breakers.lock().unwrap_or_else(PoisonError::into_inner);
        Arc::clone(breakers.entry(provider.to_string()).or_insert_with(|| {
            Arc::new(CircuitBreaker::new(
                provider,
                self.resilience(provider).breaker,
            ))
        }))
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
        let resilience = self.resilience(&provider.name);
        let config = DriverConfig {
            provider: provider.name.clone(),
            base_url: target.base_url.clone().unwrap_or(provider.base_url),
            api_key,
            http: Some(self.http(&provider.name, resilience.timeouts.connect)?),
            breaker: Some(self.breaker(&provider.name)),
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

    /// Every provider's circuit-breaker state (providers never called are closed).
    pub fn status(&self) -> Vec<BreakerStatus> {
        self.provider_names()
            .iter()
            .map(|name| self.breaker(name).status())
            .collect()
    }

    /// Closes a provider's breaker and forgets its failures.
    pub fn reset(&self, provider: &str) -> Result<(), LlmError> {
        let provider = self.provider(provider)?;
        self.breaker(&provider.name).reset();
        Ok(())
    }
}
