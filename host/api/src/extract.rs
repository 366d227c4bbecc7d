//! Extractors whose rejections follow the API's error conventions.
//!
//! axum's own extractors answer malformed input with plain-text bodies and,
//! for JSON that parses but does not fit, 422. Clients of this API expect
//! `{"error": "..."}` and 400, so these wrappers convert every rejection into
//! an [`ApiError`] that keeps axum's explanation of what was wrong. Both JSON
//! extractors read a struct from a JSON object only ([`objects`]).

mod objects;
pub mod package;

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;

/// JSON request body (and response) with API-style rejections; a struct
/// must come as a JSON object (an array is a 400).
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

impl<T, S> FromRequest<S> for Json<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: axum::extract::Request, state: &S) -> Result<Self, ApiError> {
        // axum checks the content type and the syntax; the rest is ours.
        let axum::Json(body) =
            axum::Json::<serde_json::Value>::from_request(request, state).await?;
        objects::read(body).map(Json).map_err(|e| {
            ApiError::BadRequest(format!(
                "Failed to deserialize the JSON body into the target type: {e}"
            ))
        })
    }
}

impl<T: serde::Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

/// An optional JSON object: none at all (only whitespace, or `null`) is `T::default()`,
/// for the routes LibreFang's clients call without a body. A body that is
/// there must be valid JSON of the right shape, whatever its content type.
#[derive(Debug, Clone, Copy, Default)]
pub struct OptionalJson<T>(pub T);

impl<T, S> FromRequest<S> for OptionalJson<T>
where
    T: serde::de::DeserializeOwned + Default,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: axum::extract::Request, state: &S) -> Result<Self, ApiError> {
        let bytes = axum::body::Bytes::from_request(request, state)
            .await
            .map_err(|e| match e.status() {
                StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge(e.body_text()),
                _ => ApiError::BadRequest(e.body_text()),
            })?;
        // No body, or JSON `null` (what the document's optional body allows).
        let trimmed = bytes.trim_ascii();
        if trimmed.is_empty() || trimmed == b"null" {
            return Ok(OptionalJson(T::default()));
        }
        let body = serde_json::from_slice(trimmed)
            .map_err(|e| ApiError::BadRequest(format!("invalid body: {e}")))?;
        objects::read(body)
            .map(OptionalJson)
            .map_err(|e| ApiError::BadRequest(format!("invalid body: {e}")))
    }
}

/// Path parameters with API-style rejections (a malformed UUID is a 400).
#[derive(Debug, Clone, Copy, Default, FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct Path<T>(pub T);

/// Query parameters with API-style rejections.
#[derive(Debug, Clone, Copy, Default, FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct Query<T>(pub T);

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        let message = rejection.body_text();
        match rejection.status() {
            StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge(message),
            _ => ApiError::BadRequest(message),
        }
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        ApiError::BadRequest(rejection.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        ApiError::BadRequest(rejection.body_text())
    }
}
