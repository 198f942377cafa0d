//! [`RedisStore`]: sessions in Redis, standalone or Redis Cluster (feature `redis`).
//!
//! The operator documentation (key layout, round trips, expiry, what Redis Cluster changes,
//! timeouts) is on [`RedisStore`] itself, where rustdoc shows it. This module holds the store;
//! `codec` reads a hash back into a [`Record`]; `scripts` holds the Lua scripts and their
//! argument layout; `call` builds one call of a script.

mod call;
mod codec;
mod index;
mod ops;
mod scripts;

use std::fmt;
use std::future::Future;
use std::time::Duration;

use ::redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use ::redis::cluster::ClusterClient;
use ::redis::cluster_async::ClusterConnection;
use ::redis::cluster_routing::Slot;
use ::redis::{Cmd, Pipeline, RedisError, RedisFuture, Value as Reply};

use self::call::Call;
use self::scripts::{apply_args, create_args, scripts, COLLISION, CONFLICT, DONE, UNLISTED};
use super::{Applied, ChangeSet, Created, Cycled, Listed, Record, Rekey, SessionStore, Touched};
use crate::clock::{now_ms, to_ms};
use crate::error::StoreError;
use crate::id::StoreKey;

/// Sessions in Redis: shared by every instance of an application, with Redis's own TTLs doing
/// the cleanup. Works with a standalone server and with Redis Cluster.
///
/// ```
/// use sessionware::store::{now, Created, Record, SessionStore};
/// use sessionware::{RedisStore, SessionId, SessionLayer};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), sessionware::StoreError> {
/// // `REDIS_URL` is e.g. "redis://127.0.0.1:6379" (CI sets it; without it this example has
/// // nothing to talk to and stops here).
/// let Ok(url) = std::env::var("REDIS_URL") else { return Ok(()) };
/// let store = RedisStore::connect(&url).await?;
///
/// // What the layer does when a new session is saved, and on the next request:
/// let key = SessionId::generate().store_key();
/// let record = Record::new([("user".to_owned(), "alice".into())].into(), now() + std::time::Duration::from_secs(60));
/// assert_eq!(store.create(&key, &record).await?, Created::Done);
/// assert_eq!(store.load(&key).await?.unwrap().data["user"], "alice");
///
/// let layer = SessionLayer::new(store);
/// # let _ = layer;
/// # Ok(())
/// # }
/// ```
///
/// The rest of this page is the operator's manual: [Layout](#layout) and what follows.
#[doc = include_str!("manual.md")]
#[derive(Clone)]
pub struct RedisStore {
    conn: Conn,
    prefix: String,
    timeout: Duration,
}

