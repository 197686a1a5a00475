//! A server over in-memory storage, driven through poem's test client.

use std::sync::Arc;

use crm_core::{Principal, conformance::World, storage::memory::MemoryStorage};
use crm_http::{
    AppCtx, AppOptions,
    auth::{CookiePolicy, TokenKeys},
    input::Versions,
    limits::Limits,
    live::{LiveHub, LiveOptions},
};
use poem::{
    EndpointExt, Response,
    endpoint::BoxEndpoint,
    http::{HeaderMap, Method, StatusCode},
    test::TestClient,
    web::cookie::SameSite,
};
use serde_json::Value;

pub const SECRET: &[u8] = b"test-secret-test-secret-test-secret!";
pub const ISSUER: &str = "crm-rs";

pub struct Harness {
    pub w: World,
    pub ctx: Arc<AppCtx>,
    pub cli: TestClient<BoxEndpoint<'static, Response>>,
}

/// A reply, read whole.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }
    pub fn data(&self) -> &Value {
        &self.body["data"]
    }
    pub fn id(&self) -> String {
        self.body["data"]["meta"]["id"].as_str().expect("a record id").to_owned()
    }
}

pub async fn harness() -> Harness {
    harness_with(Limits::in_memory(1_000_000, 1_000_000, 1_000), AppOptions::default()).await
}

pub async fn harness_with(limits: Limits, options: AppOptions) -> Harness {
    harness_cookies(limits, options, CookiePolicy { secure: false, same_site: SameSite::Lax }).await
}

pub async fn harness_cookies(limits: Limits, options: AppOptions, cookies: CookiePolicy) -> Harness {
    harness_over(World::new(MemoryStorage::shared()).await, limits, options, cookies, Versions::Optional)
}

/// A server whose writes must name the version read (`--require-if-match`).
pub async fn harness_requiring_versions() -> Harness {
    let cookies = CookiePolicy { secure: false, same_site: SameSite::Lax };
    let limits = Limits::in_memory(1_000_000, 1_000_000, 1_000);
    harness_over(World::new(MemoryStorage::shared()).await, limits, AppOptions::default(), cookies, Versions::Required)
}

/// A server over an existing world (any storage).
pub fn harness_over(
    w: World,
    limits: Limits,
    options: AppOptions,
    cookies: CookiePolicy,
    versions: Versions,
) -> Harness {
    let ctx = Arc::new(AppCtx {
        crm: w.crm.clone(),
        tokens: TokenKeys::new(SECRET, ISSUER).unwrap(),
        limits,
        cookies,
        default_tenant: Some(w.admin.tenant_id()),
        versions,
        public_url: "http://localhost".into(),
        live: LiveHub::new(w.crm.storage().clone(), TEST_LIVE),
    });
    let cli = TestClient::new(crm_http::build(ctx.clone(), &options).boxed());
    Harness { w, ctx, cli }
}

/// The live stream in tests: a short buffer (a slow consumer is found at once), quick
/// polls and heartbeats.
pub const TEST_LIVE: LiveOptions = LiveOptions {
    capacity: 16,
    poll: std::time::Duration::from_millis(20),
    heartbeat: std::time::Duration::from_millis(200),
    lifetime: std::time::Duration::from_secs(60),
};

/// What a test sends.
pub enum Body<'a> {
    None,
    Json(Value),
    Raw(&'a str),
}

impl Harness {
    /// An access token of a fresh session of `p`.
    pub async fn token(&self, p: &Principal) -> String {
        let issued = self.w.crm.sessions().start(p, &Default::default()).await.unwrap();
        self.ctx.tokens.issue(&issued.session).unwrap()
    }

    pub async fn call(&self, method: Method, path: &str, headers: &[(&str, &str)], body: Body<'_>) -> Reply {
        let mut req = self.cli.request(method, path);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        req = match body {
            Body::None => req,
            Body::Json(v) => req.body_json(&v),
            Body::Raw(s) => req.content_type("application/json").body(s.to_owned()),
        };
        let resp = req.send().await.0;
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = resp.into_body().into_bytes().await.unwrap();
        let body = if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).unwrap_or(Value::Null) };
        Reply { status, headers, body }
    }

    pub async fn get(&self, token: &str, path: &str) -> Reply {
        self.call(Method::GET, path, &[("authorization", &format!("Bearer {token}"))], Body::None).await
    }

    pub async fn post(&self, token: &str, path: &str, body: Value) -> Reply {
        self.call(Method::POST, path, &[("authorization", &format!("Bearer {token}"))], Body::Json(body)).await
    }

    pub async fn patch(&self, token: &str, path: &str, if_match: Option<&str>, body: Value) -> Reply {
        let auth = format!("Bearer {token}");
        let mut headers = vec![("authorization", auth.as_str())];
        if let Some(tag) = if_match {
            headers.push(("if-match", tag));
        }
        self.call(Method::PATCH, path, &headers, Body::Json(body)).await
    }

    pub async fn delete(&self, token: &str, path: &str) -> Reply {
        self.call(Method::DELETE, path, &[("authorization", &format!("Bearer {token}"))], Body::None).await
    }
}
