//! [`Arg`]: one bind parameter of the SQL stores' statements, the same for both drivers.

/// One bind parameter of a statement: owned, so a statement can run again after its batch
/// rolled back (PostgreSQL's group commit). JSON travels as text (PostgreSQL casts it with
/// `::jsonb`).
#[derive(Debug, Clone)]
pub(crate) enum Arg {
    Text(String),
    OptText(Option<String>),
    Int(i64),
    /// A `BIGINT` that may be `NULL` (PostgreSQL types a `NULL` parameter by its Rust type).
    OptInt(Option<i64>),
    Bool(bool),
    /// A PostgreSQL `text[]`.
    #[cfg(feature = "postgres")]
    TextArray(Vec<String>),
}
