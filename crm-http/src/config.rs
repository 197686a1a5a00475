//! `crm-server`'s configuration: flags, each also readable from the environment.

use std::{net::SocketAddr, num::NonZeroUsize, path::PathBuf, time::Duration};

use clap::{Parser, Subcommand, ValueEnum};
use crm_core::{rate_limit::sign_in::SignInPolicy, schedule::Schedule};
use poem::web::cookie::SameSite;

use crate::{auth::CookiePolicy, backends::RedisUrl, proxies::Cidr, storage_url::StorageTimeouts};

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// One JSON object per line.
    Json,
    /// Human-readable lines.
    Pretty,
}

/// The `SameSite` attribute of session cookies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SameSitePolicy {
    /// Sent on same-site requests only.
    Strict,
    /// Also sent on top-level navigations from other sites.
    Lax,
    /// Sent everywhere (refused with `--insecure-cookies`: browsers drop such cookies).
    None,
}

/// What the process runs besides the settings.
#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
pub enum Command {
    /// Run only the background workers (the scheduled jobs), with no HTTP listener:
    /// beside API-only servers started with `--no-workers`. Stops on SIGTERM/SIGINT.
    Worker,
}

/// The CRM's REST server.
#[derive(Debug, Clone, Parser)]
#[command(name = "crm-server", version, about, long_about = None)]
pub struct Config {
    /// `worker`: the workers alone. Default: the API, with the workers unless `--no-workers`.
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Serve the API only, without the background workers (run them elsewhere with
    /// `crm-server worker`).
    #[arg(long, global = true, env = "CRM_NO_WORKERS", global = true)]
    pub no_workers: bool,

    /// Scheduled jobs' periods, changing the defaults `quote-expiry=1h,
    /// overdue-invoices=1h,purge=15m` (a period is a whole number of s, m, h or d, or
    /// `off`). Several servers run each job once per period between them.
    #[arg(long, global = true, env = "CRM_SCHEDULE", global = true, value_parser = parse_schedule)]
    pub schedule: Option<Schedule>,

    /// Address to listen on.
    #[arg(long, global = true, env = "CRM_BIND", default_value = "127.0.0.1:8080")]
    pub bind: SocketAddr,

    /// Storage: `sled://PATH` (embedded, on disk), `postgres://…`, or `memory://` (lost
    /// on exit).
    #[arg(long, global = true, env = "CRM_STORAGE", default_value = "sled://./crm-data/db", hide_env_values = true)]
    pub storage: String,

    /// Redis shared by every instance (`redis://[:password@]host:port/db`, `rediss://…`,
    /// `redis+unix:///path`): sessions, rate limits and a read-through cache of the
    /// storage move there. Default: none, everything stays in this process (sessions in
    /// the storage). The password is never printed or logged.
    #[arg(long, global = true, env = "CRM_REDIS_URL", hide_env_values = true)]
    pub redis: Option<RedisUrl>,

    /// Seconds a request waits for the storage (a free PostgreSQL connection) before it
    /// fails with 503 and `Retry-After`; fractions allowed (`0.5`).
    #[arg(long, global = true, env = "CRM_STORAGE_TIMEOUT", default_value = "2", value_parser = parse_seconds)]
    pub storage_timeout: Duration,

    /// Seconds a whole storage call may take before it fails with 503: what bounds a
    /// query to a PostgreSQL server that stopped answering on an open connection.
    #[arg(long, global = true, env = "CRM_STORAGE_CALL_TIMEOUT", default_value = "30", value_parser = parse_seconds)]
    pub storage_call_timeout: Duration,

    /// Directory for the server's own files (generated JWT secret, bootstrapped tenant).
    #[arg(long, global = true, env = "CRM_DATA_DIR", default_value = "./crm-data")]
    pub data_dir: PathBuf,

    /// HS256 secret for access tokens, at least 32 bytes. Default: generated and kept in
    /// the data directory (with a warning).
    #[arg(long, global = true, env = "CRM_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,

    /// The `iss` of access tokens.
    #[arg(long, global = true, env = "CRM_JWT_ISSUER", default_value = "crm-rs")]
    pub jwt_issuer: String,

    /// Origins allowed to call the API from browsers with credentials (comma-separated).
    #[arg(long, global = true, env = "CRM_CORS_ORIGINS", value_delimiter = ',')]
    pub cors_origins: Vec<String>,

    /// Send session cookies without `Secure` (and without the `__Host-`/`__Secure-`
    /// name prefixes), for plain-HTTP development on hosts other than localhost.
    /// Not needed for `http://localhost`, where browsers accept `Secure` cookies.
    #[arg(long, global = true, env = "CRM_INSECURE_COOKIES")]
    pub insecure_cookies: bool,

    /// `SameSite` of session cookies.
    #[arg(long, global = true, env = "CRM_COOKIE_SAME_SITE", value_enum, default_value = "lax")]
    pub cookie_same_site: SameSitePolicy,

    /// Refuse (428) updates, deletes and state changes that send neither `If-Match` nor
    /// a body `version`, so no client overwrites a change it has not seen.
    #[arg(long, global = true, env = "CRM_REQUIRE_IF_MATCH")]
    pub require_if_match: bool,

    /// Accept `http://` webhook URLs (tests, intranets); otherwise only `https`.
    #[arg(long, global = true, env = "CRM_WEBHOOK_ALLOW_HTTP")]
    pub webhook_allow_http: bool,

    /// Send webhooks to loopback, private, link-local and other non-public addresses
    /// (tests, intranets); otherwise they are refused, whatever the URL's host resolves to.
    #[arg(long, global = true, env = "CRM_WEBHOOK_ALLOW_PRIVATE")]
    pub webhook_allow_private: bool,

    /// The SMTP server emails go through: `smtp://user:pass@host:587?tls=required`
    /// (STARTTLS), `smtps://user:pass@host:465` (implicit TLS), or plain `smtp://host:25`
    /// (a relay on this host). Default: none; emails are logged with their recipients
    /// only. The password is never printed or logged.
    #[arg(long, global = true, env = "CRM_SMTP_URL", hide_env_values = true)]
    pub smtp_url: Option<SmtpUrl>,

    /// The sender of every email.
    #[arg(long, global = true, env = "CRM_MAIL_FROM", default_value = "CRM <crm@localhost>")]
    pub mail_from: String,

    /// Where users reach this CRM, for links in emails (password reset). Default:
    /// `http://` and `--bind`.
    #[arg(long, global = true, env = "CRM_PUBLIC_URL")]
    pub public_url: Option<String>,

    /// How long relayed outbox events and finished webhook deliveries are kept before
    /// the `prune` job deletes them (a whole number of s, m, h or d).
    #[arg(long, global = true, env = "CRM_EVENT_RETENTION", default_value = "7d", value_parser = parse_retention)]
    pub event_retention: chrono::Duration,

    /// How long report runs (`POST /reports/{name}/runs`) and their results are kept
    /// (a whole number of s, m, h or d).
    #[arg(long, global = true, env = "CRM_REPORT_RETENTION", default_value = "24h", value_parser = parse_retention)]
    pub report_retention: chrono::Duration,

    /// Requests per minute per client IP.
    #[arg(long, global = true, env = "CRM_RATE_LIMIT_IP", default_value_t = 1200)]
    pub rate_limit_ip: u32,

    /// Requests per minute per user or API key.
    #[arg(long, global = true, env = "CRM_RATE_LIMIT_USER", default_value_t = 600)]
    pub rate_limit_user: u32,

    /// Failed sign-ins per client IP and account before back-off: then 1 s, doubling
    /// with each further failure up to `--login-backoff-max`; a success clears it.
    /// Each client IP also gets three times as many sign-in attempts a minute, across
    /// all accounts.
    #[arg(long, global = true, env = "CRM_LOGIN_ATTEMPTS", default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..))]
    pub login_attempts: u32,

    /// The longest sign-in back-off, in seconds.
    #[arg(long, global = true, env = "CRM_LOGIN_BACKOFF_MAX", default_value_t = 900, value_parser = clap::value_parser!(u64).range(1..))]
    pub login_backoff_max: u64,

    /// Seconds a refused sign-in takes at least, from arrival to answer (fractions
    /// allowed; default 0: off). Only embedders that import password hashes at other
    /// parameters (bcrypt) need it: set it above their slowest verification so those
    /// accounts cannot be told from unknown emails by timing.
    #[arg(long, env = "CRM_LOGIN_FAILURE_FLOOR", default_value = "0", value_parser = parse_seconds_or_zero)]
    pub login_failure_floor: Duration,

    /// Reverse proxies whose `Forwarded` / `X-Forwarded-For` headers name the client
    /// (comma-separated addresses or networks, like `10.0.0.0/8,127.0.0.1`). Default:
    /// none, the TCP peer is the client and those headers are ignored.
    #[arg(long, global = true, env = "CRM_TRUSTED_PROXIES", value_delimiter = ',')]
    pub trusted_proxies: Vec<Cidr>,

    /// The largest request body accepted, in bytes.
    #[arg(long, global = true, env = "CRM_BODY_LIMIT", default_value_t = 1024 * 1024)]
    pub body_limit: usize,

    /// Password hashes computed at once; more sign-ins wait their turn. Default: half
    /// the CPU cores (at least 1).
    #[arg(long, global = true, env = "CRM_HASHING_CONCURRENCY")]
    pub hashing_concurrency: Option<NonZeroUsize>,

    /// Log filter (`info`, `debug`, `crm_http=debug,poem=info`…).
    #[arg(long, global = true, env = "CRM_LOG", default_value = "info")]
    pub log_level: String,

    /// Log format.
    #[arg(long, global = true, env = "CRM_LOG_FORMAT", value_enum, default_value = "json")]
    pub log_format: LogFormat,

    /// The tenant to serve, as printed at its first start. Servers sharing one PostgreSQL
    /// take the same id; without it, the tenant kept in the data directory is served, or
    /// a new one is bootstrapped.
    #[arg(long, global = true, env = "CRM_TENANT_ID")]
    pub tenant_id: Option<uuid::Uuid>,

    /// On first start: the tenant's name.
    #[arg(long, global = true, env = "CRM_TENANT_NAME", default_value = "My company")]
    pub tenant_name: String,

    /// On first start: the admin's email.
    #[arg(long, global = true, env = "CRM_ADMIN_EMAIL", default_value = "admin@example.com")]
    pub admin_email: String,

    /// On first start: the admin's password. Default: generated and printed once.
    #[arg(long, global = true, env = "CRM_ADMIN_PASSWORD", hide_env_values = true)]
    pub admin_password: Option<String>,

    /// Seconds an authenticated session or API key is trusted without reading it and
    /// its user again (fractions allowed; `0` reads them on every request). A sign-out,
    /// revocation or user change made through this server applies at once; one made
    /// through another server sharing the storage applies here within this time.
    #[arg(long, global = true, env = "CRM_PRINCIPAL_CACHE_TTL", default_value = "2", value_parser = parse_seconds_or_zero)]
    pub principal_cache_ttl: Duration,

    /// Serve Prometheus metrics (`GET /metrics`) on this address, apart from the API;
    /// keep it private (loopback or an internal network): it needs no credentials.
    /// Default: no metrics are recorded.
    #[arg(long, global = true, env = "CRM_METRICS_BIND")]
    pub metrics_bind: Option<SocketAddr>,

    /// Export traces over OTLP/HTTP (protobuf) to this collector: a span per request
    /// (method and route template, status) with its storage calls as child spans. A
    /// base URL (`http://collector:4318`) gets `/v1/traces`; a URL with a path is used
    /// as given. Needs a binary built with `--features otlp`. Default: no traces.
    #[arg(long, global = true, env = "CRM_OTLP_ENDPOINT", value_parser = parse_otlp_endpoint)]
    pub otlp_endpoint: Option<String>,

    /// Seconds in-flight requests get to finish after SIGTERM/SIGINT.
    #[arg(long, global = true, env = "CRM_SHUTDOWN_GRACE_SECS", default_value_t = 30)]
    pub shutdown_grace_secs: u64,
}

/// An `--otlp-endpoint` value: an `http` or `https` URL.
fn parse_otlp_endpoint(raw: &str) -> Result<String, String> {
    let host = raw.strip_prefix("http://").or_else(|| raw.strip_prefix("https://"));
    match host {
        Some(rest) if !rest.is_empty() && !rest.starts_with('/') => Ok(raw.to_owned()),
        _ => Err("an OTLP endpoint is an http:// or https:// URL, like http://localhost:4318".into()),
    }
}

/// A `--schedule` value.
fn parse_schedule(raw: &str) -> Result<Schedule, String> {
    raw.parse()
}

/// Seconds (`2`, `0.5`) as a duration: positive and finite.
fn parse_seconds(raw: &str) -> Result<Duration, String> {
    Some(parse_seconds_or_zero(raw)?)
        .filter(|d| !d.is_zero())
        .ok_or_else(|| format!("`{raw}`: the timeout must be a positive number of seconds"))
}

/// A number of seconds, zero included (fractions allowed).
fn parse_seconds_or_zero(raw: &str) -> Result<Duration, String> {
    let seconds: f64 = raw.trim().parse().map_err(|_| format!("`{raw}` is not a number of seconds"))?;
    Duration::try_from_secs_f64(seconds).map_err(|_| format!("`{raw}`: not a number of seconds from 0 up"))
}

/// `--cookie-same-site none` with `--insecure-cookies`: browsers drop `SameSite=None`
/// cookies that are not `Secure`, so sign-in would silently not stick.
#[derive(Debug, thiserror::Error)]
#[error("--cookie-same-site none requires Secure cookies: drop --insecure-cookies or choose lax or strict")]
pub struct SameSiteNoneWithoutSecure;

impl Config {
    /// The sign-in rule's settings: `--login-attempts` free failures, then a back-off
    /// from 1 s doubling up to `--login-backoff-max`, forgotten after an hour (or four
    /// longest waits) without failure.
    pub fn sign_in_policy(&self) -> SignInPolicy {
        let defaults = SignInPolicy::default();
        let max_delay = std::time::Duration::from_secs(self.login_backoff_max);
        // A pair must be remembered well past its longest wait, or waiting would reset it.
        let forget_after = defaults.forget_after.max(max_delay.saturating_mul(4));
        SignInPolicy {
            free_failures: self.login_attempts,
            max_delay,
            forget_after,
            failure_floor: self.login_failure_floor,
            ..defaults
        }
    }

