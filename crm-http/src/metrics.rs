//! Prometheus metrics: the process's one recorder, the storage decorator that times
//! every storage call, and the scrape endpoint (`GET /metrics` on `--metrics-bind`).
//!
//! What is measured, by name:
//! - `crm_http_requests_total`, `crm_http_request_duration_seconds` (histogram), by
//!   `method`, `route` (the route template, such as `/api/v1/contacts/:param0`, or
//!   `unmatched`) and `status`; `crm_http_requests_in_flight`;
//! - `crm_storage_call_duration_seconds` (histogram) by `operation` and `adapter`, and
//!   `crm_storage_errors_total` by `operation`, `adapter` and `error` (`conflict` is a
//!   commit that lost a race with a concurrent write);
//! - `crm_authentications_total` by `credential` and `outcome`;
//! - `crm_rate_limit_decisions_total` by `limit` (`ip`, `user`, `key`) and `outcome`;
//! - `crm_jobs_total` by `queue` and `outcome` (from `crm-jobs`), and at each scrape
//!   `crm_job_queue_depth` by `queue` (each of [`crm_jobs::QUEUES`]) and `state` (`due`,
//!   `delayed`, `reserved`, `dead`: [`QueueDepth`]), `crm_outbox_lag_seconds` (the age
//!   of the oldest event not yet relayed, 0 when none), `process_resident_memory_bytes`
//!   and `process_open_fds`.
//!
//! [`MeteredStorage`] also makes the storage spans of traces ([`crate::traces`]).

use std::{
    sync::{
        Arc, OnceLock,
        atomic::{AtomicBool, Ordering},
    },
    time::Instant,
};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use crm_core::{
    TenantId,
    jobs::{JobQueue, QueueDepth},
    storage::{
        AggregateQuery, AggregateRow, EntityKind, ListQuery, OutboxEvent, Page, Storage, StorageError, StoredRecord,
        StreamedEvent, WriteBatch,
    },
};
use metrics::{Histogram, counter, gauge, histogram};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use poem::{EndpointExt as _, Route, get, handler, web::Data};
use uuid::Uuid;

use crate::traces::StorageSpan;

/// Latency buckets, in seconds: from a cache hit to a slow query.
const BUCKETS: &[f64] = &[0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Whether [`recorder`] ran: until then the request path skips building labels.
static ENABLED: AtomicBool = AtomicBool::new(false);

fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// The process's Prometheus recorder, installed at the first call. Metrics recorded
/// before it exist nowhere, so servers call it before building anything that records.
pub fn recorder() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let recorder =
            PrometheusBuilder::new().set_buckets(BUCKETS).unwrap_or_else(|_| PrometheusBuilder::new()).build_recorder();
        let handle = recorder.handle();
        // Another recorder installed by an embedder wins; this handle then renders nothing.
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("a metrics recorder was already installed: /metrics shows only its own view");
        }
        ENABLED.store(true, Ordering::Relaxed);
        handle
    })
}

/// What the scrape samples besides the recorded metrics: the storage (the outbox's
/// lag) and the job queue (the depth of each of [`crm_jobs::QUEUES`]).
#[derive(Clone)]
pub struct Sampled {
    /// The storage the outbox is read from.
    pub storage: Arc<dyn Storage>,
    /// The queue the workers take their jobs from.
    pub jobs: Arc<dyn JobQueue>,
}

/// The routes of the metrics listener: `GET /metrics` in the Prometheus text format.
pub fn routes(sampled: Sampled) -> Route {
    Route::new().at("/metrics", get(scrape.data(sampled)))
}

#[handler]
async fn scrape(Data(sampled): Data<&Sampled>) -> String {
    sample(sampled).await;
    recorder().render()
}

