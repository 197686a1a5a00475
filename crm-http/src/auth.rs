//! Who is calling: access tokens (JWT, HS256 only), the credentials a request may
//! carry (bearer token, `X-API-Key`, the access cookie), and the session cookies.

use std::{
    collections::HashMap,
    sync::{Mutex, PoisonError},
};

use chrono::{DateTime, Duration, Utc};
use crm_core::{Principal, TenantId, session_store::Session};
use hmac::{Hmac, KeyInit, Mac};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use poem::web::cookie::{Cookie, SameSite};
use poem_openapi::{
    ApiExtractor, ApiExtractorType, ExtractParamOptions, SecurityScheme,
    auth::{ApiKey, Bearer},
    registry::Registry,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::error::ApiError;

/// The access cookie's name: `__Host-` makes browsers accept it only when `Secure`,
/// for the whole host (`Path=/`, no `Domain`), set by this origin over HTTPS.
pub const ACCESS_COOKIE: &str = "__Host-crm_access";
/// The refresh cookie's name: `__Secure-`, since its path is narrower than `/`.
pub const REFRESH_COOKIE: &str = "__Secure-crm_refresh";
/// The access cookie's name under `--insecure-cookies` (browsers refuse prefixed names
/// without `Secure`).
pub const INSECURE_ACCESS_COOKIE: &str = "crm_access";
/// The refresh cookie's name under `--insecure-cookies`.
pub const INSECURE_REFRESH_COOKIE: &str = "crm_refresh";
/// The CSRF cookie's name: readable by the page's scripts (not HttpOnly), which echo
/// it in [`crate::csrf::CSRF_HEADER`]; `__Host-` like the access cookie.
pub const CSRF_COOKIE: &str = "__Host-crm_csrf";
/// The CSRF cookie's name under `--insecure-cookies`.
pub const INSECURE_CSRF_COOKIE: &str = "crm_csrf";
/// How long an access token lives.
pub const ACCESS_TTL: Duration = Duration::minutes(15);
/// The shortest JWT secret accepted.
pub const MIN_SECRET_LEN: usize = 32;
/// Clock skew tolerated on `exp` and `nbf`.
const LEEWAY_SECS: u64 = 5;

/// What an access token says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user.
    pub sub: Uuid,
    /// The tenant.
    pub tid: Uuid,
    /// The session the token belongs to (revoking it ends the token too).
    pub sid: Uuid,
    /// The issuer.
    pub iss: String,
    /// Issued at (seconds since the epoch).
    pub iat: i64,
    /// Not before.
    pub nbf: i64,
    /// Expires at.
    pub exp: i64,
}

/// A JWT secret shorter than [`MIN_SECRET_LEN`] bytes.
#[derive(Debug, thiserror::Error)]
#[error("the JWT secret must be at least {MIN_SECRET_LEN} bytes, got {0}")]
pub struct SecretTooShort(pub usize);

/// Signs and checks access tokens (HS256 only, with expiry, not-before and issuer) and
/// the CSRF tokens of sessions, all from the one server secret.
pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    issuer: String,
    /// The HMAC key of CSRF tokens: derived from the secret, so no token of one kind
    /// is ever a valid token of the other.
    csrf_key: [u8; 32],
    /// Tokens whose signature and issuer checked out, with their claims: a client sends
    /// the same token with every request for its 15 minutes, and checking it again
    /// (base64, JSON, HMAC) was a tenth of an authenticated read. Keyed by the whole
    /// token, so only the exact string verified hits; the time claims are checked on
    /// every hit; bounded by [`VERIFIED_CAPACITY`] (emptied when full).
    verified: Mutex<HashMap<Box<str>, Claims>>,
}

/// The most verified tokens kept (about 0.5 MiB at the typical token size).
const VERIFIED_CAPACITY: usize = 2_048;

impl std::fmt::Debug for TokenKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenKeys").field("issuer", &self.issuer).field("secret", &"<redacted>").finish()
    }
}

