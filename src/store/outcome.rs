//! What a store write did: one type per operation, naming only what the contract lets that
//! operation answer.

/// The result of [`SessionStore::create`](super::SessionStore::create).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use]
pub enum Created {
    /// The session was stored.
    Done,
    /// Nothing changed: a live session already holds the key; draw another id.
    Collision,
}

/// The result of [`SessionStore::apply`](super::SessionStore::apply).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use]
pub enum Applied {
    /// The changes were applied.
    Done,
    /// Nothing changed: the session does not exist, was deleted, or has expired.
    Missing,
    /// Nothing changed: the session's values would be `size` bytes, over the change set's
    /// [`max_size`](super::ChangeSet::max_size).
    TooLarge {
        /// The size the session's values would have had, as the store counts it.
        size: usize,
    },
    /// Nothing changed: a precondition of the change set
    /// ([`expect`](super::ChangeSet::expect)) did not hold.
    Conflict,
}

/// The result of [`SessionStore::cycle`](super::SessionStore::cycle).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use]
pub enum Cycled {
    /// The session moved to the new key, with the changes applied.
    Done,
    /// Nothing changed: the old session does not exist, was deleted, or has expired.
    Missing,
    /// Nothing changed: a live session already holds the new key; draw another id.
    Collision,
    /// Nothing changed: the session's values would be `size` bytes, over the change set's
    /// [`max_size`](super::ChangeSet::max_size).
    TooLarge {
        /// The size the session's values would have had, as the store counts it.
        size: usize,
    },
    /// Nothing changed: a precondition of the change set
    /// ([`expect`](super::ChangeSet::expect)) did not hold.
    Conflict,
}

/// The result of [`SessionStore::touch`](super::SessionStore::touch).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use]
pub enum Touched {
    /// The deadline moved.
    Done,
    /// Nothing changed: the session does not exist, was deleted, or has expired.
    Missing,
}

impl From<Applied> for Touched {
    /// A touch written as an empty change set: it can only be done or missing (an empty change
    /// set sets no key and expects nothing, so neither the size cap nor a precondition refuses
    /// it).
    fn from(applied: Applied) -> Self {
        match applied {
            Applied::Done => Touched::Done,
            Applied::Missing | Applied::TooLarge { .. } | Applied::Conflict => Touched::Missing,
        }
    }
}

impl From<Applied> for Cycled {
    /// The same answer from a cycle: a cycle applies its change set like an apply does, and
    /// answers [`Cycled::Collision`] besides.
    fn from(applied: Applied) -> Self {
        match applied {
            Applied::Done => Cycled::Done,
            Applied::Missing => Cycled::Missing,
            Applied::TooLarge { size } => Cycled::TooLarge { size },
            Applied::Conflict => Cycled::Conflict,
        }
    }
}
