//! What wraps every request: a request id, the client IP ([`client_ip`]), the per-IP
//! rate limit, `RateLimit-*` headers for the limit closest to being hit, errors turned
//! into the envelope, `Cache-Control: no-store` on what a signed-in caller or a
//! cookie-setting answer gets, `Connection: close` when the body was left unread, and
//! one structured log line (method, path, status, latency, request id, user id; never
//! bodies or tokens). Also the body limit and `Allow` on every 405.

use std::{
    net::IpAddr,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicBool, Ordering},
    },
    time::Instant,
};

use crm_core::rate_limit::{RateDecision, RateLimiter};
use poem::{
    Endpoint, IntoResponse, Middleware, PathPattern, Request, Response,
    http::{HeaderValue, StatusCode, Version, header},
};
use tokio::io::{AsyncRead, ReadBuf};

use crate::{
    error::{ApiError, framework_error_response},
    metrics,
    proxies::TrustedProxies,
    request::{REQUEST, RequestInfo},
    traces::RequestSpan,
};

/// The header carrying the request id, in and out.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// A client's request id is kept when it is short and plain; otherwise a new one is made.
fn request_id(req: &Request) -> String {
    req.header(REQUEST_ID_HEADER)
        .filter(|v| !v.is_empty() && v.len() <= 64 && v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
        .map_or_else(|| uuid::Uuid::new_v4().simple().to_string(), str::to_owned)
}

/// The client IP of a request, as the edge resolved it for the whole request.
#[derive(Clone, Copy, Debug)]
struct ClientIp(Option<IpAddr>);

/// THE client IP, for limits, sign-in throttling, sessions and logs: the TCP peer, or,
/// when the peer is a trusted proxy (`--trusted-proxies`), the address its forwarding
/// headers name ([`TrustedProxies::client_ip`]). Resolved once by the [`Edge`]; a
/// request that did not pass it gets its TCP peer.
pub fn client_ip(req: &Request) -> Option<IpAddr> {
    match req.data::<ClientIp>() {
        Some(ClientIp(ip)) => *ip,
        None => req.remote_addr().as_socket_addr().map(|a| a.ip()),
    }
}

/// Sets the `RateLimit-*` headers of a decision.
pub fn rate_limit_headers(resp: &mut Response, d: &RateDecision) {
    let headers = resp.headers_mut();
    headers.insert("ratelimit-limit", HeaderValue::from(d.limit));
    headers.insert("ratelimit-remaining", HeaderValue::from(d.remaining));
    headers.insert("ratelimit-reset", HeaderValue::from(d.retry_after_secs()));
}

/// The edge middleware.
pub struct Edge {
    per_ip: Arc<dyn RateLimiter>,
    proxies: TrustedProxies,
}

impl Edge {
    /// An edge limiting each client IP with `per_ip`, trusting no proxy.
    pub fn new(per_ip: Arc<dyn RateLimiter>) -> Self {
        Self { per_ip, proxies: TrustedProxies::default() }
    }

    /// Reads the client IP from the forwarding headers of these proxies.
    pub fn trusting(mut self, proxies: TrustedProxies) -> Self {
        self.proxies = proxies;
        self
    }
}

impl<E: Endpoint> Middleware<E> for Edge {
    type Output = EdgeEndpoint<E>;
    fn transform(&self, next: E) -> Self::Output {
        EdgeEndpoint { next, per_ip: self.per_ip.clone(), proxies: self.proxies.clone() }
    }
}

/// The endpoint [`Edge`] wraps around the routes.
pub struct EdgeEndpoint<E> {
    next: E,
    per_ip: Arc<dyn RateLimiter>,
    proxies: TrustedProxies,
}

impl<E: Endpoint> Endpoint for EdgeEndpoint<E> {
    type Output = Response;

    async fn call(&self, mut req: Request) -> poem::Result<Response> {
        let started = Instant::now();
        let _in_flight = metrics::InFlight::start();
        let body_read = track_body(&mut req);
        let info =
            Arc::new(RequestInfo { id: request_id(&req), user_id: Mutex::new(None), tightest: Mutex::new(None) });
        let (method, path) = (req.method().clone(), req.uri().path().to_owned());
        let span = RequestSpan::start(method.as_str(), req.headers());
        let ip = self.proxies.client_ip(&req);
        req.set_data(ClientIp(ip));
        let per_ip = self.per_ip.clone();
        let next = &self.next;
        let scoped = info.clone();
        let scope = REQUEST.scope(info.clone(), async move {
            if let Some(ip) = ip {
                let key = format!("ip:{ip}");
                match per_ip.check(&key).await {
                    Ok(d) => {
                        metrics::rate_limit(&key, d.allowed);
                        scoped.record(d);
                    }
                    Err(e) => return ApiError::from(e).into_response(),
                }
            }
            let refused = *scoped.tightest.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(d) = refused.filter(|d| !d.allowed) {
                return ApiError::too_many_requests(d.retry_after_secs()).into_response();
            }
            match next.call(req).await {
                Ok(out) => out.into_response(),
                Err(err) => framework_error_response(err),
            }
        });
        let mut resp = span.wrap(scope).await;
        if let Some(d) = *info.tightest.lock().unwrap_or_else(PoisonError::into_inner) {
            rate_limit_headers(&mut resp, &d);
        }
        if body_read.as_ref().is_some_and(|read| !read.load(Ordering::Acquire)) {
            // hyper closes a connection whose request body was left unread, and says
            // nothing: a keep-alive client would send its next request into a closed
            // socket. Announcing it lets the client open a new connection instead.
            resp.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        let user_id = info.user_id.lock().unwrap_or_else(PoisonError::into_inner).clone();
        // What one user may see, and tokens, stay out of every cache.
        if user_id.is_some() || resp.headers().contains_key(header::SET_COOKIE) {
            resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        }
        if let Ok(id) = HeaderValue::from_str(&info.id) {
            resp.headers_mut().insert(REQUEST_ID_HEADER, id);
        }
        let route = resp.data::<PathPattern>().map(|p| &*p.0);
        metrics::request_done(method.as_str(), route, resp.status().as_u16(), started);
        span.done(method.as_str(), route, resp.status().as_u16());
        tracing::info!(
            target: "crm_http::access",
            method = %method,
            path = %path,
            status = resp.status().as_u16(),
            latency_ms = started.elapsed().as_secs_f64() * 1000.0,
            request_id = %info.id,
            user_id = user_id.as_deref(),
            "request"
        );
        Ok(resp)
    }
}

/// For an HTTP/1 request with a body, replaces the body by one that records, in the
/// flag returned, whether it was read to its end.
fn track_body(req: &mut Request) -> Option<Arc<AtomicBool>> {
    let http1 = matches!(req.version(), Version::HTTP_10 | Version::HTTP_11);
    let declared = req.header(header::CONTENT_LENGTH.as_str()).is_some_and(|len| len.trim() != "0");
    if !http1 || !(declared || req.headers().contains_key(header::TRANSFER_ENCODING)) {
        return None;
    }
    let read = Arc::new(AtomicBool::new(false));
    let inner = req.take_body().into_async_read();
    req.set_body(poem::Body::from_async_read(ReadToEnd { inner, read: read.clone() }));
    Some(read)
}

/// A reader that sets its flag when its inner reader reports the end.
struct ReadToEnd<R> {
    inner: R,
    read: Arc<AtomicBool>,
}

impl<R: AsyncRead + Unpin> AsyncRead for ReadToEnd<R> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let room = buf.remaining() > 0;
        let polled = std::pin::Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, std::task::Poll::Ready(Ok(()))) && room && buf.filled().len() == before {
            self.read.store(true, Ordering::Release);
        }
        polled
    }
}