/// Gauges read at scrape time: the relay's lag, the queues' depths and the process's
/// resources.
async fn sample(sampled: &Sampled) {
    match sampled.storage.outbox_pending(1).await {
        Ok(pending) => {
            let lag = pending.first().map_or(0.0, |e| (Utc::now() - e.occurred_at).as_seconds_f64().max(0.0));
            gauge!("crm_outbox_lag_seconds").set(lag);
        }
        Err(e) => tracing::warn!(error = %e, "metrics: the outbox could not be read"),
    }
    let depths = futures::future::join_all(crm_jobs::QUEUES.map(|queue| sampled.jobs.depth(queue))).await;
    for (queue, depth) in crm_jobs::QUEUES.into_iter().zip(depths) {
        match depth {
            Ok(depth) => record_depth(queue, &depth),
            Err(e) => tracing::warn!(error = %e, queue, "metrics: the job queue's depth could not be read"),
        }
    }
    if let Some(rss) = resident_bytes() {
        gauge!("process_resident_memory_bytes").set(rss as f64);
    }
    if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
        gauge!("process_open_fds").set(fds.count() as f64);
    }
}

fn record_depth(queue: &'static str, depth: &QueueDepth) {
    for (state, count) in depth.by_state() {
        gauge!("crm_job_queue_depth", "queue" => queue, "state" => state).set(count as f64);
    }
}

/// The process's resident set size, from `/proc/self/status` (Linux).
fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Records one request's outcome (called by the edge once the response is known).
pub(crate) fn request_done(method: &str, route: Option<&str>, status: u16, started: Instant) {
    if !enabled() {
        return;
    }
    let labels = [
        ("method", method.to_owned()),
        ("route", route.unwrap_or("unmatched").to_owned()),
        ("status", status.to_string()),
    ];
    counter!("crm_http_requests_total", &labels).increment(1);
    histogram!("crm_http_request_duration_seconds", &labels).record(started.elapsed());
}

/// Counts requests being served while it lives.
pub(crate) struct InFlight;

impl InFlight {
    pub(crate) fn start() -> Option<Self> {
        enabled().then(|| {
            gauge!("crm_http_requests_in_flight").increment(1.0);
            Self
        })
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        gauge!("crm_http_requests_in_flight").decrement(1.0);
    }
}

/// Counts an authentication's outcome, by the kind of credential presented.
pub(crate) fn authentication(credential: &'static str, ok: bool) {
    if !enabled() {
        return;
    }
    counter!("crm_authentications_total", "credential" => credential, "outcome" => outcome(ok)).increment(1);
}

/// Counts a rate limit's decision; `key` is the limited key (`ip:…`, `user:…`, `key:…`).
pub(crate) fn rate_limit(key: &str, allowed: bool) {
    if !enabled() {
        return;
    }
    let limit = match key.split_once(':') {
        Some(("ip", _)) => "ip",
        Some(("user", _)) => "user",
        Some(("key", _)) => "key",
        _ => "other",
    };
    counter!("crm_rate_limit_decisions_total", "limit" => limit, "outcome" => if allowed { "allowed" } else { "refused" })
        .increment(1);
}

fn outcome(ok: bool) -> &'static str {
    if ok { "ok" } else { "refused" }
}

/// Declares [`OPERATIONS`] and their span names ([`SPAN_NAMES`]) from one list, so the
/// two cannot drift apart.
macro_rules! operations {
    ($($operation:literal),* $(,)?) => {
        /// The storage operations; an operation's index picks its timer in [`MeteredStorage`].
        const OPERATIONS: [&str; 12] = [$($operation),*];
        /// Each operation's span name (`storage <operation>`), in the order of [`OPERATIONS`].
        const SPAN_NAMES: [&str; 12] = [$(concat!("storage ", $operation)),*];
    };
}

operations![
    "get",
    "get_many",
    "list",
    "aggregate",
    "counter",
    "commit",
    "outbox_pending",
    "outbox_ack",
    "outbox_stream",
    "outbox_position",
    "outbox_prune",
    "ping",
];

/// A storage that times every call of the storage it wraps, and counts its errors by
/// kind; otherwise it is that storage (it runs the conformance suite). With traces on,
/// each call made while serving a request is a span (`storage get`, with the
/// `storage.operation` and `storage.adapter` attributes) under the request's.
pub struct MeteredStorage {
    inner: Arc<dyn Storage>,
    adapter: String,
    timers: Vec<Histogram>,
}

