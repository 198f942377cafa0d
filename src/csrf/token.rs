//! The synchronizer token: a per-session secret, and per-form tokens masked from it.
//!
//! A form token is `mask || (secret XOR mask)` with a fresh random mask, base64url without
//! padding: every page gets a different string (so a compression side channel such as BREACH
//! learns nothing from repeated tokens), and every one unmasks to the session's secret. Only
//! the secret's equality is checked, in constant time.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use subtle::ConstantTimeEq;

/// Bytes of secret (and of mask).
const LEN: usize = 32;

/// A new random secret, as stored in the session (base64url).
pub(crate) fn new_secret() -> Result<String, getrandom::Error> {
    Ok(URL_SAFE_NO_PAD.encode(random()?))
}

/// Whether `stored` is a secret this module wrote (garbage is replaced, never used).
pub(crate) fn is_secret(stored: &str) -> bool {
    decode::<LEN>(stored).is_some()
}

/// A form token for the secret `stored`.
pub(crate) fn mask(stored: &str) -> Result<Option<String>, getrandom::Error> {
    let Some(secret) = decode::<LEN>(stored) else {
        return Ok(None);
    };
    let mask = random()?;
    let mut token = [0u8; 2 * LEN];
    token[..LEN].copy_from_slice(&mask);
    for (i, (s, m)) in secret.iter().zip(mask).enumerate() {
        token[LEN + i] = s ^ m;
    }
    Ok(Some(URL_SAFE_NO_PAD.encode(token)))
}

/// Whether the form token `token` unmasks to the secret `stored`, compared in constant time.
pub(crate) fn verify(stored: &str, token: &str) -> bool {
    let (Some(secret), Some(token)) = (decode::<LEN>(stored), decode::<{ 2 * LEN }>(token)) else {
        return false;
    };
    let mut unmasked = [0u8; LEN];
    for (i, byte) in unmasked.iter_mut().enumerate() {
        *byte = token[i] ^ token[LEN + i];
    }
    bool::from(unmasked.ct_eq(&secret))
}

fn random() -> Result<[u8; LEN], getrandom::Error> {
    let mut bytes = [0u8; LEN];
    getrandom::fill(&mut bytes)?;
    Ok(bytes)
}

/// Exactly `N` bytes of base64url, or `None`.
fn decode<const N: usize>(text: &str) -> Option<[u8; N]> {
    // Checked before decoding: a hostile header costs no allocation beyond its bound.
    if text.len() > (N * 4).div_ceil(3) {
        return None;
    }
    URL_SAFE_NO_PAD.decode(text).ok()?.try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_differ_and_verify_against_their_secret_only() {
        let secret = new_secret().unwrap();
        let other = new_secret().unwrap();
        let a = mask(&secret).unwrap().unwrap();
        let b = mask(&secret).unwrap().unwrap();
        assert_ne!(a, b, "two forms got the same token");
        assert!(verify(&secret, &a) && verify(&secret, &b));
        assert!(!verify(&other, &a));
        // Flipping any byte of the token breaks it.
        let mut bytes = URL_SAFE_NO_PAD.decode(&a).unwrap();
        bytes[40] ^= 1;
        assert!(!verify(&secret, &URL_SAFE_NO_PAD.encode(bytes)));
        // The secret itself, garbage, or nothing is not a token.
        for bad in [secret.as_str(), "", "!!", &"A".repeat(10_000)] {
            assert!(!verify(&secret, bad), "{bad:.20}");
        }
        assert!(is_secret(&secret) && !is_secret("garbage"));
        assert_eq!(mask("garbage").unwrap(), None);
    }
}
