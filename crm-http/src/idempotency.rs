//! `Idempotency-Key` on `POST`s: a retry with the same key and request gets the first
//! response instead of a second write. The rules and the records are the core's
//! ([`crm_core::idempotency`]); this middleware authenticates (keys belong to a
//! principal), fingerprints the request, and keeps or replays the response.
//!
//! The request runs in a task of its own, so a client that disconnects does not cancel
//! it: it still completes and its response is kept for the retry.

use std::sync::Arc;

use crm_core::idempotency::{Claim, StoredResponse, Ticket, fingerprint};
use poem::{Endpoint, IntoResponse, Middleware, Request, Response, http::Method};

use crate::{
    AppCtx,
    auth::{Auth, Caller},
    error::ApiError,
    request::REQUEST,
};

/// The header naming a request's idempotency key.
pub const HEADER: &str = "idempotency-key";
/// The header marking a replayed response.
pub const REPLAYED: &str = "idempotency-replayed";
/// The longest key accepted.
pub const MAX_KEY_LEN: usize = 255;
/// Response headers kept with the body for replay.
const KEPT_HEADERS: [&str; 2] = ["content-type", "etag"];

/// The middleware (see the module docs).
#[derive(Debug, Default, Clone, Copy)]
pub struct Idempotent;

impl<E: Endpoint + 'static> Middleware<E> for Idempotent {
    type Output = IdempotentEndpoint<E>;

    fn transform(&self, inner: E) -> Self::Output {
        IdempotentEndpoint { inner: Arc::new(inner) }
    }
}

/// [`Idempotent`] around an endpoint.
#[derive(Debug)]
pub struct IdempotentEndpoint<E> {
    inner: Arc<E>,
}

impl<E: Endpoint + 'static> Endpoint for IdempotentEndpoint<E> {
    type Output = Response;

    async fn call(&self, mut req: Request) -> poem::Result<Response> {
        let key = req.headers().get(HEADER).map(|v| v.to_str().map(str::to_owned));
        let (true, Some(key)) = (req.method() == Method::POST, key) else {
            return self.inner.call(req).await.map(IntoResponse::into_response);
        };
        let key = match key {
            Ok(key) if !key.trim().is_empty() && key.len() <= MAX_KEY_LEN => key,
            _ => {
                return Ok(
                    ApiError::invalid("Idempotency-Key", "must be 1 to 255 visible ASCII characters").into_response()
                );
            }
        };
        // Without a caller there is nobody to keep a response for: the operation
        // answers (401) as it would without the key.
        let Some((ctx, caller)) = authenticate(&mut req).await else {
            return self.inner.call(req).await.map(IntoResponse::into_response);
        };
        let body = req.take_body().into_bytes().await?;
        let digest = fingerprint(&[req.method().as_str().as_bytes(), req.uri().to_string().as_bytes(), &body]);
        let claim = ctx.crm.idempotency().claim(&caller.principal, &key, &digest).await;
        let ticket = match claim.map_err(ApiError::from) {
            Ok(Claim::Started(ticket)) => ticket,
            Ok(Claim::Replay(stored)) => return Ok(replay(stored)),
            Ok(Claim::Running) => return Ok(in_progress().into_response()),
            Ok(Claim::Mismatch) => {
                return Ok(ApiError::invalid(
                    "Idempotency-Key",
                    "was already used for a different request; use a new key",
                )
                .into_response());
            }
            Err(e) => return Ok(e.into_response()),
        };
        req.set_body(body);
        req.extensions_mut().insert(caller);
        let run = run_and_keep(self.inner.clone(), req, ctx, ticket);
        // Spawned, inside the request's scope (and span, when traced): dropping this
        // future (a client gone) does not stop the write or the keeping of its response.
        let spawned = match REQUEST.try_with(Arc::clone) {
            Ok(info) => tokio::spawn(crate::traces::in_current(REQUEST.scope(info, run))),
            Err(_) => tokio::spawn(crate::traces::in_current(run)),
        };
        spawned.await.map_err(|e| ApiError::internal(&e).into())
    }
}

/// The caller, as the operation's `Auth` will see it (it reuses this one).
async fn authenticate(req: &mut Request) -> Option<(Arc<AppCtx>, Caller)> {
    let ctx = req.data::<Arc<AppCtx>>()?.clone();
    let auth = Auth::authenticate(req).await.ok()?;
    Some((ctx, auth.into_caller()))
}

async fn run_and_keep<E: Endpoint>(inner: Arc<E>, req: Request, ctx: Arc<AppCtx>, ticket: Ticket) -> Response {
    let resp = match inner.call(req).await {
        Ok(resp) => resp.into_response(),
        Err(e) => e.into_response(),
    };
    let status = resp.status();
    let headers: Vec<(String, String)> = KEPT_HEADERS
        .iter()
        .filter_map(|name| Some(((*name).to_owned(), resp.headers().get(*name)?.to_str().ok()?.to_owned())))
        .collect();
    let (parts, body) = resp.into_parts();
    let bytes = body.into_bytes().await.unwrap_or_default();
    let idempotency = ctx.crm.idempotency();
    // A server error or a rate limit is no outcome: a retry should run again.
    let kept = if status.is_server_error() || status.as_u16() == 429 {
        idempotency.abandon(&ticket).await
    } else {
        let body = String::from_utf8_lossy(&bytes).into_owned();
        idempotency.finish(&ticket, StoredResponse { status: status.as_u16(), headers, body }).await
    };
    if let Err(e) = kept {
        tracing::warn!(error = %e, "keeping the response of an idempotent request failed");
    }
    Response::from_parts(parts, bytes.into())
}

fn replay(stored: StoredResponse) -> Response {
    let status = poem::http::StatusCode::from_u16(stored.status).unwrap_or(poem::http::StatusCode::OK);
    let mut resp = Response::builder().status(status).header(REPLAYED, "true");
    for (name, value) in &stored.headers {
        resp = resp.header(name.as_str(), value.as_str());
    }
    resp.body(stored.body)
}

fn in_progress() -> ApiError {
    let e = crm_core::CrmError::Conflict { kind: crm_core::storage::EntityKind::IdempotencyKey, id: uuid::Uuid::nil() };
    match ApiError::from(e) {
        ApiError::Conflict(mut body) => {
            body.0.error.code = "idempotency_key_in_use".into();
            body.0.error.message = "a request with this Idempotency-Key is still running; retry later".into();
            ApiError::Conflict(body)
        }
        other => other,
    }
}
