//! Sign-in throttling and rate-limit answers as a client meets them: `Retry-After`
//! that is enough to wait.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use crm_core::rate_limit::RateLimiter;
use crm_http::{
    AppOptions,
    limits::{GcraLimiter, Limits},
};
use poem::{
    Endpoint, EndpointExt, Request, RequestParts, Response,
    endpoint::BoxEndpoint,
    http::{self, Method, StatusCode, uri::Scheme},
    web::{LocalAddr, RemoteAddr},
};
use serde_json::json;

use crate::support::{Harness, harness_with};

/// A limiter of `limit` requests per `period`, for one of the server's limits.
fn gcra(limit: u32, period: Duration) -> Arc<dyn RateLimiter> {
    Arc::new(GcraLimiter::new(limit, period))
}

/// A 429's `Retry-After`, in seconds.
fn retry_after(reply: &crate::support::Reply) -> u64 {
    reply.header("retry-after").and_then(|s| s.parse().ok()).expect("a 429 carries Retry-After in seconds")
}

#[tokio::test]
async fn waiting_retry_after_gets_the_request_accepted() {
    // One request per 1.5 s: the wait is never a whole number of seconds.
    let limits = Limits { per_user: gcra(1, Duration::from_millis(1500)), ..Limits::in_memory(1000, 1000, 1000) };
    let h = harness_with(limits, Default::default()).await;
    let token = h.token(&h.w.user).await;
    assert_eq!(h.get(&token, "/api/v1/contacts").await.status, StatusCode::OK);
    let limited = h.get(&token, "/api/v1/contacts").await;
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);
    let wait = retry_after(&limited);
    assert_eq!(limited.header("ratelimit-reset"), Some(wait.to_string().as_str()), "RateLimit-Reset agrees");
    assert_eq!(limited.header("ratelimit-remaining"), Some("0"));
    tokio::time::sleep(Duration::from_secs(wait)).await;
    let retried = h.get(&token, "/api/v1/contacts").await;
    assert_eq!(retried.status, StatusCode::OK, "refused after waiting Retry-After: {wait} s");
}

/// The application of a harness, called with requests from chosen TCP peers (poem's
/// test client has none).
struct Peers {
    app: BoxEndpoint<'static, Response>,
}

impl Peers {
    fn of(h: &Harness, options: &AppOptions) -> Self {
        Self { app: crm_http::build(h.ctx.clone(), options).boxed() }
    }

    /// Signs in as `email` from the TCP peer `peer`, with extra `headers`; the status.
    async fn login(&self, peer: &str, headers: &[(&str, &str)], email: &str, password: &str) -> StatusCode {
        let mut builder = http::Request::builder()
            .method(Method::POST)
            .uri("/api/v1/auth/login")
            .header("content-type", "application/json");
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let (parts, ()) = builder.body(()).unwrap().into_parts();
        let peer: SocketAddr = peer.parse().unwrap();
        let parts = RequestParts::from((parts, LocalAddr::default(), RemoteAddr(peer.into()), Scheme::HTTP));
        let body = poem::Body::from_json(json!({ "email": email, "password": password })).unwrap();
        self.app.call(Request::from_parts(parts, body)).await.unwrap().status()
    }
}

const A: &str = "192.0.2.1:50000";
const B: &str = "198.51.100.7:50000";

#[tokio::test]
async fn locking_a_pair_leaves_the_account_from_elsewhere_and_other_accounts_free() {
    let h = harness_with(Limits::in_memory(1000, 1000, 3), Default::default()).await;
    let peers = Peers::of(&h, &AppOptions::default());
    for _ in 0..3 {
        assert_eq!(peers.login(A, &[], "user@acme.test", "wrong-password").await, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(peers.login(A, &[], "user@acme.test", "user-password").await, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(peers.login(B, &[], "user@acme.test", "user-password").await, StatusCode::OK, "(B, user) signs in");
    assert_eq!(peers.login(A, &[], "manager@acme.test", "user-password").await, StatusCode::OK, "(A, manager)");
}
