//! [`SessionKey`]: a key that knows the type of its value.

use std::fmt;
use std::marker::PhantomData;

/// A session key that knows the type of its value, so that every read and write of it agrees on
/// one type and a typo in the name is a compile error rather than a missing value.
///
/// [`Session::get`](crate::Session::get), [`insert`](crate::Session::insert),
/// [`remove`](crate::Session::remove) and [`update`](crate::Session::update) take a
/// `SessionKey<T>` wherever they take a `&str`; with it, `T` needs no annotation.
///
/// ```
/// use serde::{Deserialize, Serialize};
/// use sessionware::{Error, Session, SessionKey};
///
/// #[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
/// struct Cart {
///     items: Vec<String>,
/// }
///
/// const CART: SessionKey<Cart> = SessionKey::new("cart");
///
/// async fn add(session: Session, item: String) -> Result<Cart, Error> {
///     // `update`: two tabs adding at once both keep their item.
///     session
///         .update(CART, |cart| {
///             let mut cart = cart.unwrap_or_default();
///             cart.items.push(item.clone());
///             cart
///         })
///         .await
/// }
/// # use axum::{body::Body, http::Request, routing::get, Router};
/// # use sessionware::{MemoryStore, SessionLayer};
/// # use tower::ServiceExt;
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// # let app = Router::new()
/// #     .route("/", get(|s: Session| async move {
/// #         add(s.clone(), "apple".into()).await?;
/// #         let cart: Option<Cart> = s.get(CART).await?;
/// #         Ok::<_, Error>(cart.unwrap().items.join(","))
/// #     }))
/// #     .layer(SessionLayer::new(MemoryStore::default()));
/// # let response = app.oneshot(Request::get("/").body(Body::empty()).unwrap()).await.unwrap();
/// # let body = axum::body::to_bytes(response.into_body(), 64).await.unwrap();
/// # assert_eq!(body, "apple");
/// # });
/// assert_eq!(CART.name(), "cart");
/// ```
pub struct SessionKey<T> {
    name: &'static str,
    // `fn() -> T`: the key neither owns nor borrows a `T`, so it is `Send`, `Sync` and `Copy`
    // whatever `T` is.
    value: PhantomData<fn() -> T>,
}

impl<T> SessionKey<T> {
    /// A key named `name` for values of type `T`.
    pub const fn new(name: &'static str) -> Self {
        Self {
            name,
            value: PhantomData,
        }
    }

    /// The key's name in the session.
    pub const fn name(&self) -> &'static str {
        self.name
    }
}

impl<T> Clone for SessionKey<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for SessionKey<T> {}

impl<T> fmt::Debug for SessionKey<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("SessionKey").field(&self.name).finish()
    }
}

/// What names a session value of type `T`: a [`SessionKey<T>`], or a string (for any `T`).
pub trait KeyName<T> {
    /// The name the value has in the session.
    fn key_name(&self) -> &str;
}

impl<T> KeyName<T> for SessionKey<T> {
    fn key_name(&self) -> &str {
        self.name
    }
}

impl<T> KeyName<T> for &str {
    fn key_name(&self) -> &str {
        self
    }
}

impl<T> KeyName<T> for String {
    fn key_name(&self) -> &str {
        self
    }
}

impl<T> KeyName<T> for &String {
    fn key_name(&self) -> &str {
        self
    }
}

/// The prefix of the crate's own session keys (the CSRF secret, flash messages).
pub(crate) const RESERVED_PREFIX: &str = "__";

/// Refuses a key a handler names that belongs to the crate: written by hand it would forge a
/// flash message or replace the CSRF secret.
pub(super) fn refuse_reserved(key: &str) -> Result<(), crate::Error> {
    if key.starts_with(RESERVED_PREFIX) {
        return Err(crate::Error::ReservedKey {
            key: key.to_owned(),
        });
    }
    Ok(())
}
