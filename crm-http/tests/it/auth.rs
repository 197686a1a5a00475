//! Sign-in, refresh rotation and reuse, sign-out, token checks, API keys, throttling.

use chrono::Utc;
use crm_http::auth::{Claims, SecretTooShort, TokenKeys};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use poem::http::{Method, StatusCode};
use serde_json::json;

use crate::support::{Body, ISSUER, SECRET, harness, harness_with};

async fn login(h: &crate::support::Harness, email: &str, password: &str) -> crate::support::Reply {
    h.call(Method::POST, "/api/v1/auth/login", &[], Body::Json(json!({ "email": email, "password": password }))).await
}

#[tokio::test]
async fn login_returns_tokens_in_the_body_and_as_http_only_cookies() {
    let h = harness().await;
    let reply = login(&h, "manager@acme.test", "user-password").await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    let data = reply.data();
    assert_eq!(data["token_type"], "Bearer");
    assert_eq!(data["expires_in"], 900);
    assert_eq!(data["user"]["email"], "manager@acme.test");
    assert!(data["user"].get("password_hash").is_none(), "the hash never leaves: {}", data["user"]);
    let cookies: Vec<&str> = reply.headers.get_all("set-cookie").iter().filter_map(|v| v.to_str().ok()).collect();
    assert_eq!(cookies.len(), 3, "{cookies:?}");
    assert!(cookies.iter().all(|c| c.contains("SameSite=Lax")), "{cookies:?}");
    // The CSRF cookie is for the page's scripts to read; the credentials are not.
    assert!(cookies.iter().all(|c| c.contains("HttpOnly") != c.starts_with("crm_csrf=")), "{cookies:?}");
    let csrf = format!("crm_csrf={};", data["csrf_token"].as_str().unwrap());
    assert!(cookies.iter().any(|c| c.starts_with(&csrf) && c.contains("Path=/;")), "{cookies:?}");
    assert!(cookies.iter().any(|c| c.starts_with("crm_access=") && c.contains("Max-Age=900")));
    assert!(cookies.iter().any(|c| c.starts_with("crm_refresh=") && c.contains("Path=/api/v1/auth")));
    // The access token works as a bearer token and as the cookie.
    let access = data["access_token"].as_str().unwrap();
    let me = h.get(access, "/api/v1/auth/me").await;
    assert_eq!((me.status, me.data()["role"].as_str()), (StatusCode::OK, Some("manager")));
    let cookie = format!("crm_access={access}");
    let me = h.call(Method::GET, "/api/v1/auth/me", &[("cookie", &cookie)], Body::None).await;
    assert_eq!(me.status, StatusCode::OK);
}

fn set_cookies(reply: &crate::support::Reply) -> Vec<&str> {
    reply.headers.get_all("set-cookie").iter().filter_map(|v| v.to_str().ok()).collect()
}

#[test]
fn cookies_are_secure_unless_insecure_cookies_and_same_site_none_needs_secure() {
    use clap::Parser;
    use crm_http::config::Config;
    let parse =
        |args: &[&str]| Config::try_parse_from(std::iter::once("crm-server").chain(args.iter().copied())).unwrap();
    let default = parse(&[]).cookie_policy().unwrap();
    assert!(default.secure);
    assert!(!parse(&["--insecure-cookies"]).cookie_policy().unwrap().secure);
    assert!(parse(&["--cookie-same-site", "none"]).cookie_policy().unwrap().secure);
    let refused = parse(&["--insecure-cookies", "--cookie-same-site", "none"]).cookie_policy();
    assert!(refused.is_err(), "SameSite=None without Secure is refused");
}

