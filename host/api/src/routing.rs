//! The route table: each route is added with its handler at start, and its
//! part of the OpenAPI document is only written down, to be built if the
//! document is ever asked for.
//!
//! `utoipa_axum`'s router builds every route's operation (its parameters,
//! bodies and inline schemas) as the route is added: over a tenth of the
//! daemon's start-up work, for a document few daemons are ever asked for.
//! [`routes!`] reads from each handler's `#[utoipa::path]` only its path and
//! methods; the operations are built by [`document`].

use axum::Router;
use axum::extract::Request;
use axum::response::IntoResponse;
use axum::routing::{MethodRouter, Route};
use std::convert::Infallible;
use tower::{Layer, Service};
use utoipa::openapi::OpenApi;
use utoipa::openapi::path::Paths;
use utoipa::openapi::{Components, RefOr, schema::Schema};

use crate::state::AppState;

/// Adds one route's operations to a document.
pub(crate) type Document = fn(&mut OpenApi);

/// The handlers of one path, as [`routes!`] makes them.
pub(crate) struct Routed {
    /// The path, as the handlers' `#[utoipa::path]` give it.
    pub path: String,
    pub method_router: MethodRouter<AppState>,
    pub document: Document,
}

/// A router, and how to document each of its routes.
#[derive(Default)]
pub(crate) struct ApiRouter {
    router: Router<AppState>,
    documents: Vec<Document>,
}

impl ApiRouter {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds the handlers of one path.
    pub fn routes(mut self, routed: Routed) -> Self {
        self.router = self.router.route(&routed.path, routed.method_router);
        self.documents.push(routed.document);
        self
    }

    /// Adds another table's routes.
    pub fn merge(mut self, other: Self) -> Self {
        self.router = self.router.merge(other.router);
        self.documents.extend(other.documents);
        self
    }

    /// Wraps the routes added so far in `layer` (as [`Router::layer`]).
    pub fn layer<L>(mut self, layer: L) -> Self
    where
        L: Layer<Route> + Clone + Send + Sync + 'static,
        L::Service: Service<Request> + Clone + Send + Sync + 'static,
        <L::Service as Service<Request>>::Response: IntoResponse + 'static,
        <L::Service as Service<Request>>::Error: Into<Infallible> + 'static,
        <L::Service as Service<Request>>::Future: Send + 'static,
    {
        self.router = self.router.layer(layer);
        self
    }

    /// The router, and what documents it.
    pub fn into_parts(self) -> (Router<AppState>, Vec<Document>) {
        (self.router, self.documents)
    }
}

/// `base` with the operations of every route of `documents` added.
pub(crate) fn document(mut base: OpenApi, documents: &[Document]) -> OpenApi {
    for add in documents {
        add(&mut base);
    }
    base
}

/// Adds `paths` and `schemas` to `doc`: operations of a path already there
/// join its others (as `utoipa_axum`'s router does).
pub(crate) fn add_paths(doc: &mut OpenApi, paths: Paths, schemas: Vec<(String, RefOr<Schema>)>) {
    for (path, item) in paths.paths {
        match doc.paths.paths.get_mut(&path) {
            Some(existing) => existing.merge_operations(item),
            None => {
                doc.paths.paths.insert(path, item);
            }
        }
    }
    doc.components
        .get_or_insert_with(Components::new)
        .schemas
        .extend(schemas);
}

/// The handlers of one path (each with `#[utoipa::path]`), as a
/// [`Routed`]: the same handler lists `utoipa_axum::routes!` takes. It
/// uses that macro's inner rules to name each handler's `__path_` type.
macro_rules! routes {
    // Handlers as plain tokens (not `path` fragments), so that the inner
    // rules can take each one apart.
    ( $( $first:ident )::+ $( , $( $segment:ident )::+ )* $(,)? ) => {{
        use utoipa_axum::PathItemExt as _;
        let path: String = utoipa_axum::routes!( @path [path()] of $( $first )::+ );
        let mut method_router = axum::routing::MethodRouter::new();
        $crate::routing::routes!(@methods method_router: $( $first )::+ $( , $( $segment )::+ )*);
        $crate::routing::Routed {
            path,
            method_router,
            document: |doc: &mut utoipa::openapi::OpenApi| {
                let mut paths = utoipa::openapi::path::Paths::new();
                let mut schemas = Vec::<(
                    String,
                    utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
                )>::new();
                $crate::routing::routes!(@operations paths schemas: $( $first )::+ $( , $( $segment )::+ )*);
                $crate::routing::add_paths(doc, paths, schemas);
            },
        }
    }};
    ( @methods $router:ident: $( $( $segment:ident )::+ ),+ ) => {
        $(
            for method in utoipa_axum::routes!( @path [methods()] of $( $segment )::+ ) {
                $router = $router.on(method.to_method_filter(), $( $segment )::+);
            }
        )+
    };
    ( @operations $paths:ident $schemas:ident: $( $( $segment:ident )::+ ),+ ) => {
        $(
            let (path, item, types) =
                utoipa_axum::routes!( @resolve_types $( $segment )::+ : $schemas );
            $paths.add_path_operation(&path, types, item);
        )+
    };
}

pub(crate) use routes;
