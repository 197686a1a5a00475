//! A data directory that cannot be used gives a clear error at open, never a panic.

use std::{io::Write, time::Duration};

use crm_storage_sled::{FORMAT_VERSION, OpenError, SledOptions, SledStorage};

use crm_core::conformance::child;

#[test]
#[ignore = "the process that holds a store open for `a_store_locked_by_another_process_is_refused`"]
fn hold_store_child() {
    let _storage = SledStorage::open(child::dir()).expect("open the store");
    println!("open");
    std::thread::sleep(child::CHILD_LIFETIME);
}

#[test]
fn a_store_locked_by_another_process_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (mut holder, mut stdout) = child::spawn("open::hold_store_child", dir.path());
    assert!(child::wait_for(&mut stdout, "open"), "the holding process never opened the store");
    let options = SledOptions { lock_wait: Duration::from_millis(100), ..SledOptions::default() };
    let result = SledStorage::open_with(dir.path(), options);
    holder.kill().unwrap();
    holder.wait().unwrap();
    let err = result.expect_err("a second process must not open a locked store");
    assert!(matches!(err, OpenError::Locked { .. }), "{err:?}");
    assert!(err.to_string().contains("locked by another process"), "{err}");
}

fn raw_sled(dir: &std::path::Path, write: impl FnOnce(&sled::Db)) {
    let db = sled::open(dir).unwrap();
    write(&db);
    db.flush().unwrap();
}

#[test]
fn another_format_version_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    raw_sled(dir.path(), |db| {
        let meta = db.open_tree("meta").unwrap();
        meta.insert("format_version", &(FORMAT_VERSION + 1).to_be_bytes()).unwrap();
    });
    let err = SledStorage::open(dir.path()).expect_err("a newer format must be refused");
    match &err {
        OpenError::FormatVersion { found, expected, .. } => {
            assert_eq!((*found, *expected), (FORMAT_VERSION + 1, FORMAT_VERSION));
        }
        other => panic!("expected a format error, got {other:?}"),
    }
    assert!(err.to_string().contains("export it"), "the message says how to move the data: {err}");
}

#[test]
fn sled_data_of_something_else_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    raw_sled(dir.path(), |db| {
        db.insert("someone else's key", "value").unwrap();
    });
    let err = SledStorage::open(dir.path()).expect_err("foreign data must be refused");
    assert!(matches!(err, OpenError::NotAStore { .. }), "{err:?}");
}

#[test]
fn a_corrupt_store_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    drop(SledStorage::open(dir.path()).unwrap());
    // Overwrite every file sled wrote with garbage.
    let mut damaged = 0;
    for entry in walk(dir.path()) {
        let mut file = std::fs::OpenOptions::new().write(true).truncate(true).open(&entry).unwrap();
        file.write_all(&[0xA5; 4096]).unwrap();
        damaged += 1;
    }
    assert!(damaged > 0, "sled wrote no files to damage");
    let err = SledStorage::open(dir.path()).expect_err("a damaged store must not open");
    assert!(matches!(err, OpenError::Corrupt { .. } | OpenError::NotAStore { .. }), "{err:?}");
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() { files.extend(walk(&path)) } else { files.push(path) }
    }
    files
}

#[test]
fn an_unusable_path_is_an_io_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, "not a directory").unwrap();
    let err = SledStorage::open(file.join("data")).expect_err("a path under a file cannot be a store");
    assert!(matches!(err, OpenError::Io { .. }), "{err:?}");
    assert!(err.to_string().contains("a-file"), "the message names the path: {err}");
}