#[tokio::test]
async fn secure_cookies_are_prefixed_and_work() {
    use crm_http::auth::CookiePolicy;
    use poem::web::cookie::SameSite;
    let limits = crm_http::limits::Limits::in_memory(1_000_000, 1_000_000, 1_000);
    let policy = CookiePolicy { secure: true, same_site: SameSite::Strict };
    let h = crate::support::harness_cookies(limits, crm_http::AppOptions::default(), policy).await;
    let reply = login(&h, "manager@acme.test", "user-password").await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    let cookies = set_cookies(&reply);
    assert_eq!(cookies.len(), 3, "{cookies:?}");
    assert!(cookies.iter().all(|c| c.contains("Secure")), "{cookies:?}");
    assert!(cookies.iter().all(|c| c.contains("HttpOnly") != c.starts_with("__Host-crm_csrf=")), "{cookies:?}");
    let csrf = cookies.iter().find(|c| c.starts_with("__Host-crm_csrf=")).expect("the __Host- CSRF cookie");
    assert!(csrf.contains("Path=/;") && !csrf.contains("Domain"), "{csrf}");
    let access = cookies.iter().find(|c| c.starts_with("__Host-crm_access=")).expect("the __Host- access cookie");
    assert!(access.contains("Path=/;") || access.ends_with("Path=/"), "{access}");
    assert!(!access.contains("Domain"), "{access}");
    let refresh =
        cookies.iter().find(|c| c.starts_with("__Secure-crm_refresh=")).expect("the __Secure- refresh cookie");
    assert!(refresh.contains("Path=/api/v1/auth"), "{refresh}");
    let (token, refresh_token) =
        (reply.data()["access_token"].as_str().unwrap(), reply.data()["refresh_token"].as_str().unwrap());
    let cookie = format!("__Host-crm_access={token}");
    let me = h.call(Method::GET, "/api/v1/auth/me", &[("cookie", &cookie)], Body::None).await;
    assert_eq!(me.status, StatusCode::OK);
    // The unprefixed name could be planted by a sibling host or over plain HTTP.
    let cookie = format!("crm_access={token}");
    let me = h.call(Method::GET, "/api/v1/auth/me", &[("cookie", &cookie)], Body::None).await;
    assert_eq!(me.status, StatusCode::UNAUTHORIZED);
    let cookie = format!("__Secure-crm_refresh={refresh_token}");
    let again = h.call(Method::POST, "/api/v1/auth/refresh", &[("cookie", &cookie)], Body::Json(json!({}))).await;
    assert_eq!(again.status, StatusCode::OK, "{:?}", again.body);
}

#[tokio::test]
async fn token_and_authenticated_responses_are_not_stored() {
    let h = harness().await;
    let signed_in = login(&h, "user@acme.test", "user-password").await;
    assert_eq!(signed_in.header("cache-control"), Some("no-store"));
    let refresh = signed_in.data()["refresh_token"].as_str().unwrap().to_owned();
    let refreshed =
        h.call(Method::POST, "/api/v1/auth/refresh", &[], Body::Json(json!({ "refresh_token": refresh }))).await;
    assert_eq!(refreshed.status, StatusCode::OK);
    assert_eq!(refreshed.header("cache-control"), Some("no-store"));
    let access = refreshed.data()["access_token"].as_str().unwrap().to_owned();
    for path in ["/api/v1/auth/me", "/api/v1/contacts", "/api/v1/contacts/00000000-0000-7000-8000-000000000000"] {
        let reply = h.get(&access, path).await;
        assert_eq!(reply.header("cache-control"), Some("no-store"), "{path}: {:?}", reply.status);
    }
}