/// The answer to a panic inside a handler: a 500 envelope with the request id.
#[derive(Clone, Copy, Debug)]
pub struct PanicToEnvelope;

impl poem::middleware::PanicHandler for PanicToEnvelope {
    type Response = Response;
    fn get_response(&self, _panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
        ApiError::internal(&"a handler panicked").into_response()
    }
}

/// Refuses request bodies over a size with 413: by `Content-Length` when sent, else
/// while reading the body (which is then buffered, at most `max` bytes).
pub struct BodyLimit {
    max: usize,
}

impl BodyLimit {
    /// A limit of `max` bytes.
    pub fn new(max: usize) -> Self {
        Self { max }
    }
}

impl<E: Endpoint> Middleware<E> for BodyLimit {
    type Output = BodyLimitEndpoint<E>;
    fn transform(&self, next: E) -> Self::Output {
        BodyLimitEndpoint { next, max: self.max }
    }
}

/// The endpoint [`BodyLimit`] wraps.
pub struct BodyLimitEndpoint<E> {
    next: E,
    max: usize,
}

impl<E: Endpoint> Endpoint for BodyLimitEndpoint<E> {
    type Output = E::Output;

    async fn call(&self, mut req: Request) -> poem::Result<Self::Output> {
        let too_large = || poem::Error::from_status(poem::http::StatusCode::PAYLOAD_TOO_LARGE);
        let declared = req.header("content-length").map(|v| v.parse::<u64>());
        match declared {
            Some(Ok(len)) if len > self.max as u64 => return Err(too_large()),
            Some(Ok(_)) => {}
            Some(Err(_)) => return Err(poem::Error::from_status(poem::http::StatusCode::BAD_REQUEST)),
            None => {
                let body = req.take_body().into_bytes_limit(self.max).await.map_err(|_| too_large())?;
                req.set_body(body);
            }
        }
        self.next.call(req).await
    }
}

