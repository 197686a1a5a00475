//! Traces over OTLP/HTTP (protobuf), with `--otlp-endpoint` in a build with the cargo
//! feature `otlp`: one span per request, named by its method and route template
//! (`GET /api/v1/companies/:param0`), with the storage calls made while serving it as
//! its children (`storage get`, … from [`MeteredStorage`](crate::metrics::MeteredStorage)).
//!
//! The spans are `tracing` spans of the target [`TARGET`]; the OpenTelemetry layer
//! ([`Traces::layer`]) exports those alone, in batches, from the SDK's own thread with a
//! blocking HTTP client, and the log layer leaves them out ([`not_traced`]), so log lines
//! are the same with or without traces. Storage calls made outside a request (workers,
//! the relay, live streams) make no span.
//!
//! Without the flag, or in a build without the feature, no span is made: the request
//! path checks one flag (in a build without the feature, not even that). The flag in a
//! build without the feature stops the server at start ([`TracesError::NotBuilt`]).

use tracing::Metadata;
use tracing_subscriber::filter::{FilterFn, filter_fn};

/// The target of the request and storage spans.
pub const TARGET: &str = "crm_http::traces";

/// Why traces could not be started.
#[derive(Debug, thiserror::Error)]
pub enum TracesError {
    /// `--otlp-endpoint` was given to a binary built without the `otlp` feature.
    #[error(
        "--otlp-endpoint needs a crm-server built with the `otlp` feature: rebuild it with `--features otlp` \
         (cargo build --release -p crm-http --features otlp)"
    )]
    NotBuilt,
    /// The exporter could not be built (a bad endpoint, an HTTP client that failed).
    #[error("--otlp-endpoint: {0}")]
    Exporter(String),
}

