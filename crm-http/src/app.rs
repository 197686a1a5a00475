//! The whole HTTP application: routes, the OpenAPI spec and docs, health checks, and
//! the middleware stack around them.

use std::{sync::Arc, time::Duration};

use poem::{
    Endpoint, EndpointExt, IntoResponse, Response, Route, get, handler,
    http::{HeaderValue, Method, StatusCode},
    middleware::{CatchPanic, CookieJarManager, Cors},
    web::Data,
};
use serde_json::json;

use crate::{
    api,
    backends::RedisProbe,
    context::AppCtx,
    csrf::{CSRF_HEADER, TrustedOrigins},
    edge::{AllowOn405, BodyLimit, Edge, PanicToEnvelope},
    error::ApiError,
    idempotency::Idempotent,
    proxies::TrustedProxies,
};

/// How the application is put together (everything else is in [`AppCtx`]).
#[derive(Debug, Clone)]
pub struct AppOptions {
    /// Origins allowed to call the API from browsers, with credentials. Empty: no CORS
    /// headers at all, so browsers keep other sites from reading responses.
    pub cors_origins: Vec<String>,
    /// The largest request body accepted, in bytes.
    pub body_limit: usize,
    /// Peers whose forwarding headers name the client (default: none).
    pub trusted_proxies: TrustedProxies,
    /// The Redis that sessions and rate limits live on, which readiness asks too
    /// (default: none).
    pub redis: Option<RedisProbe>,
}

impl Default for AppOptions {
    fn default() -> Self {
        Self {
            cors_origins: Vec::new(),
            body_limit: 1024 * 1024,
            trusted_proxies: TrustedProxies::default(),
            redis: None,
        }
    }
}

/// The API's OpenAPI document.
#[handler]
fn spec_document() -> Response {
    Response::builder().content_type("application/json").body(api::document())
}

/// Liveness: the process answers.
#[handler]
fn health() -> Response {
    poem::web::Json(json!({ "success": true, "data": { "status": "ok" } })).into_response()
}

/// How long readiness waits for the storage's answer. Its own bound, shorter than any
/// pool's wait for a connection: a load balancer asks often and must hear "not ready"
/// within its own probe timeout (commonly 1 s) while the storage is down.
pub const READY_PING_TIMEOUT: Duration = Duration::from_millis(800);

/// Readiness: the storage answers within [`READY_PING_TIMEOUT`], and so does Redis when
/// sessions and rate limits live there (requests cannot be served without it).
#[handler]
async fn ready(ctx: Data<&Arc<AppCtx>>, redis: Data<&Option<RedisProbe>>) -> Response {
    let storage = ctx.crm.storage();
    match tokio::time::timeout(READY_PING_TIMEOUT, storage.ping()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return ApiError::from(crm_core::CrmError::from(e)).into_response(),
        Err(_) => {
            return ApiError::from(crm_core::CrmError::Unavailable("readiness ping timed out".into())).into_response();
        }
    }
    let redis_status = match redis.0 {
        Some(probe) => match probe.ping(READY_PING_TIMEOUT).await {
            Ok(()) => "ready",
            Err(e) => return ApiError::from(crm_core::CrmError::Unavailable(e)).into_response(),
        },
        None => "not used",
    };
    poem::web::Json(json!({
        "success": true,
        "data": { "status": "ready", "storage": storage.name(), "redis": redis_status }
    }))
    .into_response()
}

/// The application over `ctx`.
pub fn build(ctx: Arc<AppCtx>, options: &AppOptions) -> impl Endpoint<Output = Response> + use<> {
    let api = api::service();
    let allow = allow_on_405(api::generated());
    let spec = get(spec_document);
    // Swagger UI embeds the document it shows: the completed one, not poem-openapi's.
    let docs = get(poem::endpoint::make_sync(|_| poem::web::Html(api::swagger_page())));
    // Credentials are allowed for the listed origins only: poem's `Cors` without any
    // origin echoes every `Origin` back, so with none listed it is not installed at all.
    let origins: Vec<&str> = options.cors_origins.iter().map(|o| o.trim()).filter(|o| !o.is_empty()).collect();
    let mut cors = Cors::new()
        .allow_credentials(true)
        .allow_methods([Method::GET, Method::POST, Method::PATCH, Method::DELETE, Method::OPTIONS])
        .allow_headers([
            "content-type",
            "authorization",
            "x-api-key",
            "if-match",
            "x-request-id",
            "idempotency-key",
            CSRF_HEADER,
        ])
        .expose_headers([
            "etag",
            "x-request-id",
            "retry-after",
            "idempotency-replayed",
            "ratelimit-limit",
            "ratelimit-remaining",
            "ratelimit-reset",
        ]);
    for origin in &origins {
        cors = cors.allow_origin(*origin);
    }
    let per_ip = ctx.limits.per_ip.clone();
    let trusted = TrustedOrigins::new(origins.iter().copied());
    Route::new()
        .at("/health", get(health))
        .at("/health/ready", get(ready))
        .at("/api/v1/openapi.json", spec)
        .nest("/docs", docs)
        .nest("/api/v1", api)
        .with(allow)
        .with_if(!origins.is_empty(), cors)
        .with(Idempotent)
        .with(BodyLimit::new(options.body_limit))
        .with(CookieJarManager::new())
        .data(ctx)
        .data(trusted)
        .data(options.redis.clone())
        .with(CatchPanic::new().with_handler(PanicToEnvelope))
        .with(Edge::new(per_ip).trusting(options.trusted_proxies.clone()))
        .map_to_response()
}

/// The methods of every route: the API's from its spec (so they cannot drift from the
/// operations), the health checks' and the spec's own.
fn allow_on_405(spec: &str) -> AllowOn405 {
    let spec: serde_json::Value = serde_json::from_str(spec).unwrap_or_default();
    let methods = ["get", "head", "post", "put", "patch", "delete", "options"];
    let api = spec["paths"].as_object().into_iter().flatten().map(|(path, operations)| {
        let allowed = methods.iter().copied().filter(|m| operations.get(*m).is_some()).collect();
        (format!("/api/v1{path}"), allowed)
    });
    let own = ["/health", "/health/ready", "/api/v1/openapi.json"].map(|p| (p.to_owned(), vec!["get"]));
    AllowOn405::new(api.chain(own))
}

/// `Retry-After` of a response, for tests and clients.
pub fn retry_after(resp: &Response) -> Option<u64> {
    resp.headers().get("retry-after").and_then(|v: &HeaderValue| v.to_str().ok()).and_then(|v| v.parse().ok())
}

/// Whether a status is one the API documents for errors.
pub fn is_documented_error(status: StatusCode) -> bool {
    matches!(status.as_u16(), 400 | 401 | 403 | 404 | 405 | 409 | 413 | 415 | 422 | 428 | 429 | 500 | 503)
}
