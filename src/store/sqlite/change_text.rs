//! A change set as SQLite text and arguments: the new `data` as an SQL expression over the
//! old one, the size cap and preconditions as conditions, and the parameters they bind. The
//! statements that use them are in [`statements`](super::statements) and [`ops`](super::ops).
//!
//! A change set of a few keys (the usual one to three) is spelled out key by key, each key
//! and value a parameter of its own: `json_remove`/`json_set` calls and one condition per
//! precondition. That form does not scale: SQLite refuses an expression more than 1,000 deep
//! (the `AND` of 1,000 preconditions, "Expression tree is too large") and more than 32,766
//! parameters. Past [`MAX_KEYS_SPELLED_OUT`] keys (changed, or expected), those keys travel
//! as one JSON argument instead, read with `json_each` (see [`data_text`] and
//! [`conditions_text`]), so any number of keys takes a fixed number of parameters.

use serde_json::Value;

use crate::clock::to_ms;
use crate::id::StoreKey;
use crate::store::sql::{Arg, Split};
use crate::store::Rekey;

/// At most this many keys changed (removed and set) are spelled out in the statement, in one
/// `json_remove` and one `json_set` call (well under SQLite's limit on function arguments, 127
/// before 3.48), and at most this many preconditions as conditions of their own (an `AND`
/// chain, well under SQLite's depth limit of 1,000); past it, those keys go in one JSON
/// argument ("in bulk").
pub(super) const MAX_KEYS_SPELLED_OUT: usize = 50;

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
        Arg::OptInt(owner.and_then(|owner| owner.tied_at).map(to_ms)),
    ]
}

/// The SQLite JSON path of one top-level member.
pub(super) fn json_path(key: &str) -> String {
    format!("$.{}", Value::from(key))
}
