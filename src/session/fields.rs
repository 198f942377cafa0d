//! A struct as session values: [`Session::get_fields`] and [`Session::insert_fields`], one key per
//! field, so that requests changing different fields all keep their change.

use serde::de::DeserializeOwned;
use serde::ser::Error as _;
use serde::Serialize;
use serde_json::{Map, Value};

use super::Session;
use crate::error::Error;

/// The session key of `field` under `prefix`: `prefix.field`, or `field` without a prefix.
fn field_key(prefix: &str, field: &str) -> String {
    if prefix.is_empty() {
        field.to_owned()
    } else {
        format!("{prefix}.{field}")
    }
}

impl Session {
    /// Reads a struct whose fields are stored as values of their own, under `prefix.<field>`
    /// (or `<field>` with an empty prefix): the counterpart of
    /// [`insert_fields`](Self::insert_fields). Fields without a value are missing to serde, so
    /// give them `#[serde(default)]` (or make them `Option`) for a session that has none yet.
    ///
    /// # Errors
    ///
    /// [`Error::Store`] if loading the session failed; [`Error::Deserialize`] (with `prefix` as
    /// the key) if the values do not make a `T`.
    pub async fn get_fields<T: DeserializeOwned>(&self, prefix: &str) -> Result<T, Error> {
        self.load().await?;
        let object: Map<String, Value> = {
            let state = self.state();
            let start = if prefix.is_empty() {
                String::new()
            } else {
                format!("{prefix}.")
            };
            state
                .data
                .iter()
                .filter_map(|(key, value)| {
                    let field = field_of(key, start.as_str())?;
                    Some((field.to_owned(), value.clone()))
                })
                .collect()
        };
        T::deserialize(Value::Object(object)).map_err(|source| Error::Deserialize {
            key: prefix.to_owned(),
            source,
        })
    }

    /// Stores a struct as one value per field, under `prefix.<field>` (or `<field>` with an
    /// empty prefix), writing only the fields whose value changed: two requests that change
    /// different fields of the same struct both keep their change, where storing the struct as
    /// one value would keep only the last writer's copy. (Two requests changing the same field:
    /// the last write wins, as with [`insert`](Self::insert).) Under a prefix, fields the value
    /// no longer serializes (a skipped `None`) are removed.
    ///
    /// ```
    /// use serde::{Deserialize, Serialize};
    /// use sessionware::{Error, Session};
    ///
    /// #[derive(Default, Serialize, Deserialize)]
    /// struct Preferences {
    ///     #[serde(default)]
    ///     theme: String,
    ///     #[serde(default)]
    ///     language: String,
    /// }
    ///
    /// async fn set_theme(session: Session, theme: String) -> Result<(), Error> {
    ///     let mut preferences: Preferences = session.get_fields("prefs").await?;
    ///     preferences.theme = theme;
    ///     // Writes `prefs.theme` only: a request changing the language meanwhile keeps it.
    ///     session.insert_fields("prefs", &preferences).await
    /// }
    /// # use axum::{body::Body, http::Request, routing::get, Router};
    /// # use sessionware::{MemoryStore, SessionLayer};
    /// # use tower::ServiceExt;
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// # let app = Router::new()
    /// #     .route("/", get(|s: Session| async move {
    /// #         set_theme(s.clone(), "dark".into()).await?;
    /// #         s.get::<String>("prefs.theme").await.map(Option::unwrap_or_default)
    /// #     }))
    /// #     .layer(SessionLayer::new(MemoryStore::default()));
    /// # let response = app.oneshot(Request::get("/").body(Body::empty()).unwrap()).await.unwrap();
    /// # let body = axum::body::to_bytes(response.into_body(), 64).await.unwrap();
    /// # assert_eq!(body, "dark");
    /// # });
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Serialize`] if `value` does not serialize to a JSON object (a struct or a map)
    /// or a field name has a `.`; [`Error::ReservedKey`] if a key would start with `__`;
    /// [`Error::Store`] if loading the session failed; [`Error::TooLarge`] if the session would
    /// outgrow its size cap (fields written before the one that crossed it stay written).
    pub async fn insert_fields<T: Serialize>(&self, prefix: &str, value: &T) -> Result<(), Error> {
        let serialize_error = |source| Error::Serialize {
            key: prefix.to_owned(),
            source,
        };
        let Value::Object(fields) = serde_json::to_value(value).map_err(serialize_error)? else {
            let source = serde_json::Error::custom("not a struct or a map: it has no fields");
            return Err(serialize_error(source));
        };
        super::key::refuse_reserved(prefix)?;
        if let Some(field) = fields.keys().find(|field| field.contains('.')) {
            let source = serde_json::Error::custom(format!(
                "field `{field}` has a `.` in its name: fields are one level, `prefix.field`"
            ));
            return Err(serialize_error(source));
        }
        for field in fields.keys() {
            super::key::refuse_reserved(&field_key(prefix, field))?;
        }
        self.load().await?;
        // Without a prefix, which keys belong to the struct is unknown: nothing is removed.
        let stale: Vec<String> = {
            let start = format!("{prefix}.");
            self.state()
                .data
                .keys()
                .filter(|key| {
                    !prefix.is_empty()
                        && field_of(key, start.as_str())
                            .is_some_and(|field| !fields.contains_key(field))
                })
                .cloned()
                .collect()
        };
        for key in stale {
            self.remove::<Value>(&key).await?;
        }
        // A field that holds its value already changes nothing: `set_locally` skips it.
        for (field, value) in fields {
            self.set_locally(&field_key(prefix, &field), value)?;
        }
        Ok(())
    }
}

/// The field name of `key` if it is a field under `start` (`"prefix."`): one level only, so the
/// fields of `user` are `user.name` and `user.email`, never `user.prefs.theme` (a struct kept
/// under `user.prefs` is another struct, and `insert_fields("user", ..)` leaves it alone).
fn field_of<'k>(key: &'k str, start: &str) -> Option<&'k str> {
    key.strip_prefix(start)
        .filter(|field| !field.contains('.') && !field.starts_with(super::key::RESERVED_PREFIX))
}
