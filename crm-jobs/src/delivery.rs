//! Sending one webhook message to one endpoint, safely.
//!
//! 1. The URL must be absolute, `https` (or `http` when the server allows it), without
//!    credentials; an IP literal is checked at once (it never reaches a resolver).
//! 2. The host is resolved by `PublicOnly`, which drops every address that is not
//!    public (see [`crate::address`]); the connection can only use what it returns, so
//!    a name that re-resolves to a private address later (DNS rebinding) is refused too.
//! 3. No proxy (it would resolve the host itself) and no redirects (a public URL could
//!    redirect to a private one; a 3xx is a failed attempt).
//! 4. The whole exchange has a deadline (10 s) and at most 64 KB of the response is
//!    read: a receiver can neither hold a worker nor fill its memory.

use std::{
    net::SocketAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use chrono::{DateTime, Utc};
use crm_core::webhooks::{
    message::WebhookMessage,
    signing::{HEADER_ID, HEADER_SIGNATURE, HEADER_TIMESTAMP, WebhookSecret, sign},
};
use reqwest::{
    Url,
    dns::{Addrs, Name, Resolve, Resolving},
    header::{CONTENT_TYPE, USER_AGENT},
    redirect,
    tls::Version,
};

use crate::address::refusal;

/// How deliveries may reach their targets (the server's `--webhook-allow-http` and
/// `--webhook-allow-private`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeliveryOptions {
    /// Accept `http://` targets (tests, intranets); otherwise `https` only.
    pub allow_http: bool,
    /// Accept loopback, private and other non-public addresses (tests, intranets).
    pub allow_private: bool,
    /// The deadline of one attempt, connection to last byte read.
    pub timeout: Duration,
    /// The most of a response body that is read (and kept in the delivery log).
    pub max_response_bytes: usize,
}

impl Default for DeliveryOptions {
    fn default() -> Self {
        DeliveryOptions {
            allow_http: false,
            allow_private: false,
            timeout: Duration::from_secs(10),
            max_response_bytes: 64 * 1024,
        }
    }
}

/// Why an attempt failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeliveryFailure {
    /// The target is not allowed; nothing was sent. Retrying will not help until the
    /// URL (or its DNS) changes.
    #[error("refused target: {0}")]
    Refused(String),
    /// The receiver answered with a status other than 2xx (redirects included).
    #[error("the receiver answered {0}")]
    Status(u16),
    /// No complete answer within the deadline.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The connection failed (refused, reset, TLS).
    #[error("connection failed: {0}")]
    Connection(String),
}

/// The result of one attempt, for the delivery log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryOutcome {
    /// The 2xx status received, or why the attempt failed.
    pub result: Result<u16, DeliveryFailure>,
    /// From the start of the attempt to its end.
    pub latency: Duration,
    /// The start of the response body, at most `max_response_bytes`.
    pub response_body: Vec<u8>,
}

impl DeliveryOutcome {
    /// The HTTP status received, success or not.
    pub fn status(&self) -> Option<u16> {
        match self.result {
            Ok(status) | Err(DeliveryFailure::Status(status)) => Some(status),
            Err(_) => None,
        }
    }
}

/// Sends webhook messages; one per process, shared (it pools connections).
#[derive(Debug, Clone)]
pub struct WebhookClient {
    http: reqwest::Client,
    options: DeliveryOptions,
}

impl WebhookClient {
    /// A client with `options`. Installs ring as the process's TLS provider if none is.
    pub fn new(options: DeliveryOptions) -> Result<Self, DeliveryFailure> {
        // Already installed (by an earlier client or the embedder) is fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .dns_resolver(Arc::new(PublicOnly { allow_private: options.allow_private }))
            .no_proxy()
            .redirect(redirect::Policy::none())
            .timeout(options.timeout)
            .connect_timeout(options.timeout)
            .tls_version_min(Version::TLS_1_2)
            .build()
            .map_err(|e| DeliveryFailure::Connection(format!("cannot build the HTTP client: {e}")))?;
        Ok(WebhookClient { http, options })
    }

    /// Sends `message` to `url`, signed with `secret` and stamped `now`, and reports
    /// what happened. Never panics and never errors: every failure is an outcome.
    pub async fn deliver(
        &self,
        url: &str,
        secret: &WebhookSecret,
        message: &WebhookMessage,
        now: DateTime<Utc>,
    ) -> DeliveryOutcome {
        let started = Instant::now();
        let (result, response_body) = match self.target(url) {
            Ok(url) => self.send(url, secret, message, now).await,
            Err(refused) => (Err(refused), Vec::new()),
        };
        DeliveryOutcome { result, latency: started.elapsed(), response_body }
    }

