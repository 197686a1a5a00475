//! Throwaway Redis servers for tests and benchmarks (feature `testing`).
//!
//! [`shared_server`] starts one `redis-server` per test process, unless
//! `CRM_TEST_REDIS_URL` names a server to use instead. Tests sharing it stay apart by key
//! prefix ([`unique_prefix`]), never by `FLUSHDB`. [`TestRedis::start`] starts a server
//! of a test's own, which the test may stop and start again (an outage).
//!
//! A started server listens on a unix socket in its own temporary directory only (no
//! TCP port, so parallel test processes cannot collide) and keeps nothing on disk
//! (`--save '' --appendonly no`). A watchdog shell stops it and deletes the directory
//! when the process exits, however it exits.
//!
//! When no server can be had, the functions fail with a message saying what to install
//! or set: tests that need Redis never pass without it.

use std::{
    io::Write,
    path::{Path, PathBuf},
    process::{Child, ChildStdin, Command, Stdio},
    sync::{Mutex, OnceLock, PoisonError},
    time::{Duration, Instant},
};

use redis::aio::ConnectionManager;

/// The environment variable naming an existing server to test against
/// (`redis://127.0.0.1:6379/`); when unset, a server is started from `redis-server`.
pub const REDIS_URL_VAR: &str = "CRM_TEST_REDIS_URL";

fn fail(what: &str, detail: impl std::fmt::Display) -> String {
    format!(
        "cannot start a Redis server for the tests: {what}: {detail}\n\
         Fix: install Redis (Debian: `apt-get install -y redis-server`, which provides \
         /usr/bin/redis-server; `bash scripts/test.sh` does it), or point {REDIS_URL_VAR} at a \
         server the tests may write to (e.g. redis://127.0.0.1:6379/)."
    )
}

/// A `redis-server` process of this test process, on a unix socket.
pub struct TestRedis {
    dir: PathBuf,
    server: Mutex<Option<Child>>,
    /// Closing its stdin (dropping the server, or the process exiting) makes the
    /// watchdog stop the server and delete its directory.
    watchdog: Mutex<Option<(Child, ChildStdin)>>,
}

impl std::fmt::Debug for TestRedis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestRedis").field("dir", &self.dir).finish()
    }
}

impl TestRedis {
    /// Starts a new, empty server and waits until it answers. Blocking (a few
    /// milliseconds); call it from `spawn_blocking` in async code.
    pub fn start() -> Result<Self, String> {
        let dir =
            tempfile::Builder::new().prefix("crm-redis-").tempdir().map_err(|e| fail("creating a temp dir", e))?.keep();
        // The pid file names whichever server runs now, restarted ones included.
        let script =
            format!("cat >/dev/null; kill \"$(cat '{0}/redis.pid')\" 2>/dev/null; rm -rf '{0}'", dir.display());
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(script)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| fail("starting the watchdog", e))?;
        let stdin = child.stdin.take().ok_or_else(|| fail("starting the watchdog", "no stdin"))?;
        let redis = Self { dir, server: Mutex::new(None), watchdog: Mutex::new(Some((child, stdin))) };
        redis.restart()?;
        Ok(redis)
    }

    /// Starts the server again after [`TestRedis::kill`], on the same socket and empty
    /// (it keeps nothing on disk), and waits until it answers.
    pub fn restart(&self) -> Result<(), String> {
        let _ = std::fs::remove_file(self.socket());
        let log = std::fs::File::create(self.dir.join("server.log")).map_err(|e| fail("creating the log", e))?;
        let child = Command::new("redis-server")
            .args(["--port", "0", "--unixsocket"])
            .arg(self.socket())
            .args(["--unixsocketperm", "700", "--save", "", "--appendonly", "no", "--daemonize", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .arg("--pidfile")
            .arg(self.dir.join("redis.pid"))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| fail("running redis-server", e))?;
        *self.server.lock().unwrap_or_else(PoisonError::into_inner) = Some(child);
        self.wait_until_ready()
    }

    fn wait_until_ready(&self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(10);
        let client = redis::Client::open(self.url()).map_err(|e| fail("the socket URL", e))?;
        loop {
            let answer = client.get_connection().and_then(|mut c| redis::cmd("PING").query::<String>(&mut c));
            match answer {
                Ok(_) => return Ok(()),
                Err(e) if Instant::now() > deadline => {
                    let log = std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default();
                    return Err(fail("the server did not answer within 10 s", format!("{e}\nserver log:\n{log}")));
                }
                Err(_) => std::thread::sleep(Duration::from_millis(10)),
            }
        }
    }

    /// Kills the server (SIGKILL: an outage as clients see one); its data is lost.
    pub fn kill(&self) -> Result<(), String> {
        let taken = self.server.lock().unwrap_or_else(PoisonError::into_inner).take();
        if let Some(mut child) = taken {
            child.kill().map_err(|e| format!("killing redis-server: {e}"))?;
            child.wait().map_err(|e| format!("waiting for redis-server: {e}"))?;
        }
        Ok(())
    }

    /// Freezes the server (SIGSTOP): clients' commands time out, but what it holds
    /// stays, as in a network partition. [`TestRedis::resume`] lets it go on.
    pub fn pause(&self) -> Result<(), String> {
        self.signal("-STOP")
    }

    /// Lets a paused server go on (SIGCONT).
    pub fn resume(&self) -> Result<(), String> {
        self.signal("-CONT")
    }

    fn signal(&self, signal: &str) -> Result<(), String> {
        let pid = self.server.lock().unwrap_or_else(PoisonError::into_inner).as_ref().map(Child::id);
        let pid = pid.ok_or("the server is not running")?;
        let status = Command::new("kill").arg(signal).arg(pid.to_string()).status();
        match status {
            Ok(s) if s.success() => Ok(()),
            other => Err(format!("kill {signal} {pid}: {other:?}")),
        }
    }

    /// The unix socket the server listens on.
    pub fn socket(&self) -> PathBuf {
        self.dir.join("redis.sock")
    }

    /// The URL to connect to it.
    pub fn url(&self) -> String {
        unix_url(&self.socket())
    }
}

