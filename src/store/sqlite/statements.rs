//! SQLite's own statements: the table's fixed ones, built once, and the `apply` statement's
//! text, built once per [`Shape`] of change set from the parts in
//! [`change_text`](super::change_text) (`cycle`'s, rare: a login, is built each time).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use rusqlite::types::{ToSqlOutput, Value as SqlValue};
use rusqlite::ToSql;

use super::change_text::{conditions_text, data_text, Shape, FIRST_ARGS};
use crate::store::sql::Arg;
use crate::store::sql::{self, ExtraColumns, Flavor, Schema};

/// Whether a `data` column holds a JSON object. `CASE` keeps `json_type` from ever seeing text
/// that is not JSON (which would be an SQL error instead of a clean "corrupt").
pub(super) const DATA_IS_OBJECT: &str =
    "(CASE WHEN json_valid(data) THEN json_type(data) = 'object' ELSE 0 END)";

/// How SQLite spells the shared statements.
const FLAVOR: Flavor = Flavor::new('?', "TEXT", "", "", ExtraColumns::None);

/// At most this many `apply` statement texts are kept per table (one per [`Shape`]); others
/// are built for each write. Apps write a handful of shapes; the bound is for those that set
/// many different numbers of keys.
const MAX_APPLY_TEXTS: usize = 64;

/// The statements of one table, built once.
pub(super) struct Queries {
    /// The table name as given.
    pub(super) name: Arc<str>,
    /// The quoted table name.
    pub(super) table: String,
    pub(super) schema: Schema,
    /// Whether the live row under `?1` holds a JSON object (no row: no live row).
    pub(super) live_is_object: String,
    /// The `apply` that changes only the deadline and the expiry (no values, no preconditions).
    pub(super) apply_deadline: Arc<str>,
    /// `?1` old key, `?2` until: the marker a cycle leaves under the key it moved away from.
    pub(super) mark_moved: String,
    /// The `apply` statements built so far, by shape.
    apply_texts: Mutex<HashMap<Shape, Arc<ApplyText>>>,
}

/// The text of an `apply` statement of one [`Shape`], and what its size probe needs.
#[derive(Debug)]
pub(super) struct ApplyText {
    /// The `UPDATE`.
    pub(super) statement: Arc<str>,
    /// The new `data` expression, for the size probe.
    pub(super) data: Arc<str>,
    /// How many arguments come before the conditions' (the first ones and `data`'s).
    pub(super) data_end: usize,
}

impl Queries {
    pub(super) fn new(name: &str) -> Self {
        let t = sql::quote(name);
        let schema = Schema::new(None, name, &FLAVOR);
        Self {
            name: name.into(),
            mark_moved: format!(
                "INSERT INTO {} (key, until) VALUES (?1, ?2) {}",
                schema.moved,
                sql::RENEW_MARKER
            ),
            schema,
            live_is_object: format!(
                "SELECT {DATA_IS_OBJECT} FROM {t} WHERE key = ?1 AND expires_at > ?2"
            ),
            apply_deadline: format!(
                "UPDATE {t} SET expires_at = ?3, expiry = CASE WHEN ?4 THEN ?5 ELSE expiry END \
                 WHERE key = ?1 AND expires_at > ?2"
            )
            .into(),
            apply_texts: Mutex::default(),
            table: t,
        }
    }

    /// The `apply` statement for change sets of `shape`: `?1` key, `?2` now, `?3` expires_at,
    /// `?4` expiry changed, `?5` expiry, then [`data_args`](super::change_text::data_args) and
    /// [`condition_args`](super::change_text::condition_args).
    pub(super) fn apply_text(&self, shape: Shape) -> Arc<ApplyText> {
        let texts = || {
            self.apply_texts
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
        };
        if let Some(text) = texts().get(&shape) {
            return Arc::clone(text);
        }
        // Built outside the lock: other writes do not wait for it.
        let text = Arc::new(self.build_apply_text(&shape));
        // Shapes are few: at most `MAX_KEYS_SPELLED_OUT` keys are counted in one, larger change
        // sets have the shape of their bulk form (whatever their number of keys).
        let mut texts = texts();
        if texts.len() < MAX_APPLY_TEXTS {
            let kept = texts.entry(shape).or_insert(text);
            return Arc::clone(kept);
        }
        text
    }

    /// The text of `apply` for `shape`; see [`Queries::apply_text`].
    fn build_apply_text(&self, shape: &Shape) -> ApplyText {
        let t = &self.table;
        // Only validated identifiers and numbered placeholders are pasted into the statement.
        let (data, next) = data_text(shape, FIRST_ARGS + 1);
        // The cap and the preconditions are checked on the row, in the same statement.
        let conditions = conditions_text(shape, &data, next);
        let statement = format!(
            "UPDATE {t} SET data = {data}, expires_at = ?3, \
             expiry = CASE WHEN ?4 THEN ?5 ELSE expiry END \
             WHERE key = ?1 AND expires_at > ?2 AND {DATA_IS_OBJECT}{conditions}"
        );
        ApplyText {
            statement: statement.into(),
            data: data.into(),
            data_end: next - 1,
        }
    }
}