/// The log layer's filter: everything but the trace spans (they are exported, not logged).
pub fn not_traced() -> FilterFn<impl Fn(&Metadata<'_>) -> bool> {
    filter_fn(|meta: &Metadata<'_>| !(meta.is_span() && meta.target() == TARGET))
}

/// The endpoint traces are posted to: `URL` as given when it names a path, else
/// `URL/v1/traces` (an OpenTelemetry collector's base address, like
/// `http://collector:4318`, is enough).
pub fn traces_url(endpoint: &str) -> String {
    let trimmed = endpoint.trim_end_matches('/');
    let path = trimmed.split_once("://").map_or(trimmed, |(_, rest)| rest).split_once('/').map(|(_, p)| p);
    match path {
        Some(p) if !p.is_empty() => endpoint.to_owned(),
        _ => format!("{trimmed}/v1/traces"),
    }
}

#[cfg(feature = "otlp")]
mod enabled {
    use std::sync::atomic::{AtomicBool, Ordering};

    use opentelemetry::{
        propagation::{Extractor, TextMapPropagator as _},
        trace::{TraceContextExt as _, TracerProvider as _},
    };
    use opentelemetry_otlp::{Protocol, WithExportConfig as _};
    use opentelemetry_sdk::{Resource, propagation::TraceContextPropagator, trace::SdkTracerProvider};
    use poem::http::HeaderMap;
    use tracing::{Span, field::Empty};
    use tracing_opentelemetry::OpenTelemetrySpanExt as _;
    use tracing_subscriber::{Layer, registry::LookupSpan};

    use super::{TARGET, TracesError, traces_url};

    /// Whether a tracer was installed: until then no span is made.
    static ENABLED: AtomicBool = AtomicBool::new(false);

    pub(crate) fn enabled() -> bool {
        ENABLED.load(Ordering::Relaxed)
    }

    /// The running pipeline: the provider that batches and exports spans.
    pub(super) struct Pipeline {
        provider: SdkTracerProvider,
    }

    impl Pipeline {
        pub(super) fn start(endpoint: &str) -> Result<Self, TracesError> {
            // A `https` collector: the blocking client's TLS is rustls on ring (one
            // provider in the whole build, installed here before the client is built).
            let _ = rustls::crypto::ring::default_provider().install_default();
            let exporter = opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_protocol(Protocol::HttpBinary)
                .with_endpoint(traces_url(endpoint))
                .build()
                .map_err(|e| TracesError::Exporter(e.to_string()))?;
            let resource = Resource::builder();
            // `OTEL_SERVICE_NAME` (or `service.name` in `OTEL_RESOURCE_ATTRIBUTES`) wins.
            let named = std::env::var_os("OTEL_SERVICE_NAME").is_some()
                || std::env::var("OTEL_RESOURCE_ATTRIBUTES").is_ok_and(|a| a.contains("service.name="));
            let resource = if named { resource } else { resource.with_service_name("crm-server") };
            let provider =
                SdkTracerProvider::builder().with_batch_exporter(exporter).with_resource(resource.build()).build();
            ENABLED.store(true, Ordering::Relaxed);
            Ok(Self { provider })
        }

        pub(super) fn layer<S>(&self) -> impl Layer<S> + use<S>
        where
            S: tracing::Subscriber + for<'a> LookupSpan<'a>,
        {
            let tracer = self.provider.tracer("crm-http");
            tracing_opentelemetry::layer()
                .with_tracer(tracer)
                .with_filter(tracing_subscriber::filter::filter_fn(|meta| meta.target() == TARGET))
        }

        pub(super) fn shutdown(self) {
            ENABLED.store(false, Ordering::Relaxed);
            if let Err(e) = self.provider.shutdown() {
                tracing::warn!(error = %e, "traces: the last spans could not be exported");
            }
        }
    }

    /// The span of one request, or none.
    pub(crate) struct RequestSpan(Span);

    impl RequestSpan {
        /// The span of a request with these headers: the child of the caller's span when
        /// they carry a valid W3C trace context (`traceparent`, `tracestate`), else the
        /// root of a new trace.
        pub(crate) fn start(method: &str, headers: &HeaderMap) -> Self {
            if !enabled() {
                return Self(Span::none());
            }
            let span = tracing::info_span!(
                target: TARGET,
                "request",
                otel.name = method,
                otel.kind = "server",
                otel.status_code = Empty,
                http.request.method = method,
                http.route = Empty,
                http.response.status_code = Empty,
            );
            let caller = TraceContextPropagator::new().extract(&Headers(headers));
            if caller.span().span_context().is_valid() {
                // Fails only when the span takes no parent (disabled, or no OpenTelemetry
                // layer, or already started): the request is then traced on its own.
                let _ = span.set_parent(caller);
            }
            Self(span)
        }

        pub(crate) fn wrap<F: Future>(&self, call: F) -> tracing::instrument::Instrumented<F> {
            tracing::Instrument::instrument(call, self.0.clone())
        }

        pub(crate) fn done(&self, method: &str, route: Option<&str>, status: u16) {
            if self.0.is_none() {
                return;
            }
            if let Some(route) = route {
                // The exported span is started by now: `otel.name` no longer renames it.
                self.0.context().span().update_name(format!("{method} {route}"));
                self.0.record("http.route", route);
            }
            self.0.record("http.response.status_code", i64::from(status));
            if status >= 500 {
                self.0.record("otel.status_code", "error");
            }
        }
    }

    /// A request's headers as the propagator reads them (a value that is not visible
    /// ASCII is absent).
    struct Headers<'a>(&'a HeaderMap);

    impl Extractor for Headers<'_> {
        fn get(&self, key: &str) -> Option<&str> {
            self.0.get(key).and_then(|value| value.to_str().ok())
        }

        fn keys(&self) -> Vec<&str> {
            self.0.keys().map(|name| name.as_str()).collect()
        }
    }

    /// The span of one storage call, or none (no request is being traced).
    pub(crate) struct StorageSpan(Span);

    impl StorageSpan {
        pub(crate) fn start(name: &'static str, operation: &'static str, adapter: &str) -> Self {
            let within_request = enabled() && Span::current().metadata().is_some_and(|m| m.target() == TARGET);
            if !within_request {
                return Self(Span::none());
            }
            Self(tracing::info_span!(
                target: TARGET,
                "storage",
                otel.name = name,
                otel.status_code = Empty,
                storage.operation = operation,
                storage.adapter = adapter,
                error.type = Empty,
            ))
        }

        pub(crate) fn wrap<F: Future>(&self, call: F) -> tracing::instrument::Instrumented<F> {
            tracing::Instrument::instrument(call, self.0.clone())
        }

        pub(crate) fn failed(&self, error: &'static str) {
            if !self.0.is_none() {
                self.0.record("error.type", error);
                self.0.record("otel.status_code", "error");
            }
        }
    }

    /// `task` in the current span, when traces are on: for work a request spawns.
    pub(crate) fn in_current<F: Future>(task: F) -> tracing::instrument::Instrumented<F> {
        let span = if enabled() { Span::current() } else { Span::none() };
        tracing::Instrument::instrument(task, span)
    }
}

