//! A real HTTP receiver on 127.0.0.1 for delivery tests and benches: a small HTTP/1.1
//! server on tokio that records each request and answers as told (status, body, a
//! delay, a `Location`). Hand-written so that a test controls every byte and every
//! stall. It runs on the runtime it was started on, until that runtime ends.

#![allow(clippy::unwrap_used)]

use std::{net::SocketAddr, sync::Arc, time::Duration};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::Mutex,
};

/// How the receiver answers.
#[derive(Clone, Debug)]
pub struct Answer {
    /// The status.
    pub status: u16,
    /// The body.
    pub body: Vec<u8>,
    /// How long to wait after reading the request, before answering.
    pub delay: Duration,
    /// A `Location` header.
    pub location: Option<String>,
}

impl Answer {
    /// `status` with a short body, at once.
    pub fn status(status: u16) -> Self {
        Answer { status, body: b"ok".to_vec(), delay: Duration::ZERO, location: None }
    }
}

/// One request as received.
#[derive(Clone, Debug)]
pub struct Received {
    /// The request's path.
    pub path: String,
    /// Its headers, names lower-cased.
    pub headers: Vec<(String, String)>,
    /// Its body.
    pub body: Vec<u8>,
}

impl Received {
    /// The value of header `name`, if sent.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// A running receiver; it stops with the test's runtime.
pub struct Receiver {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Every request received so far.
    pub received: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    /// Starts a receiver on a free port of 127.0.0.1 answering every request with `answer`.
    pub async fn start(answer: Answer) -> Receiver {
        Self::start_with(vec![answer]).await
    }

    /// Starts a receiver answering its requests with `answers` in order, the last one
    /// to every request after them.
    pub async fn start_with(answers: Vec<Answer>) -> Receiver {
        assert!(!answers.is_empty(), "a receiver needs an answer");
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("cannot bind a receiver on 127.0.0.1: is the loopback interface up?");
        let addr = listener.local_addr().unwrap();
        let received = Arc::new(Mutex::new(Vec::new()));
        let log = received.clone();
        tokio::spawn(async move {
            let mut answers = answers.into_iter().peekable();
            let mut last = None;
            while let Ok((stream, _)) = listener.accept().await {
                // Connections are taken in request order: each stream carries one request.
                let answer = answers.next().or_else(|| last.clone());
                if answers.peek().is_none() && last.is_none() {
                    last = answer.clone();
                }
                let Some(answer) = answer else { continue };
                tokio::spawn(serve(stream, answer, log.clone()));
            }
        });
        Receiver { addr, received }
    }

    /// `http://<addr><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Every request received so far.
    pub async fn requests(&self) -> Vec<Received> {
        self.received.lock().await.clone()
    }

    /// How many requests arrived so far.
    pub async fn count(&self) -> usize {
        self.received.lock().await.len()
    }
}

async fn serve(mut stream: TcpStream, answer: Answer, log: Arc<Mutex<Vec<Received>>>) {
    let Some(request) = read_request(&mut stream).await else { return };
    log.lock().await.push(request);
    tokio::time::sleep(answer.delay).await;
    let mut head =
        format!("HTTP/1.1 {} X\r\ncontent-length: {}\r\nconnection: close\r\n", answer.status, answer.body.len());
    if let Some(location) = &answer.location {
        head.push_str(&format!("location: {location}\r\n"));
    }
    head.push_str("\r\n");
    let _ = stream.write_all(head.as_bytes()).await;
    let _ = stream.write_all(&answer.body).await;
    let _ = stream.shutdown().await;
}

async fn read_request(stream: &mut TcpStream) -> Option<Received> {
    let mut data = Vec::new();
    let mut buf = [0u8; 8192];
    let head_end = loop {
        let n = stream.read(&mut buf).await.ok()?;
        if n == 0 {
            return None;
        }
        data.extend_from_slice(&buf[..n]);
        if let Some(i) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&data[..head_end]).to_string();
    let mut lines = head.split("\r\n");
    let path = lines.next()?.split(' ').nth(1)?.to_owned();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let length: usize =
        headers.iter().find(|(n, _)| n == "content-length").and_then(|(_, v)| v.parse().ok()).unwrap_or(0);
    let mut body = data[head_end..].to_vec();
    while body.len() < length {
        let n = stream.read(&mut buf).await.ok()?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&buf[..n]);
    }
    Some(Received { path, headers, body })
}