impl ToSql for Arg {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self {
            Arg::Text(text) => ToSqlOutput::from(text.as_str()),
            Arg::OptText(Some(text)) => ToSqlOutput::from(text.as_str()),
            Arg::OptText(None) => ToSqlOutput::Owned(SqlValue::Null),
            Arg::Int(n) => ToSqlOutput::from(*n),
            Arg::Bool(b) => ToSqlOutput::from(*b),
            Arg::OptInt(n) => match n {
                Some(n) => ToSqlOutput::from(*n),
                None => ToSqlOutput::Owned(SqlValue::Null),
            },
            // SQLite has no arrays: a JSON array (its statements never bind a list).
            #[cfg(feature = "postgres")]
            Arg::TextArray(list) => ToSqlOutput::Owned(SqlValue::Text(
                serde_json::Value::from(list.clone()).to_string(),
            )),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::change_text::{condition_args, data_args, first_args, json_path};
    use super::*;
    use crate::clock::from_ms;
    use crate::store::sql::Split;
    use crate::store::ChangeSet;
    use crate::store::Precondition;
    use serde_json::json;

    /// The `?N` numbers in `statement`, each once.
    fn parameters(statement: &str) -> std::collections::BTreeSet<usize> {
        statement
            .split('?')
            .skip(1)
            .filter_map(|rest| {
                let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
                digits.parse().ok()
            })
            .collect()
    }

    /// The highest `?N` in `statement`, after checking that it numbers `1..=N` with no gap.
    fn last_parameter(statement: &str) -> usize {
        let numbers = parameters(statement);
        let last = numbers.last().copied().unwrap_or(0);
        assert!(
            numbers.iter().copied().eq(1..=last),
            "{numbers:?} in {statement}"
        );
        last
    }

    /// `text`, built for `split`'s shape, numbers exactly the arguments built from `split`:
    /// `data`'s end where they do, and every one once.
    fn assert_binds_each_argument(text: &ApplyText, split: &Split<'_>) {
        let mut args = first_args(&crate::SessionId::generate().store_key(), split);
        data_args(split, &mut args);
        assert_eq!(args.len(), text.data_end);
        condition_args(split, &mut args);
        assert_eq!(last_parameter(&text.statement), args.len());
    }

    #[test]
    fn shapes_differ_by_everything_the_text_depends_on() {
        let base = || ChangeSet::new(from_ms(1)).with_set("a", json!(1));
        let shapes = [
            base(),
            base().with_clear(),
            base().with_remove("gone"),
            base().with_expected("a", Precondition::Equals(json!(0))),
            base().with_expected("a", Precondition::Absent),
            base().with_max_size(100),
        ]
        .map(|changes| Shape::of(&Split::new(&changes, 0)));
        for (i, a) in shapes.iter().enumerate() {
            for b in &shapes[i + 1..] {
                assert_ne!(a, b);
            }
        }
        // After `clear`, removed keys are neither in the text nor in the arguments.
        let cleared = ChangeSet::new(from_ms(1))
            .with_clear()
            .with_remove("gone")
            .with_set("a", json!(1));
        let split = Split::new(&cleared, 0);
        assert_eq!(Shape::of(&split), shapes[1]);
        let text = Queries::new("t").apply_text(Shape::of(&split));
        assert!(
            !text.statement.contains("json_remove"),
            "{}",
            text.statement
        );
        assert_binds_each_argument(&text, &split);
    }

    fn every_kind() -> ChangeSet {
        ChangeSet::new(from_ms(1_000))
            .with_remove("gone")
            .with_remove("also gone")
            .with_set("a", json!(1))
            .with_set("b.c", json!({"d": [1, 2]}))
            .with_set("e", json!("f"))
            .with_expected("a", Precondition::Equals(json!(0)))
            .with_expected("new", Precondition::Absent)
            .with_max_size(4096)
    }

    #[test]
    fn a_shape_is_built_once_and_numbers_what_the_arguments_hold() {
        let queries = Queries::new("t");
        let changes = every_kind();
        let split = Split::new(&changes, 5);
        let text = queries.apply_text(Shape::of(&split));
        assert_binds_each_argument(&text, &split);
        assert!(parameters(&text.data)
            .into_iter()
            .eq(FIRST_ARGS + 1..=text.data_end));

        // The same shape with other keys and values: the same text, not built again.
        let other = ChangeSet::new(from_ms(2_000))
            .with_remove("x")
            .with_remove("y")
            .with_set("p", json!(true))
            .with_set("q", json!(null))
            .with_set("r", json!(3))
            .with_expected("p", Precondition::Equals(json!(false)))
            .with_expected("z", Precondition::Absent)
            .with_max_size(10);
        let again = queries.apply_text(Shape::of(&Split::new(&other, 5)));
        assert!(Arc::ptr_eq(&text, &again));

        // Another shape (no cap): another text.
        let uncapped = ChangeSet::new(from_ms(2_000)).with_set("x", json!(1));
        let split = Split::new(&uncapped, 5);
        let third = queries.apply_text(Shape::of(&split));
        assert!(!third.statement.contains("length("), "{}", third.statement);
        assert_binds_each_argument(&third, &split);
    }

