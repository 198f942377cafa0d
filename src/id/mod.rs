//! Session ids and the keys stores file them under.
//!
//! A [`SessionId`] is what travels in the cookie: a random UUID v4 (122 random bits from a
//! CSPRNG, see [`SessionId::generate`]), written as 32 lowercase hex digits. A [`StoreKey`] is what a
//! store sees: the SHA-256 of the id. Stores never receive the id itself, so a leaked store
//! dump or a store log yields no cookie an attacker could replay (the lesson of Rack's
//! CVE-2019-16782).

pub(crate) mod transport;

use std::fmt;

use sha2::{Digest, Sha256};
use uuid::Uuid;

/// Length of a session id in its text form: 32 hex digits.
const ID_LEN: usize = 32;

/// A session id: 128 bits, 122 of them random, from a CSPRNG.
///
/// The id is a bearer secret. Its [`Debug`](fmt::Debug) output is redacted to a short prefix
/// of its [`StoreKey`], so that logging a `Session` never leaks a usable cookie; use
/// [`SessionId::expose`] when the id itself is really needed (for example to hand it to an API
/// client).
///
/// ```
/// use sessionware::SessionId;
///
/// let id = SessionId::generate();
/// let text = id.expose().to_owned();
/// assert_eq!(text.len(), 32);
/// assert_eq!(SessionId::parse(&text), Some(id));
/// // Anything that is not an id this crate could have generated is refused.
/// assert_eq!(SessionId::parse("../../etc/passwd"), None);
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct SessionId {
    /// The 32 lowercase hex digits, inline: an id costs no allocation.
    text: [u8; ID_LEN],
    /// Computed once: every store call and log line needs it.
    key: StoreKey,
}

impl SessionId {
    /// Draws a new random id: a UUID v4 from `rand`'s thread-local CSPRNG (ChaCha12, seeded
    /// from the operating system and reseeded from it every 64 KiB of output), as
    /// tower-sessions does. Drawing from the OS for every id would cost a system call per new
    /// session. That generator is not reseeded across `fork()`: a process that forks after
    /// issuing ids must not issue ids from both sides (a duplicate would still never be adopted:
    /// stores create sessions only under free keys).
    pub fn generate() -> Self {
        let mut text = [0u8; ID_LEN];
        Uuid::new_v4().simple().encode_lower(&mut text);
        Self::from_text(text)
    }

    fn from_text(text: [u8; ID_LEN]) -> Self {
        let key = StoreKey(Sha256::digest(text).into());
        Self { text, key }
    }

    /// Parses an id received from a client.
    ///
    /// Returns `None` unless `text` is exactly 32 lowercase hex digits encoding a UUID v4 (RFC
    /// 4122 variant), so no store is ever asked about a value this crate could not have issued.
    pub fn parse(text: &str) -> Option<Self> {
        let bytes = text.as_bytes();
        let is_v4 = bytes.len() == ID_LEN
            && bytes.iter().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
            // UUID version nibble (4) and RFC 4122 variant bits (10xx), as `generate` writes.
            && bytes[12] == b'4'
            && matches!(bytes[16], b'8' | b'9' | b'a' | b'b');
        let text: [u8; ID_LEN] = bytes.try_into().ok().filter(|_| is_v4)?;
        Some(Self::from_text(text))
    }

    /// The id as sent to the client. Treat it as a secret.
    pub fn expose(&self) -> &str {
        // Both constructors only ever store ASCII hex digits, so this never falls back.
        std::str::from_utf8(&self.text).unwrap_or_default()
    }

    /// The key a store files this session under: the SHA-256 of the id.
    pub fn store_key(&self) -> StoreKey {
        self.key
    }
}

impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionId({})", self.store_key().short())
    }
}

/// The key a store keeps a session under: the SHA-256 of its [`SessionId`].
///
/// [`Display`](fmt::Display) writes the 64 lowercase hex digits that the persistent stores use as
/// their primary key; [`Debug`](fmt::Debug) writes an 8-digit prefix, enough to correlate log
/// lines without filling them.
///
/// ```
/// use sessionware::SessionId;
///
/// let id = SessionId::generate();
/// let key = id.store_key();
/// assert_eq!(key.to_string().len(), 64);
/// assert!(!key.to_string().contains(id.expose()));
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StoreKey([u8; 32]);

