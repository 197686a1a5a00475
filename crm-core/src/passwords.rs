//! Passwords: argon2id hashing with a configurable cost, verification of imported
//! bcrypt hashes, and the [`Offload`] hook that runs this CPU-heavy work away from the
//! caller's async executor. The core stays free of any runtime: an embedding
//! application (crm-server passes tokio's blocking pool) supplies the offload.

use std::{
    future::Future,
    pin::Pin,
    sync::{Arc, Mutex, PoisonError},
};

use argon2::{Algorithm, Argon2, Params, PasswordHash, PasswordHasher as _, PasswordVerifier as _, Version};
use serde::{Deserialize, Serialize};

use crate::error::{CrmError, Result};

/// A boxed job for [`Offload::run`].
pub type BlockingJob = Box<dyn FnOnce() + Send + 'static>;

/// The future [`Offload::run`] returns: done when the job has run.
pub type JobDone = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// Runs blocking, CPU-heavy work (password hashing and verification) somewhere it
/// cannot stall the async executor, such as a runtime's blocking pool. Implementations
/// should bound how many jobs run at once, so a burst of sign-ins cannot take every
/// blocking thread.
pub trait Offload: Send + Sync + 'static {
    /// Runs `job` to completion; the future resolves once it has run (or was dropped
    /// unrun, which the caller reports as an internal error).
    fn run(&self, job: BlockingJob) -> JobDone;
}

/// Runs each job on the calling task: no threads, no runtime. The default, right for
/// tests and tools; servers pass a pool-backed [`Offload`] to the builder instead.
#[derive(Clone, Copy, Debug, Default)]
pub struct Inline;

impl Offload for Inline {
    fn run(&self, job: BlockingJob) -> JobDone {
        job();
        Box::pin(std::future::ready(()))
    }
}

/// Runs `work` through `offload` and hands back its result.
pub(crate) async fn offloaded<T: Send + 'static>(
    offload: &dyn Offload,
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T> {
    let slot = Arc::new(Mutex::new(None));
    let filled = Arc::clone(&slot);
    offload
        .run(Box::new(move || {
            let value = work();
            *filled.lock().unwrap_or_else(PoisonError::into_inner) = Some(value);
        }))
        .await;
    let value = slot.lock().unwrap_or_else(PoisonError::into_inner).take();
    value.ok_or_else(|| CrmError::Internal("offloaded work did not run to completion".into()))
}

/// An argon2id password hash in PHC string form. Its `Debug` never shows it, and the
/// core never hands it out: [`User`] keeps it private.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub(crate) struct PasswordHashString(String);

impl PasswordHashString {
    /// Whether this is a bcrypt hash (`$2a$`, `$2b$`, `$2y$`) from an older system.
    pub(crate) fn is_bcrypt(&self) -> bool {
        ["$2a$", "$2b$", "$2y$"].iter().any(|p| self.0.starts_with(p))
    }

    /// Accepts an imported hash: bcrypt, or argon2 in PHC form.
    pub(crate) fn parse_imported(hash: String) -> Option<Self> {
        let hash = Self(hash);
        let well_formed = if hash.is_bcrypt() {
            hash.0.len() == 60
        } else {
            PasswordHash::new(&hash.0).is_ok_and(|h| h.algorithm == argon2::Algorithm::Argon2id.ident())
        };
        well_formed.then_some(hash)
    }
}

impl std::fmt::Debug for PasswordHashString {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PasswordHash(<redacted>)")
    }
}

/// How passwords are hashed: argon2id with configurable cost.
#[derive(Clone, Debug)]
pub struct PasswordPolicy {
    params: Params,
}

impl Default for PasswordPolicy {
    /// argon2id with the OWASP minimum (m = 19 MiB, t = 2, p = 1).
    fn default() -> Self {
        Self { params: Params::default() }
    }
}

impl PasswordPolicy {
    /// Minimum password length accepted.
    pub const MIN_LENGTH: usize = 8;

    /// A cheap policy (m = 64 KiB, t = 1) for tests and benchmarks; never for real data.
    pub fn insecure_fast() -> Self {
        // These constants are within argon2's accepted ranges.
        let params = Params::new(64, 1, 1, None).unwrap_or_default();
        Self { params }
    }

    fn hasher(&self) -> Argon2<'static> {
        Argon2::new(Algorithm::Argon2id, Version::V0x13, self.params.clone())
    }

    pub(crate) fn hash(&self, password: &str) -> Result<PasswordHashString> {
        self.hasher()
            .hash_password(password.as_bytes())
            .map(|h| PasswordHashString(h.to_string()))
            .map_err(|e| CrmError::Internal(format!("password hashing failed: {e}")))
    }

    /// Checks a password against an argon2id hash, or a bcrypt hash imported from an
    /// older system (rehashed to argon2id at the next sign-in).
    pub(crate) fn verify(&self, password: &str, hash: &PasswordHashString) -> bool {
        if hash.is_bcrypt() {
            return bcrypt::verify(password, &hash.0).unwrap_or(false);
        }
        PasswordHash::new(&hash.0).is_ok_and(|h| self.hasher().verify_password(password.as_bytes(), &h).is_ok())
    }
}
