//! [`RedisSessionStore`]: sessions in Redis, shared by every server instance.
//!
//! Keys (after the prefix, tenant in every one):
//! - `session:<tenant>:<id>`: a hash of `v` (version), `u` (user id) and `j` (the
//!   session as JSON, refresh-token hash included), expiring `retention` after the
//!   session does;
//! - `user-sessions:<tenant>:<user>`: a sorted set of the user's session ids, scored by
//!   when their keys expire; ids whose session is gone are dropped when listed;
//! - `expiring:<tenant>`: a sorted set of the tenant's session ids, scored by expiry in
//!   microseconds, for `remove_expired`.
//!
//! Every write is one Lua script, so it is atomic with its checks: an insert of a taken
//! id changes nothing, and a replace is a compare-and-swap on the version, which is what
//! makes two instances racing on one refresh token have one winner.
//!
//! Why keys outlive their session by `retention`: the contract keeps an expired session
//! readable (and listed) until `remove_expired` takes it, which the server does every
//! 15 minutes; the native expiry only cleans up after stores nobody purges.

use std::sync::LazyLock;

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use crm_core::{
    CrmError, Id, Result, TenantId,
    session_store::{Session, SessionStore},
    storage::EntityKind,
};
use redis::{Script, aio::ConnectionManager};
use uuid::Uuid;

use crate::crm_error;

/// Stores a new session unless its id is taken: 1 stored, 0 taken.
static INSERT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'v', ARGV[2], 'u', ARGV[3], 'j', ARGV[1])
redis.call('PEXPIREAT', KEYS[1], ARGV[5])
redis.call('ZADD', KEYS[2], ARGV[5], ARGV[6])
local top = redis.call('ZRANGE', KEYS[2], -1, -1, 'WITHSCORES')
redis.call('PEXPIREAT', KEYS[2], top[2])
redis.call('ZADD', KEYS[3], ARGV[4], ARGV[6])
return 1
",
    )
});

/// Replaces a session still at the expected version (ARGV[7]): 1 replaced, 0 conflict,
/// -1 missing. A session moving to another user leaves the old user's index.
static REPLACE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local current = redis.call('HMGET', KEYS[1], 'v', 'u')
if not current[1] then return -1 end
if current[1] ~= ARGV[7] then return 0 end
if current[2] ~= ARGV[3] then redis.call('ZREM', ARGV[8] .. current[2], ARGV[6]) end
redis.call('HSET', KEYS[1], 'v', ARGV[2], 'u', ARGV[3], 'j', ARGV[1])
redis.call('PEXPIREAT', KEYS[1], ARGV[5])
redis.call('ZADD', KEYS[2], ARGV[5], ARGV[6])
local top = redis.call('ZRANGE', KEYS[2], -1, -1, 'WITHSCORES')
redis.call('PEXPIREAT', KEYS[2], top[2])
redis.call('ZADD', KEYS[3], ARGV[4], ARGV[6])
return 1
",
    )
});

/// The JSON of every session in a user's index; drops ids whose session is gone.
static LIST_FOR_USER: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local out = {}
for _, id in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local json = redis.call('HGET', ARGV[1] .. id, 'j')
  if json then table.insert(out, json) else redis.call('ZREM', KEYS[1], id) end
end
return out
",
    )
});

/// Removes up to ARGV[2] sessions that expired strictly before ARGV[1] (microseconds)
/// and says how many; index entries of sessions already gone do not count.
static REMOVE_EXPIRED: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local removed, limit = 0, tonumber(ARGV[2])
while removed < limit do
  local batch = math.min(limit - removed, 500)
  local ids = redis.call('ZRANGE', KEYS[1], '-inf', '(' .. ARGV[1], 'BYSCORE', 'LIMIT', 0, batch)
  if #ids == 0 then break end
  for _, id in ipairs(ids) do
    redis.call('ZREM', KEYS[1], id)
    local user = redis.call('HGET', ARGV[3] .. id, 'u')
    if user then
      redis.call('DEL', ARGV[3] .. id)
      redis.call('ZREM', ARGV[4] .. user, id)
      removed = removed + 1
    end
  end
end
return removed
",
    )
});

/// How long a session's keys outlive its expiry when nothing purges them.
pub const DEFAULT_SESSION_RETENTION: Duration = Duration::days(7);

/// Sessions in Redis. Cheap to clone; clones share the connection.
#[derive(Clone)]
pub struct RedisSessionStore {
    connection: ConnectionManager,
    prefix: String,
    retention: Duration,
}

impl std::fmt::Debug for RedisSessionStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisSessionStore").field("prefix", &self.prefix).finish_non_exhaustive()
    }
}

