//! PostgreSQL finds expired rows through `purge_at`, which writes leave alone, so that writes
//! can be in-place (HOT) updates: that they are, that the purge still finds every expired row
//! and no live one, and that `migrate` moves an older table over.

use std::time::Duration;

use super::*;

/// A store on a table of its own, migrated, and the table's name.
async fn own_table(prefix: &str) -> (PostgresStore, String) {
    let table = format!("{prefix}_{}", SessionId::generate().store_key().short());
    let store = PostgresStore::new(pool().await)
        .with_table_name(&table)
        .unwrap();
    store.migrate().await.unwrap();
    (store, table)
}

async fn drop_tables(pool: &sqlx::PgPool, table: &str) {
    let drop = format!("DROP TABLE IF EXISTS {table}, {table}_moved");
    sqlx::query(AssertSqlSafe(drop))
        .execute(pool)
        .await
        .unwrap();
}

fn record(value: i64, lasts: Duration) -> Record {
    Record::new([("n".to_owned(), json!(value))].into(), now() + lasts)
}

/// Writes and touches that move the deadline later are in-place updates: PostgreSQL counts
/// them in `n_tup_hot_upd`. With an index on `expires_at`, none was.
#[tokio::test]
async fn postgres_writes_update_rows_in_place() {
    let (store, table) = own_table("hot").await;
    let keys: Vec<StoreKey> = (0..20).map(|_| SessionId::generate().store_key()).collect();
    for key in &keys {
        assert_eq!(
            store.create(key, &record(0, HOUR)).await.unwrap(),
            Created::Done
        );
    }
    let mut updates = 0;
    for round in 1..=10 {
        for key in &keys {
            let changes = ChangeSet::new(now() + HOUR).with_set("n", json!(round));
            assert_eq!(store.apply(key, &changes).await.unwrap(), Applied::Done);
            assert_eq!(
                store.touch(key, now() + 2 * HOUR).await.unwrap(),
                sessionware::store::Touched::Done
            );
            updates += 2;
        }
    }
    // A backend reports its statistics when it exits at the latest: close the store's pool,
    // then wait for the counts to arrive.
    let pool = store.pool().clone();
    pool.close().await;
    let observer = super::pool().await;
    let query = "SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables WHERE relname = $1";
    let mut seen = (0, 0);
    for _ in 0..100 {
        seen = sqlx::query_as::<_, (i64, i64)>(query)
            .bind(&table)
            .fetch_one(&observer)
            .await
            .unwrap();
        if seen.0 >= updates {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (total, hot) = seen;
    assert_eq!(total, updates, "the statistics did not arrive");
    assert!(
        hot * 10 >= total * 9,
        "only {hot} of {total} updates were in place (HOT)"
    );
    drop_tables(&observer, &table).await;
}

/// The purge deletes what has expired and nothing else, whichever way the deadline moved:
/// later by a touch or a write (the purge looks at the row when its first deadline passes and
/// must keep it), earlier by a write (it must not wait for the old deadline), or never; and rows
/// an older version wrote without `purge_at`.
#[tokio::test]
async fn postgres_purge_follows_moved_deadlines() {
    let (store, table) = own_table("purge_at").await;
    let short = Duration::from_millis(500);
    let key = || SessionId::generate().store_key();
    let (touched, written, shortened, untouched) = (key(), key(), key(), key());
    for (k, lasts) in [
        (&touched, short),
        (&written, short),
        (&shortened, HOUR),
        (&untouched, short),
    ] {
        assert_eq!(
            store.create(k, &record(1, lasts)).await.unwrap(),
            Created::Done
        );
    }
    assert_eq!(
        store.touch(&touched, now() + HOUR).await.unwrap(),
        sessionware::store::Touched::Done
    );
    let later = ChangeSet::new(now() + HOUR).with_set("n", json!(2));
    assert_eq!(store.apply(&written, &later).await.unwrap(), Applied::Done);
    let sooner = ChangeSet::new(now() + short).with_set("n", json!(2));
    assert_eq!(
        store.apply(&shortened, &sooner).await.unwrap(),
        Applied::Done
    );
    // As an older version writes them: no `purge_at`.
    let (legacy_live, legacy_expired) = (key(), key());
    for (k, expires_at) in [(&legacy_live, now() + HOUR), (&legacy_expired, now())] {
        let insert = format!(
            "INSERT INTO {table} (key, data, created_at, expires_at) \
             VALUES ($1, '{{\"n\": 1}}', $2, $3)"
        );
        sqlx::query(AssertSqlSafe(insert))
            .bind(k.to_string())
            .bind(unix_ms(now()))
            .bind(unix_ms(expires_at))
            .execute(store.pool())
            .await
            .unwrap();
    }
    tokio::time::sleep(Duration::from_millis(700)).await;

    assert_eq!(store.delete_expired().await.unwrap(), 3);
    let rows = format!("SELECT key, purge_at, expires_at FROM {table} ORDER BY key");
    let left: Vec<(String, Option<i64>, i64)> = sqlx::query_as(AssertSqlSafe(rows))
        .fetch_all(store.pool())
        .await
        .unwrap();
    let mut expected = vec![
        touched.to_string(),
        written.to_string(),
        legacy_live.to_string(),
    ];
    expected.sort();
    assert_eq!(
        left.iter().map(|row| row.0.clone()).collect::<Vec<_>>(),
        expected
    );
    for (key, purge_at, expires_at) in &left {
        assert_eq!(
            *purge_at,
            Some(*expires_at),
            "{key}: the purge looked at it and did not move its purge time to its deadline"
        );
    }
    assert_eq!(store.delete_expired().await.unwrap(), 0);
    for k in [&touched, &written, &legacy_live] {
        assert!(store.load(k).await.unwrap().is_some());
    }
    drop_tables(store.pool(), &table).await;
}

/// A table made before `purge_at` (with its index on `expires_at`) gets the column, the index
/// on it, room on its pages, and loses the index on `expires_at`; its rows are purged right.
#[tokio::test]
async fn postgres_migrate_moves_the_purge_off_expires_at() {
    let pool = pool().await;
    let table = format!(
        "before_purge_at_{}",
        SessionId::generate().store_key().short()
    );
    for ddl in [
        table_02(&table, "JSONB"),
        format!("CREATE INDEX {table}_expires_at_idx ON {table} (expires_at)"),
    ] {
        sqlx::query(AssertSqlSafe(ddl))
            .execute(&pool)
            .await
            .unwrap();
    }
    let (live, expired) = (
        SessionId::generate().store_key(),
        SessionId::generate().store_key(),
    );
    for (k, expires_at) in [(&live, now() + HOUR), (&expired, now())] {
        let insert = format!("INSERT INTO {table} VALUES ($1, '{{\"n\": 1}}', $2, $3)");
        sqlx::query(AssertSqlSafe(insert))
            .bind(k.to_string())
            .bind(unix_ms(now()))
            .bind(unix_ms(expires_at))
            .execute(&pool)
            .await
            .unwrap();
    }
    let store = PostgresStore::new(pool.clone())
        .with_table_name(&table)
        .unwrap();
    store.migrate().await.unwrap();
    store.migrate().await.unwrap();

    let indexes: Vec<String> =
        sqlx::query_scalar("SELECT indexname::text FROM pg_indexes WHERE tablename = $1")
            .bind(&table)
            .fetch_all(&pool)
            .await
            .unwrap();
    assert!(
        indexes.contains(&format!("{table}_purge_at_idx")),
        "{indexes:?}"
    );
    assert!(
        !indexes.contains(&format!("{table}_expires_at_idx")),
        "{indexes:?}"
    );
    let options: Option<Vec<String>> =
        sqlx::query_scalar("SELECT reloptions FROM pg_class WHERE relname = $1")
            .bind(&table)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(options, Some(vec!["fillfactor=90".to_owned()]));

    assert_eq!(store.delete_expired().await.unwrap(), 1);
    assert!(store.load(&live).await.unwrap().is_some());
    drop_tables(&pool, &table).await;
}
