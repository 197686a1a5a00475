//! Traces over OTLP/HTTP through the real binary (`--otlp-endpoint`, feature `otlp`):
//! a receiver on 127.0.0.1 decodes what the server posts to `/v1/traces`, and finds a
//! span per request with the storage calls as its children, in the caller's trace when
//! the request carries a W3C `traceparent`.

use std::{
    collections::HashMap,
    io::{BufRead, BufReader, Read, Write},
    net::{TcpListener, TcpStream},
    sync::mpsc,
    time::Duration,
};

use crm_http::traces::traces_url;
use opentelemetry_proto::tonic::{
    collector::trace::v1::ExportTraceServiceRequest,
    common::v1::{AnyValue, KeyValue, any_value::Value},
    trace::v1::{Span, span::SpanKind},
};
use prost::Message as _;

use crate::binary::{access_token, data, http_as, http_with, start_with, stop};

/// A request the receiver got: its path and body.
struct Export {
    path: String,
    body: Vec<u8>,
}

/// A tiny OTLP/HTTP receiver: answers every POST with 200 and hands its body over.
fn receiver() -> (String, mpsc::Receiver<Export>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            let tx = tx.clone();
            std::thread::spawn(move || serve(stream, &tx));
        }
    });
    (addr, rx)
}

/// Serves the requests of one keep-alive connection.
fn serve(stream: TcpStream, tx: &mpsc::Sender<Export>) {
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
            return;
        }
        let path = request_line.split_whitespace().nth(1).unwrap_or_default().to_owned();
        let mut length = 0;
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().unwrap();
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        // Handed over before the answer: once the exporter has its 200, the test has the body.
        let _ = tx.send(Export { path, body });
        writer
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n")
            .unwrap();
    }
}

/// The trace and span of a caller, as its `traceparent` header carries them (the W3C
/// Trace Context specification's example).
const CALLER_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";

/// Bytes as lowercase hex, the way trace and span ids are written in headers.
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn attribute<'a>(attributes: &'a [KeyValue], key: &str) -> Option<&'a Value> {
    attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
        .and_then(|v: &AnyValue| v.value.as_ref())
}

fn text(attributes: &[KeyValue], key: &str) -> Option<String> {
    match attribute(attributes, key) {
        Some(Value::StringValue(s)) => Some(s.clone()),
        _ => None,
    }
}

fn int(attributes: &[KeyValue], key: &str) -> Option<i64> {
    match attribute(attributes, key) {
        Some(Value::IntValue(n)) => Some(*n),
        _ => None,
    }
}

#[test]
fn the_endpoint_gets_base_path_unless_it_names_one() {
    assert_eq!(traces_url("http://collector:4318"), "http://collector:4318/v1/traces");
    assert_eq!(traces_url("http://collector:4318/"), "http://collector:4318/v1/traces");
    assert_eq!(traces_url("https://otel.example/custom/traces"), "https://otel.example/custom/traces");
}

