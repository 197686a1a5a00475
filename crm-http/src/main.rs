//! `crm-server`: the CRM's REST server. `crm-server --help` lists every setting.

use clap::Parser;
use crm_http::{
    config::{Config, LogFormat},
    traces::{Traces, not_traced},
};
use tracing_subscriber::{
    EnvFilter, Layer as _, filter::FilterExt as _, layer::SubscriberExt as _, util::SubscriberInitExt as _,
};

fn main() -> std::process::ExitCode {
    let config = Config::parse();
    // Before the runtime: the exporter's blocking HTTP client runs on threads of its own.
    let traces = match Traces::start(config.otlp_endpoint.as_deref()) {
        Ok(traces) => traces,
        Err(e) => {
            eprintln!("crm-server: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let filter = EnvFilter::try_new(&config.log_level).unwrap_or_else(|_| EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let logs = match config.log_format {
        LogFormat::Json => logs.json().flatten_event(true).boxed(),
        LogFormat::Pretty => logs.boxed(),
    };
    tracing_subscriber::registry().with(traces.layer()).with(logs.with_filter(filter.and(not_traced()))).init();
    if let Some(endpoint) = &config.otlp_endpoint {
        tracing::info!(endpoint = %crm_http::traces::traces_url(endpoint), "traces: exporting over OTLP/HTTP");
    }
    let outcome = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime.block_on(crm_http::server::run(config)).map_err(|e| e.to_string()),
        Err(e) => Err(format!("the async runtime could not start: {e}")),
    };
    // The last spans are exported before the process ends.
    traces.shutdown();
    match outcome {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "crm-server stopped");
            eprintln!("crm-server: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
