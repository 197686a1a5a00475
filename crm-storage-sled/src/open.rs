//! Opening a store: options, the one-`Db`-per-process registry, the format version,
//! and the errors of a data directory that cannot be used.
//!
//! sled locks its directory per `Db` and does not release the lock at once when a `Db`
//! drops, so a second open of a directory in the same process joins the first one's
//! [`Shared`] (its `Db`, flushing thread and commit locks) instead of opening it again.

use std::{
    collections::HashMap,
    io,
    num::NonZeroUsize,
    path::{Path, PathBuf},
    sync::{Arc, Mutex, OnceLock, PoisonError, Weak},
    thread,
    time::{Duration, Instant},
};

use crate::{
    keys::{FORMAT_VERSION_KEY, IMPORTING_KEY},
    migrate::{OLDEST_MIGRATED, drop_legacy_trees, migrate},
    shared::Shared,
};

/// The format this build writes and reads, stored in every data directory at creation.
/// An older format is migrated when the store opens (2 added the sorted index of every
/// equality filter and sort pair; 3 stores index data in binary and names fields and
/// kinds by number, in keys and entries); a newer or unknown one is refused.
pub const FORMAT_VERSION: u32 = 3;

/// When a commit is acknowledged relative to reaching the disk.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Durability {
    /// Every commit is flushed to disk before it returns: nothing acknowledged is lost
    /// in a crash. Concurrent commits share flushes. The default.
    #[default]
    Flush,
    /// Commits return once applied; sled writes them to disk in the background every
    /// 500 ms, so a crash can lose the acknowledged writes of that last window. For bulk
    /// loads and benchmarks, never for data someone relies on.
    Background,
}

/// How to open a store.
#[derive(Clone, Copy, Debug)]
pub struct SledOptions {
    /// The flush policy (default: [`Durability::Flush`]).
    pub durability: Durability,
    /// sled's page cache size in bytes (default 64 MiB). It bounds most of the memory
    /// the store holds besides the process's own: a store of 100k contacts (with their
    /// audit entries) serves its listings from it.
    pub cache_capacity: u64,
    /// Whether a new store compresses what it writes to disk (zstd, default on): index
    /// pages and JSON documents shrink to a fraction. A store keeps the choice it was
    /// created with (sled refuses to reopen it with another), whatever this says.
    pub compression: bool,
    /// How long to wait for a lock held by a store of this process that is shutting down
    /// (default 2 s). Another process's lock is reported as [`OpenError::Locked`].
    pub lock_wait: Duration,
    /// How many scanning reads run at once (default: half the CPU cores, at least 1):
    /// aggregates, and listings that may read every candidate (a text search, a total,
    /// a sort over a filter's selection). Others wait their turn without holding a
    /// thread, so scans leave cores to point reads and commits. The turns are shared by
    /// every tenant, and a scan waiting for its tenant's commit keeps its turn.
    pub scan_concurrency: NonZeroUsize,
}

impl Default for SledOptions {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, NonZeroUsize::get);
        Self {
            durability: Durability::Flush,
            cache_capacity: 64 << 20,
            compression: true,
            lock_wait: Duration::from_secs(2),
            scan_concurrency: NonZeroUsize::new(cores / 2).unwrap_or(NonZeroUsize::MIN),
        }
    }
}

/// Why a data directory could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// Another process (or a store of this process still shutting down) holds it.
    #[error("the data directory {path} is locked by another process; stop that process or choose another directory")]
    Locked {
        /// The directory.
        path: PathBuf,
    },
    /// It was written in a format this build cannot read or migrate (a newer one).
    #[error(
        "the data directory {path} holds crm-rs sled format {found}, but this build reads format {expected}; \
         export it with the build that wrote it and import it here"
    )]
    FormatVersion {
        /// The directory.
        path: PathBuf,
        /// The format found.
        found: u32,
        /// The format this build reads.
        expected: u32,
    },
    /// It holds something other than a crm-rs store.
    #[error("the data directory {path} is not a crm-rs store: {reason}")]
    NotAStore {
        /// The directory.
        path: PathBuf,
        /// What was found.
        reason: String,
    },
    /// Its files are damaged.
    #[error("the data directory {path} is corrupt: {detail}; restore it from an export or a backup")]
    Corrupt {
        /// The directory.
        path: PathBuf,
        /// What sled reported.
        detail: String,
    },
    /// It cannot be created, read or written.
    #[error("cannot use the data directory {path}: {source}")]
    Io {
        /// The directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
}

/// Stores opened by this process, by canonical path: a second open of the same
/// directory shares the first one's `Db` instead of failing on sled's file lock.
fn registry() -> &'static Mutex<HashMap<PathBuf, Weak<Shared>>> {
    static OPEN: OnceLock<Mutex<HashMap<PathBuf, Weak<Shared>>>> = OnceLock::new();
    OPEN.get_or_init(Mutex::default)
}