#[tokio::test]
async fn authentication_and_authorization_come_before_parsing() {
    let h = harness().await;
    let anonymous = h.call(Method::GET, "/api/v1/contacts?limit=-1", &[], Body::None).await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED, "{:?}", anonymous.body);
    let forged = h.get("not-a-token", "/api/v1/contacts?limit=-1").await;
    assert_eq!(forged.status, StatusCode::UNAUTHORIZED, "{:?}", forged.body);
    let incomplete = h.call(Method::POST, "/api/v1/products", &[], Body::Json(json!({}))).await;
    assert_eq!(incomplete.status, StatusCode::UNAUTHORIZED, "{:?}", incomplete.body);
    // A plain user may not create products: 403, whatever the body lacks.
    let user = h.token(&h.w.user).await;
    let refused = h.post(&user, "/api/v1/products", json!({})).await;
    assert_eq!((refused.status, refused.code()), (StatusCode::FORBIDDEN, "forbidden"), "{:?}", refused.body);
    let refused = h.post(&user, "/api/v1/products", json!({ "name": 1, "unknown": true })).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{:?}", refused.body);
    // Not even a body that is not JSON is looked at before the caller is authorized.
    let bearer = format!("Bearer {user}");
    for path in ["/api/v1/products", "/api/v1/product-categories"] {
        let refused = h.call(Method::POST, path, &[("authorization", &bearer)], Body::Raw("{not json")).await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "{path}: {:?}", refused.body);
    }
    let anonymous = h.call(Method::POST, "/api/v1/products", &[], Body::Raw("{not json")).await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED, "{:?}", anonymous.body);
    // Callers who may create still hear what is wrong with the body.
    let admin = h.token(&h.w.admin).await;
    assert_eq!(h.post(&admin, "/api/v1/products", json!({})).await.status, StatusCode::UNPROCESSABLE_ENTITY);
    let admin_bearer = format!("Bearer {admin}");
    let malformed =
        h.call(Method::POST, "/api/v1/products", &[("authorization", &admin_bearer)], Body::Raw("{not json")).await;
    assert_eq!((malformed.status, malformed.code()), (StatusCode::BAD_REQUEST, "bad_request"), "{:?}", malformed.body);
    assert_eq!(h.get(&admin, "/api/v1/contacts?limit=-1").await.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn an_unknown_user_and_a_wrong_password_get_the_same_answer() {
    let h = harness().await;
    let wrong = login(&h, "manager@acme.test", "not-the-password").await;
    let unknown = login(&h, "nobody@acme.test", "not-the-password").await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert_eq!((wrong.status, &wrong.body["error"]["message"]), (unknown.status, &unknown.body["error"]["message"]));
    assert!(wrong.headers.get("set-cookie").is_none());
}

#[tokio::test]
async fn refresh_rotates_and_a_reused_token_revokes_the_session() {
    let h = harness().await;
    let first = login(&h, "user@acme.test", "user-password").await;
    let refresh1 = first.data()["refresh_token"].as_str().unwrap().to_owned();
    let access1 = first.data()["access_token"].as_str().unwrap().to_owned();
    let second =
        h.call(Method::POST, "/api/v1/auth/refresh", &[], Body::Json(json!({ "refresh_token": refresh1 }))).await;
    assert_eq!(second.status, StatusCode::OK, "{:?}", second.body);
    let refresh2 = second.data()["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(refresh1, refresh2);
    // The refresh cookie works too.
    let cookie = format!("crm_refresh={refresh2}");
    let third = h.call(Method::POST, "/api/v1/auth/refresh", &[("cookie", &cookie)], Body::Json(json!({}))).await;
    assert_eq!(third.status, StatusCode::OK, "{:?}", third.body);
    let refresh3 = third.data()["refresh_token"].as_str().unwrap().to_owned();
    // Presenting the first token again: refused, and the whole session dies.
    let reuse =
        h.call(Method::POST, "/api/v1/auth/refresh", &[], Body::Json(json!({ "refresh_token": refresh1 }))).await;
    assert_eq!(reuse.status, StatusCode::UNAUTHORIZED);
    let after =
        h.call(Method::POST, "/api/v1/auth/refresh", &[], Body::Json(json!({ "refresh_token": refresh3 }))).await;
    assert_eq!(after.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        h.get(&access1, "/api/v1/auth/me").await.status,
        StatusCode::UNAUTHORIZED,
        "access ends with the session"
    );
}

#[tokio::test]
async fn logout_revokes_the_session_and_clears_the_cookies() {
    let h = harness().await;
    let signed_in = login(&h, "user@acme.test", "user-password").await;
    let access = signed_in.data()["access_token"].as_str().unwrap().to_owned();
    let refresh = signed_in.data()["refresh_token"].as_str().unwrap().to_owned();
    let out = h.post(&access, "/api/v1/auth/logout", json!({})).await;
    assert_eq!(out.status, StatusCode::OK, "{:?}", out.body);
    let cleared: Vec<&str> = out.headers.get_all("set-cookie").iter().filter_map(|v| v.to_str().ok()).collect();
    assert!(cleared.iter().all(|c| c.contains("Max-Age=0")), "{cleared:?}");
    assert_eq!(h.get(&access, "/api/v1/auth/me").await.status, StatusCode::UNAUTHORIZED);
    let again =
        h.call(Method::POST, "/api/v1/auth/refresh", &[], Body::Json(json!({ "refresh_token": refresh }))).await;
    assert_eq!(again.status, StatusCode::UNAUTHORIZED);
}

fn claims_for(h: &crate::support::Harness, sid: uuid::Uuid, iss: &str, exp_offset: i64, nbf_offset: i64) -> Claims {
    let now = Utc::now().timestamp();
    Claims {
        sub: h.w.user.user_id().uuid(),
        tid: h.w.user.tenant_id().0,
        sid,
        iss: iss.into(),
        iat: now,
        nbf: now + nbf_offset,
        exp: now + exp_offset,
    }
}

#[tokio::test]
async fn expired_early_tampered_foreign_and_unsigned_tokens_are_401() {
    let h = harness().await;
    let sid = h.w.crm.sessions().start(&h.w.user, &Default::default()).await.unwrap().session.meta.id;
    let key = EncodingKey::from_secret(SECRET);
    let sign = |claims: &Claims, alg: Algorithm| jsonwebtoken::encode(&Header::new(alg), claims, &key).unwrap();
    let good = sign(&claims_for(&h, sid, ISSUER, 600, 0), Algorithm::HS256);
    assert_eq!(h.get(&good, "/api/v1/auth/me").await.status, StatusCode::OK, "the control token works");
    let expired = sign(&claims_for(&h, sid, ISSUER, -600, -900), Algorithm::HS256);
    let not_yet = sign(&claims_for(&h, sid, ISSUER, 1200, 600), Algorithm::HS256);
    let wrong_issuer = sign(&claims_for(&h, sid, "someone-else", 600, 0), Algorithm::HS256);
    let other_alg = sign(&claims_for(&h, sid, ISSUER, 600, 0), Algorithm::HS512);
    let wrong_key = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims_for(&h, sid, ISSUER, 600, 0),
        &EncodingKey::from_secret(b"another-secret-another-secret-another"),
    )
    .unwrap();
    // `alg: none`: the same claims, no signature.
    let b64 = |bytes: &[u8]| {
        use std::fmt::Write;
        let table = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut out = String::new();
        for chunk in bytes.chunks(3) {
            let n = chunk.iter().enumerate().fold(0u32, |acc, (i, b)| acc | (u32::from(*b) << (16 - 8 * i)));
            for i in 0..=chunk.len() {
                let _ = out.write_char(table[((n >> (18 - 6 * i)) & 63) as usize] as char);
            }
        }
        out
    };
    let payload = serde_json::to_vec(&claims_for(&h, sid, ISSUER, 600, 0)).unwrap();
    let unsigned = format!("{}.{}.", b64(br#"{"alg":"none","typ":"JWT"}"#), b64(&payload));
    let mut tampered = good.clone().into_bytes();
    let middle = good.find('.').unwrap() + 5;
    tampered[middle] = if tampered[middle] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    for (name, token) in [
        ("expired", expired),
        ("not yet valid", not_yet),
        ("wrong issuer", wrong_issuer),
        ("HS512", other_alg),
        ("wrong key", wrong_key),
        ("alg none", unsigned),
        ("tampered", tampered),
        ("garbage", "abc.def.ghi".into()),
    ] {
        let reply = h.get(&token, "/api/v1/auth/me").await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{name}: {:?}", reply.body);
    }
    let none = h.call(Method::GET, "/api/v1/contacts", &[], Body::None).await;
    assert_eq!((none.status, none.code()), (StatusCode::UNAUTHORIZED, "unauthenticated"));
}

#[tokio::test]
async fn short_jwt_secrets_are_refused() {
    assert!(matches!(TokenKeys::new(b"only-31-bytes-long-secret-12345", ISSUER), Err(SecretTooShort(31))));
    assert!(TokenKeys::new(&[7u8; 32], ISSUER).is_ok());
}

#[tokio::test]
async fn api_keys_work_by_header_and_bearer_within_their_scopes() {
    let h = harness().await;
    let admin = h.token(&h.w.admin).await;
    let created = h
        .post(&admin, "/api/v1/api-keys", json!({ "name": "sync", "scopes": ["contacts:read"], "expires_at": null }))
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
    let key = created.data()["token"].as_str().unwrap().to_owned();
    assert!(created.data().get("secret_hash").is_none());
    let by_header = h.call(Method::GET, "/api/v1/contacts", &[("x-api-key", &key)], Body::None).await;
    assert_eq!(by_header.status, StatusCode::OK, "{:?}", by_header.body);
    assert_eq!(h.get(&key, "/api/v1/contacts").await.status, StatusCode::OK, "as a bearer token");
    // Outside its scopes: forbidden, though its owner (the admin) may.
    assert_eq!(h.get(&key, "/api/v1/deals").await.status, StatusCode::FORBIDDEN);
    let write = h.post(&key, "/api/v1/contacts", json!({ "first_name": "A", "last_name": "B" })).await;
    assert_eq!(write.status, StatusCode::FORBIDDEN);
    // An API key has no session to end.
    assert_eq!(h.post(&key, "/api/v1/auth/logout", json!({})).await.status, StatusCode::BAD_REQUEST);
    // Revoked: 401.
    let id = created.id();
    assert_eq!(h.post(&admin, &format!("/api/v1/api-keys/{id}/revoke"), json!({})).await.status, StatusCode::OK);
    let revoked = h.call(Method::GET, "/api/v1/contacts", &[("x-api-key", &key)], Body::None).await;
    assert_eq!(revoked.status, StatusCode::UNAUTHORIZED);
    let bogus = h.call(Method::GET, "/api/v1/contacts", &[("x-api-key", "crm_nonsense")], Body::None).await;
    assert_eq!(bogus.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn change_password_checks_the_current_one() {
    let h = harness().await;
    let token = h.token(&h.w.user).await;
    let wrong = h
        .post(
            &token,
            "/api/v1/auth/change-password",
            json!({ "current_password": "nope-nope", "new_password": "brand-new-pass" }),
        )
        .await;
    assert_eq!(wrong.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(wrong.body["error"]["details"][0]["field"], "current_password");
    let ok = h
        .post(
            &token,
            "/api/v1/auth/change-password",
            json!({ "current_password": "user-password", "new_password": "brand-new-pass" }),
        )
        .await;
    assert_eq!(ok.status, StatusCode::OK, "{:?}", ok.body);
    assert_eq!(login(&h, "user@acme.test", "brand-new-pass").await.status, StatusCode::OK);
    assert_eq!(login(&h, "user@acme.test", "user-password").await.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn logins_are_throttled_per_account() {
    let h = harness_with(crm_http::limits::Limits::in_memory(1000, 1000, 3), Default::default()).await;
    for _ in 0..3 {
        assert_eq!(login(&h, "user@acme.test", "wrong-password").await.status, StatusCode::UNAUTHORIZED);
    }
    let throttled = login(&h, "user@acme.test", "user-password").await;
    assert_eq!(throttled.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(throttled.header("retry-after").is_some_and(|s| s.parse::<u64>().unwrap() >= 1));
    // Another account is not affected.
    assert_eq!(login(&h, "manager@acme.test", "user-password").await.status, StatusCode::OK);
}

#[tokio::test]
async fn each_user_is_rate_limited_with_ratelimit_headers() {
    let h = harness_with(crm_http::limits::Limits::in_memory(1000, 2, 1000), Default::default()).await;
    let token = h.token(&h.w.user).await;
    let first = h.get(&token, "/api/v1/contacts").await;
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(first.header("ratelimit-limit"), Some("2"), "the per-user limit's headers");
    assert_eq!(first.header("ratelimit-remaining"), Some("1"));
    let second = h.get(&token, "/api/v1/contacts").await;
    assert_eq!(second.status, StatusCode::OK);
    assert_eq!(second.header("ratelimit-remaining"), Some("0"));
    let limited = h.get(&token, "/api/v1/contacts").await;
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(limited.header("retry-after").is_some());
    assert_eq!(limited.header("ratelimit-remaining"), Some("0"));
    assert!(limited.header("ratelimit-reset").is_some_and(|s| s.parse::<u64>().unwrap() >= 1));
    let other = h.token(&h.w.manager).await;
    assert_eq!(h.get(&other, "/api/v1/contacts").await.status, StatusCode::OK, "others are not affected");
}

#[tokio::test]
async fn auth_bodies_name_their_bad_fields() {
    let h = harness().await;
    for (body, field) in [
        (json!({ "password": "user-password" }), "email"),
        (json!({ "email": 5, "password": "user-password" }), "email"),
        (json!({ "email": "user@acme.test", "password": "user-password", "remember": true }), "remember"),
    ] {
        let reply = h.call(Method::POST, "/api/v1/auth/login", &[], Body::Json(body.clone())).await;
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {:?}", reply.body);
        assert_eq!(reply.body["error"]["details"][0]["field"], json!(field), "{body}: {:?}", reply.body);
    }
    let refresh = h.call(Method::POST, "/api/v1/auth/refresh", &[], Body::Json(json!({ "refresh_token": 42 }))).await;
    assert_eq!(refresh.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", refresh.body);
}