impl MeteredStorage {
    /// Wraps `inner`, labelling its metrics with its name. Install the [`recorder`]
    /// first: handles taken before it record nowhere (traces alone need none).
    pub fn new(inner: Arc<dyn Storage>) -> Self {
        let adapter = inner.name().to_owned();
        let timers = OPERATIONS
            .iter()
            .map(|op| histogram!("crm_storage_call_duration_seconds", "operation" => *op, "adapter" => adapter.clone()))
            .collect();
        Self { inner, adapter, timers }
    }

    async fn timed<T>(
        &self,
        op: usize,
        call: impl Future<Output = Result<T, StorageError>>,
    ) -> Result<T, StorageError> {
        let span = StorageSpan::start(SPAN_NAMES[op], OPERATIONS[op], &self.adapter);
        let started = Instant::now();
        let result = span.wrap(call).await;
        self.timers[op].record(started.elapsed());
        if let Err(e) = &result {
            let error = error_kind(e);
            span.failed(error);
            if !enabled() {
                return result;
            }
            let labels =
                [("operation", OPERATIONS[op].to_owned()), ("adapter", self.adapter.clone()), ("error", error.into())];
            counter!("crm_storage_errors_total", &labels).increment(1);
        }
        result
    }
}

fn error_kind(e: &StorageError) -> &'static str {
    match e {
        StorageError::NotFound { .. } => "not_found",
        StorageError::AlreadyExists { .. } => "already_exists",
        StorageError::Conflict { .. } => "conflict",
        StorageError::Referenced { .. } => "referenced",
        StorageError::MissingReference { .. } => "missing_reference",
        StorageError::Unavailable(_) => "unavailable",
        _ => "other",
    }
}

#[async_trait]
impl Storage for MeteredStorage {
    fn name(&self) -> &str {
        self.inner.name()
    }
    async fn get(&self, tenant: TenantId, kind: EntityKind, id: Uuid) -> Result<Option<StoredRecord>, StorageError> {
        self.timed(0, self.inner.get(tenant, kind, id)).await
    }
    async fn get_many(
        &self,
        tenant: TenantId,
        kind: EntityKind,
        ids: &[Uuid],
    ) -> Result<Vec<StoredRecord>, StorageError> {
        self.timed(1, self.inner.get_many(tenant, kind, ids)).await
    }
    async fn list(
        &self,
        tenant: TenantId,
        kind: EntityKind,
        query: &ListQuery,
    ) -> Result<Page<StoredRecord>, StorageError> {
        self.timed(2, self.inner.list(tenant, kind, query)).await
    }
    async fn aggregate(
        &self,
        tenant: TenantId,
        kind: EntityKind,
        query: &AggregateQuery,
    ) -> Result<Vec<AggregateRow>, StorageError> {
        self.timed(3, self.inner.aggregate(tenant, kind, query)).await
    }
    async fn counter(&self, tenant: TenantId, key: &str) -> Result<u64, StorageError> {
        self.timed(4, self.inner.counter(tenant, key)).await
    }
    async fn commit(&self, tenant: TenantId, batch: WriteBatch) -> Result<(), StorageError> {
        self.timed(5, self.inner.commit(tenant, batch)).await
    }
    async fn outbox_pending(&self, limit: usize) -> Result<Vec<OutboxEvent>, StorageError> {
        self.timed(6, self.inner.outbox_pending(limit)).await
    }
    async fn outbox_ack(&self, ids: &[Uuid]) -> Result<(), StorageError> {
        self.timed(7, self.inner.outbox_ack(ids)).await
    }
    async fn outbox_stream(
        &self,
        tenant: TenantId,
        after: u64,
        limit: usize,
    ) -> Result<Vec<StreamedEvent>, StorageError> {
        self.timed(8, self.inner.outbox_stream(tenant, after, limit)).await
    }
    async fn outbox_position(&self) -> Result<u64, StorageError> {
        self.timed(9, self.inner.outbox_position()).await
    }
    async fn outbox_prune(&self, acked_before: DateTime<Utc>, limit: usize) -> Result<usize, StorageError> {
        self.timed(10, self.inner.outbox_prune(acked_before, limit)).await
    }
    async fn ping(&self) -> Result<(), StorageError> {
        self.timed(11, self.inner.ping()).await
    }
}
