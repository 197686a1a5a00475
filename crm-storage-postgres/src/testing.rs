//! Throwaway PostgreSQL servers for tests and benchmarks (feature `testing`).
//!
//! [`shared_server`] starts one server per process from the local PostgreSQL binaries,
//! unless `CRM_TEST_DATABASE_URL` names a server to use instead; `fresh_database`
//! creates a new, empty database on it for each test. A started server listens on a
//! unix socket in its own temporary directory only (no TCP port), runs as the OS user
//! `postgres` when the process is root (`initdb` refuses root), and is stopped and
//! deleted by a watchdog when the process exits, however it exits.
//!
//! `initdb` runs once per machine: its result is kept as a template data directory in
//! the system temporary directory and copied for every server (≈0.2 s instead of ≈1.2 s).
//!
//! When no server can be started, the functions fail with a message saying what to
//! install or set: tests that need PostgreSQL never pass without it.

use std::{
    io::Write,
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
    process::{Child, ChildStdin, Command, Stdio},
    sync::{Mutex, OnceLock},
    time::Duration,
};

use uuid::Uuid;

use crate::{PostgresOptions, PostgresStorage};

/// The environment variable naming an existing server to test against (a URL whose
/// user may create databases); when unset, a server is started from local binaries.
pub const DATABASE_URL_VAR: &str = "CRM_TEST_DATABASE_URL";

/// Where to look for `initdb`, `pg_ctl` and `postgres` (besides `PG_BIN` and `PATH`).
const BIN_DIRS: &[&str] = &["/usr/lib/postgresql/17/bin", "/usr/lib/postgresql/16/bin", "/usr/lib/postgresql/15/bin"];

/// Bump when the template's initdb options change.
const TEMPLATE_VERSION: u32 = 1;

fn fail(what: &str, detail: impl std::fmt::Display) -> String {
    format!(
        "cannot start a PostgreSQL server for the tests: {what}: {detail}\n\
         Fix: install PostgreSQL 15+ server binaries (Debian: `apt-get install -y postgresql-15`, \
         which provides /usr/lib/postgresql/15/bin/initdb, pg_ctl and postgres; as root the OS user \
         `postgres` must exist), or set PG_BIN to their directory, or point {DATABASE_URL_VAR} at a \
         server whose user may CREATE DATABASE (e.g. postgres://postgres@127.0.0.1:5432/postgres)."
    )
}

/// The directory holding `initdb` and `pg_ctl`.
fn bin_dir() -> Result<PathBuf, String> {
    // PG_BIN, when set, is the only place looked at.
    let candidates: Vec<PathBuf> = match std::env::var_os("PG_BIN") {
        Some(dir) => vec![PathBuf::from(dir)],
        None => {
            let mut dirs: Vec<PathBuf> = BIN_DIRS.iter().map(PathBuf::from).collect();
            if let Some(path) = std::env::var_os("PATH") {
                dirs.extend(std::env::split_paths(&path));
            }
            dirs
        }
    };
    candidates
        .into_iter()
        .find(|d| d.join("initdb").is_file() && d.join("pg_ctl").is_file() && d.join("postgres").is_file())
        .ok_or_else(|| {
            fail("initdb, pg_ctl and postgres not found", "looked in PG_BIN, /usr/lib/postgresql/*/bin and PATH")
        })
}

fn is_root() -> bool {
    std::fs::metadata("/proc/self").map(|m| m.uid() == 0).unwrap_or(false)
}

/// The `postgres` OS user's uid and gid (from /etc/passwd).
fn postgres_user() -> Result<(u32, u32), String> {
    let passwd = std::fs::read_to_string("/etc/passwd").map_err(|e| fail("reading /etc/passwd", e))?;
    passwd
        .lines()
        .find_map(|line| {
            let f: Vec<&str> = line.split(':').collect();
            (f.first() == Some(&"postgres") && f.len() > 3).then(|| Some((f[2].parse().ok()?, f[3].parse().ok()?)))?
        })
        .ok_or_else(|| {
            fail("running as root", "there is no `postgres` OS user to run the server as (initdb refuses root)")
        })
}

/// A command run as the server's OS user: `runuser -u postgres --` when root.
fn as_server_user(program: &Path) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

fn run(mut cmd: Command, what: &str) -> Result<(), String> {
    let out = cmd.stdin(Stdio::null()).output().map_err(|e| fail(what, e))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(fail(
            what,
            format!("{}\n{}{}", out.status, String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)),
        ))
    }
}