impl TokenKeys {
    /// Keys from a secret of at least [`MIN_SECRET_LEN`] bytes.
    pub fn new(secret: &[u8], issuer: &str) -> Result<Self, SecretTooShort> {
        if secret.len() < MIN_SECRET_LEN {
            return Err(SecretTooShort(secret.len()));
        }
        // One algorithm: tokens claiming any other (including `none`) are refused.
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[issuer]);
        validation.set_required_spec_claims(&["exp", "nbf", "iss", "sub"]);
        validation.validate_nbf = true;
        validation.leeway = LEEWAY_SECS;
        Ok(Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            issuer: issuer.to_owned(),
            csrf_key: Sha256::new().chain_update(b"crm-csrf-key\0").chain_update(secret).finalize().into(),
            verified: Mutex::new(HashMap::new()),
        })
    }

    fn csrf_mac(&self, session: Uuid) -> Hmac<Sha256> {
        // A 32-byte key always fits HMAC-SHA256; `new_from_slice` cannot fail on it.
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.csrf_key).unwrap_or_else(|_| unreachable!());
        mac.update(session.as_bytes());
        mac
    }

    /// The CSRF token of a session: the same for its whole life (it survives refreshes),
    /// useless in any other session.
    pub fn csrf_token(&self, session: Uuid) -> String {
        hex::encode(self.csrf_mac(session).finalize().into_bytes())
    }

    /// Whether `token` is the CSRF token of `session` (compared in constant time).
    pub fn csrf_token_matches(&self, session: Uuid, token: &str) -> bool {
        hex::decode(token).is_ok_and(|bytes| self.csrf_mac(session).verify_slice(&bytes).is_ok())
    }

    /// An access token for the user of `session`, valid for [`ACCESS_TTL`] from now by
    /// the system clock (the clock every verifier checks against).
    pub fn issue(&self, session: &Session) -> Result<String, ApiError> {
        let now = Utc::now();
        let claims = Claims {
            sub: session.user_id,
            tid: session.meta.tenant_id.0,
            sid: session.meta.id,
            iss: self.issuer.clone(),
            iat: now.timestamp(),
            nbf: now.timestamp(),
            exp: (now + ACCESS_TTL).timestamp(),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| ApiError::internal(&e))
    }

    /// The claims of a valid token; `None` for anything else.
    pub fn verify(&self, token: &str) -> Option<Claims> {
        self.verify_at(token, Utc::now().timestamp())
    }

    /// [`TokenKeys::verify`] at `now` (seconds since the epoch) for a token verified
    /// before; a token seen for the first time is checked in full against the system
    /// clock.
    fn verify_at(&self, token: &str, now: i64) -> Option<Claims> {
        let verified = || self.verified.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(claims) = verified().get(token) {
            // The same rule as `validation`'s: `exp` and `nbf` with the leeway.
            let leeway = LEEWAY_SECS as i64;
            return (claims.exp >= now - leeway && claims.nbf <= now + leeway).then(|| claims.clone());
        }
        let claims = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation).ok()?.claims;
        let mut verified = verified();
        if verified.len() >= VERIFIED_CAPACITY {
            verified.clear();
        }
        verified.insert(token.into(), claims.clone());
        Some(claims)
    }
}

/// `Authorization: Bearer <access token or API key>`.
#[derive(SecurityScheme)]
#[oai(ty = "bearer", bearer_format = "JWT")]
pub struct BearerAuth(Bearer);

/// `X-API-Key: crm_…`.
#[derive(SecurityScheme)]
#[oai(ty = "api_key", key_name = "X-API-Key", key_in = "header")]
pub struct ApiKeyAuth(ApiKey);

/// The HttpOnly access cookie set at sign-in (`crm_access` under `--insecure-cookies`).
/// A `POST`, `PUT`, `PATCH` or `DELETE` authenticated by it also needs an allowed
/// `Origin` (or `Referer`) and the session's CSRF token in `X-CSRF-Token` equal to the
/// `__Host-crm_csrf` cookie (403 otherwise).
#[derive(SecurityScheme)]
#[oai(ty = "api_key", key_name = "__Host-crm_access", key_in = "cookie")]
pub struct CookieAuth(ApiKey);

/// The credentials a request may carry, in order of precedence.
#[derive(SecurityScheme)]
enum Presented {
    /// A bearer access token (or an API key sent as a bearer token).
    Bearer(BearerAuth),
    /// An API key header.
    ApiKey(ApiKeyAuth),
    /// The access cookie.
    Cookie(CookieAuth),
    /// Nothing: the operation answers 401 itself (see [`Auth`]).
    #[oai(fallback)]
    Anonymous,
}

/// The authenticated caller of an operation that requires credentials.
///
/// In the spec, such an operation requires one of the bearer token, the API key header
/// or the access cookie, and nothing else. At run time the extractor authenticates
/// (through [`crate::AppCtx::caller`], which also counts the caller's rate limit)
/// before any later parameter or the body is read, so a request without valid
/// credentials is a 401 whatever else is wrong with it. It is declared first among an
/// operation's parameters for that reason. (poem-openapi's `fallback` would have listed
/// an empty alternative, telling client generators that credentials are optional.)
pub struct Auth(Caller);

