//! The Lua scripts behind [`RedisStore`](super::RedisStore), and the arguments they take.
//!
//! Every script but `CYCLE` touches one session key (`KEYS[1]`), and `RELEASE` also its
//! moved-id marker, which is in the same slot, so they run unchanged on a Redis Cluster. Every
//! script receives the application's clock as `ARGV[1]` and compares it with the session's
//! `m:e` field: liveness is decided by the same clock on every operation, never by the Redis
//! server's clock (which only drives the native TTL that purges the key).
//!
//! Return codes: `1` done, `0` missing (absent, expired or without a readable deadline), `2`
//! collision, `3` conflict (a precondition does not hold), `4` unlisted (`CYCLE`: the session
//! is tied to a principal whose index the caller did not add the new key to), `-n` refused
//! because the session's values would be `n` bytes, over the size cap.

use std::sync::OnceLock;

use ::redis::Script;

use super::call::{Call, Field, Json};
use crate::clock::to_ms;
use crate::store::{
    ChangeSet, ExpiryChange, KeyChange, Owner, Precondition, Record, MOVED_MARKER_MS,
};

/// Script result: the write happened.
pub(super) const DONE: i64 = 1;
/// Script result: the key is already taken by a live session.
pub(super) const COLLISION: i64 = 2;
/// Script result: a precondition of the change set does not hold.
pub(super) const CONFLICT: i64 = 3;
/// Script result (`CYCLE`): the session is tied to a principal other than the one the caller
/// indexed the new key under; nothing changed.
pub(super) const UNLISTED: i64 = 4;

