//! Architecture invariants that a test can check.

use std::process::Command;

/// crm-core depends on no database driver, server, HTTP stack or async runtime.
#[test]
fn core_depends_on_no_driver_server_or_runtime() {
    let output = Command::new(env!("CARGO"))
        .args(["tree", "-p", "crm-core", "-e", "normal", "--prefix", "none", "--format", "{p}", "--offline"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run cargo tree");
    assert!(output.status.success(), "cargo tree failed: {}", String::from_utf8_lossy(&output.stderr));
    let tree = String::from_utf8(output.stdout).unwrap();
    let crates: Vec<&str> = tree.lines().filter_map(|l| l.split_whitespace().next()).collect();
    assert!(crates.contains(&"crm-core") && crates.contains(&"serde"), "unexpected cargo tree output:\n{tree}");
    let forbidden = ["sqlx", "sled", "redis", "poem", "poem-openapi", "tokio", "hyper", "reqwest", "mio", "async-std"];
    let found: Vec<&&str> = crates.iter().filter(|c| forbidden.contains(c)).collect();
    assert!(found.is_empty(), "crm-core must not depend on {found:?}");
}
