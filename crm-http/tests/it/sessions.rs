//! Cookie sessions against cross-site requests (Origin and CSRF token), managing one's
//! sessions over HTTP (list, revoke one, sign out everywhere), the revocations of a
//! password change and an admin's reset, and two refreshes at once.

use std::sync::Arc;

use crm_http::AppOptions;
use poem::http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::{Body, Harness, Reply, harness, harness_with};

const HOST: &str = "crm.test";

/// A session signed in over HTTP: its tokens as the login body gave them.
struct SignedIn {
    access: String,
    refresh: String,
    csrf: String,
    session_id: String,
}

async fn login_as(h: &Harness, email: &str, user_agent: &str) -> SignedIn {
    let body = Body::Json(json!({ "email": email, "password": "user-password" }));
    let reply = h.call(Method::POST, "/api/v1/auth/login", &[("user-agent", user_agent)], body).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    let field = |name: &str| reply.data()[name].as_str().unwrap().to_owned();
    SignedIn {
        access: field("access_token"),
        refresh: field("refresh_token"),
        csrf: field("csrf_token"),
        session_id: field("session_id"),
    }
}

/// A `POST /companies` authenticated by the access cookie, with `headers` besides.
async fn cookie_post(h: &Harness, s: &SignedIn, csrf_cookie: Option<&str>, headers: &[(&str, &str)]) -> Reply {
    let mut cookie = format!("crm_access={}", s.access);
    if let Some(csrf) = csrf_cookie {
        cookie.push_str(&format!("; crm_csrf={csrf}"));
    }
    let mut all = vec![("host", HOST), ("cookie", cookie.as_str())];
    all.extend_from_slice(headers);
    h.call(Method::POST, "/api/v1/companies", &all, Body::Json(json!({ "name": "Made by cookie" }))).await
}

#[tokio::test]
async fn cookie_writes_need_an_allowed_origin_and_the_sessions_csrf_token() {
    let h = harness().await;
    let s = login_as(&h, "manager@acme.test", "test").await;
    let other = login_as(&h, "manager@acme.test", "test").await;
    let token = s.csrf.as_str();
    let refused = [
        (cookie_post(&h, &s, Some(token), &[("x-csrf-token", token)]).await, "csrf_origin_missing"),
        (
            cookie_post(&h, &s, Some(token), &[("origin", "https://evil.test"), ("x-csrf-token", token)]).await,
            "csrf_origin_refused",
        ),
        (cookie_post(&h, &s, Some(token), &[("referer", "https://evil.test/crm.test/")]).await, "csrf_origin_refused"),
        (cookie_post(&h, &s, Some(token), &[("origin", "https://crm.test")]).await, "csrf_token_invalid"),
        (
            cookie_post(&h, &s, None, &[("origin", "https://crm.test"), ("x-csrf-token", token)]).await,
            "csrf_token_invalid",
        ),
        (
            cookie_post(&h, &s, Some(token), &[("origin", "https://crm.test"), ("x-csrf-token", &other.csrf)]).await,
            "csrf_token_invalid",
        ),
        // Another session's token, cookie and header alike, is no token of this session.
        (
            cookie_post(&h, &s, Some(&other.csrf), &[("origin", "https://crm.test"), ("x-csrf-token", &other.csrf)])
                .await,
            "csrf_token_invalid",
        ),
    ];
    for (i, (reply, code)) in refused.iter().enumerate() {
        assert_eq!((reply.status, reply.code()), (StatusCode::FORBIDDEN, *code), "case {i}: {:?}", reply.body);
    }
    let listed = h.get(&s.access, "/api/v1/companies").await;
    assert_eq!(listed.data().as_array().map(Vec::len), Some(1), "nothing was created: {:?}", listed.body);

    let allowed = [
        cookie_post(&h, &s, Some(token), &[("origin", "https://crm.test"), ("x-csrf-token", token)]).await,
        cookie_post(&h, &s, Some(token), &[("origin", "http://CRM.test"), ("x-csrf-token", token)]).await,
        cookie_post(&h, &s, Some(token), &[("referer", "https://crm.test/companies?x=1"), ("x-csrf-token", token)])
            .await,
    ];
    for (i, reply) in allowed.iter().enumerate() {
        assert_eq!(reply.status, StatusCode::CREATED, "case {i}: {:?}", reply.body);
    }
}

