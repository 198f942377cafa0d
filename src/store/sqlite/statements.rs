//! SQLite's own statements: the table's fixed ones, built once, and the `apply`/`cycle`
//! statements built from a change set (the new `data` as an SQL expression over the old one):
//! `apply`'s text once per [`Shape`] of change set, `cycle`'s (rare: a login) each time.
//!
//! A change set of a few keys (the usual one to three) is spelled out key by key, each key
//! and value a parameter of its own: `json_remove`/`json_set` calls and one condition per
//! precondition. That form does not scale: SQLite refuses an expression more than 1,000 deep
//! (the `AND` of 1,000 preconditions, "Expression tree is too large") and more than 32,766
//! parameters. Past [`MAX_KEYS_SPELLED_OUT`] keys (changed, or expected), those keys travel
//! as one JSON argument instead, read with `json_each` (see [`data_text`] and
//! [`conditions_text`]), so any number of keys takes a fixed number of parameters.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use rusqlite::types::{ToSqlOutput, Value as SqlValue};
use rusqlite::ToSql;
use serde_json::Value;

use crate::id::StoreKey;
use crate::store::sql::Arg;
use crate::store::sql::{self, Flavor, Schema, Split};
use crate::store::Rekey;

/// At most this many keys changed (removed and set) are spelled out in the statement, in one
/// `json_remove` and one `json_set` call (well under SQLite's limit on function arguments, 127
/// before 3.48), and at most this many preconditions as conditions of their own (an `AND`
/// chain, well under SQLite's depth limit of 1,000); past it, those keys go in one JSON
/// argument ("in bulk").
pub(super) const MAX_KEYS_SPELLED_OUT: usize = 50;

/// Whether a `data` column holds a JSON object. `CASE` keeps `json_type` from ever seeing text
/// that is not JSON (which would be an SQL error instead of a clean "corrupt").
pub(super) const DATA_IS_OBJECT: &str =
    "(CASE WHEN json_valid(data) THEN json_type(data) = 'object' ELSE 0 END)";

/// How SQLite spells the shared statements.
const FLAVOR: Flavor = Flavor::new('?', "TEXT", "", "", false);

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
    /// `?4` expiry changed, `?5` expiry, then [`data_args`] and [`condition_args`].
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

/// What the text of an `apply` or `cycle` statement depends on; everything else in a change
/// set goes in its arguments. Applications write few shapes (a key or two set, sometimes one
/// removed), so `apply`'s text is built once per shape ([`Queries::apply_text`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) struct Shape {
    /// Whether the values start from an empty object.
    clear: bool,
    /// Removed keys (none counted after `clear`, which drops them all anyway; none in bulk).
    removed: usize,
    /// Keys set (none in bulk).
    sets: usize,
    /// Whether the keys removed and set go in bulk (more than [`MAX_KEYS_SPELLED_OUT`]).
    bulk_changes: bool,
    /// Whether the size cap is checked.
    capped: bool,
    /// Preconditions on a value, and on an absence (none in bulk).
    present: usize,
    absent: usize,
    /// Whether the preconditions go in bulk (more than [`MAX_KEYS_SPELLED_OUT`]).
    bulk_expect: bool,
}

impl Shape {
    /// The shape of the change set `split` comes from.
    pub(super) fn of(split: &Split<'_>) -> Self {
        let removed = if split.clear { 0 } else { split.removed.len() };
        let sets = split.sets.len();
        let bulk_changes = bulk_changes(split);
        let expected = split.changes.expect.len();
        let bulk_expect = bulk_expect(split);
        let (present, absent) = if bulk_expect {
            (0, 0)
        } else {
            let present = split.expected_present().count();
            (present, expected - present)
        };
        Self {
            clear: split.clear,
            removed: if bulk_changes { 0 } else { removed },
            sets: if bulk_changes { 0 } else { sets },
            bulk_changes,
            capped: split.size_cap.is_some(),
            present,
            absent,
            bulk_expect,
        }
    }
}

/// Whether the keys `split` removes and sets go in bulk.
fn bulk_changes(split: &Split<'_>) -> bool {
    let removed = if split.clear { 0 } else { split.removed.len() };
    removed + split.sets.len() > MAX_KEYS_SPELLED_OUT
}

/// Whether the preconditions of `split` go in bulk.
fn bulk_expect(split: &Split<'_>) -> bool {
    split.changes.expect.len() > MAX_KEYS_SPELLED_OUT
}

