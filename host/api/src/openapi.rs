//! The OpenAPI document, assembled from the handlers' `#[utoipa::path]` annotations.

use utoipa::OpenApi;

/// Document-level information; paths are added by the router in [`crate::server`].
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Talon API",
        description = "Talon agent operating system: REST API compatible with LibreFang's.",
        license(name = "MIT OR Apache-2.0")
    ),
    // Served outside the OpenAPI router (their ids may hold slashes), so listed here.
    paths(crate::routes::models::get, crate::routes::models::remove_custom),
    modifiers(&BearerAuth),
    tags(
        (name = "system", description = "Health, status, version, metrics, shutdown"),
        (name = "config", description = "Configuration"),
        (name = "agents", description = "Agent registry"),
        (name = "memory", description = "Agent key-value memory"),
        (name = "audit", description = "Audit hash chain and security overview"),
        (name = "scheduler", description = "Cron jobs, schedules and their runs"),
        (name = "triggers", description = "Event triggers"),
        (name = "workflows", description = "Workflows and their runs"),
        (name = "goals", description = "Goals and sub-goals"),
    )
)]
pub struct ApiDoc;

/// Declares the bearer-token scheme used when `api_key` is set.
struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}