#[tokio::test]
async fn the_cors_origins_may_write_with_the_cookie_too() {
    let h = harness_with(
        crm_http::limits::Limits::in_memory(1_000_000, 1_000_000, 1_000),
        AppOptions { cors_origins: vec!["https://app.test".into()], ..AppOptions::default() },
    )
    .await;
    let s = login_as(&h, "manager@acme.test", "test").await;
    let token = s.csrf.as_str();
    let listed = cookie_post(&h, &s, Some(token), &[("origin", "https://app.test"), ("x-csrf-token", token)]).await;
    assert_eq!(listed.status, StatusCode::CREATED, "{:?}", listed.body);
    let unlisted =
        cookie_post(&h, &s, Some(token), &[("referer", "https://evil.test/"), ("x-csrf-token", token)]).await;
    assert_eq!((unlisted.status, unlisted.code()), (StatusCode::FORBIDDEN, "csrf_origin_refused"));
}

#[tokio::test]
async fn reads_bearer_tokens_and_api_keys_need_no_csrf_token() {
    let h = harness().await;
    let s = login_as(&h, "manager@acme.test", "test").await;
    let cookie = format!("crm_access={}", s.access);
    let read = h
        .call(Method::GET, "/api/v1/companies", &[("cookie", &cookie), ("origin", "https://evil.test")], Body::None)
        .await;
    assert_eq!(read.status, StatusCode::OK, "{:?}", read.body);
    let bearer = format!("Bearer {}", s.access);
    let body = Body::Json(json!({ "name": "By bearer" }));
    let write = h
        .call(Method::POST, "/api/v1/companies", &[("authorization", &bearer), ("origin", "https://evil.test")], body)
        .await;
    assert_eq!(write.status, StatusCode::CREATED, "{:?}", write.body);
    let admin = h.token(&h.w.admin).await;
    let key = h.post(&admin, "/api/v1/api-keys", json!({ "name": "k", "scopes": ["*:write", "*:read"] })).await;
    assert_eq!(key.status, StatusCode::CREATED, "{:?}", key.body);
    let key = key.data()["token"].as_str().unwrap().to_owned();
    let body = Body::Json(json!({ "name": "By key" }));
    let write =
        h.call(Method::POST, "/api/v1/companies", &[("x-api-key", &key), ("origin", "https://evil.test")], body).await;
    assert_eq!(write.status, StatusCode::CREATED, "{:?}", write.body);
}

#[tokio::test]
async fn the_csrf_token_is_reissued_on_refresh_and_stays_the_sessions() {
    let h = harness().await;
    let s = login_as(&h, "user@acme.test", "test").await;
    let body = Body::Json(json!({ "refresh_token": s.refresh }));
    let refreshed = h.call(Method::POST, "/api/v1/auth/refresh", &[], body).await;
    assert_eq!(refreshed.status, StatusCode::OK, "{:?}", refreshed.body);
    assert_eq!(refreshed.data()["csrf_token"], Value::String(s.csrf.clone()));
    let cookies: Vec<&str> = refreshed.headers.get_all("set-cookie").iter().filter_map(|v| v.to_str().ok()).collect();
    assert!(cookies.iter().any(|c| c.starts_with(&format!("crm_csrf={};", s.csrf))), "{cookies:?}");
}

