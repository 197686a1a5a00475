//! Sign-in throttling and rate-limit answers as a client meets them: `Retry-After`
//! that is enough to wait.

use std::{sync::Arc, time::Duration};

use crm_core::rate_limit::RateLimiter;
use crm_http::limits::{GcraLimiter, Limits};
use poem::http::StatusCode;

use crate::support::harness_with;

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
