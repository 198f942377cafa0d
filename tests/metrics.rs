//! The `metrics` feature: counters and store-call latency through the `metrics` facade, read
//! back through the Prometheus exporter, with no id, handle or principal in any label.

mod common;

use std::num::NonZeroUsize;

use metrics_exporter_prometheus::PrometheusBuilder;
use sessionware::{MemoryStore, SessionLayer};

use common::{send, send_ok};

/// The value of the sample line `name` with exactly these labels (`{}` for none).
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find(|line| line.starts_with(series) && line[series.len()..].starts_with(' '))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse().ok())
}

#[tokio::test(flavor = "current_thread")]
async fn counters_and_latency_reach_the_exporter_without_ids() {
    let handle = PrometheusBuilder::new().install_recorder().unwrap();
    let store = MemoryStore::default();
    let layer =
        SessionLayer::new(store).with_max_sessions_per_principal(NonZeroUsize::new(1).unwrap());
    let app = common::app(layer);

    let first = send_ok(&app, "/login/principal-secret/laptop", None)
        .await
        .cookie();
    tokio::time::sleep(std::time::Duration::from_millis(3)).await;
    send_ok(&app, "/login/principal-secret/phone", None).await; // the cap revokes the laptop
    send_ok(&app, "/read", Some(&first)).await; // now unknown
    send(&app, "/read", Some("id=garbage")).await; // refused
    let second = send_ok(&app, "/write", None).await.cookie();
    send_ok(&app, "/destroy", Some(&second)).await;

    let text = handle.render();
    assert_eq!(
        sample(&text, "sessionware_logins_total"),
        Some(2.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "sessionware_sessions_created_total"),
        Some(3.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "sessionware_sessions_revoked_total"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "sessionware_session_ids_unknown_total"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "sessionware_session_ids_refused_total"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "sessionware_sessions_destroyed_total"),
        Some(1.0),
        "{text}"
    );
    let loads = r#"sessionware_store_call_duration_seconds_count{store="memory",operation="load"}"#;
    assert!(sample(&text, loads).is_some_and(|n| n >= 2.0), "{text}");
    assert!(
        !text.contains("principal-secret"),
        "a principal became a label:\n{text}"
    );
    let id = first.split('=').nth(1).unwrap();
    assert!(!text.contains(id), "an id became a label");
}
