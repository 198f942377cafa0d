//! [`RedisStore`]'s [`SessionStore`] implementation: each operation as the scripts and
//! commands it sends (the connection handling and the multi-step cluster cycle are in
//! [`super`]).

use std::time::SystemTime;

use async_trait::async_trait;

use super::*;

#[async_trait]
impl SessionStore for RedisStore {
    async fn load(&self, key: &StoreKey) -> Result<Option<Record>, StoreError> {
        self.run(|mut conn| async move { self.load_with(&mut conn, key, now_ms()).await })
            .await
    }

    async fn create(&self, key: &StoreKey, record: &Record) -> Result<Created, StoreError> {
        self.run(|mut conn| async move {
            let now = now_ms();
            if let Some(owner) = &record.owner {
                self.index_add(&mut conn, &owner.principal, key, now)
                    .await?;
            }
            self.create_with(&mut conn, key, record, now).await
        })
        .await
    }

    async fn apply(&self, key: &StoreKey, changes: &ChangeSet) -> Result<Applied, StoreError> {
        self.run(|mut conn| async move {
            let mut call = Call::new(&scripts().apply, &[&self.redis_key(key)]);
            apply_args(&mut call, now_ms(), changes, None, None);
            let code: i64 = call.invoke(&mut conn).await.map_err(|e| error(e, key))?;
            Ok(applied(code))
        })
        .await
    }

    async fn cycle(&self, keys: Rekey<'_>, changes: &ChangeSet) -> Result<Cycled, StoreError> {
        self.run(|mut conn| async move {
            let now = now_ms();
            // The new key's index entry comes first, the old one's goes last (see `index`).
            if let Some(principal) = keys.principal() {
                self.index_add(&mut conn, principal, keys.new, now).await?;
            }
            let (outcome, found) = if self.is_cluster() {
                self.cycle_in_steps(&mut conn, keys, changes, now).await?
            } else {
                self.cycle_at_once(&mut conn, keys, changes, now).await?
            };
            if let (Cycled::Done, Some(was)) = (outcome, found.as_deref().or(keys.loaded_principal))
            {
                self.index_remove(&mut conn, was, &[keys.old.to_string()])
                    .await?;
            }
            Ok(outcome)
        })
        .await
    }

    async fn was_moved(&self, key: &StoreKey) -> Result<bool, StoreError> {
        let Some(marker) = self.moved_key(&self.redis_key(key)) else {
            return Ok(false);
        };
        self.run(|mut conn| async move {
            let until: Option<Vec<u8>> = ::redis::cmd("GET")
                .arg(&marker)
                .query_async(&mut conn)
                .await
                .map_err(|e| marker_error(e, key))?;
            let Some(until) = until else {
                return Ok(false);
            };
            // Decided on the application's clock, as liveness is; the TTL only cleans up.
            let until: i64 = std::str::from_utf8(&until)
                .ok()
                .and_then(|text| text.parse().ok())
                .ok_or_else(|| {
                    StoreError::Corrupt(format!(
                        "session {}: the moved-id marker is not a timestamp",
                        key.short()
                    ))
                })?;
            Ok(until > now_ms())
        })
        .await
    }

    async fn delete(&self, key: &StoreKey) -> Result<(), StoreError> {
        self.run(|mut conn| async move { self.delete_with(&mut conn, key).await })
            .await
    }

    async fn touch(&self, key: &StoreKey, expires_at: SystemTime) -> Result<Touched, StoreError> {
        self.run(|mut conn| async move {
            let code: i64 = Call::new(&scripts().touch, &[&self.redis_key(key)])
                .arg(now_ms())
                .arg(to_ms(expires_at))
                .invoke(&mut conn)
                .await
                .map_err(|e| error(e, key))?;
            Ok(touched(code))
        })
        .await
    }

    /// Redis expires sessions itself (every write sets the key's TTL to the session's
    /// deadline); this prunes the principal indexes of entries whose sessions are gone, and
    /// answers `0`.
    async fn delete_expired(&self) -> Result<u64, StoreError> {
        // Not bounded by the store's timeout as a whole: it visits every index, command by
        // command, and each command has the connection's own timeout.
        let mut conn = self.conn.clone();
        self.prune_indexes(&mut conn, now_ms()).await?;
        Ok(0)
    }

    async fn list(&self, principal: &str) -> Result<Vec<Listed>, StoreError> {
        self.run(|mut conn| async move { self.list_with(&mut conn, principal, now_ms()).await })
            .await
    }

    async fn delete_all(&self, principal: &str) -> Result<u64, StoreError> {
        self.run(|mut conn| async move {
            let listed = self.list_with(&mut conn, principal, now_ms()).await?;
            let mut deleted = Vec::with_capacity(listed.len());
            for session in &listed {
                self.delete_with(&mut conn, &session.key).await?;
                deleted.push(session.key.to_string());
            }
            // Only the entries of sessions deleted here: one that a racing log-in added meanwhile
            // stays, with its session.
            self.index_remove(&mut conn, principal, &deleted).await?;
            Ok(listed.len() as u64)
        })
        .await
    }
}
