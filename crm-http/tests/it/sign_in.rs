//! Sign-in throttling and rate-limit answers as a client meets them: `Retry-After`
//! that is enough to wait.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use crm_core::rate_limit::{RateLimiter, sign_in::SignInPolicy};
use crm_http::{
    AppOptions,
    limits::{GcraLimiter, Limits},
    proxies::{Cidr, TrustedProxies},
};
use poem::{
    Endpoint, EndpointExt, Request, RequestParts, Response,
    endpoint::BoxEndpoint,
    http::{self, Method, StatusCode, uri::Scheme},
    web::{LocalAddr, RemoteAddr},
};
use serde_json::json;

use crate::support::{Body, Harness, harness_with};

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
        self.reply(peer, headers, email, password).await.status()
    }

    /// The same, the whole response.
    async fn reply(&self, peer: &str, headers: &[(&str, &str)], email: &str, password: &str) -> Response {
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
        self.app.call(Request::from_parts(parts, body)).await.unwrap()
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

fn trusting(networks: &str) -> AppOptions {
    let networks = networks.split(',').map(|n| n.parse().unwrap()).collect();
    AppOptions { trusted_proxies: TrustedProxies::new(networks), ..AppOptions::default() }
}

/// Three wrong passwords for user@acme.test, each from `peer` with `headers`.
async fn lock_user(peers: &Peers, peer: &str, headers: &[(&str, &str)]) {
    for _ in 0..3 {
        assert_eq!(peers.login(peer, headers, "user@acme.test", "wrong-password").await, StatusCode::UNAUTHORIZED);
    }
}

#[tokio::test]
async fn forwarding_headers_from_an_untrusted_peer_are_ignored() {
    let h = harness_with(Limits::in_memory(1000, 1000, 3), Default::default()).await;
    let peers = Peers::of(&h, &trusting("10.0.0.0/8"));
    lock_user(&peers, A, &[("x-forwarded-for", "203.0.113.1")]).await;
    // Whatever address A claims to forward for, it is A, and (A, user) waits.
    for spoof in [
        &[("x-forwarded-for", "203.0.113.2")][..],
        &[("forwarded", "for=203.0.113.3")][..],
        &[("x-forwarded-for", "10.0.0.1, 203.0.113.4")][..],
    ] {
        assert_eq!(
            peers.login(A, spoof, "user@acme.test", "user-password").await,
            StatusCode::TOO_MANY_REQUESTS,
            "{spoof:?}"
        );
    }
}

#[tokio::test]
async fn forwarding_headers_from_a_trusted_peer_name_the_client() {
    let h = harness_with(Limits::in_memory(1000, 1000, 3), Default::default()).await;
    let peers = Peers::of(&h, &trusting("127.0.0.1,10.0.0.0/8"));
    let proxy = "127.0.0.1:40000";
    lock_user(&peers, proxy, &[("x-forwarded-for", "192.0.2.1")]).await;
    // The client the proxy names is locked; prepending a spoofed address does not help,
    // nor does another trusted hop in between, nor the same client in a `Forwarded`.
    for same_client in [
        &[("x-forwarded-for", "192.0.2.1")][..],
        &[("x-forwarded-for", "198.51.100.99, 192.0.2.1")][..],
        &[("x-forwarded-for", "192.0.2.1, 10.1.2.3")][..],
        &[("forwarded", "for=198.51.100.99, for=\"192.0.2.1:4711\";proto=https")][..],
    ] {
        assert_eq!(
            peers.login(proxy, same_client, "user@acme.test", "user-password").await,
            StatusCode::TOO_MANY_REQUESTS,
            "{same_client:?}"
        );
    }
    // Another client behind the same proxy is not.
    let other = &[("x-forwarded-for", "192.0.2.1, 198.51.100.7")][..];
    assert_eq!(peers.login(proxy, other, "user@acme.test", "user-password").await, StatusCode::OK);
    // An untrusted peer naming the locked client is itself the client.
    let claims = &[("x-forwarded-for", "192.0.2.1")][..];
    assert_eq!(peers.login("203.0.113.5:1", claims, "user@acme.test", "user-password").await, StatusCode::OK);
}

#[tokio::test]
async fn sign_in_back_off_grows_and_its_retry_after_is_enough() {
    let policy = SignInPolicy {
        free_failures: 1,
        first_delay: Duration::from_secs(1),
        max_delay: Duration::from_secs(60),
        forget_after: Duration::from_secs(3600),
        failure_floor: Duration::ZERO,
    };
    let h = harness_with(Limits::with_sign_in(1000, 1000, policy), Default::default()).await;
    let peers = Peers::of(&h, &AppOptions::default());
    let mut announced = Vec::new();
    assert_eq!(peers.login(A, &[], "user@acme.test", "wrong-password").await, StatusCode::UNAUTHORIZED);
    for _ in 0..2 {
        let refused = peers.reply(A, &[], "user@acme.test", "wrong-password").await;
        assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
        let header = |name: &str| refused.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
        assert_eq!(header("ratelimit-reset"), header("retry-after"), "the headers agree");
        let wait: u64 = header("retry-after").and_then(|s| s.parse().ok()).expect("Retry-After in seconds");
        announced.push(wait);
        tokio::time::sleep(Duration::from_secs(wait)).await;
        assert_eq!(peers.login(A, &[], "user@acme.test", "wrong-password").await, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(announced, [1, 2], "each further failure doubles the wait");
}

#[test]
fn trusted_proxies_take_addresses_and_networks() {
    let net: Cidr = "10.0.0.0/8".parse().unwrap();
    assert!(net.contains("10.200.3.4".parse().unwrap()) && !net.contains("11.0.0.1".parse().unwrap()));
    assert!(net.contains("::ffff:10.1.1.1".parse().unwrap()), "an IPv4-mapped peer is its IPv4 address");
    let one: Cidr = "127.0.0.1".parse().unwrap();
    assert!(one.contains("127.0.0.1".parse().unwrap()) && !one.contains("127.0.0.2".parse().unwrap()));
    let v6: Cidr = "2001:db8::/32".parse().unwrap();
    assert!(v6.contains("2001:db8:1::1".parse().unwrap()) && !v6.contains("2001:db9::1".parse().unwrap()));
    let mapped: Cidr = "::ffff:192.168.0.0/112".parse().unwrap();
    assert!(mapped.contains("192.168.7.7".parse().unwrap()) && !mapped.contains("192.169.0.1".parse().unwrap()));
    for bad in ["10.0.0.0/33", "example.com", "10.0.0/8", "", "::/129"] {
        assert!(bad.parse::<Cidr>().is_err(), "{bad:?}");
    }
}

#[test]
fn trusted_proxies_and_sign_in_settings_are_flags() {
    use clap::Parser as _;
    use crm_http::config::Config;
    let parse = |args: &[&str]| Config::try_parse_from(std::iter::once("crm-server").chain(args.iter().copied()));
    let defaults = parse(&[]).unwrap();
    assert!(defaults.trusted_proxies.is_empty(), "no proxy is trusted by default");
    assert_eq!(defaults.sign_in_policy(), SignInPolicy::default());
    let set =
        parse(&["--trusted-proxies", "10.0.0.0/8,127.0.0.1", "--login-attempts", "5", "--login-backoff-max", "60"])
            .unwrap();
    assert_eq!(set.trusted_proxies, ["10.0.0.0/8".parse::<Cidr>().unwrap(), "127.0.0.1/32".parse().unwrap()]);
    let policy = set.sign_in_policy();
    assert_eq!((policy.free_failures, policy.max_delay), (5, Duration::from_secs(60)));
    for bad in [&["--trusted-proxies", "10.0.0.0/33"][..], &["--login-attempts", "0"][..]] {
        assert!(parse(bad).is_err(), "{bad:?} is refused at start-up");
    }
}

/// With `--login-failure-floor`, every refusal takes at least the floor: an account
/// whose imported bcrypt hash costs less than the current parameters answers no sooner
/// than an unknown email or a wrong password of a current account.
#[tokio::test]
async fn refused_sign_ins_take_at_least_the_failure_floor() {
    let floor = Duration::from_millis(400);
    let policy = SignInPolicy { free_failures: 100, failure_floor: floor, ..SignInPolicy::default() };
    let h = harness_with(Limits::with_sign_in(1000, 1000, policy), Default::default()).await;
    let imported = crm_core::access::users::ImportedUser {
        email: "legacy@acme.test".into(),
        first_name: "Lea".into(),
        last_name: "Legacy".into(),
        role: crm_core::Role::User,
        company_id: None,
        active: true,
        password_hash: bcrypt::hash("legacy-password", 4).unwrap(),
    };
    h.w.crm.users().import(&h.w.admin, imported).await.unwrap();
    for (email, password) in [("legacy@acme.test", "wrong"), ("nobody@acme.test", "wrong"), ("user@acme.test", "wrong")]
    {
        let started = std::time::Instant::now();
        let reply = h
            .call(Method::POST, "/api/v1/auth/login", &[], Body::Json(json!({ "email": email, "password": password })))
            .await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{email}: {:?}", reply.body);
        assert!(started.elapsed() >= floor, "{email} was refused after {:?}, before the floor", started.elapsed());
    }
    let signed_in = h
        .call(
            Method::POST,
            "/api/v1/auth/login",
            &[],
            Body::Json(json!({ "email": "legacy@acme.test", "password": "legacy-password" })),
        )
        .await;
    assert_eq!(signed_in.status, StatusCode::OK, "{:?}", signed_in.body);
}