    #[test]
    fn shapes_past_the_bound_are_built_each_time() {
        let queries = Queries::new("t");
        // 64 small shapes: 1 to 8 keys set, 0 to 7 preconditions on a value.
        let shape_with = |sets: usize, expected: usize| {
            let changes = (0..sets).fold(ChangeSet::new(from_ms(1)), |c, i| {
                c.with_set(format!("k{i}"), json!(i))
            });
            let changes = (0..expected).fold(changes, |c, i| {
                c.with_expected(format!("e{i}"), Precondition::Equals(json!(i)))
            });
            Shape::of(&Split::new(&changes, 0))
        };
        for sets in 1..=8 {
            for expected in 0..8 {
                let shape = shape_with(sets, expected);
                let first = queries.apply_text(shape);
                assert!(Arc::ptr_eq(&first, &queries.apply_text(shape)));
            }
        }
        let past = shape_with(9, 0);
        let (a, b) = (queries.apply_text(past), queries.apply_text(past));
        assert!(!Arc::ptr_eq(&a, &b));
        assert_eq!(a.statement, b.statement);
        // The 64 kept ones are still served.
        let kept = shape_with(8, 7);
        assert!(Arc::ptr_eq(
            &queries.apply_text(kept),
            &queries.apply_text(kept)
        ));
    }

    /// `count` keys set, `count` removed and `count` expected (half present, half absent).
    fn keys(count: usize) -> ChangeSet {
        (0..count).fold(ChangeSet::new(from_ms(1)).with_max_size(1 << 20), |c, i| {
            c.with_set(format!("set{i}"), json!(i))
                .with_remove(format!("gone{i}"))
                .with_expected(
                    format!("e{i}"),
                    if i % 2 == 0 {
                        Precondition::Equals(json!(i))
                    } else {
                        Precondition::Absent
                    },
                )
        })
    }

    #[test]
    fn large_change_sets_share_one_bulk_text_of_fixed_parameters() {
        let queries = Queries::new("t");
        // 50 keys changed are spelled out; 51 (changed, or expected) go in bulk.
        let spelled = keys(25);
        let split = Split::new(&spelled, 0);
        let text = queries.apply_text(Shape::of(&split));
        assert!(text.statement.contains("json_set("), "{}", text.statement);
        assert!(!text.statement.contains("json_each"), "{}", text.statement);
        assert_binds_each_argument(&text, &split);

        let bulk = |changes: &ChangeSet| {
            let split = Split::new(changes, 0);
            let text = queries.apply_text(Shape::of(&split));
            assert_binds_each_argument(&text, &split);
            text
        };
        let (small, large) = (keys(51), keys(10_000));
        let text = bulk(&small);
        assert!(Arc::ptr_eq(&text, &bulk(&large)));
        assert!(!text.statement.contains("json_set("), "{}", text.statement);
        // The cap (1), the keys replaced and the values set (2), the preconditions (2).
        assert_eq!(last_parameter(&text.statement), FIRST_ARGS + 5);
        // After `clear`, no keys to drop from the old object.
        let cleared = bulk(&small.clone().with_clear());
        assert!(!Arc::ptr_eq(&text, &cleared));
        assert_eq!(last_parameter(&cleared.statement), FIRST_ARGS + 4);
        // Bulk changes with preconditions spelled out, and the other way round.
        let changes_only = (0..60).fold(ChangeSet::new(from_ms(1)), |c, i| {
            c.with_set(format!("k{i}"), json!(i))
        });
        let text = bulk(&changes_only.with_expected("k0", Precondition::Absent));
        assert!(text.statement.contains("IS NULL"), "{}", text.statement);
        let expect_only = (0..60).fold(ChangeSet::new(from_ms(1)), |c, i| {
            c.with_expected(format!("k{i}"), Precondition::Equals(json!(i)))
        });
        let text = bulk(&expect_only.with_remove("k0"));
        assert!(
            text.statement.contains("json_remove("),
            "{}",
            text.statement
        );
    }

    #[test]
    fn paths_quote_every_key() {
        assert_eq!(json_path("a"), "$.\"a\"");
        assert_eq!(json_path("a.b"), "$.\"a.b\"");
        assert_eq!(json_path("q\"\\"), "$.\"q\\\"\\\\\"");
    }
}
