//! The error mapping, one test per mapping, and the framework's own refusals.

use crm_core::{CrmError, ValidationErrors, storage::EntityKind};
use crm_http::ApiError;
use poem::{IntoResponse, http::StatusCode};
use serde_json::{Value, json};

use crate::support::{Body, harness};

async fn mapped(e: CrmError) -> (StatusCode, Value, poem::http::HeaderMap) {
    let resp = ApiError::from(e).into_response();
    let (status, headers) = (resp.status(), resp.headers().clone());
    let body = serde_json::from_slice(&resp.into_body().into_bytes().await.unwrap()).unwrap();
    (status, body, headers)
}

fn id() -> uuid::Uuid {
    uuid::Uuid::now_v7()
}

#[tokio::test]
async fn validation_is_422_with_every_field() {
    let mut errors = ValidationErrors::single("email", "must be a valid email address");
    errors.fields.push(crm_core::FieldError { field: "lines[0].quantity".into(), message: "must be positive".into() });
    let (status, body, _) = mapped(CrmError::Validation(errors)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["success"], false);
    assert_eq!(body["error"]["code"], "validation_failed");
    assert_eq!(
        body["error"]["details"],
        json!([
            { "field": "email", "message": "must be a valid email address" },
            { "field": "lines[0].quantity", "message": "must be positive" }
        ])
    );
}

#[tokio::test]
async fn not_found_is_404() {
    let (status, body, _) = mapped(CrmError::NotFound { kind: EntityKind::Contact, id: id() }).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::NOT_FOUND, Some("not_found")));
}

#[tokio::test]
async fn version_conflict_is_409() {
    let (status, body, _) = mapped(CrmError::Conflict { kind: EntityKind::Deal, id: id() }).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::CONFLICT, Some("version_conflict")));
}

#[tokio::test]
async fn refused_transition_duplicate_and_referenced_are_409_with_their_codes() {
    let transition =
        CrmError::InvalidTransition { kind: EntityKind::Quote, from: "draft".into(), to: "accepted".into() };
    let (status, body, _) = mapped(transition).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::CONFLICT, Some("invalid_transition")));
    assert!(body["error"]["message"].as_str().unwrap().contains("`draft` to `accepted`"));
    let (status, body, _) = mapped(CrmError::AlreadyExists { kind: EntityKind::User, field: "email".into() }).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::CONFLICT, Some("already_exists")));
    assert_eq!(body["error"]["details"][0]["field"], "email");
    let referenced = CrmError::Referenced { kind: EntityKind::Company, id: id(), by: EntityKind::Contact };
    let (status, body, _) = mapped(referenced).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::CONFLICT, Some("still_referenced")));
}

#[tokio::test]
async fn forbidden_is_403() {
    let (status, body, _) = mapped(CrmError::Forbidden("user may not delete contacts".into())).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::FORBIDDEN, Some("forbidden")));
}

#[tokio::test]
async fn unauthenticated_is_401() {
    let (status, body, _) = mapped(CrmError::Unauthenticated).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::UNAUTHORIZED, Some("unauthenticated")));
}

#[tokio::test]
async fn rate_limited_is_429_with_retry_after() {
    let resp = ApiError::too_many_requests(7).into_response();
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(resp.headers().get("retry-after").unwrap(), "7");
}

#[tokio::test]
async fn storage_unavailable_is_503_with_retry_after_without_the_cause() {
    let (status, body, headers) = mapped(CrmError::Unavailable("connection refused to 10.0.0.7:5432".into())).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(headers.get("retry-after").map(|v| v.to_str().unwrap()), Some("2"));
    assert!(!body.to_string().contains("10.0.0.7"), "{body}");
}

#[tokio::test]
async fn anything_else_is_500_with_a_request_id_and_nothing_internal() {
    let h = harness().await;
    // Inside a request the envelope carries the request id; outside, the mapping alone.
    let (status, body, _) = mapped(CrmError::Internal("decode contact 42: secret detail".into())).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(!body.to_string().contains("secret detail"), "{body}");
    let reply =
        h.call(poem::http::Method::GET, "/api/v1/no-such-route", &[("x-request-id", "abc-123")], Body::None).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(reply.header("x-request-id"), Some("abc-123"));
    assert_eq!(reply.body["error"]["request_id"], "abc-123");
}

