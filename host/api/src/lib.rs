//! Talon's HTTP API.
//!
//! [`server::app`] builds the axum application: the routes under [`routes`],
//! wrapped in the conventions every route shares ([`middleware`]): request ids,
//! security headers, metrics, panic recovery, CORS, rate limiting, auth and
//! body limits. Handlers translate HTTP into [`talon_kernel::Kernel`] calls and
//! errors into [`error::ApiError`]; they hold no state of their own.

pub mod connections;
pub mod error;
pub mod extract;
pub mod metrics;
pub mod middleware;
pub mod openapi;
pub mod routes;
mod routing;
pub mod server;
pub mod state;

pub use server::{Server, app};
pub use state::AppState;
