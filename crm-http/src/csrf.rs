//! CSRF defence for cookie sessions. A browser attaches the access cookie to requests
//! any page makes (a same-site page always, any site under `SameSite=None`), so a
//! state-changing request (`POST`, `PUT`, `PATCH`, `DELETE`) authenticated by the
//! cookie must show it comes from the CRM's own pages:
//!
//! 1. its `Origin` (or, when a browser sent none, its `Referer`) is the server's own
//!    origin (the request's `Host`) or one of `--cors-origins`;
//! 2. its `X-CSRF-Token` header equals the CSRF cookie (double submit: only a page of
//!    an allowed origin can read the cookie to echo it) and is the token of the very
//!    session the access cookie names (an HMAC of the session id with the server's
//!    secret, see [`crate::auth::TokenKeys::csrf_token`]), so a token from another
//!    session fails.
//!
//! Bearer tokens and API keys are never sent by a browser on its own: unaffected.

use poem::{Request, http::Method};

use crate::{auth::Caller, context::AppCtx, error::ApiError};

/// The header carrying the CSRF token.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// Origins, besides the server's own, whose pages may make cookie-authenticated writes:
/// the `--cors-origins`. Installed as request data by [`crate::app::build`].
#[derive(Debug, Clone, Default)]
pub struct TrustedOrigins(Vec<String>);

impl TrustedOrigins {
    /// `origins` (`scheme://host[:port]`), compared case-insensitively.
    pub fn new<'a>(origins: impl IntoIterator<Item = &'a str>) -> Self {
        Self(origins.into_iter().map(normalized).collect())
    }
}

fn normalized(origin: &str) -> String {
    origin.trim().trim_end_matches('/').to_ascii_lowercase()
}

fn is_state_changing(method: &Method) -> bool {
    [Method::POST, Method::PUT, Method::PATCH, Method::DELETE].contains(method)
}

/// Refuses a cookie-authenticated write that does not prove it comes from an allowed
/// page (the module's rules); reads pass.
pub(crate) fn check(req: &Request, ctx: &AppCtx, caller: &Caller) -> Result<(), ApiError> {
    if !is_state_changing(req.method()) {
        return Ok(());
    }
    check_origin(req)?;
    let header = req.headers().get(CSRF_HEADER).and_then(|v| v.to_str().ok());
    let cookie = req.cookie().get(ctx.cookies.csrf_name()).map(|c| c.value_str().to_owned());
    let session = caller.session.map(|s| s.uuid());
    let valid = match (header, cookie.as_deref(), session) {
        (Some(header), Some(cookie), Some(session)) => {
            header == cookie && ctx.tokens.csrf_token_matches(session, header)
        }
        _ => false,
    };
    if valid {
        Ok(())
    } else {
        Err(ApiError::forbidden(
            "csrf_token_invalid",
            "a request authenticated by the session cookie needs the X-CSRF-Token header \
             equal to the CSRF cookie of this session",
        ))
    }
}

fn check_origin(req: &Request) -> Result<(), ApiError> {
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
    let origin = header("origin").map(normalized).or_else(|| header("referer").and_then(origin_of));
    let Some(origin) = origin else {
        return Err(ApiError::forbidden(
            "csrf_origin_missing",
            "a request authenticated by the session cookie needs an Origin or Referer header",
        ));
    };
    let own = header("host").or_else(|| req.uri().authority().map(|a| a.as_str()));
    let is_own = own.is_some_and(|host| {
        let host = host.to_ascii_lowercase();
        origin.strip_prefix("https://").or_else(|| origin.strip_prefix("http://")) == Some(host.as_str())
    });
    let trusted = req.data::<TrustedOrigins>().is_some_and(|t| t.0.contains(&origin));
    if is_own || trusted {
        Ok(())
    } else {
        Err(ApiError::forbidden(
            "csrf_origin_refused",
            format!("requests from {origin} may not use the session cookie"),
        ))
    }
}

/// The origin (`scheme://host[:port]`) of a `Referer` URL.
fn origin_of(referer: &str) -> Option<String> {
    let (scheme, rest) = referer.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    (!authority.is_empty()).then(|| normalized(&format!("{scheme}://{authority}")))
}
