//! Passwords: argon2id hashing with a configurable cost, verification of imported
//! bcrypt hashes, and the [`Offload`] hook that runs this CPU-heavy work away from the
//! caller's async executor. The core stays free of any runtime: an embedding
//! application (crm-server passes tokio's blocking pool) supplies the offload.
//!
//! Sign-in must not tell which emails exist, so an unknown email is checked against a
//! dummy hash of the current algorithm and parameters (`PasswordPolicy::dummy_hash`):
//! the same one verification, at the same cost, as a wrong password for a real account.
//! Imported hashes are held to [`ImportCeiling`], so one account cannot make every
//! sign-in to it arbitrarily slow.

use std::{
    future::Future,
    pin::Pin,
    sync::{Arc, Mutex, PoisonError},
};

use argon2::{
    Algorithm, Argon2, Params, PasswordHash, PasswordHasher as _, PasswordVerifier as _, Version,
    password_hash::phc::{Output, ParamsString, Salt},
};
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

    /// Runs a password job that computes `work`. By default the same as
    /// [`Offload::run`]; offloads that meter, log or prioritise password work by its
    /// cost override it.
    fn run_password_work(&self, work: PasswordWork, job: BlockingJob) -> JobDone {
        let _ = work;
        self.run(job)
    }
}

/// What a password job computes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PasswordWork {
    /// Hashes a new password at this cost.
    Hash(HashCost),
    /// Checks a password against a hash of this cost.
    Verify(HashCost),
}

/// The parameters that set how much work a hash costs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HashCost {
    /// argon2id: memory in KiB, passes over it, lanes.
    Argon2id {
        /// Memory, KiB (`m`).
        memory_kib: u32,
        /// Passes (`t`).
        iterations: u32,
        /// Lanes (`p`).
        parallelism: u32,
    },
    /// bcrypt: `2^cost` rounds.
    Bcrypt {
        /// The log2 of the rounds.
        cost: u32,
    },
    /// Neither: verification refuses it without hashing.
    Unreadable,
}

impl HashCost {
    fn of_argon2(params: &Params) -> Self {
        Self::Argon2id { memory_kib: params.m_cost(), iterations: params.t_cost(), parallelism: params.p_cost() }
    }
}

/// The most an imported hash may cost to verify; a dearer one is refused at import
/// (422 on `password_hash`), since every sign-in to that account would pay it.
#[derive(Clone, Copy, Debug)]
pub struct ImportCeiling;

impl ImportCeiling {
    /// bcrypt: cost at most 14 (2^14 rounds, about a second here).
    pub const BCRYPT_COST: u32 = 14;
    /// argon2id: memory at most 64 MiB.
    pub const ARGON2_MEMORY_KIB: u32 = 64 * 1024;
    /// argon2id: at most 10 passes.
    pub const ARGON2_ITERATIONS: u32 = 10;
    /// argon2id: at most 16 lanes.
    pub const ARGON2_PARALLELISM: u32 = 16;

    /// Why a hash of this cost is refused, if it is.
    fn refusal(cost: HashCost) -> Option<String> {
        match cost {
            HashCost::Bcrypt { cost } if cost > Self::BCRYPT_COST => {
                Some(format!("bcrypt cost {cost} is above the ceiling of {}", Self::BCRYPT_COST))
            }
            HashCost::Argon2id { memory_kib, .. } if memory_kib > Self::ARGON2_MEMORY_KIB => Some(format!(
                "argon2 memory of {memory_kib} KiB is above the ceiling of {} KiB",
                Self::ARGON2_MEMORY_KIB
            )),
            HashCost::Argon2id { iterations, .. } if iterations > Self::ARGON2_ITERATIONS => {
                Some(format!("argon2 iterations {iterations} are above the ceiling of {}", Self::ARGON2_ITERATIONS))
            }
            HashCost::Argon2id { parallelism, .. } if parallelism > Self::ARGON2_PARALLELISM => {
                Some(format!("argon2 parallelism {parallelism} is above the ceiling of {}", Self::ARGON2_PARALLELISM))
            }
            HashCost::Unreadable => Some("must be a bcrypt or argon2id hash".into()),
            _ => None,
        }
    }
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

/// Runs the password job `work` (which computes `what`) through `offload` and hands
/// back its result.
pub(crate) async fn offloaded<T: Send + 'static>(
    offload: &dyn Offload,
    what: PasswordWork,
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T> {
    let slot = Arc::new(Mutex::new(None));
    let filled = Arc::clone(&slot);
    offload
        .run_password_work(
            what,
            Box::new(move || {
                let value = work();
                *filled.lock().unwrap_or_else(PoisonError::into_inner) = Some(value);
            }),
        )
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

    /// Accepts an imported hash: bcrypt, or argon2id in PHC form, within the
    /// [`ImportCeiling`]; else says why not.
    pub(crate) fn parse_imported(hash: String) -> std::result::Result<Self, String> {
        let hash = Self(hash);
        match ImportCeiling::refusal(hash.cost()) {
            Some(refusal) => Err(refusal),
            None => Ok(hash),
        }
    }

    /// What verifying this hash costs, read from the hash itself.
    pub(crate) fn cost(&self) -> HashCost {
        if self.is_bcrypt() {
            // `$2b$12$` + 22 characters of salt and 31 of hash.
            let cost = self.0.get(4..6).filter(|_| self.0.len() == 60 && self.0.get(6..7) == Some("$"));
            return match cost.and_then(|c| c.parse().ok()) {
                Some(cost) if (4..=31).contains(&cost) => HashCost::Bcrypt { cost },
                _ => HashCost::Unreadable,
            };
        }
        let Ok(hash) = PasswordHash::new(&self.0) else { return HashCost::Unreadable };
        if hash.algorithm != Algorithm::Argon2id.ident() {
            return HashCost::Unreadable;
        }
        Params::try_from(&hash).map_or(HashCost::Unreadable, |params| HashCost::of_argon2(&params))
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

    /// What hashing a new password costs under this policy.
    pub fn cost(&self) -> HashCost {
        HashCost::of_argon2(&self.params)
    }

    /// A hash no password matches, of the same algorithm and parameters as the ones this
    /// policy makes: verifying against it costs what verifying a real one does. Built
    /// without hashing anything; its salt and output are fixed, which is safe because
    /// its verdict is never used, only the work.
    pub(crate) fn dummy_hash(&self) -> Result<PasswordHashString> {
        let broken = |e: argon2::password_hash::phc::Error| CrmError::Internal(format!("dummy hash: {e}"));
        let output_len = self.params.output_len().unwrap_or(Params::DEFAULT_OUTPUT_LEN);
        let hash = PasswordHash {
            algorithm: Algorithm::Argon2id.ident(),
            version: Some(Version::V0x13.into()),
            params: ParamsString::try_from(&self.params).map_err(|e| CrmError::Internal(format!("dummy hash: {e}")))?,
            salt: Some(Salt::new(&[0x5a; 16]).map_err(broken)?),
            hash: Some(Output::new(&vec![0xa5; output_len]).map_err(broken)?),
        };
        Ok(PasswordHashString(hash.to_string()))
    }

    /// Whether `hash` is replaced at its owner's next sign-in: a bcrypt one, or argon2id
    /// at other parameters than this policy's, so every account comes to cost what the
    /// dummy hash costs.
    pub(crate) fn needs_rehash(&self, hash: &PasswordHashString) -> bool {
        hash.cost() != self.cost()
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
