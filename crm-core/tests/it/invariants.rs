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

/// The layers of crm-core, lowest first. A module may import its own layer and those
/// below it; the kernel imports no business area.
const LAYERS: &[(&str, &[&str])] = &[
    (
        "kernel",
        &[
            "id",
            "clock",
            "error",
            "events",
            "storage",
            "state",
            "money",
            "input",
            "authz",
            "entity",
            "fields",
            "journal",
            "passwords",
            "principal_cache",
            "session_store",
            "idempotency",
            "jobs",
            "leases",
            "mail",
            "rate_limit",
            "tenant_settings",
            "crm",
        ],
    ),
    ("access", &["access"]),
    ("notifications", &["notifications"]),
    ("customers", &["customers"]),
    ("sales", &["sales"]),
    ("work", &["work"]),
    ("reports", &["reports"]),
    ("webhooks", &["webhooks"]),
    ("emails", &["emails"]),
    ("assembly", &["assembly", "schedule", "live", ""]),
    ("conformance", &["conformance"]),
];

/// The layer of a module path (`sales::invoices` → `sales`); the crate root is
/// "assembly", and items the root re-exports (`crate::Crm`) count as the kernel's.
fn layer_of(module: &str) -> Option<usize> {
    let top = module.split("::").next().unwrap_or("");
    LAYERS.iter().position(|(_, tops)| tops.contains(&top))
}

/// Every `.rs` file under `dir`, as (module path, source).
fn modules(dir: &std::path::Path, prefix: &str, out: &mut Vec<(String, String)>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    entries.sort();
    for path in entries {
        let name = path.file_stem().unwrap().to_str().unwrap().to_owned();
        let join = |name: &str| if prefix.is_empty() { name.to_owned() } else { format!("{prefix}::{name}") };
        if path.is_dir() {
            modules(&path, &join(&name), out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let module = match name.as_str() {
                "lib" | "mod" => prefix.to_owned(),
                _ => join(&name),
            };
            out.push((module, std::fs::read_to_string(&path).unwrap()));
        }
    }
}

/// The source without comments and string literals, so only code is read.
fn code_only(source: &str) -> String {
    let (mut out, mut chars) = (String::new(), source.chars().peekable());
    while let Some(c) = chars.next() {
        match (c, chars.peek()) {
            ('/', Some('/')) => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        out.push('\n');
                        break;
                    }
                }
            }
            ('/', Some('*')) => {
                let mut last = ' ';
                for c in chars.by_ref() {
                    if last == '*' && c == '/' {
                        break;
                    }
                    last = c;
                }
            }
            ('"', _) => {
                let mut escaped = false;
                for c in chars.by_ref() {
                    if c == '"' && !escaped {
                        break;
                    }
                    escaped = c == '\\' && !escaped;
                }
                out.push_str("\"\"");
            }
            _ => out.push(c),
        }
    }
    out
}

/// Expands one `use` tree (`a::{b, c::{d}}`) into its paths.
fn expand(tree: &str, base: &str, out: &mut Vec<String>) {
    let tree = tree.trim();
    let join = |p: &str| if base.is_empty() { p.to_owned() } else { format!("{base}::{p}") };
    match tree.find('{') {
        None if tree.is_empty() => {}
        None => out.push(join(tree.split(" as ").next().unwrap_or(tree).trim())),
        Some(open) => {
            let head = tree[..open].trim_end_matches("::").trim();
            let inner = &tree[open + 1..tree.rfind('}').unwrap()];
            let (mut depth, mut start) = (0, 0);
            let prefix = if head.is_empty() { base.to_owned() } else { join(head) };
            for (i, c) in inner.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        expand(&inner[start..i], &prefix, out);
                        start = i + 1;
                    }
                    _ => {}
                }
            }
            expand(&inner[start..], &prefix, out);
        }
    }
}

/// The modules `source` names through `crate::` paths: in `use` items and in code.
fn imports(source: &str, known: &[String]) -> Vec<String> {
    let code = code_only(source);
    let mut paths = Vec::new();
    let mut rest = code.as_str();
    while let Some(at) = rest.find("crate::") {
        let after = &rest[at + "crate::".len()..];
        let is_use = rest[..at].trim_end().ends_with("use");
        let end = if is_use {
            after.find(';').unwrap_or(after.len())
        } else {
            after.find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':')).unwrap_or(after.len())
        };
        expand(&after[..end], "", &mut paths);
        rest = &after[end..];
    }
    let mut found: Vec<String> = paths
        .iter()
        .map(|path| {
            // The longest known module the path starts with; a root re-export is "".
            let segments: Vec<&str> = path.split("::").collect();
            (1..=segments.len()).rev().map(|n| segments[..n].join("::")).find(|m| known.contains(m)).unwrap_or_default()
        })
        .collect();
    found.sort();
    found.dedup();
    found
}

/// crm-core is layered: the kernel imports no business area, no area imports one
/// above it, and no modules import each other in a circle.
#[test]
fn core_modules_are_layered_without_circles() {
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    modules(&src, "", &mut files);
    let known: Vec<String> = files.iter().map(|(m, _)| m.clone()).collect();
    let mut violations = Vec::new();
    let mut edges: Vec<(String, String)> = Vec::new();
    for (module, source) in &files {
        let from = layer_of(module).unwrap_or_else(|| panic!("module `{module}` is in no layer: add it to LAYERS"));
        for target in imports(source, &known) {
            // The root's re-exports are kernel items; a module naming its own parent's
            // items or its children is within its own layer.
            let to = if target.is_empty() { 0 } else { layer_of(&target).unwrap() };
            if to > from {
                violations.push(format!(
                    "`{module}` ({}) imports `{target}` ({}), a higher layer",
                    LAYERS[from].0, LAYERS[to].0
                ));
            }
            if !target.is_empty() && target != *module {
                edges.push((module.clone(), target));
            }
        }
    }
    // A circle: a module that reaches itself through imports.
    for (module, _) in &files {
        let mut stack: Vec<Vec<String>> = vec![vec![module.clone()]];
        let mut seen = std::collections::HashSet::new();
        while let Some(path) = stack.pop() {
            let last = path.last().unwrap();
            for (_, to) in edges.iter().filter(|(from, _)| from == last) {
                if to == module {
                    let mut circle = path.clone();
                    circle.push(to.clone());
                    violations.push(format!("import circle: {}", circle.join(" → ")));
                } else if seen.insert(to.clone()) {
                    let mut next = path.clone();
                    next.push(to.clone());
                    stack.push(next);
                }
            }
        }
    }
    violations.sort();
    violations.dedup();
    assert!(violations.is_empty(), "crm-core's layering is broken:\n{}", violations.join("\n"));
}