/// Helpers shared by every script.
///
/// - `live(key, now)`: whether `key` holds a session whose deadline `m:e` is after `now`. A
///   missing or unreadable deadline counts as "not live". A key of another type than a hash
///   raises `WRONGTYPE`, which the store reports as corrupt data.
/// - `name_size(field)`: the bytes the name of the value field `d:<name>` counts for in the
///   size cap: the name as a JSON string the way serde_json writes it, which is how
///   [`data_size`](crate::store::data_size) counts it. Quotes, two bytes for each `"`, `\\`
///   and `\b` `\t` `\n` `\f` `\r`, six (`\u00XX`) for any other control character, one for
///   every other byte: `/`, DEL and UTF-8 are written as they are. (Not `cjson.encode`, which
///   also escapes `/` and DEL and so counted them larger than the layer does.)
/// - `entry_size(field, value_size)`: what the entry `d:<name>` adds to the size: its name,
///   `value_size` (the length of the value's JSON text, as serde_json wrote it: the stored
///   text, or the argument; never re-encoded in Lua), and two bytes for `:` and `,`.
/// - `push(list, field, value)`: appends a field and its value to a list of `HSET` arguments.
/// - `chunked(command, key, list, first, last, step)`: `command key list[first..=last]`, in slices
///   of at most `step` elements, so a large change set never exceeds Lua's `unpack` limit.
macro_rules! prelude {
    () => {
        r#"
local function live(key, now)
  local deadline = tonumber(redis.call('HGET', key, 'm:e'))
  return deadline ~= nil and deadline > now
end
local function name_size(field)
  local name = string.sub(field, 3)
  local size = #name + 2
  if not string.find(name, '[%z\1-\31"\\]') then return size end
  local _, short = string.gsub(name, '[\8\9\10\12\13"\\]', '')
  local _, all = string.gsub(name, '[%z\1-\31"\\]', '')
  return size + short + 5 * (all - short)
end
local function entry_size(field, value_size)
  return name_size(field) + value_size + 2
end
local function push(list, field, value)
  list[#list + 1] = field
  list[#list + 1] = value
end
local function chunked(command, key, list, first, last, step)
  local i = first
  while i <= last do
    local j = math.min(i + step - 1, last)
    redis.call(command, key, unpack(list, i, j))
    i = j + 1
  end
end
"#
    };
}

/// `apply_changes(key, size)`: applies the change set in `ARGV` to `key` (see [`apply_args`]
/// for the layout) with the result of [`ChangeSet::apply_to`]: drops the values on `clear`,
/// deletes the removed ones, then writes the set values, the deadline, the new size `size` (if
/// not `nil`) and the other metadata in one `HSET` (in slices of 512 arguments for a large
/// change set), counts the change in `m:v` (see `RELEASE`), and sets the native TTL.
///
/// `size_after(key)`: the size the session's values will have after the change set, counted as
/// [`data_size`](crate::store::data_size) counts them (keys as JSON strings); `nil` when the
/// change set leaves the values alone. Kept incrementally: from the size the session keeps in
/// `m:s`, minus the old entries of the fields the change set names (their `HSTRLEN`), plus the
/// new ones. So a write costs in proportion to what it changes, not to the session's size;
/// only a session without a readable `m:s` (stored before it was kept) is counted whole, once.
///
/// `too_large(size)`: `size` if it is over the size cap in `ARGV[6]`, else `nil` (also with no
/// cap: a change set that only removes keys is never refused).
macro_rules! apply_changes {
    () => {
        r#"
local function preconditions_hold(key)
  for i = 12, 11 + 2 * tonumber(ARGV[11]), 2 do
    local current = redis.call('HGET', key, ARGV[i])
    local wanted = ARGV[i + 1]
    if wanted == '-' then
      if current then return false end
    elseif current ~= string.sub(wanted, 2) then
      return false
    end
  end
  return true
end
local function removed_at()
  return 12 + 2 * tonumber(ARGV[11])
end
local function whole_size(key)
  local size = 2
  -- Lengths only: the values themselves never need to be copied into the script.
  for _, field in ipairs(redis.call('HKEYS', key)) do
    if string.sub(field, 1, 2) == 'd:' then
      size = size + entry_size(field, redis.call('HSTRLEN', key, field))
    end
  end
  return size
end
local function size_after(key)
  local at = removed_at()
  local removed = tonumber(ARGV[at])
  local sets_at = at + 1 + removed
  if ARGV[3] ~= '1' and removed == 0 and sets_at > #ARGV then return nil end
  local size = 2
  if ARGV[3] ~= '1' then
    size = tonumber(redis.call('HGET', key, 'm:s')) or whole_size(key)
    -- The old entries of the fields named (a value's JSON text is never empty: a length of 0
    -- is an absent field).
    for i = at + 1, at + removed do
      local old = redis.call('HSTRLEN', key, ARGV[i])
      if old > 0 then size = size - entry_size(ARGV[i], old) end
    end
    for i = sets_at, #ARGV, 2 do
      local old = redis.call('HSTRLEN', key, ARGV[i])
      if old > 0 then size = size - entry_size(ARGV[i], old) end
    end
  end
  for i = sets_at, #ARGV, 2 do size = size + entry_size(ARGV[i], #ARGV[i + 1]) end
  return size
end
local function too_large(size)
  local cap = tonumber(ARGV[6])
  if cap ~= nil and size ~= nil and size > cap then return size end
  return nil
end
local function apply_changes(key, size)
  if ARGV[3] == '1' then
    local drop = {}
    for _, field in ipairs(redis.call('HKEYS', key)) do
      if string.sub(field, 1, 2) == 'd:' then drop[#drop + 1] = field end
    end
    chunked('HDEL', key, drop, 1, #drop, 512)
  end
  local at = removed_at()
  local removed = tonumber(ARGV[at])
  chunked('HDEL', key, ARGV, at + 1, at + removed, 512)
  -- The new values and metadata in one HSET (in slices for a large change set).
  local fields = {'m:e', ARGV[2]}
  if size ~= nil then push(fields, 'm:s', size) end
  if ARGV[4] == 's' then
    push(fields, 'm:x', ARGV[5])
  elseif ARGV[4] == 'd' then
    redis.call('HDEL', key, 'm:x')
  end
  if ARGV[7] == '1' then
    push(fields, 'm:p', ARGV[8])
    if ARGV[9] ~= '' then
      push(fields, 'm:l', ARGV[9])
    else
      redis.call('HDEL', key, 'm:l')
    end
    -- The tie replaces the owner whole: a tie without a time leaves none of the old one.
    if ARGV[10] ~= '' then
      push(fields, 'm:t', ARGV[10])
    else
      redis.call('HDEL', key, 'm:t')
    end
  end
  for i = at + 1 + removed, #ARGV do fields[#fields + 1] = ARGV[i] end
  chunked('HSET', key, fields, 1, #fields, 512)
  redis.call('HINCRBY', key, 'm:v', 1)
  redis.call('PEXPIREAT', key, ARGV[2])
end
"#
    };
}

/// `mark(marker, now)`: leaves the moved-id marker of a cycle's old key under `marker` (`nil`:
/// none, see [`RedisStore::moved_key`](super::RedisStore::moved_key)): a string holding when
/// it stops counting, `now` + [`MOVED_MARKER`](crate::defaults::MOVED_MARKER) on the application's clock, with the native
/// TTL set to the same instant. Called by the step that removes the old session, so no reader
/// finds the old key neither live nor marked. `MOVED_MARKER_MS` is replaced by the constant's
/// value when the scripts are built (see [`scripts`]).
macro_rules! mark {
    () => {
        r#"
local function mark(marker, now)
  if not marker then return end
  local until_ms = string.format('%.0f', now + MOVED_MARKER_MS)
  redis.call('SET', marker, until_ms)
  redis.call('PEXPIREAT', marker, until_ms)
end
"#
    };
}

/// `create`: insert-if-absent. A key whose session expired (or has no readable deadline) is
/// free: it is deleted and written anew. `ARGV`: now, created_at, expires_at, encoded expiry
/// (`""` for none), principal, label and tie time (`""` for none), then `d:<name>`/JSON pairs.
///
/// A new id's key does not exist, so the common path is three commands: `EXISTS`, one `HSET` of
/// every field, `PEXPIREAT` (each command a script runs costs the server about what a client's
/// command does, bar the network).
const CREATE: &str = concat!(
    prelude!(),
    r#"
local key = KEYS[1]
if redis.call('EXISTS', key) == 1 then
  if live(key, tonumber(ARGV[1])) then return 2 end
  redis.call('DEL', key)
end
local fields = {'m:c', ARGV[2], 'm:e', ARGV[3]}
if ARGV[4] ~= '' then push(fields, 'm:x', ARGV[4]) end
if ARGV[5] ~= '' then push(fields, 'm:p', ARGV[5]) end
if ARGV[6] ~= '' then push(fields, 'm:l', ARGV[6]) end
if ARGV[7] ~= '' then push(fields, 'm:t', ARGV[7]) end
local size = 2
for i = 8, #ARGV, 2 do size = size + entry_size(ARGV[i], #ARGV[i + 1]) end
push(fields, 'm:s', size)
for i = 8, #ARGV do fields[#fields + 1] = ARGV[i] end
chunked('HSET', key, fields, 1, #fields, 512)
redis.call('PEXPIREAT', key, ARGV[3])
return 1
"#
);

/// `apply`: the change set, only on a live session. `ARGV`: see [`apply_args`].
const APPLY: &str = concat!(
    prelude!(),
    apply_changes!(),
    r#"
if not live(KEYS[1], tonumber(ARGV[1])) then return 0 end
if not preconditions_hold(KEYS[1]) then return 3 end
local size = size_after(KEYS[1])
if too_large(size) then return -size end
apply_changes(KEYS[1], size)
return 1
"#
);

/// `touch`: a new deadline, only on a live session. `ARGV`: now, expires_at.
const TOUCH: &str = concat!(
    prelude!(),
    r#"
if not live(KEYS[1], tonumber(ARGV[1])) then return 0 end
redis.call('HSET', KEYS[1], 'm:e', ARGV[2])
redis.call('PEXPIREAT', KEYS[1], ARGV[2])
return 1
"#
);

/// `cycle` on a standalone server: `KEYS[1]` old, `KEYS[2]` new, `KEYS[3]` the old key's
/// moved-id marker, `ARGV` as for `apply`. The old session must be live (else `0`), the new key
/// must not be (else `2`); then the changes are applied to the old hash, which is renamed to
/// the new key (the TTL moves with it; a dead hash left under the new key is overwritten), and
/// the old key is marked as moved. Without a tie, a session tied to another principal than
/// `ARGV[8]` (the one whose index holds the new key already) is left alone with `4`: moving it
/// would leave it live and unlisted. Several keys in one script: standalone only.
const CYCLE: &str = concat!(
    prelude!(),
    apply_changes!(),
    mark!(),
    r#"
local now = tonumber(ARGV[1])
if not live(KEYS[1], now) then return 0 end
if live(KEYS[2], now) then return 2 end
if ARGV[7] ~= '1' then
  local principal = redis.call('HGET', KEYS[1], 'm:p')
  if principal and principal ~= ARGV[8] then return 4 end
end
if not preconditions_hold(KEYS[1]) then return 3 end
local size = size_after(KEYS[1])
if too_large(size) then return -size end
apply_changes(KEYS[1], size)
if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('RENAME', KEYS[1], KEYS[2])
else
  redis.call('DEL', KEYS[2])
end
mark(KEYS[3], now)
return 1
"#
);

/// `release`: the last step of a cycle on a cluster. `KEYS[1]` the old key, `KEYS[2]` its
/// moved-id marker (absent for none; in the old key's slot). `ARGV`: now, and the `m:v` the
/// cycle read (`""` for none). Deletes `KEYS[1]`, marks it as moved and returns `1` if it is
/// still live at `ARGV[1]` and no change set was applied to it since the cycle read it; `3`
/// (and changes nothing) if one was, since the copy under the new key lacks it; `0` (deleting
/// a dead hash, leaving no marker) if a racing destroy, cycle or expiry got there first.
const RELEASE: &str = concat!(
    prelude!(),
    mark!(),
    r#"
local now = tonumber(ARGV[1])
if live(KEYS[1], now) then
  if (redis.call('HGET', KEYS[1], 'm:v') or '') ~= ARGV[2] then return 3 end
  redis.call('DEL', KEYS[1])
  mark(KEYS[2], now)
  return 1
end
redis.call('DEL', KEYS[1])
return 0
"#
);

/// The compiled scripts (their SHA-1 is computed once per process).
pub(super) struct Scripts {
    pub(super) create: Script,
    pub(super) apply: Script,
    pub(super) touch: Script,
    pub(super) cycle: Script,
    pub(super) release: Script,
}

/// The scripts, built on first use. The marking ones get [`MOVED_MARKER`](crate::defaults::MOVED_MARKER) written in, so
/// the constant has one source.
pub(super) fn scripts() -> &'static Scripts {
    static SCRIPTS: OnceLock<Scripts> = OnceLock::new();
    SCRIPTS.get_or_init(|| Scripts {
        create: Script::new(CREATE),
        apply: Script::new(APPLY),
        touch: Script::new(TOUCH),
        cycle: Script::new(&marking(CYCLE)),
        release: Script::new(&marking(RELEASE)),
    })
}

/// A script that marks moved keys, with the marker's lifetime written in.
fn marking(source: &str) -> String {
    source.replace("MOVED_MARKER_MS", &MOVED_MARKER_MS.to_string())
}

/// Adds the arguments of `CREATE`: now, created_at, expires_at, expiry, principal, label, tie
/// time, then the data pairs.
pub(super) fn create_args(call: &mut Call, now: i64, record: &Record) {
    let owner = record.owner.as_ref();
    call.arg(now)
        .arg(to_ms(record.created_at))
        .arg(to_ms(record.expires_at))
        .arg(record.expiry.encode().unwrap_or_default())
        .arg(owner.map_or("", |owner| owner.principal.as_str()))
        .arg(owner.and_then(|owner| owner.label.as_deref()).unwrap_or(""));
    tied_at_arg(call, owner);
    for (name, value) in &record.data {
        call.arg(Field(name)).arg(Json(None, value));
    }
}

/// Adds the arguments of `APPLY` and `CYCLE`:
///
/// | `ARGV` | content |
/// |---|---|
/// | 1 | now (the application's clock, Unix ms) |
/// | 2 | the new `expires_at` |
/// | 3 | `1` to drop every `d:` field first, else `0` |
/// | 4 | expiry change: `k` keep, `d` back to the default (delete `m:x`), `s` set to `ARGV[5]` |
/// | 5 | the encoded expiry when `ARGV[4]` is `s`, else empty |
/// | 6 | the size cap ([`ChangeSet::size_cap`]), empty for none |
/// | 7 | `1` to tie the session to the owner in 8 to 10 (`cycle` with [`Rekey::tie`](crate::store::Rekey::tie)), else `0` |
/// | 8, 9, 10 | with a tie, the owner's principal (`m:p`), label (`m:l`) and tie time (`m:t`); without, 8 is the principal whose index holds the new key (`CYCLE`, see there); `""` for none |
/// | 11 | `m`, the number of preconditions ([`ChangeSet::expect`]) |
/// | 12 ..= 11 + 2m | pairs of field (`d:<name>`) and `=<JSON>` (must hold this) or `-` (must be absent) |
/// | 12 + 2m | `n`, the number of removed fields |
/// | 13 + 2m ..= 12 + 2m + n | the removed fields (`d:<name>`) |
/// | 13 + 2m + n .. | pairs of set field (`d:<name>`) and JSON value |
///
/// `listed` is the principal whose index the caller added the new key to, for a `CYCLE` without
/// a tie; `None` for `APPLY`.
pub(super) fn apply_args(
    call: &mut Call,
    now: i64,
    changes: &ChangeSet,
    tie: Option<&Owner>,
    listed: Option<&str>,
) {
    call.arg(now)
        .arg(to_ms(changes.expires_at))
        .arg(if changes.clear { "1" } else { "0" });
    match changes.expiry {
        ExpiryChange::Keep => call.arg("k").arg(""),
        ExpiryChange::Set(settings) => match settings.encode() {
            None => call.arg("d").arg(""),
            Some(text) => call.arg("s").arg(text),
        },
    };
    match changes.size_cap() {
        Some(cap) => call.arg(cap),
        None => call.arg(""),
    };
    match tie {
        Some(owner) => call
            .arg("1")
            .arg(&owner.principal)
            .arg(owner.label.as_deref().unwrap_or("")),
        None => call.arg("0").arg(listed.unwrap_or("")).arg(""),
    };
    tied_at_arg(call, tie);
    call.arg(changes.expect.len());
    for (name, expected) in &changes.expect {
        call.arg(Field(name));
        match expected {
            Precondition::Equals(value) => call.arg(Json(Some(b'='), value)),
            Precondition::Absent => call.arg("-"),
        };
    }
    let removed = (changes.updates.iter()).filter(|(_, change)| **change == KeyChange::Remove);
    call.arg(removed.clone().count());
    for (name, _) in removed {
        call.arg(Field(name));
    }
    for (name, change) in &changes.updates {
        if let KeyChange::Set(value) = change {
            call.arg(Field(name)).arg(Json(None, value));
        }
    }
}

/// The owner's tie time as an argument: its Unix ms, `""` for none.
fn tied_at_arg(call: &mut Call, owner: Option<&Owner>) {
    match owner.and_then(|owner| owner.tied_at) {
        Some(tied_at) => call.arg(to_ms(tied_at)),
        None => call.arg(""),
    };
}

#[cfg(test)]
mod tests {
    use crate::clock::from_ms;
    use serde_json::json;

    use super::*;
    use crate::store::Data;

    /// Each argument lands whole and in `apply_args`'s documented place: a field is `d:` and the
    /// name (however it is spelled), a value its JSON, a precondition `=` and the JSON or `-`.
    #[test]
    fn apply_arguments_follow_the_layout() {
        let changes = ChangeSet::new(from_ms(2_000))
            .with_expected("n", Precondition::Equals(json!({"a": [1, "x"]})))
            .with_expected("gone", Precondition::Absent)
            .with_remove("old")
            .with_set("d:odd key", json!("v\"1"))
            .with_set("n", json!(7))
            .with_max_size(300);
        let owner = Owner::new("user-1")
            .with_label("phone")
            .with_tied_at(from_ms(900));
        let mut call = Call::new(&scripts().apply, &["k"]);
        apply_args(&mut call, 1_000, &changes, Some(&owner), None);
        let expected = [
            "k",
            "1000",
            "2000",
            "0",
            "k",
            "",
            "300",
            "1",
            "user-1",
            "phone",
            "900",
            "2",
            // Keys in order: change sets are maps.
            "d:gone",
            "-",
            "d:n",
            "={\"a\":[1,\"x\"]}",
            "1",
            "d:old",
            "d:d:odd key",
            "\"v\\\"1\"",
            "d:n",
            "7",
        ];
        assert_eq!(call.arguments(), expected);
    }

    /// The marking scripts carry the marker's lifetime itself, not the placeholder.
    #[test]
    fn marking_scripts_carry_the_marker_lifetime() {
        let lifetime = format!("now + {MOVED_MARKER_MS})");
        for script in [CYCLE, RELEASE] {
            assert!(script.contains("now + MOVED_MARKER_MS)"));
        }
        let built = marking(CYCLE);
        assert!(built.contains(&lifetime) && !built.contains("MOVED_MARKER_MS"));
    }

    #[test]
    fn create_arguments_follow_the_layout() {
        let data: Data = [("a".to_owned(), json!([1, null]))].into();
        let record = Record::new(data, from_ms(2_000))
            .with_created_at(from_ms(500))
            .with_owner(Owner::new("user-1"));
        let mut call = Call::new(&scripts().create, &["k"]);
        create_args(&mut call, 1_000, &record);
        let expected = [
            "k", "1000", "500", "2000", "", "user-1", "", "", "d:a", "[1,null]",
        ];
        assert_eq!(call.arguments(), expected);
        let command = call.packed();
        let sha = scripts().create.get_hash().as_bytes();
        assert_eq!(&command[..23], b"*13\r\n$7\r\nEVALSHA\r\n$40\r\n");
        assert_eq!(&command[23..63], sha);
    }
}