#[tokio::test]
async fn sessions_are_listed_and_revoked_by_id_over_http() {
    let h = harness().await;
    let laptop = login_as(&h, "user@acme.test", "Firefox/133").await;
    let phone = login_as(&h, "user@acme.test", "Safari/18").await;
    let other = login_as(&h, "other@acme.test", "curl").await;

    let listed = h.get(&phone.access, "/api/v1/auth/sessions").await;
    assert_eq!(listed.status, StatusCode::OK, "{:?}", listed.body);
    let sessions = listed.data()["sessions"].as_array().unwrap().clone();
    assert_eq!(sessions.len(), 2, "{sessions:?}");
    let find = |id: &str| sessions.iter().find(|s| s["id"] == id).unwrap().clone();
    let (mine, laptops) = (find(&phone.session_id), find(&laptop.session_id));
    assert_eq!((mine["current"].as_bool(), laptops["current"].as_bool()), (Some(true), Some(false)));
    assert_eq!(laptops["user_agent"], "Firefox/133");
    for field in ["created_at", "last_used_at", "expires_at"] {
        assert!(laptops[field].is_string(), "{field}: {laptops}");
    }
    assert!(laptops.get("ip").is_some(), "{laptops}");

    let foreign = h.delete(&phone.access, &format!("/api/v1/auth/sessions/{}", other.session_id)).await;
    assert_eq!(foreign.status, StatusCode::NOT_FOUND, "{:?}", foreign.body);
    assert_eq!(h.get(&other.access, "/api/v1/auth/me").await.status, StatusCode::OK);
    let revoked = h.delete(&phone.access, &format!("/api/v1/auth/sessions/{}", laptop.session_id)).await;
    assert_eq!(revoked.status, StatusCode::OK, "{:?}", revoked.body);
    assert_eq!(h.get(&laptop.access, "/api/v1/auth/me").await.status, StatusCode::UNAUTHORIZED, "at once");
    let refresh =
        h.call(Method::POST, "/api/v1/auth/refresh", &[], Body::Json(json!({ "refresh_token": laptop.refresh }))).await;
    assert_eq!(refresh.status, StatusCode::UNAUTHORIZED);
    assert_eq!(h.get(&phone.access, "/api/v1/auth/me").await.status, StatusCode::OK);
}