impl<'a> ApiExtractor<'a> for Auth {
    const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::SecurityScheme];
    type ParamType = ();
    type ParamRawType = ();

    fn register(registry: &mut Registry) {
        Presented::register(registry);
    }

    fn security_schemes() -> Vec<&'static str> {
        Presented::security_schemes()
    }

    async fn from_request(
        request: &'a poem::Request,
        body: &mut poem::RequestBody,
        param_opts: ExtractParamOptions<Self::ParamType>,
    ) -> poem::Result<Self> {
        // Already authenticated by the idempotency middleware: once per request.
        if let Some(caller) = request.extensions().get::<Caller>() {
            return Ok(Self(caller.clone()));
        }
        let ctx = request
            .data::<std::sync::Arc<crate::AppCtx>>()
            .ok_or_else(|| ApiError::internal(&"the application context is not installed"))?;
        let presented = Presented::from_request(request, body, param_opts).await?;
        // The unprefixed name is no credential under Secure cookies: anyone able to set
        // a cookie for the host (a sibling subdomain, plain HTTP) could plant it.
        let insecure_cookie = match presented {
            Presented::Anonymous if !ctx.cookies.secure => {
                request.cookie().get(INSECURE_ACCESS_COOKIE).map(|c| c.value_str().to_owned())
            }
            _ => None,
        };
        let credential = match &presented {
            Presented::Bearer(b) if b.0.token.starts_with("crm_") => Credential::ApiKey(&b.0.token),
            Presented::Bearer(b) => Credential::AccessToken(&b.0.token),
            Presented::ApiKey(k) => Credential::ApiKey(&k.0.key),
            Presented::Cookie(c) => Credential::AccessToken(&c.0.key),
            Presented::Anonymous => insecure_cookie.as_deref().map_or(Credential::None, Credential::AccessToken),
        };
        let by_cookie = matches!(presented, Presented::Cookie(_)) || insecure_cookie.is_some();
        let caller = ctx.caller(credential).await?;
        if by_cookie {
            // A browser sends the cookie whoever made the page: prove this one did.
            crate::csrf::check(request, ctx, &caller)?;
        }
        Ok(Self(caller))
    }
}