    /// The URL, if it may be sent to (step 1).
    fn target(&self, url: &str) -> Result<Url, DeliveryFailure> {
        let refused = |why: String| Err(DeliveryFailure::Refused(why));
        let Ok(parsed) = Url::parse(url) else {
            return refused(format!("`{url}` is not an absolute URL"));
        };
        match parsed.scheme() {
            "https" => {}
            "http" if self.options.allow_http => {}
            other => return refused(format!("scheme `{other}`: webhooks are sent over https only")),
        }
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return refused("the URL carries credentials".into());
        }
        let Some(host) = parsed.host_str() else {
            return refused("the URL has no host".into());
        };
        // IPv6 literals come bracketed (`[::1]`).
        let literal = host.trim_start_matches('[').trim_end_matches(']').parse::<std::net::IpAddr>();
        if let Ok(ip) = literal
            && !self.options.allow_private
            && let Some(kind) = refusal(ip)
        {
            return refused(not_public(&ip.to_string(), ip, kind));
        }
        Ok(parsed)
    }

    async fn send(
        &self,
        url: Url,
        secret: &WebhookSecret,
        message: &WebhookMessage,
        now: DateTime<Utc>,
    ) -> (Result<u16, DeliveryFailure>, Vec<u8>) {
        let timestamp = now.timestamp();
        let request = self
            .http
            .post(url)
            .header(HEADER_ID, &message.id)
            .header(HEADER_TIMESTAMP, timestamp.to_string())
            .header(HEADER_SIGNATURE, sign(secret, &message.id, timestamp, &message.body))
            .header(CONTENT_TYPE, "application/json")
            .header(USER_AGENT, concat!("crm-rs-webhooks/", env!("CARGO_PKG_VERSION")))
            .body(message.body.clone());
        let mut response = match request.send().await {
            Ok(response) => response,
            Err(e) => return (Err(self.failure(&e)), Vec::new()),
        };
        let status = response.status().as_u16();
        let mut body = Vec::new();
        while body.len() < self.options.max_response_bytes {
            match response.chunk().await {
                Ok(Some(chunk)) => body.extend_from_slice(&chunk),
                Ok(None) => break,
                Err(e) => return (Err(self.failure(&e)), body),
            }
        }
        body.truncate(self.options.max_response_bytes);
        let result = if (200..300).contains(&status) { Ok(status) } else { Err(DeliveryFailure::Status(status)) };
        (result, body)
    }

    fn failure(&self, error: &reqwest::Error) -> DeliveryFailure {
        if error.is_timeout() {
            return DeliveryFailure::Timeout(self.options.timeout);
        }
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
        let mut chain = Vec::new();
        while let Some(e) = source {
            if let Some(refused) = e.downcast_ref::<RefusedTarget>() {
                return DeliveryFailure::Refused(refused.0.clone());
            }
            chain.push(e.to_string());
            source = e.source();
        }
        DeliveryFailure::Connection(chain.join(": "))
    }
}

fn not_public(host: &str, ip: std::net::IpAddr, kind: &str) -> String {
    format!("{host} is {ip}, a {kind} address; non-public targets need --webhook-allow-private")
}

/// The resolver of step 2: only public addresses reach the connector.
#[derive(Debug)]
struct PublicOnly {
    allow_private: bool,
}

/// A host that resolved to no allowed address (found again in reqwest's error chain).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct RefusedTarget(String);

impl Resolve for PublicOnly {
    fn resolve(&self, name: Name) -> Resolving {
        let allow_private = self.allow_private;
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let resolved: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let (public, other): (Vec<SocketAddr>, Vec<SocketAddr>) =
                resolved.into_iter().partition(|addr| allow_private || refusal(addr.ip()).is_none());
            match (public.is_empty(), other.first()) {
                (false, _) => Ok(Box::new(public.into_iter()) as Addrs),
                (true, Some(addr)) => {
                    let kind = refusal(addr.ip()).unwrap_or("non-public");
                    Err(Box::new(RefusedTarget(not_public(&host, addr.ip(), kind))) as _)
                }
                (true, None) => Err(Box::new(RefusedTarget(format!("{host} resolves to no address"))) as _),
            }
        })
    }
}
