//! The [`Driver`] trait and how drivers are built.

use std::sync::Arc;

use futures::future::BoxFuture;

use crate::anthropic::Anthropic;
use crate::catalog::{DriverKind, MaxTokensField};
use crate::error::LlmError;
use crate::gemini::Gemini;
use crate::openai::OpenAi;
use crate::resilience::{CircuitBreaker, ResilienceConfig};
use crate::stream::{Decoder, EventStream};
use crate::transport::{PreparedRequest, Transport, http_client};
use crate::types::{CompletionRequest, CompletionResponse};

/// Something that can answer a [`CompletionRequest`]: one provider, one
/// wire format. Implementations retry, time out and trip their provider's
/// circuit breaker on their own; callers see only the outcome.
///
/// The methods return boxed futures (rather than being `async fn`) so that
/// the trait stays dyn-compatible and drivers can be chosen at runtime.
pub trait Driver: Send + Sync {
    /// The provider this driver talks to.
    fn provider(&self) -> &str;

    /// Asks for a whole answer.
    fn complete<'a>(
        &'a self,
        request: &'a CompletionRequest,
    ) -> BoxFuture<'a, Result<CompletionResponse, LlmError>>;

    /// Asks for a streamed answer. Resolves once the provider has started
    /// answering (the first event is in), so connection and status errors
    /// surface here rather than as the stream's first item.
    fn stream<'a>(
        &'a self,
        request: &'a CompletionRequest,
    ) -> BoxFuture<'a, Result<EventStream, LlmError>>;
}

/// Everything needed to build a driver for one provider endpoint.
#[derive(Debug, Clone)]
pub struct DriverConfig {
    /// Provider name (for errors, logs and the breaker).
    pub provider: String,
    /// Base URL; see [`ProviderInfo::base_url`](crate::ProviderInfo::base_url)
    /// for what it includes per wire format.
    pub base_url: String,
    /// API key, if the endpoint needs one.
    pub api_key: Option<String>,
    /// Timeouts, retries and breaker settings.
    pub resilience: ResilienceConfig,
    /// Token-limit field (OpenAI-compatible drivers only).
    pub max_tokens_field: MaxTokensField,
    /// The endpoint's breaker, to share it between drivers of the same
    /// provider and base URL; a fresh one is made when `None`.
    pub breaker: Option<Arc<CircuitBreaker>>,
    /// HTTP client to share a connection pool; a fresh one (with
    /// [`Timeouts::connect`](crate::Timeouts::connect)) is made when `None`.
    pub http: Option<reqwest::Client>,
}

impl DriverConfig {
    /// A configuration with default resilience, no key, fresh breaker and client.
    pub fn new(provider: impl Into<String>, base_url: impl Into<String>) -> Self {
        DriverConfig {
            provider: provider.into(),
            base_url: base_url.into(),
            api_key: None,
            resilience: ResilienceConfig::default(),
            max_tokens_field: MaxTokensField::default(),
            breaker: None,
            http: None,
        }
    }

    /// Sets the API key.
    pub fn with_api_key(mut self, api_key: impl Into<String>) -> Self {
        self.api_key = Some(api_key.into());
        self
    }

    /// Sets the resilience settings.
    pub fn with_resilience(mut self, resilience: ResilienceConfig) -> Self {
        self.resilience = resilience;
        self
    }

    /// Shares a breaker.
    pub fn with_breaker(mut self, breaker: Arc<CircuitBreaker>) -> Self {
        self.breaker = Some(breaker);
        self
    }

    /// The base URL without trailing slashes, so paths can be appended.
    pub(crate) fn trimmed_base_url(&self) -> String {
        self.base_url.trim_end_matches('/').to_string()
    }

    pub(crate) fn transport(&self) -> Result<Transport, LlmError> {
        let http = match &self.http {
            Some(http) => http.clone(),
            None => http_client(&self.provider, self.resilience.timeouts.connect)?,
        };
        let breaker = match &self.breaker {
            Some(breaker) => Arc::clone(breaker),
            None => Arc::new(CircuitBreaker::new(
                &self.provider,
                self.trimmed_base_url(),
                self.resilience.breaker.clone(),
            )),
        };
        Ok(Transport::new(
            self.provider.clone(),
            http,
            self.resilience.clone(),
            breaker,
        ))
    }
}

/// Builds the driver for a wire format.
pub fn build_driver(kind: DriverKind, config: DriverConfig) -> Result<Arc<dyn Driver>, LlmError> {
    let transport = config.transport()?;
    Ok(match kind {
        DriverKind::OpenAi => Arc::new(HttpDriver::new(transport, OpenAi::new(&config))),
        DriverKind::Anthropic => Arc::new(HttpDriver::new(transport, Anthropic::new(&config))),
        DriverKind::Gemini => Arc::new(HttpDriver::new(transport, Gemini::new(&config))),
    })
}

/// One provider API's wire format: how a request is written and how an
/// answer, whole or streamed, is read. [`HttpDriver`] adds the sending
/// (retries, timeouts, the breaker), the same for every format.
pub(crate) trait WireFormat: Send + Sync + 'static {
    /// Reads one streamed answer, event by event.
    type Decoder: Decoder;

    /// The HTTP request asking for `request`, streamed or not.
    fn prepare(
        &self,
        request: &CompletionRequest,
        stream: bool,
    ) -> Result<PreparedRequest, LlmError>;

    /// Reads a whole (not streamed) answer.
    fn parse(
        &self,
        provider: &str,
        body: &[u8],
        model: &str,
    ) -> Result<CompletionResponse, LlmError>;

    /// A decoder for one streamed answer from `provider`.
    fn decoder(provider: String) -> Self::Decoder;
}

/// A [`Driver`] speaking the wire format `W` through a [`Transport`].
struct HttpDriver<W> {
    transport: Transport,
    wire: W,
}

impl<W: WireFormat> HttpDriver<W> {
    fn new(transport: Transport, wire: W) -> Self {
        HttpDriver { transport, wire }
    }
}

impl<W: WireFormat> Driver for HttpDriver<W> {
    fn provider(&self) -> &str {
        self.transport.provider()
    }

    fn complete<'a>(
        &'a self,
        request: &'a CompletionRequest,
    ) -> BoxFuture<'a, Result<CompletionResponse, LlmError>> {
        Box::pin(async move {
            let prepared = self.wire.prepare(request, false)?;
            let provider = self.transport.provider();
            self.transport
                .complete(&prepared, |body| {
                    self.wire.parse(provider, body, &request.model)
                })
                .await
        })
    }

    fn stream<'a>(
        &'a self,
        request: &'a CompletionRequest,
    ) -> BoxFuture<'a, Result<EventStream, LlmError>> {
        Box::pin(async move {
            let prepared = self.wire.prepare(request, true)?;
            let provider = self.transport.provider().to_string();
            self.transport
                .stream(&prepared, request.max_tokens, move || {
                    W::decoder(provider.clone())
                })
                .await
        })
    }
}
