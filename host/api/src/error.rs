//! The API's error type and its `{"error": "..."}` body.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use talon_kernel::KernelError;

/// An error answered to the client with its status code and a message that says what went wrong.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the request was malformed.
    #[error("{0}")]
    BadRequest(String),
    /// 401: missing or wrong credentials.
    #[error("{0}")]
    Unauthorized(String),
    /// 403: the caller may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// 404: the thing does not exist.
    #[error("{0}")]
    NotFound(String),
    /// 405: the path exists but not for this method.
    #[error("{0}")]
    MethodNotAllowed(String),
    /// 409: conflicts with the current state.
    #[error("{0}")]
    Conflict(String),
    /// 426: a WebSocket route was called without an upgrade.
    #[error("{0}")]
    UpgradeRequired(String),
    /// 413: the body is larger than allowed.
    #[error("{0}")]
    PayloadTooLarge(String),
    /// 429: rate limit exceeded; retry after this many seconds. The message
    /// names the limit and how to raise it.
    #[error(
        "Rate limit exceeded: this client spent its budget of {per_minute} cost units per minute \
         (this request costs {cost}); retry after {retry_after_secs} s, or raise \
         rate_limit.api_requests_per_minute (POST /api/config/set or config.toml){loopback_hint}"
    )]
    RateLimited {
        /// Seconds until a retry can succeed.
        retry_after_secs: u64,
        /// The budget in force (`rate_limit.api_requests_per_minute`).
        per_minute: u32,
        /// What the refused request costs.
        cost: u32,
        /// Advice for loopback clients, or empty.
        loopback_hint: &'static str,
    },
    /// 412: the agent's model provider has no API key configured.
    #[error("{0}")]
    ProviderAuthMissing(String),
    /// 429: a spending limit is reached.
    #[error("{0}")]
    BudgetExceeded(String),
    /// 502, 503 or 504: the model provider failed, is shut off by its
    /// circuit breaker, or timed out.
    #[error("{message}")]
    Upstream {
        /// 502, 503 or 504.
        status: StatusCode,
        /// What happened.
        message: String,
    },
    /// 507: the disk holding the data directory is full; the write was not made.
    #[error("{0}")]
    InsufficientStorage(String),
    /// 503: a dependency (the database, while it reopens) is briefly unavailable.
    #[error("{0}")]
    Unavailable(String),
    /// 500: something failed on our side. The detail is logged, not sent.
    #[error("internal server error")]
    Internal(String),
}

impl ApiError {
    /// The HTTP status for this error.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UpgradeRequired(_) => StatusCode::UPGRADE_REQUIRED,
            ApiError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::ProviderAuthMissing(_) => StatusCode::PRECONDITION_FAILED,
            ApiError::BudgetExceeded(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Upstream { status, .. } => *status,
            ApiError::InsufficientStorage(_) => StatusCode::INSUFFICIENT_STORAGE,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// Builds the JSON error body every route uses.
pub fn error_response(status: StatusCode, message: &str) -> Response {
    let body = serde_json::json!({ "error": message }).to_string();
    let mut response = (status, body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Internal(detail) = &self {
            tracing::error!(%detail, "request failed");
        }
        let mut response = error_response(self.status(), &self.to_string());
        if let ApiError::RateLimited {
            retry_after_secs, ..
        } = self
        {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
        }
        response
    }
}

impl From<KernelError> for ApiError {
    fn from(e: KernelError) -> Self {
        match e {
            KernelError::Invalid(m) => ApiError::BadRequest(m),
            KernelError::NotFound(m) => ApiError::NotFound(m),
            KernelError::Conflict(m) => ApiError::Conflict(m),
            KernelError::Forbidden(m) => ApiError::Forbidden(m),
            KernelError::Config(e) => match e {
                talon_kernel::config::ConfigError::Io { .. } => ApiError::Internal(e.to_string()),
                other => ApiError::BadRequest(other.to_string()),
            },
            KernelError::Store(e) => e.into(),
            KernelError::BudgetExceeded(m) => ApiError::BudgetExceeded(m),
            KernelError::TooLarge(m) => ApiError::PayloadTooLarge(m),
            KernelError::Llm(e) => e.into(),
            KernelError::Peer(e) => {
                use talon_a2a::ClientError as C;
                let message = e.to_string();
                let status = match e {
                    C::BadUrl(_) | C::BadMessage | C::InvalidCard(_) => {
                        return ApiError::BadRequest(message);
                    }
                    C::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
                    _ => StatusCode::BAD_GATEWAY,
                };
                ApiError::Upstream { status, message }
            }
        }
    }
}

impl From<talon_kernel::store::StoreError> for ApiError {
    fn from(e: talon_kernel::store::StoreError) -> Self {
        use talon_kernel::store::StoreError as S;
        match e {
            S::DiskFull(message) => ApiError::InsufficientStorage(message),
            S::Recovering => ApiError::Unavailable(e.to_string()),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl From<talon_llm::LlmError> for ApiError {
    fn from(e: talon_llm::LlmError) -> Self {
        use talon_llm::LlmError as L;
        let message = e.to_string();
        let status = match e {
            L::MissingApiKey { .. } => return ApiError::ProviderAuthMissing(message),
            L::UnknownProvider { .. } | L::UnknownModel { .. } | L::InvalidRequest { .. } => {
                return ApiError::BadRequest(message);
            }
            L::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            L::CircuitOpen { .. } => StatusCode::SERVICE_UNAVAILABLE,
            L::Timeout { .. } | L::Deadline { .. } => StatusCode::GATEWAY_TIMEOUT,
            _ => StatusCode::BAD_GATEWAY,
        };
        ApiError::Upstream { status, message }
    }
}
