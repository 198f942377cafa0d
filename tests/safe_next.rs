//! Property test of `sessionware::auth::safe_next`: whatever it accepts, a browser resolves to
//! a page of this site, before and after one more percent-decoding; it never rewrites what
//! it accepts.

use proptest::prelude::*;
use sessionware::auth::safe_next;
use url::Url;

const SITE: &str = "https://site.example/login?next=x";

/// Strings built from the characters that matter for redirects: slashes both ways, `%` and
/// hex digits (encoded variants), `:` and scheme letters, `@`, `?`, `#`, whitespace and
/// control characters, and some plain text.
fn candidates() -> impl Strategy<Value = String> {
    let pieces = prop::sample::select(vec![
        "/",
        "//",
        "\\",
        "%2F",
        "%2f",
        "%5C",
        "%5c",
        "%25",
        "%09",
        "%0a",
        "%00",
        "%20",
        "%",
        ":",
        "http:",
        "https:",
        "javascript:",
        "@",
        "?",
        "#",
        ".",
        "..",
        " ",
        "\t",
        "\n",
        "\r",
        "\u{0}",
        "\u{7f}",
        "\u{85}",
        "\u{a0}",
        "evil.example",
        "account",
        "a=b",
        "é",
    ]);
    prop::collection::vec(pieces, 0..8).prop_map(|parts| parts.concat())
}

/// What a browser would go to for `target` from a page of this site.
fn resolved_host(target: &str) -> Option<String> {
    let base = Url::parse(SITE).ok()?;
    base.join(target).ok()?.host_str().map(str::to_owned)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(20_000))]

    #[test]
    fn accepted_targets_stay_on_the_site(candidate in candidates()) {
        if let Some(accepted) = safe_next(&candidate) {
            prop_assert_eq!(accepted, candidate.as_str());
            prop_assert!(accepted.starts_with('/'));
            let host = resolved_host(accepted);
            prop_assert_eq!(host.as_deref(), Some("site.example"));
            // A later decoding step (a framework decoding the parameter twice) changes
            // nothing that matters: still a path here.
            let decoded = percent_encoding::percent_decode_str(accepted).decode_utf8_lossy();
            let host = resolved_host(&decoded);
            prop_assert_eq!(host.as_deref(), Some("site.example"), "{}", decoded);
        }
    }

    #[test]
    fn plain_paths_are_accepted(path in "(/[a-z0-9_-]{1,8}){1,4}(\\?[a-z]{1,5}=[a-z0-9]{1,5})?") {
        prop_assert_eq!(safe_next(&path), Some(path.as_str()));
    }
}

#[test]
fn known_open_redirects_are_refused() {
    for bad in [
        "//evil.example",
        "/\\evil.example",
        "\\\\evil.example",
        "https://evil.example",
        "javascript:alert(1)",
        "/%2F%2Fevil.example",
        "/%2fevil.example",
        "/%5Cevil.example",
        "/%252F%252Fevil.example",
        "/\t/evil.example",
        "/ /evil.example",
        "evil.example",
        "",
    ] {
        assert_eq!(safe_next(bad), None, "{bad:?}");
    }
}