impl RedisSessionStore {
    /// Sessions under keys starting with `prefix` (e.g. [`crate::DEFAULT_PREFIX`]).
    pub fn new(connection: ConnectionManager, prefix: impl Into<String>) -> Self {
        Self { connection, prefix: prefix.into(), retention: DEFAULT_SESSION_RETENTION }
    }

    /// How long an expired session stays (readable, listed, counted by
    /// `remove_expired`) before Redis drops it by itself. Default
    /// [`DEFAULT_SESSION_RETENTION`]; keep it longer than the interval of `remove_expired`.
    pub fn with_retention(mut self, retention: Duration) -> Self {
        self.retention = retention;
        self
    }

    fn session_keys(&self, tenant: TenantId) -> String {
        format!("{}session:{}:", self.prefix, tenant.0)
    }

    fn user_keys(&self, tenant: TenantId) -> String {
        format!("{}user-sessions:{}:", self.prefix, tenant.0)
    }

    fn expiring_key(&self, tenant: TenantId) -> String {
        format!("{}expiring:{}", self.prefix, tenant.0)
    }

    /// Runs a write script with the session's keys and fields as KEYS[1..3], ARGV[1..6].
    async fn write(&self, script: &Script, session: &Session, extra: &[String]) -> Result<i64> {
        let tenant = session.meta.tenant_id;
        let json = serde_json::to_string(session).map_err(|e| CrmError::Internal(format!("session to JSON: {e}")))?;
        let deadline = (session.expires_at + self.retention).timestamp_millis();
        let mut invocation = script.prepare_invoke();
        invocation
            .key(format!("{}{}", self.session_keys(tenant), session.meta.id))
            .key(format!("{}{}", self.user_keys(tenant), session.user_id))
            .key(self.expiring_key(tenant))
            .arg(json)
            .arg(session.meta.version)
            .arg(session.user_id.to_string())
            .arg(session.expires_at.timestamp_micros())
            .arg(deadline)
            .arg(session.meta.id.to_string());
        for arg in extra {
            invocation.arg(arg);
        }
        invocation.invoke_async(&mut self.connection.clone()).await.map_err(|e| crm_error(&e))
    }
}

fn decode(json: &str) -> Result<Session> {
    serde_json::from_str(json).map_err(|e| CrmError::Internal(format!("a session stored in Redis: {e}")))
}

#[async_trait]
impl SessionStore for RedisSessionStore {
    fn name(&self) -> &str {
        "redis"
    }

    async fn get(&self, tenant: TenantId, id: Id<Session>) -> Result<Option<Session>> {
        let key = format!("{}{}", self.session_keys(tenant), id.uuid());
        let json: Option<String> = redis::cmd("HGET")
            .arg(key)
            .arg("j")
            .query_async(&mut self.connection.clone())
            .await
            .map_err(|e| crm_error(&e))?;
        let session = json.as_deref().map(decode).transpose()?;
        // The key names the tenant; the value must agree, whatever wrote it.
        Ok(session.filter(|s| s.meta.tenant_id == tenant && s.meta.id == id.uuid()))
    }

    async fn insert(&self, session: &Session) -> Result<()> {
        match self.write(&INSERT, session, &[]).await? {
            1 => Ok(()),
            _ => Err(CrmError::AlreadyExists { kind: EntityKind::Session, field: "id".into() }),
        }
    }

    async fn replace(&self, expected_version: u64, session: &Session) -> Result<()> {
        let extra = [expected_version.to_string(), self.user_keys(session.meta.tenant_id)];
        match self.write(&REPLACE, session, &extra).await? {
            1 => Ok(()),
            0 => Err(CrmError::Conflict { kind: EntityKind::Session, id: session.meta.id }),
            _ => Err(CrmError::NotFound { kind: EntityKind::Session, id: session.meta.id }),
        }
    }

    async fn list_for_user(&self, tenant: TenantId, user: Uuid) -> Result<Vec<Session>> {
        let listed: Vec<String> = LIST_FOR_USER
            .key(format!("{}{}", self.user_keys(tenant), user))
            .arg(self.session_keys(tenant))
            .invoke_async(&mut self.connection.clone())
            .await
            .map_err(|e| crm_error(&e))?;
        let sessions: Vec<Session> = listed.iter().map(|j| decode(j)).collect::<Result<_>>()?;
        Ok(sessions.into_iter().filter(|s| s.meta.tenant_id == tenant && s.user_id == user).collect())
    }

    async fn remove_expired(&self, tenant: TenantId, now: DateTime<Utc>, limit: usize) -> Result<u64> {
        REMOVE_EXPIRED
            .key(self.expiring_key(tenant))
            .arg(now.timestamp_micros())
            .arg(limit.min(i64::MAX as usize) as u64)
            .arg(self.session_keys(tenant))
            .arg(self.user_keys(tenant))
            .invoke_async(&mut self.connection.clone())
            .await
            .map_err(|e| crm_error(&e))
    }
}
