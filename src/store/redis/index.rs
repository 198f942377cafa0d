//! The principal index of [`RedisStore`](super::RedisStore): a sorted set per principal,
//! `<prefix>p:<principal>`, whose members are the store keys (hex) of the principal's sessions,
//! scored by when each was added (Unix ms).
//!
//! The index lives apart from the sessions (in a cluster, in another slot), so it is written in
//! steps ordered for safety: an entry is added before the session it names is created or cycled
//! to its key, and removed only after the session is gone. A failure between steps leaves a
//! stale entry, never a live session missing from the index. Stale entries are dropped by
//! `list` and the purge, but only once they are older than twice the store's timeout (at least
//! a second): a younger entry may belong to a session whose write is still on its way, and every
//! write of this store gives up after its timeout.

use ::redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};

use super::{error, Conn, RedisStore};
use crate::clock::from_ms;
use crate::error::StoreError;
use crate::id::StoreKey;
use crate::store::Listed;

/// The least time an index entry is kept while its session is not (yet) there.
const MIN_SETTLE: i64 = 1_000;

/// Index keys visited per `SCAN` step of the purge.
const SCAN_COUNT: usize = 500;

/// The fields `list` reads of each session, in one `HMGET`.
const FIELDS: [&str; 5] = ["m:e", "m:c", "m:p", "m:l", "m:t"];

impl RedisStore {
    /// How long an index entry is kept even though its session is not (yet) there: longer than
    /// any write of this store can take.
    fn settle(&self) -> i64 {
        let timeout = i64::try_from(self.timeout.as_millis()).unwrap_or(i64::MAX);
        timeout.saturating_mul(2).max(MIN_SETTLE)
    }

    pub(super) fn index_key(&self, principal: &str) -> String {
        format!("{}p:{principal}", self.prefix)
    }

    /// Adds `key` to the index of `principal`, before the session is written under it.
    pub(super) async fn index_add(
        &self,
        conn: &mut Conn,
        principal: &str,
        key: &StoreKey,
        now: i64,
    ) -> Result<(), StoreError> {
        let mut add = ::redis::cmd("ZADD");
        add.arg(self.index_key(principal))
            .arg(now)
            .arg(key.to_string());
        run(conn, add).await
    }

    /// Removes `keys` from the index of `principal`, after their sessions are gone.
    pub(super) async fn index_remove(
        &self,
        conn: &mut Conn,
        principal: &str,
        keys: &[String],
    ) -> Result<(), StoreError> {
        if keys.is_empty() {
            return Ok(());
        }
        let mut remove = ::redis::cmd("ZREM");
        remove.arg(self.index_key(principal)).arg(keys);
        run(conn, remove).await
    }

    /// The live sessions of `principal`; drops the settled entries of sessions that are gone.
    pub(super) async fn list_with(
        &self,
        conn: &mut Conn,
        principal: &str,
        now: i64,
    ) -> Result<Vec<Listed>, StoreError> {
        let members: Vec<(String, i64)> = ::redis::cmd("ZRANGE")
            .arg(self.index_key(principal))
            .arg(0)
            .arg(-1)
            .arg("WITHSCORES")
            .query_async(conn)
            .await
            .map_err(StoreError::backend)?;
        let mut listed = Vec::with_capacity(members.len());
        let mut gone = Vec::new();
        for (member, added) in members {
            let session = match StoreKey::from_hex(&member) {
                Some(key) => self.listed_session(conn, &key, principal, now).await?,
                None => None,
            };
            match session {
                Some(session) => listed.push(session),
                None if added <= now.saturating_sub(self.settle()) => gone.push(member),
                None => {}
            }
        }
        self.index_remove(conn, principal, &gone).await?;
        Ok(listed)
    }

    /// The session under `key` as a listing, if it is live and tied to `principal`.
    async fn listed_session(
        &self,
        conn: &mut Conn,
        key: &StoreKey,
        principal: &str,
        now: i64,
    ) -> Result<Option<Listed>, StoreError> {
        let fields: Vec<Option<String>> = ::redis::cmd("HMGET")
            .arg(self.redis_key(key))
            .arg(&FIELDS[..])
            .query_async(conn)
            .await
            .map_err(|e| error(e, key))?;
        let [expires_at, created_at, owner, label, tied_at] =
            <[Option<String>; 5]>::try_from(fields)
                .map_err(|_| StoreError::backend("unexpected reply to HMGET"))?;
        let number = |text: Option<String>| text.and_then(|text| text.parse::<i64>().ok());
        Ok(match (number(expires_at), number(created_at)) {
            (Some(expires_at), Some(created_at))
                if expires_at > now && owner.as_deref() == Some(principal) =>
            {
                // An unreadable tie time lists as unknown: `load` reports it as corrupt, and
                // the cap then ranks the session by its creation.
                let (created_at, expires_at) = (from_ms(created_at), from_ms(expires_at));
                let tied_at = number(tied_at).map(from_ms);
                Some(Listed::new(*key, created_at, expires_at, label).with_tied_at(tied_at))
            }
            _ => None,
        })
    }

