//! Round trips per request, counted by the servers themselves: Redis `INFO commandstats` and
//! PostgreSQL `pg_stat_statements`. A load is one round trip, a modified-session save one more, a
//! new session one, a read-only request inside the touch window writes nothing, and a route that
//! ignores the session makes none.
//!
//! A separate test binary: it resets server-wide counters, so nothing else may run against the
//! same servers meanwhile (cargo runs test binaries one at a time).

#![cfg(any(feature = "redis", feature = "postgres"))]

mod common;

use std::future::Future;

use axum::Router;
use sessionware::SessionLayer;

use common::{env_url, send_ok};

/// Runs each request and checks how many round trips the server counted for it.
async fn check<C, F>(app: &Router, count: C)
where
    C: Fn() -> F,
    F: Future<Output = u64>,
{
    // Warm up: connections open, scripts and statements loaded.
    let cookie = send_ok(app, "/write", None).await.first_cookie().unwrap();
    send_ok(app, "/write", Some(&cookie)).await;
    send_ok(app, "/read", Some(&cookie)).await;

    let cases: [(&str, Option<&str>, u64, &str); 4] = [
        (
            "/plain",
            Some(&cookie),
            0,
            "a route that ignores the session",
        ),
        (
            "/read",
            Some(&cookie),
            1,
            "a read-only request inside the touch window (one load, no write)",
        ),
        (
            "/write",
            Some(&cookie),
            2,
            "a modified session (one load, one save)",
        ),
        ("/write", None, 1, "a new session (one create, no load)"),
    ];
    for (path, cookie, expected, what) in cases {
        let before = count().await;
        send_ok(app, path, cookie).await;
        let trips = count().await - before;
        assert_eq!(trips, expected, "{what}: {trips} round trips");
    }

    // Sessions by user: a log-in costs at most one round trip more than a plain cycle, and a
    // logged-in session pays nothing more than an anonymous one for the rest.
    let trips = |path: &'static str, cookie: String| {
        let count = &count;
        async move {
            let before = count().await;
            let reply = send_ok(app, path, Some(&cookie)).await;
            (count().await - before, reply)
        }
    };
    let visitor = || async { send_ok(app, "/write", None).await.first_cookie().unwrap() };
    let (cycle, _) = trips("/cycle", visitor().await).await;
    let (log_in, reply) = trips("/login/round-trips/test", visitor().await).await;
    assert!(
        log_in <= cycle + 1,
        "a log-in took {log_in} round trips, a cycle {cycle}"
    );
    let logged_in = reply.first_cookie().unwrap();
    assert_eq!(
        trips("/write", logged_in.clone()).await.0,
        2,
        "a logged-in save"
    );
    assert_eq!(trips("/read", logged_in).await.0, 1, "a logged-in read");
}

#[cfg(feature = "redis")]
#[tokio::test]
async fn redis_round_trips() {
    let url = env_url("REDIS_URL");
    let store = sessionware::RedisStore::connect(&url).await.unwrap();
    let client = redis::Client::open(url).unwrap();
    let admin = client.get_multiplexed_async_connection().await.unwrap();
    // The commands the store sends itself; what the scripts run inside Redis is not a round trip.
    let count = move || {
        let mut admin = admin.clone();
        async move {
            let info: String = redis::cmd("INFO")
                .arg("commandstats")
                .query_async(&mut admin)
                .await
                .unwrap();
            info.lines()
                .filter_map(|line| {
                    let (name, stats) = line.strip_prefix("cmdstat_")?.split_once(':')?;
                    [
                        "hgetall",
                        "evalsha",
                        "eval",
                        "unlink",
                        "script|load",
                        "zadd",
                        "zrem",
                        "zrange",
                        "hmget",
                    ]
                    .contains(&name)
                    .then(|| {
                        stats
                            .split(',')
                            .next()?
                            .strip_prefix("calls=")?
                            .parse::<u64>()
                            .ok()
                    })?
                })
                .sum::<u64>()
        }
    };
    check(&common::app(SessionLayer::new(store)), count).await;
}

#[cfg(feature = "postgres")]
#[tokio::test]
async fn postgres_round_trips() {
    let url = env_url("DATABASE_URL");
    let store = sessionware::PostgresStore::connect(&url).await.unwrap();
    store.migrate().await.unwrap();
    let admin = sqlx::PgPool::connect(&url).await.unwrap();
    let count = move || {
        let admin = admin.clone();
        async move {
            // Statements executed on the sessions table; the monitoring query itself excluded.
            let calls: Option<i64> = sqlx::query_scalar(
                "SELECT sum(calls)::bigint FROM pg_stat_statements \
                 WHERE query ILIKE '%sessionware_sessions%' AND query NOT ILIKE '%pg_stat_statements%'",
            )
            .fetch_one(&admin)
            .await
            .expect("pg_stat_statements must be installed (.ci/services.sh does it)");
            calls.unwrap_or(0) as u64
        }
    };
    check(&common::app(SessionLayer::new(store)), count).await;
}