/// The dynamic part of `apply` and `cycle`: the new `data` as an SQL expression over the old
/// one, its bind parameters numbered from `first` (their values: [`data_args`]); and the
/// number of the first parameter after them.
///
/// Spelled out, `clear` starts from `'{}'`; removals are `json_remove(data, path, ..)`; sets
/// `json_set(.., path, json(value), ..)`. Paths are `$."<key>"` with the key written as a JSON
/// string literal, so keys with dots, brackets, quotes or any Unicode address one member.
///
/// In bulk, the object is rebuilt by `json_group_object` from the old members whose keys are
/// neither removed nor set (one parameter: a JSON array of those keys; none after `clear`),
/// each taken as the JSON text `data -> fullkey` gives (a number keeps its digits), and the
/// members set (one parameter: a JSON object of each key's value as JSON text).
pub(super) fn data_text(shape: &Shape, first: usize) -> (String, usize) {
    let mut n = first;
    if shape.bulk_changes {
        let mut members = String::new();
        if !shape.clear {
            members.push_str(&format!(
                "SELECT o.key AS k, data -> o.fullkey AS v FROM json_each(data) AS o \
                 WHERE o.key NOT IN (SELECT value FROM json_each(?{n})) UNION ALL "
            ));
            n += 1;
        }
        members.push_str(&format!(
            "SELECT s.key AS k, s.value AS v FROM json_each(?{n}) AS s"
        ));
        n += 1;
        // `json()` on every value: each is JSON text, whose JSON subtype a subquery may drop.
        let expr = format!("(SELECT json_group_object(m.k, json(m.v)) FROM ({members}) AS m)");
        return (expr, n);
    }
    let mut expr = if shape.clear {
        "'{}'".to_owned()
    } else {
        "data".to_owned()
    };
    if shape.removed > 0 {
        let mut call = format!("json_remove({expr}");
        for _ in 0..shape.removed {
            call.push_str(&format!(", ?{n}"));
            n += 1;
        }
        call.push(')');
        expr = call;
    }
    if shape.sets > 0 {
        let mut call = format!("json_set({expr}");
        for _ in 0..shape.sets {
            call.push_str(&format!(", ?{n}, json(?{})", n + 1));
            n += 2;
        }
        call.push(')');
        expr = call;
    }
    (expr, n)
}

/// The values of [`data_text`]'s parameters, in order, appended to `args`.
pub(super) fn data_args(split: &Split<'_>, args: &mut Vec<Arg>) {
    if bulk_changes(split) {
        if !split.clear {
            // The keys whose old values go: those removed, and those set anew.
            let replaced = split
                .removed
                .iter()
                .chain(split.sets.iter().map(|(key, _)| key));
            let replaced: Vec<Value> = replaced.map(|key| Value::from(*key)).collect();
            args.push(Arg::Text(Value::Array(replaced).to_string()));
        }
        let sets: serde_json::Map<String, Value> = split
            .sets
            .iter()
            .map(|(key, value)| ((*key).to_owned(), Value::String(value.to_string())))
            .collect();
        args.push(Arg::Text(Value::Object(sets).to_string()));
        return;
    }
    if !split.clear {
        args.extend(split.removed.iter().map(|key| Arg::Text(json_path(key))));
    }
    for (key, value) in &split.sets {
        args.push(Arg::Text(json_path(key)));
        args.push(Arg::Text(value.to_string()));
    }
}

/// The `WHERE` conditions a change set adds to a write whose new data is `data`: the size cap
/// (on the JSON text the row will hold) and the preconditions (each key's JSON, as SQLite's `->`
/// writes it, against the expected value made minimal by `json()`; absent keys give `NULL`),
/// their parameters numbered from `first` (their values: [`condition_args`]).
///
/// In bulk, two parameters: a JSON object of the values expected (path to the value's JSON
/// text) and a JSON array of the paths expected absent, each checked the same way by a
/// `NOT EXISTS` over its `json_each`.
pub(super) fn conditions_text(shape: &Shape, data: &str, first: usize) -> String {
    let mut n = first;
    let mut conditions = String::new();
    if shape.capped {
        // `data_size` counts a comma after every entry, the last one too: one byte more than
        // the text of a non-empty object (and a capped change set sets a key, so the object
        // is not empty).
        conditions.push_str(&format!(" AND length(CAST({data} AS BLOB)) + 1 <= ?{n}"));
        n += 1;
    }
    if shape.bulk_expect {
        conditions.push_str(&format!(
            " AND NOT EXISTS (SELECT 1 FROM json_each(?{n}) AS e \
             WHERE (data -> e.key) IS NOT json(e.value)) \
             AND NOT EXISTS (SELECT 1 FROM json_each(?{}) AS e \
             WHERE (data -> e.value) IS NOT NULL)",
            n + 1
        ));
        return conditions;
    }
    for _ in 0..shape.present {
        conditions.push_str(&format!(" AND (data -> ?{n}) IS json(?{})", n + 1));
        n += 2;
    }
    for _ in 0..shape.absent {
        conditions.push_str(&format!(" AND (data -> ?{n}) IS NULL"));
        n += 1;
    }
    conditions
}