/// A credential, as text, and what kind it is (API keys are recognised by their
/// `crm_` prefix).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credential<'a> {
    /// A JWT access token.
    AccessToken(&'a str),
    /// An API key.
    ApiKey(&'a str),
    /// None at all.
    None,
}

impl Auth {
    /// Authenticates `request` as an operation would (for middleware, before routing).
    pub async fn authenticate(request: &mut poem::Request) -> poem::Result<Self> {
        // The credential extractors expect the query an operation would have parsed;
        // none of them reads it.
        if request.extensions().get::<poem_openapi::__private::UrlQuery>().is_none() {
            request.extensions_mut().insert(poem_openapi::__private::UrlQuery(Vec::new()));
        }
        let request = &*request;
        let options = ExtractParamOptions {
            name: "",
            ignore_case: false,
            default_value: None,
            example_value: None,
            explode: true,
            style: None,
        };
        <Self as ApiExtractor<'_>>::from_request(request, &mut poem::RequestBody::default(), options).await
    }

    /// The authenticated caller.
    pub fn into_caller(self) -> Caller {
        self.0
    }
}

/// The authenticated caller.
#[derive(Debug, Clone)]
pub struct Caller {
    /// Who acts.
    pub principal: Principal,
    /// The session of an access token (none for API keys).
    pub session: Option<crm_core::Id<Session>>,
}

impl Caller {
    /// The tenant it acts in.
    pub fn tenant(&self) -> TenantId {
        self.principal.tenant_id()
    }
}

/// How session cookies are set.
#[derive(Debug, Clone, Copy)]
pub struct CookiePolicy {
    /// Send cookies over HTTPS only, under their prefixed names.
    pub secure: bool,
    /// The `SameSite` attribute.
    pub same_site: SameSite,
}

impl CookiePolicy {
    /// The access cookie's name under this policy.
    pub fn access_name(&self) -> &'static str {
        if self.secure { ACCESS_COOKIE } else { INSECURE_ACCESS_COOKIE }
    }

    /// The refresh cookie's name under this policy.
    pub fn refresh_name(&self) -> &'static str {
        if self.secure { REFRESH_COOKIE } else { INSECURE_REFRESH_COOKIE }
    }

    /// The CSRF cookie's name under this policy.
    pub fn csrf_name(&self) -> &'static str {
        if self.secure { CSRF_COOKIE } else { INSECURE_CSRF_COOKIE }
    }

    fn cookie(&self, name: &str, value: String, path: &str, max_age: Duration) -> Cookie {
        let mut cookie = Cookie::new_with_str(name, value);
        cookie.set_http_only(true);
        cookie.set_secure(self.secure);
        cookie.set_same_site(self.same_site);
        cookie.set_path(path);
        cookie.set_max_age(max_age.to_std().unwrap_or_default());
        cookie
    }

    /// The access cookie (`Path=/`, as `__Host-` requires).
    pub fn access(&self, token: String) -> Cookie {
        self.cookie(self.access_name(), token, "/", ACCESS_TTL)
    }

    /// The refresh cookie (sent to the auth routes only).
    pub fn refresh(&self, token: String, expires_at: DateTime<Utc>, now: DateTime<Utc>) -> Cookie {
        self.cookie(self.refresh_name(), token, "/api/v1/auth", expires_at - now)
    }

    /// The CSRF cookie (`Path=/`, readable by scripts: it is no credential by itself),
    /// living as long as the session.
    pub fn csrf(&self, token: String, expires_at: DateTime<Utc>, now: DateTime<Utc>) -> Cookie {
        let mut cookie = self.cookie(self.csrf_name(), token, "/", expires_at - now);
        cookie.set_http_only(false);
        cookie
    }

    /// Cookies that delete all three.
    pub fn cleared(&self) -> [Cookie; 3] {
        [
            self.cookie(self.access_name(), String::new(), "/", Duration::zero()),
            self.cookie(self.refresh_name(), String::new(), "/api/v1/auth", Duration::zero()),
            self.cookie(self.csrf_name(), String::new(), "/", Duration::zero()),
        ]
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn keys() -> TokenKeys {
        TokenKeys::new(&[7u8; 32], "crm-test").unwrap()
    }

    fn sign(keys: &TokenKeys, claims: &Claims) -> String {
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &keys.encoding).unwrap()
    }

    fn claims(now: i64) -> Claims {
        let id = Uuid::now_v7();
        Claims { sub: id, tid: id, sid: id, iss: "crm-test".into(), iat: now, nbf: now, exp: now + 900 }
    }

    #[test]
    fn a_verified_token_still_expires() {
        let keys = keys();
        let now = Utc::now().timestamp();
        let token = sign(&keys, &claims(now));
        assert!(keys.verify(&token).is_some(), "first check, in full");
        assert!(keys.verified.lock().unwrap().contains_key(token.as_str()), "kept");
        assert!(keys.verify_at(&token, now + 900 + LEEWAY_SECS as i64).is_some(), "within the leeway");
        assert_eq!(keys.verify_at(&token, now + 901 + LEEWAY_SECS as i64), None, "expired, from the cache");
        assert_eq!(keys.verify_at(&token, now - 1 - LEEWAY_SECS as i64), None, "not yet valid, from the cache");
    }

    #[test]
    fn only_the_exact_verified_string_hits() {
        let keys = keys();
        let token = sign(&keys, &claims(Utc::now().timestamp()));
        assert!(keys.verify(&token).is_some());
        let mut tampered = token.clone().into_bytes();
        let last = tampered.len() - 2;
        tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
        assert_eq!(keys.verify(&String::from_utf8(tampered).unwrap()), None);
        let other = TokenKeys::new(&[8u8; 32], "crm-test").unwrap();
        assert_eq!(other.verify(&token), None, "another key's cache knows nothing of it");
        let expired = sign(&keys, &Claims { exp: 1, nbf: 0, iat: 0, ..claims(0) });
        assert_eq!(keys.verify(&expired), None);
        assert!(!keys.verified.lock().unwrap().contains_key(expired.as_str()), "refused tokens are not kept");
    }

    #[test]
    fn the_cache_is_bounded() {
        let keys = keys();
        let now = Utc::now().timestamp();
        for i in 0..VERIFIED_CAPACITY + 10 {
            let token = sign(&keys, &Claims { iat: now - i as i64, ..claims(now) });
            assert!(keys.verify(&token).is_some());
            assert!(keys.verified.lock().unwrap().len() <= VERIFIED_CAPACITY);
        }
    }
}
