//! Child processes for tests that kill a process: the test binary runs itself with one
//! `#[ignore]`d test selected, so a test can kill a writer mid-commit, a worker before
//! its ack, or hold a store open from another process.

use std::{
    io::{BufRead, BufReader},
    path::Path,
    process::{Child, ChildStdout, Command, Stdio},
};

/// The environment variable naming the data directory a child works in.
pub const DIR_VAR: &str = "CRM_TEST_CHILD_DIR";

/// Starts this test binary running only the ignored test `name` on `dir`.
pub fn spawn(name: &str, dir: &Path) -> (Child, BufReader<ChildStdout>) {
    let exe = std::env::current_exe().expect("the test binary's path");
    let mut child = Command::new(exe)
        .args([name, "--exact", "--ignored", "--nocapture", "--test-threads=1"])
        .env(DIR_VAR, dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn the child test process");
    let stdout = BufReader::new(child.stdout.take().expect("child stdout"));
    (child, stdout)
}

/// Reads the child's lines until one ends with `marker` (the test harness may print
/// the test's name on the same line); false if the child ended first.
pub fn wait_for(stdout: &mut BufReader<ChildStdout>, marker: &str) -> bool {
    stdout.lines().map_while(Result::ok).any(|line| line.ends_with(marker))
}

/// How long a child runs at most, so none outlives a failed parent for long.
pub const CHILD_LIFETIME: std::time::Duration = std::time::Duration::from_secs(30);

/// The data directory a child was given.
pub fn dir() -> std::path::PathBuf {
    std::env::var_os(DIR_VAR).expect("run by a parent test, which sets the data directory").into()
}