/// The values of [`conditions_text`]'s parameters, in order, appended to `args`.
pub(super) fn condition_args(split: &Split<'_>, args: &mut Vec<Arg>) {
    if let Some(cap) = split.size_cap {
        args.push(Arg::Int(i64::try_from(cap).unwrap_or(i64::MAX)));
    }
    if bulk_expect(split) {
        let present: serde_json::Map<String, Value> = split
            .expected_present()
            .map(|(key, value)| (json_path(key), Value::String(value.to_string())))
            .collect();
        args.push(Arg::Text(Value::Object(present).to_string()));
        let absent: Vec<Value> = split
            .expected_absent()
            .map(|key| Value::String(json_path(key)))
            .collect();
        args.push(Arg::Text(Value::Array(absent).to_string()));
        return;
    }
    for (key, value) in split.expected_present() {
        args.push(Arg::Text(json_path(key)));
        args.push(Arg::Text(value.to_string()));
    }
    for key in split.expected_absent() {
        args.push(Arg::Text(json_path(key)));
    }
}

/// How many parameters [`first_args`] gives.
pub(super) const FIRST_ARGS: usize = 5;

/// `?1` key, `?2` now, `?3` expires_at, `?4` expiry changed, `?5` expiry: the parameters
/// `apply` and `cycle` start with.
pub(super) fn first_args(key: &StoreKey, split: &Split<'_>) -> Vec<Arg> {
    vec![
        Arg::Text(key.to_string()),
        Arg::Int(split.now),
        Arg::Int(split.expires_at),
        Arg::Bool(split.expiry_changed),
        Arg::OptText(split.expiry.clone()),
    ]
}

/// The owner columns' values of a cycle: whether to tie, to whom, with what label, since when.
pub(super) fn tie_args(keys: &Rekey<'_>) -> [Arg; 4] {
    let owner = keys.tie;
    [
        Arg::Bool(owner.is_some()),
        Arg::OptText(owner.map(|owner| owner.principal.clone())),
        Arg::OptText(owner.and_then(|owner| owner.label.clone())),
        Arg::OptInt(owner.and_then(|owner| owner.tied_at)),
    ]
}

/// The SQLite JSON path of one top-level member.
pub(super) fn json_path(key: &str) -> String {
    format!("$.{}", Value::from(key))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::ChangeSet;
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
        let base = || ChangeSet::new(1).with_update("a", Some(json!(1)));
        let shapes = [
            base(),
            base().with_clear(),
            base().with_update("gone", None),
            base().with_expected("a", Some(json!(0))),
            base().with_expected("a", None),
            base().with_max_size(100),
        ]
        .map(|changes| Shape::of(&Split::new(&changes, 0)));
        for (i, a) in shapes.iter().enumerate() {
            for b in &shapes[i + 1..] {
                assert_ne!(a, b);
            }
        }
        // After `clear`, removed keys are neither in the text nor in the arguments.
        let cleared = ChangeSet::new(1)
            .with_clear()
            .with_update("gone", None)
            .with_update("a", Some(json!(1)));
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
        ChangeSet::new(1_000)
            .with_update("gone", None)
            .with_update("also gone", None)
            .with_update("a", Some(json!(1)))
            .with_update("b.c", Some(json!({"d": [1, 2]})))
            .with_update("e", Some(json!("f")))
            .with_expected("a", Some(json!(0)))
            .with_expected("new", None)
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
        let other = ChangeSet::new(2_000)
            .with_update("x", None)
            .with_update("y", None)
            .with_update("p", Some(json!(true)))
            .with_update("q", Some(json!(null)))
            .with_update("r", Some(json!(3)))
            .with_expected("p", Some(json!(false)))
            .with_expected("z", None)
            .with_max_size(10);
        let again = queries.apply_text(Shape::of(&Split::new(&other, 5)));
        assert!(Arc::ptr_eq(&text, &again));

        // Another shape (no cap): another text.
        let uncapped = ChangeSet::new(2_000).with_update("x", Some(json!(1)));
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
            let changes = (0..sets).fold(ChangeSet::new(1), |c, i| {
                c.with_update(format!("k{i}"), Some(json!(i)))
            });
            let changes = (0..expected).fold(changes, |c, i| {
                c.with_expected(format!("e{i}"), Some(json!(i)))
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
        (0..count).fold(ChangeSet::new(1).with_max_size(1 << 20), |c, i| {
            c.with_update(format!("set{i}"), Some(json!(i)))
                .with_update(format!("gone{i}"), None)
                .with_expected(format!("e{i}"), (i % 2 == 0).then(|| json!(i)))
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
        let changes_only = (0..60).fold(ChangeSet::new(1), |c, i| {
            c.with_update(format!("k{i}"), Some(json!(i)))
        });
        let text = bulk(&changes_only.with_expected("k0", None));
        assert!(text.statement.contains("IS NULL"), "{}", text.statement);
        let expect_only = (0..60).fold(ChangeSet::new(1), |c, i| {
            c.with_expected(format!("k{i}"), Some(json!(i)))
        });
        let text = bulk(&expect_only.with_update("k0", None));
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