/// One route's path, as segments (`None`: a parameter), and the methods it answers.
#[derive(Debug)]
struct RouteMethods {
    segments: Vec<Option<String>>,
    allow: HeaderValue,
}

/// Adds `Allow` to every 405 (RFC 9110, 15.5.6): the methods of the path, as the
/// routes declare them (`HEAD` wherever `GET` is, as poem answers it).
#[derive(Debug, Clone)]
pub struct AllowOn405 {
    routes: Arc<Vec<RouteMethods>>,
}

fn segments(path: &str) -> impl Iterator<Item = &str> {
    path.split('/').filter(|s| !s.is_empty())
}

impl AllowOn405 {
    /// The routes, as `(path template, methods)`; a `{name}` segment matches any value.
    pub fn new<'a>(routes: impl IntoIterator<Item = (String, Vec<&'a str>)>) -> Self {
        let routes = routes
            .into_iter()
            .filter_map(|(template, methods)| {
                let mut methods: Vec<String> = methods.iter().map(|m| m.to_ascii_uppercase()).collect();
                if methods.iter().any(|m| m == "GET") && !methods.iter().any(|m| m == "HEAD") {
                    methods.push("HEAD".into());
                }
                let order = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];
                methods.sort_by_key(|m| order.iter().position(|o| o == m).unwrap_or(order.len()));
                let allow = HeaderValue::from_str(&methods.join(", ")).ok()?;
                let segments = segments(&template)
                    .map(|s| if s.starts_with('{') || s.starts_with(':') { None } else { Some(s.to_owned()) })
                    .collect();
                Some(RouteMethods { segments, allow })
            })
            .collect();
        Self { routes: Arc::new(routes) }
    }

    /// The `Allow` of the route matching `path` most literally.
    fn allow(&self, path: &str) -> Option<HeaderValue> {
        let given: Vec<&str> = segments(path).collect();
        self.routes
            .iter()
            .filter(|r| {
                r.segments.len() == given.len()
                    && r.segments.iter().zip(&given).all(|(s, g)| s.as_deref().is_none_or(|s| s == *g))
            })
            .max_by_key(|r| r.segments.iter().filter(|s| s.is_some()).count())
            .map(|r| r.allow.clone())
    }
}

impl<E: Endpoint> Middleware<E> for AllowOn405 {
    type Output = AllowOn405Endpoint<E>;
    fn transform(&self, next: E) -> Self::Output {
        AllowOn405Endpoint { next, allow: self.clone() }
    }
}

/// The endpoint [`AllowOn405`] wraps.
pub struct AllowOn405Endpoint<E> {
    next: E,
    allow: AllowOn405,
}

impl<E: Endpoint> Endpoint for AllowOn405Endpoint<E> {
    type Output = Response;

    async fn call(&self, req: Request) -> poem::Result<Response> {
        let path = req.uri().path().to_owned();
        let mut resp = match self.next.call(req).await {
            Ok(out) => out.into_response(),
            Err(err) if err.status() == StatusCode::METHOD_NOT_ALLOWED => framework_error_response(err),
            Err(err) => return Err(err),
        };
        if resp.status() == StatusCode::METHOD_NOT_ALLOWED
            && let Some(allow) = self.allow.allow(&path)
        {
            resp.headers_mut().insert(header::ALLOW, allow);
        }
        Ok(resp)
    }
}