/// A new directory owned by the server's OS user.
fn owned_dir(prefix: &str) -> Result<PathBuf, String> {
    let dir = tempfile::Builder::new().prefix(prefix).tempdir().map_err(|e| fail("creating a temp dir", e))?.keep();
    if is_root() {
        let (uid, gid) = postgres_user()?;
        std::os::unix::fs::chown(&dir, Some(uid), Some(gid)).map_err(|e| fail("chown to postgres", e))?;
    }
    Ok(dir)
}

/// The initdb'd template data directory, made once per machine.
fn template(bin: &Path) -> Result<PathBuf, String> {
    let uid = std::fs::metadata("/proc/self").map(|m| m.uid()).unwrap_or(0);
    // One template per PostgreSQL version: a data directory only works with its major.
    let version = Command::new(bin.join("postgres"))
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let version: String = version.chars().filter(char::is_ascii_digit).take(6).collect();
    let name = format!("crm-pg-template-v{TEMPLATE_VERSION}-pg{version}-uid{uid}");
    let path = std::env::temp_dir().join(name);
    if path.join("data").join("PG_VERSION").is_file() {
        return Ok(path);
    }
    let building = owned_dir("crm-pg-template-build-")?;
    let mut initdb = as_server_user(&bin.join("initdb"));
    initdb.arg("-D").arg(building.join("data")).args([
        "-U",
        "postgres",
        "-A",
        "trust",
        "-E",
        "UTF8",
        "--locale=C.UTF-8",
        "--no-sync",
        "--no-instructions",
    ]);
    if let Err(e) = run(initdb, "initdb") {
        let _ = std::fs::remove_dir_all(&building);
        return Err(e);
    }
    // Another process may have won the race: keep theirs.
    if std::fs::rename(&building, &path).is_err() {
        let _ = std::fs::remove_dir_all(&building);
    }
    Ok(path)
}

/// A running PostgreSQL server reached through a unix socket.
pub struct TestServer {
    bin: PathBuf,
    durable: bool,
    dir: PathBuf,
    /// Closing it (dropping the server, or the process exiting) makes the watchdog stop
    /// the server and delete its directory.
    watchdog: Mutex<Option<(Child, ChildStdin)>>,
}

impl std::fmt::Debug for TestServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestServer").field("dir", &self.dir).finish()
    }
}

impl TestServer {
    /// Starts a new server from a copy of the template data directory, tuned for tests
    /// (`fsync=off`: a crash of the machine may lose its data, which is thrown away
    /// anyway). Blocking (a fraction of a second); call it from `spawn_blocking` in
    /// async code.
    pub fn start() -> Result<Self, String> {
        Self::start_with(false)
    }

    /// Starts a server with PostgreSQL's default durability (`fsync`, synchronous
    /// commits): for benchmarks whose write figures must mean something.
    pub fn start_durable() -> Result<Self, String> {
        Self::start_with(true)
    }