#[test]
fn requests_and_their_storage_calls_are_exported_as_nested_spans() {
    let (receiver_addr, exports) = receiver();
    let dir = tempfile::tempdir().unwrap();
    let endpoint = format!("http://{receiver_addr}");
    let running = start_with("memory://", dir.path(), &["--otlp-endpoint", &endpoint]);
    let token = access_token(&running.addr);
    let (status, body) = http_as(&running.addr, "POST", "/api/v1/companies", r#"{"name":"Traced Ltd"}"#, Some(&token));
    assert_eq!(status, 201, "{body}");
    let id = data(&body)["meta"]["id"].as_str().unwrap().to_owned();
    assert_eq!(http_as(&running.addr, "GET", &format!("/api/v1/companies/{id}"), "", Some(&token)).0, 200);
    // A caller's trace context is continued; a malformed one is ignored.
    let (authorization, caller) = (format!("Bearer {token}"), format!("00-{CALLER_TRACE}-{CALLER_SPAN}-01"));
    let traced = [("authorization", authorization.as_str()), ("traceparent", caller.as_str())];
    assert_eq!(http_with(&running.addr, "GET", "/api/v1/companies", "", &traced).0, 200);
    let malformed = [("traceparent", "00-not-a-trace-01")];
    assert_eq!(http_with(&running.addr, "GET", "/no/such/route", "", &malformed).0, 404);
    // A graceful stop exports what is still batched before the process exits.
    stop(running);

    let mut spans: Vec<Span> = Vec::new();
    while let Ok(export) = exports.recv_timeout(Duration::from_secs(2)) {
        assert_eq!(export.path, "/v1/traces", "a base URL gets the traces path");
        let request = ExportTraceServiceRequest::decode(export.body.as_slice()).expect("an OTLP protobuf body");
        for resource in request.resource_spans {
            let attributes = resource.resource.map(|r| r.attributes).unwrap_or_default();
            assert_eq!(text(&attributes, "service.name").as_deref(), Some("crm-server"));
            spans.extend(resource.scope_spans.into_iter().flat_map(|s| s.spans));
        }
    }
    let names: Vec<&str> = spans.iter().map(|s| s.name.as_str()).collect();
    let by_name = |name: &str| {
        spans.iter().find(|s| s.name == name).unwrap_or_else(|| panic!("no span `{name}` among {names:?}"))
    };

    let read = by_name("GET /api/v1/companies/:param0");
    assert_eq!(read.kind, SpanKind::Server as i32);
    assert!(read.parent_span_id.is_empty(), "a request's span is a root");
    assert_eq!(int(&read.attributes, "http.response.status_code"), Some(200));
    assert_eq!(text(&read.attributes, "http.route").as_deref(), Some("/api/v1/companies/:param0"));
    assert_eq!(text(&read.attributes, "http.request.method").as_deref(), Some("GET"));
    let write = by_name("POST /api/v1/companies");
    assert_eq!(int(&write.attributes, "http.response.status_code"), Some(201));
    let unmatched = by_name("GET");
    assert_eq!(int(&unmatched.attributes, "http.response.status_code"), Some(404));
    assert!(unmatched.parent_span_id.is_empty(), "a malformed traceparent starts a new trace");
    let continued = by_name("GET /api/v1/companies");
    assert_eq!(hex(&continued.trace_id), CALLER_TRACE, "the caller's trace goes on");
    assert_eq!(hex(&continued.parent_span_id), CALLER_SPAN, "the caller's span is the parent");
    assert_ne!(read.trace_id, continued.trace_id, "a request without a traceparent starts its own trace");

    // Every storage span is the child of a request span, in the request's trace.
    let requests: HashMap<&[u8], &Span> =
        spans.iter().filter(|s| s.kind == SpanKind::Server as i32).map(|s| (s.span_id.as_slice(), s)).collect();
    let storage: Vec<&Span> = spans.iter().filter(|s| s.name.starts_with("storage ")).collect();
    for span in &storage {
        let parent = requests
            .get(span.parent_span_id.as_slice())
            .unwrap_or_else(|| panic!("storage span `{}` has no request span as parent: {names:?}", span.name));
        assert_eq!(span.trace_id, parent.trace_id, "a child is in its parent's trace");
        assert!(
            span.start_time_unix_nano >= parent.start_time_unix_nano
                && span.end_time_unix_nano <= parent.end_time_unix_nano
        );
        assert_eq!(text(&span.attributes, "storage.adapter").as_deref(), Some("memory"));
        let operation = text(&span.attributes, "storage.operation").unwrap();
        assert_eq!(span.name, format!("storage {operation}"));
    }
    let children = |request: &Span| -> Vec<&str> {
        storage.iter().filter(|s| s.parent_span_id == request.span_id).map(|s| s.name.as_str()).collect()
    };
    assert!(children(read).contains(&"storage get"), "the read's storage calls: {:?}", children(read));
    assert!(children(write).contains(&"storage commit"), "the write's storage calls: {:?}", children(write));
}
