//! [`safe_next`]: where a login form may send the user afterwards.

/// `next` if it is a path on this site (`/account`, `/notes?page=2`), else `None`: what a
/// login form that follows a `next` parameter must check, so that it does not become an open
/// redirect (a link to `/login?next=https://evil.example` that logs the user in, then sends
/// them to a look-alike page).
///
/// Accepted: a path that starts with one `/`. Refused: anything else (`https://..`,
/// `javascript:..`, a relative `account`), a second `/` or a `\` right after the first
/// (`//evil.example` and `/\evil.example` are other hosts to a browser), any `\`, control
/// character or whitespace (browsers drop or rewrite them), and the same characters
/// percent-encoded (`/%2F..`, `%09`), so that no decoding step later turns an accepted value
/// into another host.
///
/// ```
/// use sessionware::auth::safe_next;
///
/// assert_eq!(safe_next("/account?tab=devices"), Some("/account?tab=devices"));
/// assert_eq!(safe_next("//evil.example"), None);
/// assert_eq!(safe_next("/\\evil.example"), None);
/// assert_eq!(safe_next("https://evil.example/"), None);
/// assert_eq!(safe_next("/%2F%2Fevil.example"), None);
/// assert_eq!(safe_next("/\tx"), None);
/// ```
pub fn safe_next(next: &str) -> Option<&str> {
    let rest = next.strip_prefix('/')?;
    if rest.starts_with(['/', '\\']) {
        return None;
    }
    if next
        .chars()
        .any(|c| c == '\\' || c.is_control() || c.is_whitespace())
    {
        return None;
    }
    if has_encoded_danger(next) {
        return None;
    }
    Some(next)
}

/// Whether `value` holds a percent-encoded `/`, `\`, control character or space (`%2F`,
/// `%5C`, `%00`–`%1F`, `%20`, `%7F`), or an encoded `%` (`%25`, which a second decoding
/// would turn into any of them).
fn has_encoded_danger(value: &str) -> bool {
    let bytes = value.as_bytes();
    bytes.windows(3).any(|w| {
        if w[0] != b'%' {
            return false;
        }
        let (Some(high), Some(low)) = (hex(w[1]), hex(w[2])) else {
            return false;
        };
        let byte = high * 16 + low;
        matches!(byte, 0x00..=0x20 | 0x7f | b'/' | b'\\' | b'%')
    })
}

fn hex(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        _ => None,
    }
}