    /// Every principal's index, pruned as `list` prunes it (for the purge).
    pub(super) async fn prune_indexes(&self, conn: &mut Conn, now: i64) -> Result<(), StoreError> {
        let pattern = format!("{}p:*", glob_escape(&self.prefix));
        for node in self.nodes(conn).await? {
            let mut cursor = 0u64;
            loop {
                let mut scan = ::redis::cmd("SCAN");
                scan.arg(cursor)
                    .arg("MATCH")
                    .arg(&pattern)
                    .arg("COUNT")
                    .arg(SCAN_COUNT);
                let (next, names): (u64, Vec<String>) = match (&mut *conn, &node) {
                    (Conn::Cluster(cluster), Some(node)) => {
                        let reply = cluster
                            .route_command(scan, node.clone())
                            .await
                            .map_err(StoreError::backend)?;
                        ::redis::from_redis_value(reply).map_err(StoreError::backend)?
                    }
                    _ => scan.query_async(conn).await.map_err(StoreError::backend)?,
                };
                let index_prefix = self.index_key("");
                for name in names {
                    if let Some(principal) = name.strip_prefix(&index_prefix) {
                        self.list_with(conn, principal, now).await?;
                    }
                }
                if next == 0 {
                    break;
                }
                cursor = next;
            }
        }
        Ok(())
    }

    /// The nodes to scan: `None` for the one standalone server, each master's address on a
    /// cluster.
    async fn nodes(&self, conn: &mut Conn) -> Result<Vec<Option<RoutingInfo>>, StoreError> {
        let Conn::Cluster(cluster) = conn else {
            return Ok(vec![None]);
        };
        let reply = cluster
            .route_command(
                ::redis::cmd("CLUSTER").arg("NODES").clone(),
                RoutingInfo::SingleNode(SingleNodeRoutingInfo::Random),
            )
            .await
            .map_err(StoreError::backend)?;
        let text: String = ::redis::from_redis_value(reply).map_err(StoreError::backend)?;
        Ok(masters(&text)
            .into_iter()
            .map(|(host, port)| {
                Some(RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress {
                    host,
                    port,
                }))
            })
            .collect())
    }
}

/// Runs an index write whose reply (a count) nobody needs.
async fn run(conn: &mut Conn, command: ::redis::Cmd) -> Result<(), StoreError> {
    let _: i64 = command
        .query_async(conn)
        .await
        .map_err(StoreError::backend)?;
    Ok(())
}

/// The `(host, port)` of every master in a `CLUSTER NODES` reply.
fn masters(nodes: &str) -> Vec<(String, u16)> {
    nodes
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (address, flags) = (fields.get(1)?, fields.get(2)?);
            if !flags.split(',').any(|flag| flag == "master") || flags.contains("fail") {
                return None;
            }
            // `host:port@cport[,hostname]`
            let address = address.split(['@', ',']).next()?;
            let (host, port) = address.rsplit_once(':')?;
            Some((host.to_owned(), port.parse().ok()?))
        })
        .collect()
}

/// `text` with the `SCAN MATCH` pattern characters escaped.
fn glob_escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masters_are_read_from_cluster_nodes() {
        let nodes = "\
a 127.0.0.1:57001@67001 myself,master - 0 0 1 connected 0-5460
b 127.0.0.1:57002@67002,host.example master - 0 0 2 connected 5461-10922
c 127.0.0.1:57004@67004 slave a 0 0 1 connected
d 127.0.0.1:57003@67003 master,fail - 0 0 3 disconnected
";
        assert_eq!(
            masters(nodes),
            [
                ("127.0.0.1".to_owned(), 57001),
                ("127.0.0.1".to_owned(), 57002)
            ]
        );
        assert_eq!(glob_escape("a*b:"), "a\\*b:");
    }
}
