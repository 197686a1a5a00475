//! A real SMTP server for tests: Python's `aiosmtpd`, started on a
//! free loopback port, storing what it receives in a maildir that the test reads back
//! (envelope recipients, subject, text and HTML bodies). It stops when dropped, and by
//! itself when the test process dies (it exits when its standard input closes).
//!
//! Needs `python3` with `aiosmtpd` (Debian: `apt-get install python3-aiosmtpd`, which
//! `scripts/test.sh` installs); `CRM_TEST_PYTHON` names another interpreter.

#![allow(clippy::unwrap_used, clippy::panic)]

use std::{
    io::{BufRead, BufReader},
    net::TcpListener,
    process::{Child, ChildStdin, Command, Stdio},
    sync::mpsc,
    time::Duration,
};

/// The server: runs aiosmtpd's `Mailbox` handler until its stdin closes.
const SERVER: &str = r#"
import sys
from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Mailbox
controller = Controller(Mailbox(sys.argv[1]), hostname="127.0.0.1", port=int(sys.argv[2]))
controller.start()
print("ready", flush=True)
sys.stdin.read()
controller.stop()
"#;

/// Reads the maildir back as JSON, bodies decoded.
const READER: &str = r#"
import json, mailbox, sys
from email.header import decode_header, make_header
box = mailbox.Maildir(sys.argv[1], create=False)
out = []
for key in sorted(box.keys()):
    msg = box[key]
    bodies = {}
    for part in msg.walk():
        kind = part.get_content_type()
        if kind in ("text/plain", "text/html") and kind not in bodies:
            bodies[kind] = part.get_payload(decode=True).decode(part.get_content_charset() or "utf-8")
    out.append({
        "rcpt_to": [r.strip() for r in str(msg["X-RcptTo"]).split(",")],
        "mail_from": str(msg["X-MailFrom"]),
        "subject": str(make_header(decode_header(msg["Subject"]))),
        "text": bodies.get("text/plain", ""),
        "html": bodies.get("text/html", ""),
    })
print(json.dumps(out))
"#;

/// One message as the server received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedMail {
    /// The envelope's recipients (`RCPT TO`).
    pub rcpt_to: Vec<String>,
    /// The envelope's sender (`MAIL FROM`).
    pub mail_from: String,
    /// The decoded subject.
    pub subject: String,
    /// The decoded plain-text body.
    pub text: String,
    /// The decoded HTML body.
    pub html: String,
}

/// A running SMTP server on 127.0.0.1.
#[derive(Debug)]
pub struct SmtpSink {
    child: Child,
    // Held open: the server exits when it closes.
    _stdin: ChildStdin,
    port: u16,
    dir: tempfile::TempDir,
    python: String,
}

fn python() -> String {
    std::env::var("CRM_TEST_PYTHON").ok().unwrap_or_else(|| {
        // Debian's package installs into the system interpreter, which a user's PATH
        // may shadow (pyenv and the like).
        ["/usr/bin/python3", "python3"]
            .into_iter()
            .find(|p| {
                Command::new(p)
                    .args(["-c", "import aiosmtpd"])
                    .stderr(Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success())
            })
            .unwrap_or("python3")
            .to_owned()
    })
}

impl SmtpSink {
    /// Starts a server on a free port of 127.0.0.1; panics, with the fix, if it cannot.
    pub fn start() -> SmtpSink {
        let dir = tempfile::tempdir().unwrap();
        let python = python();
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut child = Command::new(&python)
            .args(["-c", SERVER])
            // A path that does not exist yet: Maildir creates its folders only then.
            .arg(dir.path().join("maildir"))
            .arg(port.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot run {python} ({e}): install python3 and python3-aiosmtpd, or set CRM_TEST_PYTHON")
            });
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (ready, wait) = mpsc::channel();
        std::thread::spawn(move || {
            let first = BufReader::new(stdout).lines().next().and_then(Result::ok);
            let _ = ready.send(first.as_deref() == Some("ready"));
        });
        if wait.recv_timeout(Duration::from_secs(20)) != Ok(true) {
            let _ = child.kill();
            panic!(
                "the test SMTP server ({python} with aiosmtpd on 127.0.0.1:{port}) did not start: \
                 install it with `apt-get install python3-aiosmtpd` (or `pip install aiosmtpd`), \
                 or set CRM_TEST_PYTHON to an interpreter that has it"
            );
        }
        SmtpSink { child, _stdin: stdin, port, dir, python }
    }

    /// `smtp://127.0.0.1:<port>`: plain SMTP, for `--smtp-url` and [`crate::Mailer::smtp`].
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// Every message received so far, in order of arrival.
    pub fn messages(&self) -> Vec<ReceivedMail> {
        let maildir = self.dir.path().join("maildir");
        let output = Command::new(&self.python).args(["-c", READER]).arg(&maildir).output().unwrap();
        assert!(output.status.success(), "reading the maildir failed: {}", String::from_utf8_lossy(&output.stderr));
        let parsed: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        let text = |m: &serde_json::Value, k: &str| m[k].as_str().unwrap_or_default().to_owned();
        parsed
            .as_array()
            .unwrap()
            .iter()
            .map(|m| ReceivedMail {
                rcpt_to: m["rcpt_to"].as_array().unwrap().iter().map(|r| r.as_str().unwrap().to_owned()).collect(),
                mail_from: text(m, "mail_from"),
                subject: text(m, "subject"),
                text: text(m, "text"),
                html: text(m, "html"),
            })
            .collect()
    }

    /// Waits until at least `count` messages arrived (at most `within`); returns them all.
    pub async fn wait_for(&self, count: usize, within: Duration) -> Vec<ReceivedMail> {
        let deadline = std::time::Instant::now() + within;
        loop {
            let messages = self.messages();
            if messages.len() >= count || std::time::Instant::now() >= deadline {
                return messages;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
