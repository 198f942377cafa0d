//! Fuzzes `SessionId::parse`, the check every id from a client goes through before any store
//! call.
//!
//! Run it (stable toolchain; from the repository root, see fuzz/README.md):
//!
//! ```sh
//! cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run session_id -- -max_total_time=600
//! ```
//!
//! For every input (as UTF-8, lossily converted if it is not): `parse` never panics, and what it
//! accepts is an id this crate could have generated: exactly 32 lowercase hex digits with the
//! UUID version nibble 4 and the RFC 4122 variant (`8`, `9`, `a` or `b` at index 16), which
//! round-trips (`parse(id.expose()) == Some(id)`), whose store key is the SHA-256 of the text,
//! which is refused in upper case, and which never shows in `Debug`.

#![no_main]

use libfuzzer_sys::fuzz_target;
use sessionware::SessionId;
use sha2::{Digest, Sha256};

fn check(text: &str) {
    let Some(id) = SessionId::parse(text) else {
        return;
    };
    let exposed = id.expose();
    assert_eq!(exposed, text, "parse changed the id");
    assert_eq!(exposed.len(), 32, "{exposed:?}");
    assert!(
        exposed
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')),
        "not lowercase hex: {exposed:?}"
    );
    assert_eq!(exposed.as_bytes()[12], b'4', "not a UUID v4: {exposed:?}");
    assert!(
        matches!(exposed.as_bytes()[16], b'8' | b'9' | b'a' | b'b'),
        "not the RFC 4122 variant: {exposed:?}"
    );

    let again = SessionId::parse(exposed);
    assert_eq!(again.as_ref(), Some(&id), "no round trip: {exposed:?}");
    assert_eq!(again.map(|a| a.store_key()), Some(id.store_key()));
    let digest: [u8; 32] = Sha256::digest(text.as_bytes()).into();
    assert_eq!(
        id.store_key().as_bytes(),
        &digest,
        "store key is not the SHA-256 of the id"
    );

    let upper = exposed.to_ascii_uppercase();
    if upper != exposed {
        assert_eq!(
            SessionId::parse(&upper),
            None,
            "upper case accepted: {upper:?}"
        );
    }
    let debug = format!("{id:?} {:?}", id.store_key());
    assert!(!debug.contains(exposed), "Debug shows the id: {debug}");
}

fuzz_target!(|data: &[u8]| {
    check(&String::from_utf8_lossy(data));
    // Inputs longer than an id: every 32-byte window too, so the fuzzer spends less time
    // finding the length.
    if let Ok(text) = std::str::from_utf8(data) {
        for (start, _) in text.char_indices().take(64) {
            if let Some(window) = text.get(start..start + 32) {
                check(window);
            }
        }
    }
});
