//! Security headers on every response.

use axum::http::{HeaderValue, header};
use axum::response::Response;

/// Content-Security-Policy for the API and the dashboard: nothing from
/// elsewhere, no inline script or style (the dashboard's are files under
/// `/assets/`), no framing.
const CSP: &str = "default-src 'self'; img-src 'self' data:; \
connect-src 'self' ws: wss:; frame-ancestors 'none'; base-uri 'self'; form-action 'self'";

/// Adds CSP, X-Frame-Options, nosniff, HSTS and Referrer-Policy.
pub async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::STRICT_TRANSPORT_SECURITY,
        HeaderValue::from_static("max-age=63072000; includeSubDomains"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}