#[cfg(not(feature = "otlp"))]
mod enabled {
    use super::TracesError;

    pub(crate) fn enabled() -> bool {
        false
    }

    pub(super) enum Pipeline {}

    impl Pipeline {
        pub(super) fn start(_endpoint: &str) -> Result<Self, TracesError> {
            Err(TracesError::NotBuilt)
        }

        // The signature of the `otlp` build's, so that callers name `S` the same way.
        #[allow(clippy::extra_unused_type_parameters)]
        pub(super) fn layer<S: tracing::Subscriber>(&self) -> tracing_subscriber::layer::Identity {
            match *self {}
        }

        pub(super) fn shutdown(self) {
            match self {}
        }
    }

    /// Nothing: this build makes no span.
    pub(crate) struct RequestSpan;

    impl RequestSpan {
        pub(crate) fn start(_method: &str, _headers: &poem::http::HeaderMap) -> Self {
            Self
        }

        pub(crate) fn wrap<F: Future>(&self, call: F) -> F {
            call
        }

        pub(crate) fn done(&self, _method: &str, _route: Option<&str>, _status: u16) {}
    }

    /// Nothing: this build makes no span.
    pub(crate) struct StorageSpan;

    impl StorageSpan {
        pub(crate) fn start(_name: &'static str, _operation: &'static str, _adapter: &str) -> Self {
            Self
        }

        pub(crate) fn wrap<F: Future>(&self, call: F) -> F {
            call
        }

        pub(crate) fn failed(&self, _error: &'static str) {}
    }

    pub(crate) fn in_current<F: Future>(task: F) -> F {
        task
    }
}

pub(crate) use enabled::{RequestSpan, StorageSpan, in_current};

/// Whether spans are being exported (a [`Traces`] with an endpoint is running).
pub fn enabled() -> bool {
    enabled::enabled()
}

/// The trace pipeline of a process: started before the `tracing` subscriber is
/// installed (it provides one of its layers), shut down at exit to export the last
/// spans. Holds nothing without an endpoint.
pub struct Traces {
    pipeline: Option<enabled::Pipeline>,
}

impl Traces {
    /// Starts exporting to `endpoint` ([`traces_url`]); without one, does nothing. In
    /// a build without the `otlp` feature an endpoint is [`TracesError::NotBuilt`].
    pub fn start(endpoint: Option<&str>) -> Result<Self, TracesError> {
        Ok(Self { pipeline: endpoint.map(enabled::Pipeline::start).transpose()? })
    }

    /// The layer that exports the spans of [`TARGET`], for the process's subscriber;
    /// `None` without an endpoint.
    pub fn layer<S>(&self) -> Option<impl tracing_subscriber::Layer<S> + use<S>>
    where
        S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    {
        self.pipeline.as_ref().map(enabled::Pipeline::layer::<S>)
    }

    /// Exports the spans still batched and stops the exporter (waits for it: call it
    /// outside the async runtime, as the process ends).
    pub fn shutdown(self) {
        if let Some(pipeline) = self.pipeline {
            pipeline.shutdown();
        }
    }
}

impl std::fmt::Debug for Traces {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Traces").field("exporting", &self.pipeline.is_some()).finish()
    }
}