/// One of the two kinds of connection; both multiplex requests and are cheap to clone.
#[derive(Clone)]
enum Conn {
    Standalone(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Reply> {
        match self {
            Conn::Standalone(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Reply>> {
        match self {
            Conn::Standalone(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Standalone(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

/// How many times a cluster cycle reads the old session again because a change set was applied
/// to it between the cycle's read and its release.
const CYCLE_ATTEMPTS: u32 = 16;

/// How many times a standalone cycle is sent when the session turns out to be tied to a
/// principal the caller did not name (see `cycle_at_once`).
const CYCLE_OWNER_ATTEMPTS: u32 = 3;

/// The wait before a cluster cycle's attempt `attempt + 2`: 100 µs, doubling, at most 6.4 ms,
/// with a random part so that racing writers and the cycle drift apart.
fn cycle_backoff(attempt: u32) -> Duration {
    let ceiling = 100u64 << attempt.min(6);
    let mut random = [0u8; 8];
    // Without randomness, the full wait: still bounded.
    let jitter = match getrandom::fill(&mut random) {
        Ok(()) => u64::from_le_bytes(random) % (ceiling / 2 + 1),
        Err(_) => 0,
    };
    Duration::from_micros(ceiling / 2 + jitter)
}

/// A cycle found the old session changed on every attempt.
#[derive(Debug, thiserror::Error)]
#[error("the session kept changing during a cycle; gave up after {0} attempts")]
struct KeptChanging(u32);

/// The store's own deadline passed before Redis answered.
#[derive(Debug, thiserror::Error)]
#[error("redis did not answer within {0:?}")]
struct TimedOut(Duration);

impl RedisStore {
    /// The default key prefix.
    pub const DEFAULT_KEY_PREFIX: &'static str = "sessionware:";

    /// The default connection timeout, response timeout and per-operation deadline: 2 seconds.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);

    /// Connects to a standalone Redis server through a reconnecting
    /// [`ConnectionManager`], with the [`DEFAULT_TIMEOUT`](Self::DEFAULT_TIMEOUT) for connecting
    /// and for each response.
    ///
    /// `url` is a redis-rs URL: `redis://[[user]:password@]host[:port][/db]` (or `rediss://...`
    /// with a TLS feature of `redis` enabled). To configure the connection further (TLS
    /// certificates, RESP3, other timeouts), build a [`ConnectionManager`] and use
    /// [`new`](Self::new).
    ///
    /// # Errors
    ///
    /// [`StoreError::Backend`] if the URL is invalid or the server cannot be reached (after the
    /// connection manager's few quick retries) or refuses the credentials.
    ///
    /// # Example
    ///
    /// ```no_run
    /// use sessionware::RedisStore;
    ///
    /// # async fn run() -> Result<(), sessionware::StoreError> {
    /// let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    /// let store = RedisStore::connect(&url).await?;
    /// # let _ = store;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let client = ::redis::Client::open(url).map_err(StoreError::backend)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Self::DEFAULT_TIMEOUT))
            .set_response_timeout(Some(Self::DEFAULT_TIMEOUT))
            // After an outage, try again at least every second, so service resumes quickly.
            .set_max_delay(Duration::from_secs(1));
        let manager = ConnectionManager::new_with_config(client, config)
            .await
            .map_err(StoreError::backend)?;
        Ok(Self::new(manager))
    }

    /// Connects to a Redis Cluster, given the URLs of one or more of its nodes (the others are
    /// discovered; surrounding spaces and empty entries are ignored), with the
    /// [`DEFAULT_TIMEOUT`](Self::DEFAULT_TIMEOUT) for connecting and for each response.
    ///
    /// # Errors
    ///
    /// [`StoreError::Backend`] if a URL is invalid, the list is empty, or no node can be reached.
    ///
    /// # Example
    ///
    /// ```no_run
    /// use sessionware::RedisStore;
    ///
    /// # async fn run() -> Result<(), sessionware::StoreError> {
    /// // For example REDIS_CLUSTER_URLS=redis://10.0.0.1:6379,redis://10.0.0.2:6379
    /// let urls = std::env::var("REDIS_CLUSTER_URLS").unwrap_or_default();
    /// let store = RedisStore::connect_cluster(urls.split(',')).await?;
    /// # let _ = store;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn connect_cluster<I, S>(urls: I) -> Result<Self, StoreError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let nodes: Vec<String> = urls
            .into_iter()
            .map(|url| url.as_ref().trim().to_owned())
            .filter(|url| !url.is_empty())
            .collect();
        if nodes.is_empty() {
            return Err(StoreError::backend("no Redis Cluster node URL given"));
        }
        let client = ClusterClient::builder(nodes)
            .connection_timeout(Self::DEFAULT_TIMEOUT)
            .response_timeout(Self::DEFAULT_TIMEOUT)
            .build()
            .map_err(StoreError::backend)?;
        let connection = client
            .get_async_connection()
            .await
            .map_err(StoreError::backend)?;
        Ok(Self::from_cluster(connection))
    }

    /// A store on a standalone Redis, through a connection manager you configured yourself
    /// (timeouts, retries, TLS, RESP3...). It reconnects by itself after an outage.
    ///
    /// Do not point it at a Redis Cluster node: use [`from_cluster`](Self::from_cluster). This
    /// and [`from_cluster`](Self::from_cluster) take redis-rs types: depend on the same major
    /// version of the `redis` crate as sessionware (`redis = "1"`).
    ///
    /// # Example
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use redis::aio::{ConnectionManager, ConnectionManagerConfig};
    /// use sessionware::RedisStore;
    ///
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// let client = redis::Client::open("redis://127.0.0.1:6379")?;
    /// let config = ConnectionManagerConfig::new()
    ///     .set_connection_timeout(Some(Duration::from_millis(500)))
    ///     .set_response_timeout(Some(Duration::from_millis(500)));
    /// let manager = ConnectionManager::new_with_config(client, config).await?;
    /// let store = RedisStore::new(manager).with_timeout(Duration::from_secs(1));
    /// # let _ = store;
    /// # Ok(())
    /// # }
    /// ```
    pub fn new(manager: ConnectionManager) -> Self {
        Self::with_conn(Conn::Standalone(manager))
    }

    /// A store on a Redis Cluster, through a cluster connection you configured yourself.
    ///
    /// # Example
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use redis::cluster::ClusterClient;
    /// use sessionware::RedisStore;
    ///
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// let client = ClusterClient::builder(["redis://10.0.0.1:6379", "redis://10.0.0.2:6379"])
    ///     .connection_timeout(Duration::from_secs(1))
    ///     .response_timeout(Duration::from_secs(1))
    ///     .build()?;
    /// let store = RedisStore::from_cluster(client.get_async_connection().await?);
    /// # let _ = store;
    /// # Ok(())
    /// # }
    /// ```
    pub fn from_cluster(connection: ClusterConnection) -> Self {
        Self::with_conn(Conn::Cluster(connection))
    }

    fn with_conn(conn: Conn) -> Self {
        Self {
            conn,
            prefix: Self::DEFAULT_KEY_PREFIX.to_owned(),
            timeout: Self::DEFAULT_TIMEOUT,
        }
    }

    /// Files sessions under `<prefix><64 hex digits>` instead of `sessionware:<64 hex digits>`,
    /// for example to keep the sessions of two applications apart in one Redis. Every instance
    /// that shares the sessions must use the same prefix. On a cluster, keep hash tags (`{...}`)
    /// out of the prefix (see [Redis Cluster](Self#redis-cluster)).
    ///
    /// # Example
    ///
    /// ```
    /// use redis::AsyncCommands;
    /// use sessionware::store::{now, Record, SessionStore};
    /// use sessionware::{RedisStore, SessionId};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// // CI sets `REDIS_URL`; without it this example has nothing to talk to and stops here.
    /// let Ok(url) = std::env::var("REDIS_URL") else { return Ok(()) };
    /// let store = RedisStore::connect(&url).await?.with_key_prefix("shop:session:");
    /// assert_eq!(store.key_prefix(), "shop:session:");
    ///
    /// // The session lands under the prefix, filed by the SHA-256 of its id.
    /// let key = SessionId::generate().store_key();
    /// let _ = store.create(&key, &Record::new(Default::default(), now() + std::time::Duration::from_secs(60))).await?;
    /// let mut redis = redis::Client::open(url)?.get_multiplexed_async_connection().await?;
    /// assert!(redis.exists::<_, bool>(format!("shop:session:{key}")).await?);
    /// # Ok(())
    /// # }
    /// ```
    #[must_use]
    pub fn with_key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// The prefix of every session key: [`DEFAULT_KEY_PREFIX`](Self::DEFAULT_KEY_PREFIX) unless
    /// [`with_key_prefix`](Self::with_key_prefix) set another (see its example).
    pub fn key_prefix(&self) -> &str {
        &self.prefix
    }

    /// Bounds every store operation (all its round trips) by `timeout`; when it passes, the
    /// operation fails with [`StoreError::Backend`]. The default is
    /// [`DEFAULT_TIMEOUT`](Self::DEFAULT_TIMEOUT). A write that timed out may still have been
    /// applied by Redis.
    ///
    /// # Example
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use sessionware::RedisStore;
    ///
    /// # async fn run() -> Result<(), sessionware::StoreError> {
    /// let store = RedisStore::connect("redis://127.0.0.1:6379")
    ///     .await?
    ///     .with_timeout(Duration::from_millis(500));
    /// # let _ = store;
    /// # Ok(())
    /// # }
    /// ```
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Whether the store talks to a Redis Cluster ([`connect_cluster`](Self::connect_cluster),
    /// [`from_cluster`](Self::from_cluster)) rather than a standalone server.
    pub fn is_cluster(&self) -> bool {
        matches!(self.conn, Conn::Cluster(_))
    }

    /// The Redis key of a session.
    fn redis_key(&self, key: &StoreKey) -> String {
        let mut name = String::with_capacity(self.prefix.len() + 64);
        name.push_str(&self.prefix);
        key.push_hex(&mut name);
        name
    }

    /// The key of the moved-id marker a cycle leaves for the session key `name`:
    /// `{<name>}:moved`. Its hash tag is the session key's whole name, so on a cluster it lives
    /// in the session's slot and the script that removes the session can write it. `None` on a
    /// cluster when no name derived from `name` shares its slot (a prefix with a `}` but no
    /// hash tag): such a store leaves no marker.
    fn moved_key(&self, name: &str) -> Option<String> {
        let tagged = format!("{{{name}}}:moved");
        if !self.is_cluster() {
            return Some(tagged);
        }
        let slot = Slot::for_key(name);
        if Slot::for_key(&tagged) == slot {
            return Some(tagged);
        }
        // A prefix with a hash tag of its own: the suffix keeps it.
        let appended = format!("{name}:moved");
        (Slot::for_key(&appended) == slot).then_some(appended)
    }

    /// Runs `op` on a clone of the connection, within the store's deadline.
    async fn run<'a, T, F, Fut>(&'a self, op: F) -> Result<T, StoreError>
    where
        F: FnOnce(Conn) -> Fut,
        Fut: Future<Output = Result<T, StoreError>> + 'a,
    {
        match tokio::time::timeout(self.timeout, op(self.conn.clone())).await {
            Ok(result) => result,
            Err(_) => Err(StoreError::backend(TimedOut(self.timeout))),
        }
    }

    async fn load_with(
        &self,
        conn: &mut Conn,
        key: &StoreKey,
        now: i64,
    ) -> Result<Option<Record>, StoreError> {
        let (reply, _) = self.read_hash(conn, key).await?;
        codec::decode(reply, key, now)
    }

    async fn create_with(
        &self,
        conn: &mut Conn,
        key: &StoreKey,
        record: &Record,
        now: i64,
    ) -> Result<Created, StoreError> {
        let mut call = Call::new(&scripts().create, &[&self.redis_key(key)]);
        create_args(&mut call, now, record);
        let code: i64 = call.invoke(conn).await.map_err(|e| error(e, key))?;
        Ok(created(code))
    }

    /// Cycle on a standalone server: one script moves the session and marks the old key. The
    /// caller added the new key to the index of the principal it named (tie or
    /// [`Rekey::loaded_principal`]); a session tied to a principal it did not name is refused by the script
    /// ([`UNLISTED`]), added to that principal's index and moved by a second call. Also
    /// returns that principal, whose index still lists the old key.
    async fn cycle_at_once(
        &self,
        conn: &mut Conn,
        keys: Rekey<'_>,
        changes: &ChangeSet,
        now: i64,
    ) -> Result<(Cycled, Option<String>), StoreError> {
        let (old, new) = (self.redis_key(keys.old), self.redis_key(keys.new));
        let marker = self.moved_key(&old);
        let mut names = vec![old.as_str(), new.as_str()];
        names.extend(marker.as_deref());
        let mut found: Option<String> = None;
        // A store key's owner never changes while it lives, so a second call finds the owner
        // it was told; a third only if the key died and came back meanwhile.
        for _ in 0..CYCLE_OWNER_ATTEMPTS {
            let mut call = Call::new(&scripts().cycle, &names);
            let listed = found.as_deref().or(keys.loaded_principal);
            apply_args(&mut call, now, changes, keys.tie, listed);
            let code: i64 = call
                .invoke(&mut *conn)
                .await
                .map_err(|e| error(e, keys.old))?;
            if code != UNLISTED {
                return Ok((cycled(code), found));
            }
            // Listed or dead: the index entry goes first, then the move.
            let principal: Option<String> = ::redis::cmd("HGET")
                .arg(&old)
                .arg("m:p")
                .query_async(&mut *conn)
                .await
                .map_err(|e| error(e, keys.old))?;
            if let Some(principal) = &principal {
                self.index_add(conn, principal, keys.new, now).await?;
            }
            found = principal;
        }
        Err(StoreError::backend(KeptChanging(CYCLE_OWNER_ATTEMPTS)))
    }

    /// Cycle on a cluster: read, create the new key, release the old one (see the type docs).
    /// A change set applied to the old key between the read and the release would be missing
    /// from the copy: the release refuses then, the copy is deleted and the cycle starts over
    /// from a new read, up to [`CYCLE_ATTEMPTS`] times. Without a tie, a session tied to a
    /// principal the caller did not name ([`Rekey::loaded_principal`]) is added to that principal's index
    /// before the copy is made, and the principal returned (its index still lists the old key).
    async fn cycle_in_steps(
        &self,
        conn: &mut Conn,
        keys: Rekey<'_>,
        changes: &ChangeSet,
        now: i64,
    ) -> Result<(Cycled, Option<String>), StoreError> {
        let Rekey { old, new, tie, .. } = keys;
        let mut found: Option<String> = None;
        for attempt in 0..CYCLE_ATTEMPTS {
            let (reply, name) = self.read_hash(conn, old).await?;
            let version = codec::version(&reply);
            let Some(mut record) = codec::decode(reply, old, now)? else {
                return Ok((Cycled::Missing, found));
            };
            if !changes.preconditions_hold(&record.data) {
                return Ok((Cycled::Conflict, found));
            }
            if let Err(size) = changes.check_size(&record.data) {
                return Ok((Cycled::TooLarge { size }, found));
            }
            if let (None, Some(owner)) = (tie, &record.owner) {
                let named = found.as_deref().or(keys.loaded_principal);
                if named != Some(owner.principal.as_str()) {
                    // Listed or dead: the index entry goes first, then the copy.
                    self.index_add(conn, &owner.principal, new, now).await?;
                    found = Some(owner.principal.clone());
                }
            }
            changes.apply_to(&mut record);
            if let Some(owner) = tie {
                record.owner = Some(owner.clone());
            }
            if self.create_with(conn, new, &record, now).await? == Created::Collision {
                return Ok((Cycled::Collision, found));
            }
            let marker = self.moved_key(&name);
            let mut keys = vec![name.as_str()];
            keys.extend(marker.as_deref());
            let released: i64 = Call::new(&scripts().release, &keys)
                .arg(now)
                .arg(version)
                .invoke(conn)
                .await
                .map_err(|e| error(e, old))?;
            if released == DONE {
                return Ok((Cycled::Done, found));
            }
            // Undo the copy: the old session was destroyed, cycled or expired meanwhile, or it
            // changed since it was read and is read again.
            self.delete_with(conn, new).await?;
            if released != CONFLICT {
                return Ok((Cycled::Missing, found));
            }
            tokio::time::sleep(cycle_backoff(attempt)).await;
        }
        Err(StoreError::backend(KeptChanging(CYCLE_ATTEMPTS)))
    }

    /// `HGETALL` of a session's hash: the reply, and the hash's name.
    async fn read_hash(
        &self,
        conn: &mut Conn,
        key: &StoreKey,
    ) -> Result<(Reply, String), StoreError> {
        let name = self.redis_key(key);
        // Sized up front: `cmd` starts empty and grows its buffer twice for these two arguments.
        let reply: Reply = ::redis::Cmd::with_capacity(2, "HGETALL".len() + name.len())
            .arg("HGETALL")
            .arg(&name)
            .query_async(conn)
            .await
            .map_err(|e| error(e, key))?;
        Ok((reply, name))
    }

    async fn delete_with(&self, conn: &mut Conn, key: &StoreKey) -> Result<(), StoreError> {
        let _: i64 = ::redis::cmd("UNLINK")
            .arg(self.redis_key(key))
            .query_async(conn)
            .await
            .map_err(|e| error(e, key))?;
        Ok(())
    }
}

/// The return code of `CREATE` (see [`scripts`]).
fn created(code: i64) -> Created {
    if code == DONE {
        Created::Done
    } else {
        Created::Collision
    }
}

/// The return code of `APPLY`: done, missing, or a negative size over the cap.
fn applied(code: i64) -> Applied {
    match code {
        DONE => Applied::Done,
        CONFLICT => Applied::Conflict,
        refused if refused < 0 => Applied::TooLarge {
            size: refused_size(refused),
        },
        _ => Applied::Missing,
    }
}

/// The return code of `CYCLE`: done, missing, collision, or a negative size over the cap.
fn cycled(code: i64) -> Cycled {
    match code {
        COLLISION => Cycled::Collision,
        other => applied(other).into(),
    }
}

fn touched(code: i64) -> Touched {
    applied(code).into()
}

fn refused_size(code: i64) -> usize {
    usize::try_from(code.unsigned_abs()).unwrap_or(usize::MAX)
}

/// A Redis error as a [`StoreError`]: a key of the wrong type is corrupt data, the rest is a
/// backend failure.
fn error(error: RedisError, key: &StoreKey) -> StoreError {
    typed_error(error, key, "the Redis key is not a hash")
}

/// A Redis error reading a moved-id marker (a string key), as [`error`] does for sessions.
fn marker_error(error: RedisError, key: &StoreKey) -> StoreError {
    typed_error(error, key, "the moved-id marker is not a string")
}

/// `WRONGTYPE` as corrupt data described by `wrong`, anything else as a backend failure.
fn typed_error(error: RedisError, key: &StoreKey, wrong: &str) -> StoreError {
    if error.code() == Some("WRONGTYPE") {
        StoreError::Corrupt(format!("session {}: {wrong} ({error})", key.short()))
    } else {
        StoreError::backend(error)
    }
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mode = if self.is_cluster() {
            "cluster"
        } else {
            "standalone"
        };
        f.debug_struct("RedisStore")
            .field("mode", &mode)
            .field("key_prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}
