//! [`Observer`]: where events, metrics and store-call spans come from, one per layer.

use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use tracing::Instrument;

use super::{EventKind, SessionEvent};
use crate::error::StoreError;
use crate::id::StoreKey;
use crate::user_sessions::SessionHandle;

/// The application's event hook ([`SessionLayer::on_event`](crate::SessionLayer::on_event)).
pub(crate) type Hook = Arc<dyn Fn(&SessionEvent) + Send + Sync>;

/// A store call, as the `operation` label and span field name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Operation {
    Load,
    Create,
    Apply,
    Cycle,
    Delete,
    List,
    WasMoved,
}

impl Operation {
    fn as_str(self) -> &'static str {
        match self {
            Operation::Load => "load",
            Operation::Create => "create",
            Operation::Apply => "apply",
            Operation::Cycle => "cycle",
            Operation::Delete => "delete",
            Operation::List => "list",
            Operation::WasMoved => "was_moved",
        }
    }
}

pin_project_lite::pin_project! {
    /// The future of [`Observer::call`].
    #[project = CallProjection]
    pub(crate) enum Call<'a, T, F> {
        /// Nobody listens: the store call itself, its failure still reported to a hook.
        Plain { #[pin] call: F, observer: &'a Observer },
        /// In a span, timed and counted.
        Observed { future: Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>> },
    }
}

impl<T, F> Future for Call<'_, T, F>
where
    F: Future<Output = Result<T, StoreError>>,
{
    type Output = Result<T, StoreError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            CallProjection::Plain { call, observer } => {
                let result = ready!(call.poll(cx));
                if result.is_err() {
                    observer.emit(EventKind::StoreError, None, None);
                }
                Poll::Ready(result)
            }
            CallProjection::Observed { future } => future.as_mut().poll(cx),
        }
    }
}

/// Reports what happens to one layer's sessions: to the app's hook, to `metrics` (feature),
/// and as spans around store calls. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Observer {
    hook: Option<Hook>,
    /// The `store` label: `memory`, `sqlite`, ... or the store type's name.
    store: &'static str,
}

impl std::fmt::Debug for Observer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Observer")
            .field("hook", &self.hook.as_ref().map(|_| "set"))
            .field("store", &self.store)
            .finish()
    }
}

impl Observer {
    /// The observer of a layer on a store of type `store_type` (`std::any::type_name`).
    pub(crate) fn new(hook: Option<Hook>, store_type: &'static str) -> Self {
        Self {
            hook,
            store: store_label(store_type),
        }
    }

    /// The same store, another hook.
    pub(crate) fn with_hook(&self, hook: Option<Hook>) -> Self {
        Self {
            hook,
            store: self.store,
        }
    }

    /// Reports that `kind` happened to the session under `key` (of `principal`): counted, and
    /// handed to the hook. A panicking hook is caught and logged.
    pub(crate) fn emit(&self, kind: EventKind, principal: Option<&str>, key: Option<&StoreKey>) {
        #[cfg(feature = "metrics")]
        count(kind);
        let Some(hook) = &self.hook else {
            return;
        };
        let event = SessionEvent::new(kind, principal, key.map(|key| SessionHandle::of(*key)));
        if catch_unwind(AssertUnwindSafe(|| hook(&event))).is_err() {
            tracing::error!(
                kind = kind.as_str(),
                "the session event hook panicked; the request goes on"
            );
        }
    }

    /// Runs a store call in a `sessionware.store` span, timed (feature `metrics`); a failure
    /// is counted and reported as [`EventKind::StoreError`].
    ///
    /// Free when unused: without the `metrics` feature and without a subscriber that wants the
    /// span, the call is polled as it is, through a thin future that only looks at its result
    /// (the observed path is boxed, so it does not grow every caller's future either).
    pub(crate) fn call<'a, T, F>(&'a self, operation: Operation, call: F) -> Call<'a, T, F>
    where
        F: Future<Output = Result<T, StoreError>> + Send + 'a,
        T: Send + 'a,
    {
        if cfg!(not(feature = "metrics"))
            && !tracing::enabled!(target: "sessionware::store", tracing::Level::DEBUG)
        {
            return Call::Plain {
                call,
                observer: self,
            };
        }
        Call::Observed {
            future: Box::pin(self.observed(operation, call)),
        }
    }

    /// [`call`](Self::call) with its span, timing and counts.
    async fn observed<T>(
        &self,
        operation: Operation,
        call: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let span = tracing::debug_span!(
            target: "sessionware::store",
            "sessionware.store",
            store = self.store,
            operation = operation.as_str(),
            outcome = tracing::field::Empty,
        );
        #[cfg(feature = "metrics")]
        let started = std::time::Instant::now();
        let result = call.instrument(span.clone()).await;
        span.record("outcome", if result.is_ok() { "ok" } else { "error" });
        #[cfg(feature = "metrics")]
        {
            let labels = [("store", self.store), ("operation", operation.as_str())];
            metrics::histogram!("sessionware_store_call_duration_seconds", &labels)
                .record(started.elapsed());
            if result.is_err() {
                metrics::counter!("sessionware_store_errors_total", &labels).increment(1);
            }
        }
        if result.is_err() {
            self.emit(EventKind::StoreError, None, None);
        }
        result
    }
}

/// The `store` label for a store type: the built-in stores by their short name, another by its
/// type's name (without module path and generic arguments).
fn store_label(type_name: &'static str) -> &'static str {
    let outer = type_name.split('<').next().unwrap_or(type_name);
    let name = outer.rsplit("::").next().unwrap_or(outer);
    match name {
        "MemoryStore" => "memory",
        "SqliteStore" => "sqlite",
        "PostgresStore" => "postgres",
        "RedisStore" => "redis",
        "CachingStore" => "caching",
        other => other,
    }
}

/// The counter an event kind adds to (feature `metrics`).
#[cfg(feature = "metrics")]
fn count(kind: EventKind) {
    let name = match kind {
        EventKind::Created => "sessionware_sessions_created_total",
        EventKind::LoggedIn => "sessionware_logins_total",
        EventKind::Cycled => "sessionware_sessions_cycled_total",
        EventKind::Destroyed => "sessionware_sessions_destroyed_total",
        EventKind::Revoked => "sessionware_sessions_revoked_total",
        EventKind::RefusedId => "sessionware_session_ids_refused_total",
        EventKind::UnknownId | EventKind::Expired => "sessionware_session_ids_unknown_total",
        EventKind::Conflict => "sessionware_update_conflicts_total",
        // Counted with its labels where the call is timed.
        EventKind::StoreError => return,
    };
    metrics::counter!(name).increment(1);
}

#[cfg(test)]
mod tests {
    use super::store_label;

    #[test]
    fn store_labels_are_short_names() {
        assert_eq!(
            store_label("sessionware::store::memory::MemoryStore"),
            "memory"
        );
        assert_eq!(
            store_label(
                "sessionware::store::caching::CachingStore<a::MemoryStore, b::SqliteStore>"
            ),
            "caching"
        );
        assert_eq!(store_label("my_app::DynamoStore"), "DynamoStore");
    }
}
