//! A TypeScript client generated from the spec, as a new user makes one
//! (openapi-typescript + openapi-fetch), type-checks a first program with
//! `tsc --strict`: sign-in, `/auth/me`, a page of contacts, one contact and a lead's
//! conversion, reading typed fields of each `data` (`tests/ts-client/client.ts`).
//! Against the spec before typed `data`, it fails on sign-in and `/auth/me`.
//!
//! It needs Node.js and npm. The packages come from the npm registry, pinned by
//! `tests/ts-client/package-lock.json`, installed with `npm ci` once under the target
//! directory and again only when the lock file changes. Without node or npm the test
//! fails and says how to install them: it never passes by skipping.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

/// The npm project: pinned packages, the compiler options and the program.
const PROJECT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/ts-client");

/// Fails, with how to install it, when `tool` does not run.
fn require(tool: &str) {
    let found = Command::new(tool).arg("--version").output().is_ok_and(|o| o.status.success());
    assert!(
        found,
        "`{tool}` is needed by the TypeScript client check and was not found. Install Node.js 18.17 or newer with \
         npm (Debian/Ubuntu: `apt-get install -y nodejs npm`; elsewhere: https://nodejs.org), then rerun. \
         The packages it uses come from the npm registry (`npm ci` in {PROJECT})."
    );
}

/// Runs `command`, failing with its output when it fails.
fn run(command: &mut Command, what: &str) {
    let output = command.output().unwrap_or_else(|e| panic!("{what}: cannot run {command:?}: {e}"));
    assert!(
        output.status.success(),
        "{what} failed ({}):\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The pinned packages, installed in `dir` (reinstalled when the lock file changed).
fn installed_packages(dir: &Path) -> PathBuf {
    let lock = fs::read_to_string(Path::new(PROJECT).join("package-lock.json")).unwrap();
    let marker = dir.join("node_modules/.installed-from-lock.json");
    if fs::read_to_string(&marker).ok().as_deref() != Some(lock.as_str()) {
        fs::create_dir_all(dir).unwrap();
        for file in ["package.json", "package-lock.json"] {
            fs::copy(Path::new(PROJECT).join(file), dir.join(file)).unwrap();
        }
        run(Command::new("npm").args(["ci", "--no-audit", "--no-fund"]).current_dir(dir), "npm ci");
        fs::write(&marker, lock).unwrap();
    }
    dir.join("node_modules/.bin")
}

#[test]
fn a_client_generated_from_the_spec_type_checks_a_first_program_under_strict_typescript() {
    require("node");
    require("npm");
    let install = Path::new(env!("CARGO_TARGET_TMPDIR")).join("ts-client");
    let bin = installed_packages(&install);
    // Inside the install directory, so the program resolves its packages there.
    let work = tempfile::tempdir_in(&install).unwrap();
    fs::write(work.path().join("openapi.json"), crm_http::api::document()).unwrap();
    for file in ["client.ts", "tsconfig.json"] {
        fs::copy(Path::new(PROJECT).join(file), work.path().join(file)).unwrap();
    }
    run(
        Command::new(bin.join("openapi-typescript")).args(["openapi.json", "-o", "api.d.ts"]).current_dir(work.path()),
        "openapi-typescript (generating the client's types from the spec)",
    );
    run(
        Command::new(bin.join("tsc"))
            .args(["--project", "tsconfig.json", "--strict", "--noEmit"])
            .current_dir(work.path()),
        "tsc --strict (type-checking tests/ts-client/client.ts against the generated client)",
    );
}
