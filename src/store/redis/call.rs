//! One call of a [`scripts`](super::scripts) script, built as the `EVALSHA` command itself, and
//! the arguments written straight into it.

use std::io::Write as _;

use ::redis::aio::ConnectionLike;
use ::redis::{
    Cmd, ErrorKind, FromRedisValue, RedisResult, RedisWrite, Script, ServerErrorKind, ToRedisArgs,
};
use serde_json::Value;

use super::codec::DATA_PREFIX;

/// One script call, built as the `EVALSHA` command itself: arguments are written straight into
/// the command's buffer, a session's values serialized there without an intermediate `String`.
/// (redis-rs's `ScriptInvocation` keeps a `Vec` per argument and copies them all into a new
/// command on every call: about a dozen allocations per write.)
pub(super) struct Call {
    script: &'static Script,
    cmd: Cmd,
}

impl Call {
    /// `EVALSHA <script's SHA-1> <keys.len()> <keys..>`; the arguments follow.
    pub(super) fn new(script: &'static Script, keys: &[&str]) -> Self {
        // Room for a small session's call from the start: a command that grows from empty
        // reallocates its buffers five or six times on the way.
        let mut cmd = Cmd::with_capacity(CALL_ARGS, CALL_BYTES);
        cmd.arg("EVALSHA").arg(script.get_hash()).arg(keys.len());
        for key in keys {
            cmd.arg(*key);
        }
        Self { script, cmd }
    }

    /// Adds one argument.
    pub(super) fn arg(&mut self, arg: impl ToRedisArgs) -> &mut Self {
        self.cmd.arg(arg);
        self
    }

    /// Runs the script; a server that does not know it yet (first use, restart, failover,
    /// `SCRIPT FLUSH`) answers `NOSCRIPT`: it is loaded and the call sent again, as redis-rs's
    /// own `invoke_async` does, but up to [`ATTEMPTS`] times in all rather than twice: the server
    /// can lose it again between the load and the call (a second failover, a flush).
    pub(super) async fn invoke<T: FromRedisValue>(
        &self,
        conn: &mut impl ConnectionLike,
    ) -> RedisResult<T> {
        let mut attempt = 1;
        loop {
            match self.cmd.query_async(conn).await {
                Err(error)
                    if attempt < ATTEMPTS
                        && error.kind() == ErrorKind::Server(ServerErrorKind::NoScript) =>
                {
                    self.script.load_async(conn).await?;
                    attempt += 1;
                }
                result => return result,
            }
        }
    }
}

/// Arguments a [`Call`] has room for before it grows: a change or a new session with a few
/// values (a `create` of one value is 12 arguments, a change of one value 17).
const CALL_ARGS: usize = 32;
/// Bytes of arguments a [`Call`] has room for before it grows (a `create` of one small value,
/// key included, takes under 200).
const CALL_BYTES: usize = 512;

/// How many times [`Call::invoke`] sends a call that the server answers with `NOSCRIPT`.
const ATTEMPTS: u32 = 3;

/// The hash field that holds the session value `name`, `d:<name>`, written as one argument.
pub(super) struct Field<'a>(pub(super) &'a str);

impl ToRedisArgs for Field<'_> {
    fn write_redis_args<W: ?Sized + RedisWrite>(&self, out: &mut W) {
        let mut arg = out.writer_for_next_arg();
        // The writer appends to the command's `Vec`: it cannot fail.
        let _ = arg.write_all(DATA_PREFIX);
        let _ = arg.write_all(self.0.as_bytes());
    }
}

/// A value as JSON, after an optional one-byte marker (`=` for a precondition), as one argument.
pub(super) struct Json<'a>(pub(super) Option<u8>, pub(super) &'a Value);

impl ToRedisArgs for Json<'_> {
    fn write_redis_args<W: ?Sized + RedisWrite>(&self, out: &mut W) {
        let mut arg = out.writer_for_next_arg();
        if let Some(marker) = self.0 {
            let _ = arg.write_all(&[marker]);
        }
        // A `Value` always serializes (its map keys are strings), into a `Vec` that cannot fail.
        let _ = serde_json::to_writer(arg, self.1);
    }
}

#[cfg(test)]
impl Call {
    /// The arguments after `EVALSHA`, the SHA-1 and the key count, as text.
    pub(super) fn arguments(&self) -> Vec<String> {
        self.cmd
            .args_iter()
            .skip(3)
            .map(|arg| match arg {
                ::redis::Arg::Simple(bytes) => String::from_utf8_lossy(bytes).into_owned(),
                _ => "<not a plain argument>".to_owned(),
            })
            .collect()
    }

    /// The command as sent to the server.
    pub(super) fn packed(&self) -> Vec<u8> {
        self.cmd.get_packed_command()
    }
}