#[tokio::test]
async fn logout_all_revokes_every_session_of_the_caller() {
    let h = harness().await;
    let (a, b) = (login_as(&h, "user@acme.test", "a").await, login_as(&h, "user@acme.test", "b").await);
    let other = login_as(&h, "other@acme.test", "c").await;
    let out = h.post(&a.access, "/api/v1/auth/logout-all", json!({})).await;
    assert_eq!((out.status, &out.data()["revoked"]), (StatusCode::OK, &json!(2)), "{:?}", out.body);
    let cleared: Vec<&str> = out.headers.get_all("set-cookie").iter().filter_map(|v| v.to_str().ok()).collect();
    assert!(cleared.len() == 3 && cleared.iter().all(|c| c.contains("Max-Age=0")), "{cleared:?}");
    for s in [&a, &b] {
        assert_eq!(h.get(&s.access, "/api/v1/auth/me").await.status, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(h.get(&other.access, "/api/v1/auth/me").await.status, StatusCode::OK);
}

#[tokio::test]
async fn a_password_change_ends_the_other_sessions_and_an_admin_reset_ends_all() {
    let h = harness().await;
    let (a, b) = (login_as(&h, "user@acme.test", "a").await, login_as(&h, "user@acme.test", "b").await);
    let change = json!({ "current_password": "user-password", "new_password": "brand-new-pass" });
    let changed = h.post(&a.access, "/api/v1/auth/change-password", change).await;
    assert_eq!(changed.status, StatusCode::OK, "{:?}", changed.body);
    assert_eq!(h.get(&a.access, "/api/v1/auth/me").await.status, StatusCode::OK, "this session stays");
    assert_eq!(h.get(&b.access, "/api/v1/auth/me").await.status, StatusCode::UNAUTHORIZED, "the other is out");
    let refresh =
        h.call(Method::POST, "/api/v1/auth/refresh", &[], Body::Json(json!({ "refresh_token": b.refresh }))).await;
    assert_eq!(refresh.status, StatusCode::UNAUTHORIZED);

    let path = format!("/api/v1/users/{}/reset-password", h.w.user.user_uuid());
    let manager = h.token(&h.w.manager).await;
    let refused = h.post(&manager, &path, json!({ "new_password": "reset-password" })).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{:?}", refused.body);
    let admin = h.token(&h.w.admin).await;
    let short = h.post(&admin, &path, json!({ "new_password": "short" })).await;
    assert_eq!(
        (short.status, &short.body["error"]["details"][0]["field"]),
        (StatusCode::UNPROCESSABLE_ENTITY, &json!("new_password"))
    );
    let reset = h.post(&admin, &path, json!({ "new_password": "reset-password" })).await;
    assert_eq!(reset.status, StatusCode::OK, "{:?}", reset.body);
    assert_eq!(h.get(&a.access, "/api/v1/auth/me").await.status, StatusCode::UNAUTHORIZED, "every session is out");
    let body = Body::Json(json!({ "email": "user@acme.test", "password": "reset-password" }));
    assert_eq!(h.call(Method::POST, "/api/v1/auth/login", &[], body).await.status, StatusCode::OK);
}

#[tokio::test]
async fn api_keys_have_no_sessions_to_manage() {
    let h = harness().await;
    let admin = h.token(&h.w.admin).await;
    let key = h.post(&admin, "/api/v1/api-keys", json!({ "name": "k", "scopes": ["*:read", "*:write"] })).await;
    let key = key.data()["token"].as_str().unwrap().to_owned();
    let listed = h.call(Method::GET, "/api/v1/auth/sessions", &[("x-api-key", &key)], Body::None).await;
    assert_eq!(listed.status, StatusCode::FORBIDDEN, "{:?}", listed.body);
    let all = h.call(Method::POST, "/api/v1/auth/logout-all", &[("x-api-key", &key)], Body::None).await;
    assert_eq!(all.status, StatusCode::FORBIDDEN, "{:?}", all.body);
}

/// Two refreshes with the same token at once (two tabs): both succeed, with the same
/// new refresh token, and the session goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_refreshes_at_once_both_succeed() {
    let h = Arc::new(harness().await);
    let s = login_as(&h, "user@acme.test", "test").await;
    let refresh = |h: Arc<Harness>, token: String| {
        tokio::spawn(async move {
            h.call(Method::POST, "/api/v1/auth/refresh", &[], Body::Json(json!({ "refresh_token": token }))).await
        })
    };
    let (first, second) = (refresh(h.clone(), s.refresh.clone()), refresh(h.clone(), s.refresh.clone()));
    let (first, second) = (first.await.unwrap(), second.await.unwrap());
    assert_eq!((first.status, second.status), (StatusCode::OK, StatusCode::OK), "{:?} / {:?}", first.body, second.body);
    assert_eq!(first.data()["refresh_token"], second.data()["refresh_token"]);
    let next = first.data()["refresh_token"].as_str().unwrap().to_owned();
    let access = second.data()["access_token"].as_str().unwrap().to_owned();
    assert_eq!(h.get(&access, "/api/v1/auth/me").await.status, StatusCode::OK);
    let again = h.call(Method::POST, "/api/v1/auth/refresh", &[], Body::Json(json!({ "refresh_token": next }))).await;
    assert_eq!(again.status, StatusCode::OK, "{:?}", again.body);
}

#[tokio::test]
async fn a_failed_sign_in_is_in_the_audit_log() {
    let h = harness().await;
    let body = Body::Json(json!({ "email": "user@acme.test", "password": "not-the-password" }));
    assert_eq!(h.call(Method::POST, "/api/v1/auth/login", &[], body).await.status, StatusCode::UNAUTHORIZED);
    let admin = h.token(&h.w.admin).await;
    let entries = h.get(&admin, &format!("/api/v1/audit-logs?entity_id={}", h.w.user.user_uuid())).await;
    assert_eq!(entries.status, StatusCode::OK, "{:?}", entries.body);
    let failed: Vec<&Value> =
        entries.data().as_array().unwrap().iter().filter(|e| e["action"] == "user.sign_in_failed").collect();
    assert_eq!(failed.len(), 1, "{:?}", entries.body);
    assert_eq!(failed[0]["changes"]["reason"], "wrong_password");
}
