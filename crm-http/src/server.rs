//! Running `crm-server`: open the storage, settle the JWT secret and the first tenant,
//! serve until SIGTERM/SIGINT, and let in-flight requests finish.

use std::{io, net::SocketAddr, path::Path, sync::Arc, time::Duration};

use crm_core::{
    Crm, CrmError, TenantId, access::users::Bootstrap, principal_cache::DEFAULT_PRINCIPAL_CAPACITY, schedule::Schedule,
    storage::EntityKind,
};
use crm_jobs::{DeliveryOptions, Mailer};
use poem::{
    Server,
    listener::{Acceptor, Listener, TcpListener},
};
use tokio::task::JoinHandle;

use crate::{
    AppCtx, AppOptions,
    auth::{MIN_SECRET_LEN, TokenKeys},
    backends::{Backends, RedisUnavailable},
    config::{Command, Config, SameSiteNoneWithoutSecure},
    input::Versions,
    live::{LiveHub, LiveOptions},
    metrics::{MeteredStorage, Sampled},
    offload::BlockingPool,
    proxies::TrustedProxies,
    storage_url::{StorageUrlError, is_persistent, open_storage},
    workers::{Outbound, Workers},
};

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The storage URL cannot be opened.
    #[error(transparent)]
    Storage(#[from] StorageUrlError),
    /// The cookie settings contradict each other.
    #[error(transparent)]
    Cookies(#[from] SameSiteNoneWithoutSecure),
    /// The JWT secret is too short.
    #[error(transparent)]
    Secret(#[from] crate::auth::SecretTooShort),
    /// The first tenant could not be created (or the configured one read).
    #[error("bootstrap failed: {0}")]
    Bootstrap(crm_core::CrmError),
    /// `--redis` names a server that does not answer.
    #[error(transparent)]
    Redis(#[from] RedisUnavailable),
    /// `crm-server worker` found no tenant to work for (it never creates one).
    #[error("crm-server worker needs a tenant: pass --tenant-id (printed at the tenant's first start)")]
    WorkerWithoutTenant,
    /// `--tenant-id` names no tenant of the storage.
    #[error("the storage has no tenant {0}: check --tenant-id (printed at the tenant's first start)")]
    UnknownTenant(uuid::Uuid),
    /// `--smtp-url` or `--mail-from` is unusable.
    #[error(transparent)]
    Mail(#[from] crm_jobs::mail::MailerError),
    /// The webhook client could not be built.
    #[error("webhooks: {0}")]
    Webhooks(#[from] crm_jobs::DeliveryFailure),
    /// A file or socket could not be used.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The error.
        source: io::Error,
    },
}

fn io_err(context: impl Into<String>) -> impl FnOnce(io::Error) -> ServerError {
    let context = context.into();
    move |source| ServerError::Io { context, source }
}

fn random_hex(bytes: usize) -> Result<String, ServerError> {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf)
        .map_err(|e| ServerError::Io { context: "randomness".into(), source: io::Error::other(e.to_string()) })?;
    Ok(hex::encode(buf))
}

/// The configured secret; else the one kept in the data directory; else a new one,
/// kept there for the next start when the storage outlives the process.
fn jwt_secret(config: &Config, persistent: bool) -> Result<Vec<u8>, ServerError> {
    if let Some(secret) = &config.jwt_secret {
        return Ok(secret.as_bytes().to_vec());
    }
    let path = config.data_dir.join("jwt-secret");
    if let Some(kept) = persistent.then(|| std::fs::read_to_string(&path).ok()).flatten() {
        return Ok(kept.trim().as_bytes().to_vec());
    }
    let secret = random_hex(MIN_SECRET_LEN * 2)?;
    if persistent {
        std::fs::create_dir_all(&config.data_dir).map_err(io_err(format!("create {}", config.data_dir.display())))?;
        write_private(&path, &secret)?;
        tracing::warn!(path = %path.display(), "no JWT secret configured: generated one and kept it beside the data");
    } else {
        tracing::warn!("no JWT secret configured: using a random one for this run (tokens end with the process)");
    }
    Ok(secret.into_bytes())
}

fn write_private(path: &Path, contents: &str) -> Result<(), ServerError> {
    std::fs::write(path, contents).map_err(io_err(format!("write {}", path.display())))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .map_err(io_err(format!("chmod {}", path.display())))?;
    }
    Ok(())
}

/// What the first start created, to print once.
#[derive(Debug)]
pub struct FirstStart {
    /// The admin's email.
    pub email: String,
    /// The admin's password when it was generated (printed once, never stored).
    pub generated_password: Option<String>,
}

/// The tenant to serve: the one bootstrapped earlier (kept in the data directory for
/// persistent storage), or a new one with its admin.
async fn tenant(crm: &Crm, config: &Config, persistent: bool) -> Result<(TenantId, Option<FirstStart>), ServerError> {
    if let Some(id) = config.tenant_id {
        let tenant = TenantId(id);
        let found = crm.storage().get(tenant, EntityKind::Tenant, id).await.map_err(CrmError::from);
        return match found.map_err(ServerError::Bootstrap)? {
            Some(_) => Ok((tenant, None)),
            None => Err(ServerError::UnknownTenant(id)),
        };
    }
    let path = config.data_dir.join("tenant-id");
    let kept = persistent.then(|| std::fs::read_to_string(&path).ok()).flatten();
    if let Some(id) = kept.and_then(|s| uuid::Uuid::parse_str(s.trim()).ok()) {
        return Ok((TenantId(id), None));
    }
    if config.command == Some(Command::Worker) {
        return Err(ServerError::WorkerWithoutTenant);
    }
    let generated = match &config.admin_password {
        Some(_) => None,
        None => Some(random_hex(12)?),
    };
    let password = config.admin_password.clone().or_else(|| generated.clone()).unwrap_or_default();
    let (tenant, _, _) = crm
        .users()
        .bootstrap(Bootstrap {
            tenant_name: config.tenant_name.clone(),
            admin_email: config.admin_email.clone(),
            admin_password: password,
            admin_first_name: "Admin".into(),
            admin_last_name: "User".into(),
        })
        .await
        .map_err(ServerError::Bootstrap)?;
    let tenant = TenantId(tenant.meta.id);
    if persistent {
        std::fs::create_dir_all(&config.data_dir).map_err(io_err(format!("create {}", config.data_dir.display())))?;
        write_private(&path, &tenant.to_string())?;
    }
    Ok((tenant, Some(FirstStart { email: config.admin_email.clone(), generated_password: generated })))
}

/// Listens for SIGTERM and SIGINT from the moment it is called, and resolves on the
/// first. Listening starts here, not at the future's first poll: the banner is printed
/// before the server polls it, and a SIGTERM sent right after the banner must stop the
/// server gracefully instead of killing it with the signal's default action.
fn shutdown_signal() -> Result<impl std::future::Future<Output = ()>, ServerError> {
    #[cfg(unix)]
    let (mut interrupt, mut terminate) = {
        use tokio::signal::unix::{SignalKind, signal};
        (
            signal(SignalKind::interrupt()).map_err(io_err("listen for SIGINT"))?,
            signal(SignalKind::terminate()).map_err(io_err("listen for SIGTERM"))?,
        )
    };
    Ok(async move {
        #[cfg(unix)]
        tokio::select! {
            _ = interrupt.recv() => {},
            _ = terminate.recv() => {},
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("shutting down: finishing in-flight requests");
    })
}

/// Runs the server (or, with `worker`, the workers alone) until a shutdown signal.
pub async fn run(config: Config) -> Result<(), ServerError> {
    config.cookie_policy()?;
    // The API's document (which routes answer 405) is generated while the storage opens
    // and the first admin's password is hashed, instead of after them.
    if config.command != Some(Command::Worker) {
        drop(tokio::task::spawn_blocking(|| {
            crate::api::generated();
        }));
    }
    let persistent = is_persistent(&config.storage);
    let mut storage = open_storage(&config.storage, config.storage_timeouts()).await?;
    // Metrics and traces cost nothing unless asked for: without a recorder nothing
    // records, and without the decorator no storage call is timed or traced.
    if config.metrics_bind.is_some() {
        crate::metrics::recorder();
    }
    if config.metrics_bind.is_some() || crate::traces::enabled() {
        storage = Arc::new(MeteredStorage::new(storage));
    }
    let hashing = config.hashing_concurrency.unwrap_or_else(BlockingPool::default_limit);
    let offload = BlockingPool::new(tokio::runtime::Handle::current(), hashing);
    let backends = Backends::open(&config, storage.clone()).await?;
    let metrics = match config.metrics_bind {
        Some(bind) => Some(serve_metrics(bind, Sampled { storage, jobs: backends.jobs.clone() }).await?),
        None => None,
    };
    // Services enqueue (emails…) on the queue the workers reserve from.
    let mut crm = Crm::builder(backends.storage.clone())
        .offload(Arc::new(offload))
        .webhook_allow_http(config.webhook_allow_http)
        .event_retention(config.event_retention)
        .report_retention(config.report_retention)
        .principal_cache(config.principal_cache_ttl, DEFAULT_PRINCIPAL_CAPACITY)
        .jobs(backends.jobs.clone());
    if let Some(sessions) = backends.sessions.clone() {
        crm = crm.session_store(sessions);
    }
    let crm = crm.build();
    let (tenant, first_start) = tenant(&crm, &config, persistent).await?;
    let shutdown = shutdown_signal()?;
    let schedule = config.schedule.clone().unwrap_or_default();
    let only_workers = config.command == Some(Command::Worker);
    let workers = if only_workers || !config.no_workers {
        let outbound = outbound(&config)?;
        Some(Workers::start(crm.clone(), backends.leases.clone(), schedule.clone(), tenant, outbound)?)
    } else {
        None
    };
    let outcome = if only_workers {
        print_worker_banner(&config, tenant, &schedule);
        shutdown.await;
        Ok(())
    } else {
        serve(&config, crm, backends, Started { tenant, first_start, persistent, workers: workers.is_some() }, shutdown)
            .await
    };
    if let Some(workers) = workers {
        workers.stop().await;
    }
    if let Some(metrics) = metrics {
        metrics.abort();
    }
    outcome
}

/// Serves `GET /metrics` on `bind` in the background, apart from the API (so the
/// scrape needs no credentials and can stay on a private address).
async fn serve_metrics(bind: SocketAddr, sampled: Sampled) -> Result<JoinHandle<()>, ServerError> {
    let acceptor = TcpListener::bind(bind).into_acceptor().await.map_err(io_err(format!("bind {bind} (metrics)")))?;
    tracing::info!(%bind, "metrics: GET /metrics");
    Ok(tokio::spawn(async move {
        if let Err(e) = Server::new_with_acceptor(acceptor).run(crate::metrics::routes(sampled)).await {
            tracing::error!(error = %e, "the metrics listener stopped");
        }
    }))
}

/// How the workers reach webhook receivers and the SMTP server.
fn outbound(config: &Config) -> Result<Outbound, ServerError> {
    let webhooks = DeliveryOptions {
        allow_http: config.webhook_allow_http,
        allow_private: config.webhook_allow_private,
        ..DeliveryOptions::default()
    };
    let mailer = match &config.smtp_url {
        Some(url) => Mailer::smtp(url.expose(), &config.mail_from)?,
        None => Mailer::Log,
    };
    Ok(Outbound { webhooks, mailer })
}

/// What `run` settled before serving.
struct Started {
    tenant: TenantId,
    first_start: Option<FirstStart>,
    persistent: bool,
    workers: bool,
}

/// Serves the API until `shutdown`, letting in-flight requests finish.
async fn serve(
    config: &Config,
    crm: Crm,
    backends: Backends,
    started: Started,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> Result<(), ServerError> {
    let tokens = TokenKeys::new(&jwt_secret(config, started.persistent)?, &config.jwt_issuer)?;
    let ctx = Arc::new(AppCtx {
        crm,
        tokens,
        limits: backends.limits,
        cookies: config.cookie_policy()?,
        default_tenant: Some(started.tenant),
        versions: if config.require_if_match { Versions::Required } else { Versions::Optional },
        public_url: config.public_url.clone().unwrap_or_else(|| format!("http://{}", config.bind)),
        live: LiveHub::new(backends.storage.clone(), LiveOptions::default()),
    });
    let options = AppOptions {
        cors_origins: config.cors_origins.clone(),
        body_limit: config.body_limit,
        trusted_proxies: TrustedProxies::new(config.trusted_proxies.clone()),
        redis: backends.redis,
    };
    let app = crate::build(ctx, &options);
    let acceptor =
        TcpListener::bind(config.bind).into_acceptor().await.map_err(io_err(format!("bind {}", config.bind)))?;
    let addr = acceptor
        .local_addr()
        .first()
        .and_then(|a| a.as_socket_addr().copied())
        .map_or_else(|| config.bind.to_string(), |a| a.to_string());
    print_banner(&addr, config, &started);
    Server::new_with_acceptor(acceptor)
        .run_with_graceful_shutdown(app, shutdown, Some(Duration::from_secs(config.shutdown_grace_secs)))
        .await
        .map_err(io_err("serve"))
}

/// The storage for humans, without credentials a PostgreSQL URL may carry.
fn describe_storage(url: &str) -> String {
    match url.split_once("://") {
        Some(("memory", _)) => "in memory (lost on exit)".into(),
        Some(("sled", path)) => format!("sled at {path}"),
        Some(("postgres" | "postgresql", _)) => "PostgreSQL".into(),
        _ => "unknown".into(),
    }
}

/// What a `crm-server worker` runs, on standard output.
fn print_worker_banner(config: &Config, tenant: TenantId, schedule: &Schedule) {
    println!("crm-server worker running (no HTTP listener; stop with SIGTERM)");
    println!("  storage:  {}", describe_storage(&config.storage));
    println!("  tenant:   {tenant}");
    println!("  schedule: {schedule}");
}

/// Where to go and how to sign in, on standard output.
fn print_banner(addr: &str, config: &Config, started: &Started) {
    let (tenant, first_start) = (started.tenant, started.first_start.as_ref());
    println!("crm-server listening on http://{addr}");
    println!("  API:      http://{addr}/api/v1   (spec: /api/v1/openapi.json, docs: http://{addr}/docs)");
    println!("  storage:  {}", describe_storage(&config.storage));
    match &config.redis {
        Some(url) => println!("  redis:    {url} (sessions, rate limits, cache)"),
        None => println!("  redis:    none (sessions in the storage, rate limits in this process)"),
    }
    println!("  tenant:   {tenant} (more servers on the same storage: --tenant-id {tenant})");
    if started.workers {
        println!("  workers:  in this process ({})", config.schedule.clone().unwrap_or_default());
    } else {
        println!("  workers:  none here (--no-workers: run `crm-server worker` beside)");
    }
    match first_start {
        Some(FirstStart { email, generated_password: Some(password) }) => {
            println!("  first start: created the admin {email} with the password {password}");
            println!("  (shown once; change it with POST /api/v1/auth/change-password)");
        }
        Some(FirstStart { email, generated_password: None }) => {
            println!("  first start: created the admin {email} with the configured password");
        }
        None => println!("  sign in with the admin created at the first start"),
    }
    println!(
        "  sign in:  curl -s http://{addr}/api/v1/auth/login -H 'content-type: application/json' -d '{{\"email\":\"{}\",\"password\":\"…\"}}'",
        config.admin_email
    );
}