    /// The storage's bounds: `--storage-timeout` for a connection, `--storage-call-timeout`
    /// for a whole call.
    pub fn storage_timeouts(&self) -> StorageTimeouts {
        StorageTimeouts { wait: self.storage_timeout, call: self.storage_call_timeout }
    }

    /// How session cookies are set: `Secure` unless `--insecure-cookies`, and never
    /// `SameSite=None` without `Secure`.
    pub fn cookie_policy(&self) -> Result<CookiePolicy, SameSiteNoneWithoutSecure> {
        let secure = !self.insecure_cookies;
        let same_site = match self.cookie_same_site {
            SameSitePolicy::Strict => SameSite::Strict,
            SameSitePolicy::Lax => SameSite::Lax,
            SameSitePolicy::None if !secure => return Err(SameSiteNoneWithoutSecure),
            SameSitePolicy::None => SameSite::None,
        };
        Ok(CookiePolicy { secure, same_site })
    }
}

/// An `--event-retention` value.
fn parse_retention(raw: &str) -> Result<chrono::Duration, String> {
    crm_core::schedule::parse_period(raw)?.ok_or_else(|| "the retention cannot be `off`".to_owned())
}

/// An SMTP URL that never shows its credentials: `Debug` and `Display` give the
/// scheme, host and port only.
#[derive(Clone, PartialEq, Eq)]
pub struct SmtpUrl(String);

impl std::str::FromStr for SmtpUrl {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        if raw.starts_with("smtp://") || raw.starts_with("smtps://") {
            Ok(Self(raw.to_owned()))
        } else {
            Err("an SMTP URL starts with smtp:// or smtps://".into())
        }
    }
}

impl SmtpUrl {
    /// The URL with its credentials, for connecting only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for SmtpUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (scheme, rest) = self.0.split_once("://").unwrap_or(("smtp", &self.0));
        let authority = rest.split(['/', '?']).next().unwrap_or_default();
        let host = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
        write!(f, "{scheme}://{host}")
    }
}

impl std::fmt::Debug for SmtpUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SmtpUrl({self})")
    }
}