/// Opens (or joins this process's already open) store at `path`.
pub(crate) fn open_shared(path: &Path, options: &SledOptions) -> Result<Arc<Shared>, OpenError> {
    let io_error = |source| OpenError::Io { path: path.to_owned(), source };
    std::fs::create_dir_all(path).map_err(io_error)?;
    let canonical = path.canonicalize().map_err(io_error)?;
    let mut open = registry().lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(shared) = open.get(&canonical).and_then(Weak::upgrade) {
        return Ok(shared);
    }
    let config = sled::Config::new()
        .path(&canonical)
        .cache_capacity(options.cache_capacity)
        .use_compression(compressed(&canonical, options))
        .compression_factor(COMPRESSION_LEVEL);
    let db = open_db(&canonical, &config, options.lock_wait)?;
    check_format(&canonical, &db)?;
    let shared = Arc::new(
        Shared::new(db, Some(canonical.clone()), options.scan_concurrency).map_err(|e| corrupt(&canonical, e))?,
    );
    open.retain(|_, weak| weak.strong_count() > 0);
    open.insert(canonical, Arc::downgrade(&shared));
    Ok(shared)
}

/// A store in a fresh temporary directory, removed when the store is dropped.
pub(crate) fn open_temporary(options: &SledOptions) -> Result<Arc<Shared>, OpenError> {
    let config = sled::Config::new()
        .temporary(true)
        .cache_capacity(options.cache_capacity)
        .use_compression(options.compression)
        .compression_factor(COMPRESSION_LEVEL);
    let path = config.path.clone();
    let db = open_db(&path, &config, Duration::ZERO)?;
    check_format(&path, &db)?;
    Ok(Arc::new(Shared::new(db, None, options.scan_concurrency).map_err(|e| corrupt(&path, e))?))
}

/// zstd's level: its fastest, as every write compresses its log messages. Higher levels
/// gained little on sled's small messages.
const COMPRESSION_LEVEL: i32 = 1;

/// Whether to open the store in `path` compressed: as it was created (sled keeps its
/// settings in the directory's `conf` file and refuses others), or as `options` say for
/// a new store.
fn compressed(path: &Path, options: &SledOptions) -> bool {
    // The settings' text is followed by a checksum.
    match std::fs::read(path.join("conf")) {
        Ok(conf) => String::from_utf8_lossy(&conf).lines().any(|line| line.trim() == "use_compression: true"),
        Err(_) => options.compression,
    }
}

fn open_db(path: &Path, config: &sled::Config, lock_wait: Duration) -> Result<sled::Db, OpenError> {
    let deadline = Instant::now() + lock_wait;
    loop {
        // sled can panic on some damaged files instead of returning an error.
        let attempt = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| config.open()));
        match attempt {
            Ok(Ok(db)) => return Ok(db),
            Ok(Err(sled::Error::Io(e))) if is_lock_error(&e) => {
                if Instant::now() >= deadline {
                    return Err(OpenError::Locked { path: path.to_owned() });
                }
                thread::sleep(Duration::from_millis(25));
            }
            Ok(Err(sled::Error::Io(source))) => return Err(OpenError::Io { path: path.to_owned(), source }),
            Ok(Err(e)) => return Err(corrupt(path, e)),
            Err(panic) => {
                let detail = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                    .unwrap_or_else(|| "sled panicked while reading it".into());
                return Err(OpenError::Corrupt { path: path.to_owned(), detail });
            }
        }
    }
}

fn is_lock_error(e: &io::Error) -> bool {
    e.to_string().contains("could not acquire lock")
}

fn corrupt(path: &Path, e: impl std::fmt::Display) -> OpenError {
    OpenError::Corrupt { path: path.to_owned(), detail: e.to_string() }
}

/// Writes the format version into a new store, or checks the one an existing store has
/// and migrates an older one.
fn check_format(path: &Path, db: &sled::Db) -> Result<(), OpenError> {
    let meta = db.open_tree("meta").map_err(|e| corrupt(path, e))?;
    match meta.get(FORMAT_VERSION_KEY).map_err(|e| corrupt(path, e))? {
        Some(found) => {
            let found = <[u8; 4]>::try_from(found.as_ref())
                .map(u32::from_be_bytes)
                .map_err(|_| corrupt(path, "its format version is unreadable"))?;
            if !(OLDEST_MIGRATED..=FORMAT_VERSION).contains(&found) {
                return Err(OpenError::FormatVersion { path: path.to_owned(), found, expected: FORMAT_VERSION });
            }
            if meta.contains_key(IMPORTING_KEY).map_err(|e| corrupt(path, e))? {
                return Err(OpenError::NotAStore {
                    path: path.to_owned(),
                    reason: "an import into it was interrupted; remove the directory and import again".into(),
                });
            }
            if found < FORMAT_VERSION {
                // Before any handle exists: nothing else reads or writes the store meanwhile.
                migrate(db, found).map_err(|e| corrupt(path, format_args!("migrating it from format {found}: {e}")))?;
            } else {
                // A migration that stopped after writing the version leaves the old trees.
                drop_legacy_trees(db).map_err(|e| corrupt(path, e))?;
            }
            Ok(())
        }
        None => {
            // A store is new when nothing but sled's own default tree and our meta tree exist.
            let foreign =
                db.tree_names().into_iter().any(|name| name.as_ref() != b"__sled__default" && name.as_ref() != b"meta");
            if foreign || !db.is_empty() {
                return Err(OpenError::NotAStore {
                    path: path.to_owned(),
                    reason: "it holds sled data without a crm-rs format version".into(),
                });
            }
            meta.insert(FORMAT_VERSION_KEY, &FORMAT_VERSION.to_be_bytes()).map_err(|e| corrupt(path, e))?;
            db.flush().map_err(|e| corrupt(path, e))?;
            Ok(())
        }
    }
}
