//! The web dashboard: `/`, its client-side pages and `/assets/*`, served
//! from the files embedded by `talon-dashboard`. Not in the OpenAPI
//! document: these are pages, not API.

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use talon_dashboard::File;

use crate::error::ApiError;
use crate::state::AppState;

/// The HTML page revalidates on every load (it names the current assets);
/// the assets never change under their content-hashed names.
const PAGE_CACHE: &str = "no-cache";
const ASSET_CACHE: &str = "public, max-age=31536000, immutable";

/// Every page in `dashboard/src/pages.json` (`/` among them), and `/assets/{*path}`.
pub fn router() -> Router<AppState> {
    if !talon_dashboard::BUILT {
        tracing::warn!(
            "this binary was built without npm, so without its dashboard: GET / serves a page saying how to build it"
        );
    }
    let mut router = Router::new().route("/assets/{*path}", get(asset));
    for page in talon_dashboard::PAGES {
        router = router.route(page, get(index));
    }
    router
}

async fn index(headers: HeaderMap) -> Response {
    serve(talon_dashboard::index(), &headers, PAGE_CACHE)
}

async fn asset(Path(path): Path<String>, headers: HeaderMap) -> Response {
    match talon_dashboard::file(&format!("/assets/{path}")) {
        Some(file) => serve(file, &headers, ASSET_CACHE),
        None => ApiError::NotFound(format!("no dashboard asset /assets/{path}")).into_response(),
    }
}

/// The file, gzip-encoded when the client accepts it and that is smaller.
fn serve(file: &'static File, headers: &HeaderMap, cache: &'static str) -> Response {
    let accepts_gzip = headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|coding| {
            let mut parts = coding.split(';');
            let name = parts.next().unwrap_or("").trim();
            // `gzip;q=0` is a refusal.
            let refused = parts.any(|p| matches!(p.trim(), "q=0" | "q=0.0" | "q=0.00" | "q=0.000"));
            name.eq_ignore_ascii_case("gzip") && !refused
        });
    let mut response = match (file.gzip, accepts_gzip) {
        (Some(gzip), true) => {
            let mut r = gzip.into_response();
            r.headers_mut()
                .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            r
        }
        _ => file.body.into_response(),
    };
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(file.content_type),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    h.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    response
}