impl StoreKey {
    /// The 32 bytes of the digest.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The first 8 hex digits: enough to tell sessions apart in logs, useless as a credential.
    pub fn short(&self) -> String {
        String::from_utf8_lossy(&self.hex()[..8]).into_owned()
    }

    /// Reads the 64 hex digits [`Display`](fmt::Display) writes (either case); `None` for
    /// anything else.
    ///
    /// ```
    /// use sessionware::{SessionId, StoreKey};
    ///
    /// let key = SessionId::generate().store_key();
    /// assert_eq!(StoreKey::from_hex(&key.to_string()), Some(key));
    /// assert_eq!(StoreKey::from_hex("not hex"), None);
    /// ```
    pub fn from_hex(text: &str) -> Option<Self> {
        let text = text.as_bytes();
        if text.len() != 64 {
            return None;
        }
        let mut bytes = [0u8; 32];
        for (byte, pair) in bytes.iter_mut().zip(text.chunks_exact(2)) {
            let high = char::from(pair[0]).to_digit(16)?;
            let low = char::from(pair[1]).to_digit(16)?;
            *byte = u8::try_from(high << 4 | low).ok()?;
        }
        Some(Self(bytes))
    }

    /// Appends the 64 lowercase hex digits [`Display`](fmt::Display) writes to `out`, without
    /// the formatting machinery (a `write!` costs several times the digits themselves): stores
    /// name a session this way on every call.
    #[cfg(feature = "redis")]
    pub(crate) fn push_hex(&self, out: &mut String) {
        // Always ASCII hex digits, so this never falls back.
        out.push_str(std::str::from_utf8(&self.hex()).unwrap_or_default());
    }

    /// The 64 lowercase hex digits, without going through the formatting machinery: stores
    /// write this on every call.
    fn hex(&self) -> [u8; 64] {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut out = [0u8; 64];
        for (pair, byte) in out.chunks_exact_mut(2).zip(self.0) {
            pair[0] = DIGITS[usize::from(byte >> 4)];
            pair[1] = DIGITS[usize::from(byte & 0x0f)];
        }
        out
    }
}

impl fmt::Display for StoreKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hex = self.hex();
        // Always ASCII hex digits, so this never falls back.
        f.write_str(std::str::from_utf8(&hex).unwrap_or_default())
    }
}

impl fmt::Debug for StoreKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StoreKey({}..)", self.short())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_parse_back_and_differ() {
        let a = SessionId::generate();
        let b = SessionId::generate();
        assert_ne!(a, b);
        assert_eq!(SessionId::parse(a.expose()), Some(a));
    }

    #[test]
    fn parse_refuses_what_generate_cannot_produce() {
        let id = SessionId::generate();
        let upper = id.expose().to_uppercase();
        for bad in [
            "",
            "abc",
            upper.as_str(),
            "0123456789abcdef0123456789abcdef0", // 33 digits
            "0123456789abcdef0123456789abcdeg",  // not hex
            "00000000000000000000000000000000",  // not v4
            "0123456789ab4def0123456789abcdef",  // v4, but not the RFC 4122 variant
            "0123456789abcdef0123456789abcde\u{e9}",
        ] {
            assert_eq!(SessionId::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn store_key_display_is_the_lowercase_hex_of_the_digest() {
        let id = SessionId::generate();
        let digest = Sha256::digest(id.expose().as_bytes());
        let expected: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(id.store_key().to_string(), expected);
        #[cfg(feature = "redis")]
        {
            let mut pushed = "prefix:".to_owned();
            id.store_key().push_hex(&mut pushed);
            assert_eq!(pushed, format!("prefix:{expected}"));
        }
    }

    #[test]
    fn debug_output_hides_the_id() {
        let id = SessionId::generate();
        let debug = format!("{id:?} {:?}", id.store_key());
        assert!(!debug.contains(id.expose()));
        assert!(!debug.contains(&id.store_key().to_string()));
    }
}