fn unix_url(socket: &Path) -> String {
    format!("redis+unix://{}", socket.display())
}

impl Drop for TestRedis {
    fn drop(&mut self) {
        let _ = self.kill();
        let taken = self.watchdog.get_mut().map(Option::take).unwrap_or_else(|p| p.into_inner().take());
        if let Some((mut child, mut stdin)) = taken {
            let _ = stdin.flush();
            drop(stdin);
            let _ = child.wait();
        }
    }
}

/// Where the tests' keys live: a started server or `CRM_TEST_REDIS_URL`.
#[derive(Debug)]
pub enum Target {
    /// A server this process started.
    Local(TestRedis),
    /// An existing server.
    External(String),
}

impl Target {
    /// The URL to connect to.
    pub fn url(&self) -> String {
        match self {
            Self::Local(server) => server.url(),
            Self::External(url) => url.clone(),
        }
    }
}

/// The process's test server: `CRM_TEST_REDIS_URL` when set, else one started on first
/// use and stopped when the process exits. Panics, with the fix in the message, when
/// none can be had.
pub fn shared_server() -> &'static Target {
    static TARGET: OnceLock<Result<Target, String>> = OnceLock::new();
    let target = TARGET.get_or_init(|| match std::env::var(REDIS_URL_VAR) {
        Ok(url) if !url.trim().is_empty() => Ok(Target::External(url)),
        _ => TestRedis::start().map(Target::Local),
    });
    match target {
        Ok(t) => t,
        // A test that needs Redis must fail, never pass, without it.
        #[allow(clippy::panic)]
        Err(e) => panic!("{e}"),
    }
}

/// A key prefix no other test uses (`crm-test:<uuid>:`).
pub fn unique_prefix() -> String {
    format!("crm-test:{}:", uuid::Uuid::now_v7().simple())
}

/// A connection to the process's test server, made on the calling test's runtime
/// (connections must not cross tokio runtimes, and each `#[tokio::test]` has its own).
/// Panics with the fix when there is no server.
#[allow(clippy::panic)]
pub async fn connection() -> ConnectionManager {
    let target = match tokio::task::spawn_blocking(shared_server).await {
        Ok(t) => t,
        Err(e) => panic!("starting the test Redis server: {e}"),
    };
    let url = target.url();
    match crate::connect(&url).await {
        Ok(c) => c,
        Err(e) => panic!("{}", fail(&format!("connecting to {url}"), e)),
    }
}
