//! The app on a real listener, driven by a keep-alive client over one socket: an answer
//! the server sends without reading the body either keeps the connection usable or says
//! `Connection: close`.

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::TcpStream,
    time::Duration,
};

use poem::{
    Server,
    listener::{Acceptor, Listener, TcpListener},
};

use crate::support::harness_with;

/// A response head and body, or `None` when the server closed the connection.
struct Answer {
    status: u16,
    close: bool,
}

fn exchange(stream: &mut TcpStream, reader: &mut BufReader<TcpStream>, request: &[u8]) -> Option<Answer> {
    // The head, then the body a moment later, as a client streaming a body does: the
    // server may answer before the body is in.
    let split = request.windows(4).position(|w| w == b"\r\n\r\n").map_or(request.len(), |at| at + 4);
    stream.write_all(&request[..split]).ok()?;
    if split < request.len() {
        std::thread::sleep(Duration::from_millis(5));
        let _ = stream.write_all(&request[split..]);
    }
    let mut line = String::new();
    if reader.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let status = line.split_whitespace().nth(1)?.parse().ok()?;
    let (mut length, mut close) = (0usize, false);
    loop {
        line.clear();
        reader.read_line(&mut line).ok()?;
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        let (name, value) = header.split_once(':')?;
        match name.to_ascii_lowercase().as_str() {
            "content-length" => length = value.trim().parse().ok()?,
            "connection" => close = value.trim().eq_ignore_ascii_case("close"),
            _ => {}
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some(Answer { status, close })
}

fn request(method: &str, path: &str, extra: &str, body: &str) -> Vec<u8> {
    format!(
        "{method} {path} HTTP/1.1\r\nhost: test\r\n{extra}content-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keep_alive_client_survives_answers_sent_without_reading_the_body() {
    let options = crm_http::AppOptions { body_limit: 1024, ..Default::default() };
    let h = harness_with(crm_http::limits::Limits::in_memory(1_000_000, 1_000_000, 1_000), options.clone()).await;
    let token = h.token(&h.w.admin).await;
    let app = crm_http::build(h.ctx.clone(), &options);
    let acceptor = TcpListener::bind("127.0.0.1:0").into_acceptor().await.unwrap();
    let addr = acceptor.local_addr()[0].as_socket_addr().unwrap().to_string();
    let server = tokio::spawn(Server::new_with_acceptor(acceptor).run(app));
    let auth = format!("authorization: Bearer {token}\r\n");
    let big = format!("{{\"first_name\":\"{}\",\"last_name\":\"y\"}}", "x".repeat(4096));
    let small = r#"{"first_name":"a","last_name":"b"}"#;
    let cases = [
        ("413", request("POST", "/api/v1/contacts", &auth, &big), 413),
        ("405", request("PUT", "/api/v1/contacts", &auth, small), 405),
        ("401", request("POST", "/api/v1/contacts", "", small), 401),
    ];
    let failures = tokio::task::spawn_blocking(move || {
        let mut failures = Vec::new();
        for (name, first, expected) in &cases {
            for attempt in 0..30 {
                let mut stream = TcpStream::connect(&addr).unwrap();
                stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let answer = exchange(&mut stream, &mut reader, first).expect("an answer");
                assert_eq!(answer.status, *expected, "{name}");
                if answer.close {
                    continue; // announced: the client opens a new connection
                }
                let next = exchange(&mut stream, &mut reader, &request("GET", "/health", "", ""));
                if next.as_ref().map(|a| a.status) != Some(200) {
                    failures.push(format!("{name} #{attempt}: the next request on the connection failed"));
                }
            }
        }
        failures
    })
    .await
    .unwrap();
    server.abort();
    assert!(failures.is_empty(), "{failures:#?}");
}