#[tokio::test]
async fn framework_refusals_are_enveloped_4xx() {
    let h = harness().await;
    let token = h.token(&h.w.admin).await;
    let auth = format!("Bearer {token}");
    let auth = [("authorization", auth.as_str())];
    let post = poem::http::Method::POST;
    // Malformed JSON.
    let reply = h.call(post.clone(), "/api/v1/contacts", &auth, Body::Raw("{\"first_name\": ")).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{:?}", reply.body);
    assert_eq!(reply.body["success"], false);
    // Not JSON at all.
    let reply = h.call(post.clone(), "/api/v1/auth/login", &[("content-type", "text/plain")], Body::None).await;
    assert!(reply.status.is_client_error(), "{:?}", reply.status);
    assert_eq!(reply.body["success"], false);
    // A bad UUID in the path.
    let reply = h.get(&token, "/api/v1/contacts/not-a-uuid").await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.code(), "bad_request");
    // An unknown route and a wrong method.
    assert_eq!(h.get(&token, "/api/v1/nothing-here").await.status, StatusCode::NOT_FOUND);
    let reply = h.call(poem::http::Method::PUT, "/api/v1/contacts", &auth, Body::None).await;
    assert_eq!(reply.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(reply.code(), "method_not_allowed");
}

#[tokio::test]
async fn every_405_carries_allow_with_the_paths_methods() {
    use std::collections::BTreeSet;
    let h = harness().await;
    let token = h.token(&h.w.admin).await;
    let auth = format!("Bearer {token}");
    let auth = [("authorization", auth.as_str())];
    let spec = h.call(poem::http::Method::GET, "/api/v1/openapi.json", &[], Body::None).await.body;
    let allow_of = |reply: &crate::support::Reply| -> BTreeSet<String> {
        reply.header("allow").unwrap_or("").split(',').map(|m| m.trim().to_owned()).filter(|m| !m.is_empty()).collect()
    };
    let mut checked = 0;
    for (path, operations) in spec["paths"].as_object().unwrap() {
        let mut methods: BTreeSet<String> = operations.as_object().unwrap().keys().map(|m| m.to_uppercase()).collect();
        if methods.contains("GET") {
            methods.insert("HEAD".into());
        }
        let concrete: String = path
            .split('/')
            .map(|s| if s.starts_with('{') { "0190a1b2-0000-7000-8000-000000000001" } else { s })
            .collect::<Vec<_>>()
            .join("/");
        let concrete = format!("/api/v1{concrete}");
        let wrong = ["PUT", "PATCH", "DELETE", "POST", "GET"].into_iter().find(|m| !methods.contains(*m)).unwrap();
        let reply = h.call(wrong.parse().unwrap(), &concrete, &auth, Body::None).await;
        assert_eq!(reply.status, StatusCode::METHOD_NOT_ALLOWED, "{wrong} {concrete}");
        assert_eq!(allow_of(&reply), methods, "{wrong} {concrete}");
        checked += 1;
    }
    assert!(checked > 20, "{checked}");
    let reply = h.call(poem::http::Method::POST, "/health", &[], Body::None).await;
    assert_eq!(reply.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(reply.header("allow"), Some("GET, HEAD"));
    // What `Allow` promises is served: HEAD where GET is.
    assert_eq!(h.call(poem::http::Method::HEAD, "/api/v1/contacts", &auth, Body::None).await.status, StatusCode::OK);
}

#[tokio::test]
async fn oversized_bodies_are_413() {
    let options = crm_http::AppOptions { body_limit: 1024, ..Default::default() };
    let h = crate::support::harness_with(crm_http::limits::Limits::in_memory(1000, 1000, 1000), options).await;
    let token = h.token(&h.w.admin).await;
    let big = json!({ "first_name": "x".repeat(4096), "last_name": "y" });
    let reply = h.post(&token, "/api/v1/contacts", big).await;
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(reply.code(), "payload_too_large");
}

#[tokio::test]
async fn cors_allows_configured_origins_with_credentials_only() {
    let options = crm_http::AppOptions { cors_origins: vec!["https://app.example.com".into()], ..Default::default() };
    let h = crate::support::harness_with(crm_http::limits::Limits::in_memory(1000, 1000, 1000), options).await;
    let preflight = async |origin: &str| {
        let headers = [("origin", origin), ("access-control-request-method", "GET")];
        h.call(poem::http::Method::OPTIONS, "/api/v1/contacts", &headers, Body::None).await
    };
    let allowed = preflight("https://app.example.com").await;
    assert_eq!(allowed.header("access-control-allow-origin"), Some("https://app.example.com"));
    assert_eq!(allowed.header("access-control-allow-credentials"), Some("true"));
    let refused = preflight("https://evil.example.com").await;
    assert_ne!(refused.header("access-control-allow-origin"), Some("https://evil.example.com"));
}

#[tokio::test]
async fn cors_sends_no_headers_without_configured_origins() {
    let h = harness().await;
    let token = h.token(&h.w.admin).await;
    let auth = format!("Bearer {token}");
    let evil = "https://evil.example.com";
    let read = h
        .call(poem::http::Method::GET, "/api/v1/auth/me", &[("origin", evil), ("authorization", &auth)], Body::None)
        .await;
    assert_eq!(read.status, StatusCode::OK);
    assert_eq!(read.header("access-control-allow-origin"), None);
    assert_eq!(read.header("access-control-allow-credentials"), None);
    let headers = [("origin", evil), ("access-control-request-method", "GET")];
    let preflight = h.call(poem::http::Method::OPTIONS, "/api/v1/contacts", &headers, Body::None).await;
    assert_eq!(preflight.header("access-control-allow-origin"), None);
    assert_eq!(preflight.header("access-control-allow-credentials"), None);
}

#[tokio::test]
async fn cors_never_allows_credentials_for_an_unlisted_origin() {
    let options = crm_http::AppOptions { cors_origins: vec!["https://app.example.com".into()], ..Default::default() };
    let h = crate::support::harness_with(crm_http::limits::Limits::in_memory(1000, 1000, 1000), options).await;
    let token = h.token(&h.w.admin).await;
    let auth = format!("Bearer {token}");
    let get = async |origin: &str| {
        h.call(poem::http::Method::GET, "/api/v1/auth/me", &[("origin", origin), ("authorization", &auth)], Body::None)
            .await
    };
    let listed = get("https://app.example.com").await;
    assert_eq!(listed.header("access-control-allow-origin"), Some("https://app.example.com"));
    assert_eq!(listed.header("access-control-allow-credentials"), Some("true"));
    let unlisted = get("https://evil.example.com").await;
    assert_eq!(unlisted.header("access-control-allow-origin"), None);
    assert_eq!(unlisted.header("access-control-allow-credentials"), None);
}

#[tokio::test]
async fn a_panicking_handler_is_a_500_envelope_with_the_request_id() {
    use poem::{EndpointExt, handler, middleware::CatchPanic, test::TestClient};

    #[handler]
    fn boom() -> &'static str {
        panic!("boom with internal detail")
    }
    // The same middleware order as the server: the edge outside the panic catcher.
    let ep = poem::Route::new()
        .at("/boom", poem::get(boom))
        .with(CatchPanic::new().with_handler(crm_http::edge::PanicToEnvelope))
        .with(crm_http::edge::Edge::new(crm_http::limits::GcraLimiter::shared(1000)));
    let resp = TestClient::new(ep).get("/boom").header("x-request-id", "req-42").send().await.0;
    assert_eq!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(resp.headers().get("x-request-id").unwrap(), "req-42");
    let body: Value = serde_json::from_slice(&resp.into_body().into_bytes().await.unwrap()).unwrap();
    assert_eq!(
        (body["error"]["code"].as_str(), body["error"]["request_id"].as_str()),
        (Some("internal"), Some("req-42"))
    );
    assert!(!body.to_string().contains("internal detail"));
}