    fn start_with(durable: bool) -> Result<Self, String> {
        let bin = bin_dir()?;
        let template = template(&bin)?;
        let dir = owned_dir("crm-pg-")?;
        let mut copy = as_server_user(Path::new("cp"));
        copy.arg("-a").arg(template.join("data")).arg(dir.join("data"));
        run(copy, "copying the template data directory")?;
        // The watchdog: waits for its stdin to close, then stops the server and removes
        // its directory.
        let script = format!(
            "cat >/dev/null; '{}' stop -D '{}/data' -m immediate >/dev/null 2>&1; rm -rf '{}'",
            bin.join("pg_ctl").display(),
            dir.display(),
            dir.display()
        );
        let mut watchdog = as_server_user(Path::new("sh"));
        let mut child = watchdog
            .arg("-c")
            .arg(script)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| fail("starting the watchdog", e))?;
        let stdin = child.stdin.take().ok_or_else(|| fail("starting the watchdog", "no stdin"))?;
        let server = Self { bin, durable, dir, watchdog: Mutex::new(Some((child, stdin))) };
        server.start_postgres()?;
        Ok(server)
    }

    fn start_postgres(&self) -> Result<(), String> {
        let mut pg_ctl = as_server_user(&self.bin.join("pg_ctl"));
        pg_ctl
            .arg("start")
            .arg("-D")
            .arg(self.dir.join("data"))
            .arg("-l")
            .arg(self.dir.join("server.log"))
            .args(["-w", "-t", "60", "-o"])
            .arg(format!(
                "-k {} -c listen_addresses='' -p 5432 -c max_connections=200 -c shared_buffers=256MB {}",
                self.dir.display(),
                if self.durable { "" } else { "-c fsync=off -c synchronous_commit=off -c full_page_writes=off" }
            ));
        run(pg_ctl, "pg_ctl start").map_err(|e| {
            let log = std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default();
            format!("{e}\nserver log:\n{log}")
        })
    }

    /// Stops the server (`fast`: aborts sessions, like a crash of the clients' world).
    pub fn stop(&self) -> Result<(), String> {
        let mut pg_ctl = as_server_user(&self.bin.join("pg_ctl"));
        pg_ctl.arg("stop").arg("-D").arg(self.dir.join("data")).args(["-m", "fast", "-w"]);
        run(pg_ctl, "pg_ctl stop")
    }

    /// Kills the server without a shutdown checkpoint (`immediate`: what a crash of
    /// PostgreSQL looks like; it replays its WAL on the next start).
    pub fn crash(&self) -> Result<(), String> {
        let mut pg_ctl = as_server_user(&self.bin.join("pg_ctl"));
        pg_ctl.arg("stop").arg("-D").arg(self.dir.join("data")).args(["-m", "immediate", "-w"]);
        run(pg_ctl, "pg_ctl stop -m immediate")
    }

    /// Stops the server and leaves its socket refusing connections: what clients see
    /// of a host that is up while its PostgreSQL is not (a TCP connection refused). A
    /// missing socket file fails a connection at once; a refused one is what sqlx's pool
    /// retries until its acquire timeout, so this is the outage that makes callers wait.
    pub fn stop_refusing(&self) -> Result<(), String> {
        self.stop()?;
        // Binding creates the socket file; dropping the listener closes it without
        // removing the file, so connecting to it is refused.
        let listener = std::os::unix::net::UnixListener::bind(self.socket_path())
            .map_err(|e| fail("leaving a refusing socket", e))?;
        drop(listener);
        Ok(())
    }

    /// Starts the server again after [`TestServer::stop`], [`TestServer::stop_refusing`]
    /// or [`TestServer::crash`].
    pub fn restart(&self) -> Result<(), String> {
        // A socket file left by `stop_refusing` (owned by this process's user) would be
        // in the server's way.
        let _ = std::fs::remove_file(self.socket_path());
        self.start_postgres()
    }

    /// Stops every process of the server (`SIGSTOP`) without closing anything: open
    /// connections stay open and silent, what clients see of a frozen host or a cut
    /// network. [`TestServer::thaw`] resumes it.
    pub fn freeze(&self) -> Result<(), String> {
        self.signal_all("-STOP")
    }

    /// Resumes a server stopped by [`TestServer::freeze`].
    pub fn thaw(&self) -> Result<(), String> {
        self.signal_all("-CONT")
    }

    /// Sends `signal` to the postmaster and its children (the backends).
    fn signal_all(&self, signal: &str) -> Result<(), String> {
        let pid_file = self.dir.join("data").join("postmaster.pid");
        let pids = std::fs::read_to_string(&pid_file).map_err(|e| fail("reading postmaster.pid", e))?;
        let postmaster = pids.lines().next().unwrap_or_default().trim().to_owned();
        let mut targets = vec![postmaster.clone()];
        for entry in std::fs::read_dir("/proc").map_err(|e| fail("listing /proc", e))?.flatten() {
            let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
            // `pid (comm) state ppid …`: the command may hold spaces, so split after `)`.
            let parent = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().nth(1));
            if parent == Some(postmaster.as_str()) {
                targets.push(entry.file_name().to_string_lossy().into_owned());
            }
        }
        let mut kill = Command::new("kill");
        kill.arg(signal).args(&targets);
        run(kill, "signalling the server's processes")
    }

    fn socket_path(&self) -> PathBuf {
        self.dir.join(".s.PGSQL.5432")
    }

    /// The socket directory (for `psql -h` or `pgbench -h`).
    pub fn socket_dir(&self) -> &Path {
        &self.dir
    }

    /// The directory of the PostgreSQL binaries used (for `pgbench`, `psql`).
    pub fn bin_dir(&self) -> &Path {
        &self.bin
    }

    /// A command running one of the PostgreSQL client programs (`pgbench`, `psql`,
    /// `createdb`) against this server, as the server's OS user, with `-h`, `-p` and
    /// `-U` already given.
    pub fn client(&self, program: &str) -> Command {
        let local = self.bin.join(program);
        let path = if local.is_file() { local } else { PathBuf::from(program) };
        let mut cmd = as_server_user(&path);
        cmd.arg("-h").arg(&self.dir).args(["-p", "5432", "-U", "postgres"]);
        cmd
    }

    /// A connection URL for a database on this server.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@localhost/{database}?host={}", self.dir.display())
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let taken = self.watchdog.get_mut().map(Option::take).unwrap_or_else(|p| p.into_inner().take());
        if let Some((mut child, mut stdin)) = taken {
            let _ = stdin.flush();
            drop(stdin);
            let _ = child.wait();
        }
    }
}

