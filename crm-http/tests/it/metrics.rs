//! `GET /metrics` on `--metrics-bind`, through the real binary: the scrape is valid
//! Prometheus text, and its counters and the job queues' depths move with the requests
//! served.

use std::{collections::BTreeMap, net::TcpListener};

use crm_core::storage::memory::MemoryStorage;
use crm_http::metrics::MeteredStorage;

use crate::binary::{access_token, data, http, http_as, start_with, stop};

/// The decorator is the storage it wraps (and names itself after it): the whole suite,
/// around memory.
mod metered {
    use super::*;

    crm_core::conformance_suite!(memory, || async {
        std::sync::Arc::new(MeteredStorage::new(MemoryStorage::shared()))
    });
}

/// Every sample of a scrape, by its name and labels as written (`name{a="b"}`). Fails
/// on any line that is neither a comment nor `series value`.
fn parse(scrape: &str) -> BTreeMap<String, f64> {
    let mut samples = BTreeMap::new();
    for line in scrape.lines().filter(|l| !l.is_empty()) {
        if let Some(comment) = line.strip_prefix('#') {
            let kind = comment.split_whitespace().next();
            assert!(matches!(kind, Some("HELP" | "TYPE")), "not a Prometheus comment: {line}");
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("no value: {line}"));
        let name_end = series.find('{').unwrap_or(series.len());
        let name = &series[..name_end];
        assert!(
            !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "bad metric name: {line}"
        );
        if name_end < series.len() {
            assert!(series.ends_with('}'), "unclosed labels: {line}");
        }
        let value: f64 = value.parse().unwrap_or_else(|_| panic!("bad value: {line}"));
        samples.insert(series.to_owned(), value);
    }
    samples
}

fn value(samples: &BTreeMap<String, f64>, series: &str) -> f64 {
    samples.get(series).copied().unwrap_or_else(|| panic!("no `{series}` in the scrape: {samples:#?}"))
}

#[test]
fn the_scrape_parses_and_its_counters_move() {
    let dir = tempfile::tempdir().unwrap();
    let metrics_addr = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().to_string();
    // No workers: the report run requested below stays in its queue.
    let running = start_with("memory://", dir.path(), &["--metrics-bind", &metrics_addr, "--no-workers"]);
    let token = access_token(&running.addr);
    let (status, body) = http_as(&running.addr, "POST", "/api/v1/companies", r#"{"name":"Metered Ltd"}"#, Some(&token));
    assert_eq!(status, 201, "{body}");
    let id = data(&body)["meta"]["id"].as_str().unwrap().to_owned();
    let path = format!("/api/v1/companies/{id}");
    assert_eq!(http_as(&running.addr, "GET", &path, "", Some(&token)).0, 200);
    assert_eq!(http_as(&running.addr, "GET", &path, "", Some("not-a-token")).0, 401);
    assert_eq!(http(&running.addr, "GET", "/no/such/route", "").0, 404);

    let (status, scrape) = http(&metrics_addr, "GET", "/metrics", "");
    assert_eq!(status, 200, "{scrape}");
    let first = parse(&scrape);
    let by_id = r#"crm_http_requests_total{method="GET",route="/api/v1/companies/:param0",status="200"}"#;
    assert_eq!(value(&first, by_id), 1.0);
    assert_eq!(
        value(&first, r#"crm_http_requests_total{method="GET",route="/api/v1/companies/:param0",status="401"}"#),
        1.0
    );
    assert_eq!(value(&first, r#"crm_http_requests_total{method="GET",route="unmatched",status="404"}"#), 1.0);
    let latency =
        r#"crm_http_request_duration_seconds_count{method="GET",route="/api/v1/companies/:param0",status="200"}"#;
    assert_eq!(value(&first, latency), 1.0);
    assert!(value(&first, r#"crm_authentications_total{credential="session",outcome="ok"}"#) >= 2.0);
    assert!(value(&first, r#"crm_authentications_total{credential="session",outcome="refused"}"#) >= 1.0);
    assert!(value(&first, r#"crm_rate_limit_decisions_total{limit="ip",outcome="allowed"}"#) >= 4.0);
    assert!(value(&first, r#"crm_storage_call_duration_seconds_count{operation="commit",adapter="memory"}"#) >= 1.0);
    assert!(value(&first, "process_resident_memory_bytes") > 1e6);
    assert!(value(&first, "process_open_fds") > 0.0);
    assert!(value(&first, "crm_outbox_lag_seconds") >= 0.0);
    let due_reports = r#"crm_job_queue_depth{queue="reports",state="due"}"#;
    assert_eq!(value(&first, due_reports), 0.0);
    for state in ["due", "delayed", "reserved", "dead"] {
        for queue in ["webhooks", "emails", "reports"] {
            value(&first, &format!(r#"crm_job_queue_depth{{queue="{queue}",state="{state}"}}"#));
        }
    }

    // One more read: its counter and the storage's reads move by what was served.
    let gets = r#"crm_storage_call_duration_seconds_count{operation="get",adapter="memory"}"#;
    assert_eq!(http_as(&running.addr, "GET", &path, "", Some(&token)).0, 200);
    // A report run waits in its queue (no workers here): the queue's depth shows it.
    let (status, body) = http_as(&running.addr, "POST", "/api/v1/reports/pipeline/runs", "{}", Some(&token));
    assert_eq!(status, 201, "{body}");
    let second = parse(&http(&metrics_addr, "GET", "/metrics", "").1);
    assert_eq!(value(&second, by_id), 2.0);
    assert!(value(&second, gets) > value(&first, gets));
    assert_eq!(value(&second, due_reports), 1.0);
    // The API does not serve the scrape.
    assert_eq!(http(&running.addr, "GET", "/metrics", "").0, 404);
    stop(running);
}
