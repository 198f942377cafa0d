//! What apps build on sessions, where a store step is involved, against every store: flash
//! messages taken by one of two racing requests only, and a CSRF secret that racing first
//! requests agree on.

use axum::extract::Path;
use axum::routing::get;
use axum::Router;
use sessionware::store::SessionStore;
use sessionware::{Error, Session, SessionLayer};

use crate::common::{send, send_ok};

fn app(store: impl SessionStore) -> Router {
    crate::common::flash_routes()
        .route(
            "/token",
            get(|s: Session| async move { s.csrf_token().await }),
        )
        .route(
            "/verify/{token}",
            get(|s: Session, Path(token): Path<String>| async move {
                Ok::<_, Error>(s.verify_csrf(&token).await?.to_string())
            }),
        )
        .route("/write", get(crate::common::write))
        .layer(SessionLayer::new(store))
}

/// Two pages racing to show the same three messages: each message is shown exactly once.
pub async fn flash_is_taken_once(store: impl SessionStore) {
    let app = app(store);
    for _ in 0..5 {
        let cookie = send_ok(&app, "/write", None).await.cookie();
        for text in ["a", "b", "c"] {
            send_ok(&app, &format!("/flash/{text}"), Some(&cookie)).await;
        }
        let (one, two) = tokio::join!(
            send(&app, "/show", Some(&cookie)),
            send(&app, "/show", Some(&cookie)),
        );
        assert_eq!((one.status.as_u16(), two.status.as_u16()), (200, 200));
        let mut shown: Vec<String> = [one.body, two.body]
            .into_iter()
            .filter(|body| !body.is_empty())
            .flat_map(|body| body.split(',').map(str::to_owned).collect::<Vec<_>>())
            .collect();
        shown.sort();
        assert_eq!(shown, ["info:a", "info:b", "info:c"]);
        assert_eq!(send_ok(&app, "/show", Some(&cookie)).await.body, "");
    }
}

/// The first two requests of a session ask for a token at once: both tokens verify, because
/// the secret is created in one store step that the loser rereads.
pub async fn csrf_secret_is_agreed(store: impl SessionStore) {
    let app = app(store);
    for _ in 0..5 {
        let cookie = send_ok(&app, "/write", None).await.cookie();
        let (one, two) = tokio::join!(
            send(&app, "/token", Some(&cookie)),
            send(&app, "/token", Some(&cookie)),
        );
        for token in [one.body, two.body] {
            let verified = send_ok(&app, &format!("/verify/{token}"), Some(&cookie)).await;
            assert_eq!(
                verified.body, "true",
                "a racing first request got a dead token"
            );
        }
    }
}