/// Where the tests' databases live: a started server or `CRM_TEST_DATABASE_URL`.
#[derive(Debug)]
pub enum Target {
    /// A server this process started.
    Local(TestServer),
    /// An existing server: the URL of a database whose user may create databases.
    External(String),
}

impl Target {
    /// The URL of `database` on this target.
    pub fn url(&self, database: &str) -> String {
        match self {
            Self::Local(server) => server.url(database),
            Self::External(url) => replace_database(url, database),
        }
    }

    /// The URL of the maintenance database (to create others from).
    pub fn admin_url(&self) -> String {
        match self {
            Self::Local(server) => server.url("postgres"),
            Self::External(url) => url.clone(),
        }
    }
}

/// `url` with its database (the path) replaced.
fn replace_database(url: &str, database: &str) -> String {
    let (base, query) = url.split_once('?').map_or((url, None), |(b, q)| (b, Some(q)));
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let host_end = base[scheme_end..].find('/').map_or(base.len(), |i| scheme_end + i);
    let mut out = format!("{}/{database}", &base[..host_end]);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

/// The process's test server: `CRM_TEST_DATABASE_URL` when set, else one started on
/// first use and stopped when the process exits. Panics, with the fix in the message,
/// when none can be had.
pub fn shared_server() -> &'static Target {
    static TARGET: OnceLock<Result<Target, String>> = OnceLock::new();
    let target = TARGET.get_or_init(|| match std::env::var(DATABASE_URL_VAR) {
        Ok(url) if !url.trim().is_empty() => Ok(Target::External(url)),
        _ => TestServer::start().map(Target::Local),
    });
    match target {
        Ok(t) => t,
        // A test that needs PostgreSQL must fail, never pass, without it.
        #[allow(clippy::panic)]
        Err(e) => panic!("{e}"),
    }
}

/// Creates an empty database with a unique name on `target` and returns its URL.
pub async fn create_database(target: &Target) -> Result<String, String> {
    let name = format!("crm_test_{}", Uuid::now_v7().simple());
    let admin = target.admin_url();
    let mut last = String::new();
    // A fresh server may still be finishing its start-up: retry briefly.
    for _ in 0..50 {
        match sqlx::PgPool::connect(&admin).await {
            Ok(pool) => {
                let sql = format!("CREATE DATABASE {name} TEMPLATE template0 ENCODING 'UTF8'");
                let created = sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&pool).await;
                pool.close().await;
                return match created {
                    Ok(_) => Ok(target.url(&name)),
                    Err(e) => Err(format!("CREATE DATABASE on {admin}: {e}")),
                };
            }
            Err(e) => {
                last = e.to_string();
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    Err(format!("cannot connect to the test server at {admin}: {last}"))
}

/// A migrated storage on a new, empty database of the process's test server. Panics
/// (failing the test) with a message saying how to fix it when there is no server.
pub async fn fresh_storage() -> PostgresStorage {
    fresh_storage_with(PostgresOptions::default()).await
}

/// [`fresh_storage`] with explicit options.
#[allow(clippy::panic)]
pub async fn fresh_storage_with(options: PostgresOptions) -> PostgresStorage {
    let target = match tokio::task::spawn_blocking(shared_server).await {
        Ok(t) => t,
        Err(e) => panic!("starting the test server: {e}"),
    };
    let url = match create_database(target).await {
        Ok(url) => url,
        Err(e) => panic!("{e}"),
    };
    match PostgresStorage::connect_with(&url, options).await {
        Ok(s) => s,
        Err(e) => panic!("connecting to {url}: {e}"),
    }
}

/// Every table and typed column the adapter's mapping expects, with its SQL type as
/// `information_schema.columns.data_type` names it: `(table, column, type)`.
pub fn expected_columns() -> Vec<(&'static str, &'static str, &'static str)> {
    crate::schema::TABLES
        .iter()
        .flat_map(|t| t.written_columns().map(move |c| (t.name, c.field, crate::schema::sql_name(c.ty))))
        .collect()
}

/// Every `(table, filter field, sort field)` whose listing a composite
/// `(tenant_id, filter, sort NULLS FIRST, id)` index must serve: the core's
/// [`crm_core::fields::filtered_sorts`] of each kind.
pub fn expected_sort_indexes() -> Vec<(&'static str, &'static str, &'static str)> {
    crate::schema::TABLE_NAMES
        .iter()
        .flat_map(|(kind, table)| {
            crm_core::fields::filtered_sorts(crm_core::fields_of(*kind)).map(move |(f, s)| (*table, f.name, s.name))
        })
        .collect()
}

/// The kinds the mapping has a table for, by name.
pub fn mapped_kinds() -> Vec<&'static str> {
    crate::schema::TABLES.iter().map(|t| t.kind).collect()
}
