//! The [`proptest`] strategies: what one random request ([`Case`]) looks like, and how
//! [`Strategies`] builds its `Cookie` headers and id header from the known values (intact,
//! tampered, quoted) and noise, as the test's module docs describe.

use std::fmt;
use std::ops::RangeInclusive;

use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;
use proptest::sample::{select, Index};
use proptest::strategy::Union;

/// What one random request looks like.
#[derive(Clone)]
pub struct Case {
    pub write: bool,
    pub cookies: Vec<Vec<u8>>,
    pub id_header: Option<Vec<u8>>,
}

/// Bytes as a Rust byte string literal, so a failing case reads as text: `b"id=ab\xff"`.
struct Escaped<'a>(&'a [u8]);

impl fmt::Debug for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.len() > 400 {
            // A very long value: its start, its end and its length.
            let (head, tail) = (&self.0[..120], &self.0[self.0.len() - 40..]);
            let skipped = self.0.len() - 160;
            return write!(
                f,
                "{:?} ..{skipped} bytes.. {:?}",
                Escaped(head),
                Escaped(tail)
            );
        }
        f.write_str("b\"")?;
        for b in self.0 {
            write!(f, "{}", b.escape_ascii())?;
        }
        f.write_str("\"")
    }
}

impl fmt::Debug for Case {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cookies: Vec<_> = self.cookies.iter().map(|c| Escaped(c)).collect();
        f.debug_struct("Case")
            .field("write", &self.write)
            .field("cookies", &cookies)
            .field("id_header", &self.id_header.as_deref().map(Escaped))
            .finish()
    }
}

type Bytes = BoxedStrategy<Vec<u8>>;

/// A weighted choice, as `prop_oneof!` makes, but as a [`Union`]: its value tree keeps the
/// choices on the heap, where `prop_oneof!`'s keeps them inline (a runner each, moved around at
/// every step): several times faster for the choices made per pair and per byte run.
fn one_of<T: fmt::Debug + 'static>(choices: Vec<(u32, BoxedStrategy<T>)>) -> BoxedStrategy<T> {
    Union::new_weighted(choices).boxed()
}

/// One edit of a known value. Positions are [`Index`]es, scaled to the value's length when the
/// edit is applied (to the value as the earlier edits left it), so they shrink towards the start.
#[derive(Debug, Clone)]
enum Edit {
    /// One bit of one byte flipped.
    Flip(Index, u8),
    /// One byte replaced by a header byte.
    Replace(Index, u8),
    /// A header byte inserted.
    Insert(Index, u8),
    /// One byte removed.
    Remove(Index),
    /// The value cut short.
    Cut(Index),
    /// A letter's case changed, or (no letter there) a `=` appended, as base64 padding.
    Case(Index),
}

impl Edit {
    fn apply(&self, value: &mut Vec<u8>) {
        let len = value.len();
        match self {
            Self::Insert(at, byte) => value.insert(at.index(len + 1), *byte),
            Self::Cut(at) => value.truncate(at.index(len + 1)),
            // The edits below need a byte to work on: an empty value gets a `=` instead.
            _ if len == 0 => value.push(b'='),
            Self::Flip(at, bit) => value[at.index(len)] ^= 1 << bit,
            Self::Replace(at, byte) => value[at.index(len)] = *byte,
            Self::Remove(at) => {
                value.remove(at.index(len));
            }
            Self::Case(at) => match &mut value[at.index(len)] {
                b if b.is_ascii_alphabetic() => *b ^= 0x20,
                _ => value.push(b'='),
            },
        }
    }
}

/// Builds the request strategies around the values known for the seeded sessions.
///
/// Alternatives come simplest first: proptest shrinks a choice towards the earlier ones, and
/// numbers, indexes and lengths towards their lower bound, so a minimal case is a short one made
/// of intact values, hex digits and printable bytes wherever those still fail.
pub struct Strategies {
    token: Bytes,
}

impl Strategies {
    pub fn new(tokens: &[Vec<u8>]) -> Self {
        Self {
            token: select(tokens.to_vec()).boxed(),
        }
    }

    /// Bytes of `alphabet`, each picked by a random byte (modulo the alphabet's length, so not
    /// quite evenly): a plain byte per position is what proptest generates and shrinks fastest
    /// (towards 0, the alphabet's first letter), which keeps thousands of cases (up to ~20,000
    /// bytes and ~300 pairs each) quick in an unoptimized test build.
    fn spelled(alphabet: Vec<u8>, len: RangeInclusive<usize>) -> Bytes {
        vec(any::<u8>(), len)
            .prop_map(move |raw| {
                raw.into_iter()
                    .map(|b| alphabet[usize::from(b) % alphabet.len()])
                    .collect()
            })
            .boxed()
    }

    /// Any byte `http` accepts in a header value: visible ASCII, space, tab, 0x80 to 0xff.
    fn header_alphabet() -> Vec<u8> {
        (0x21..0x7f)
            .chain([b' ', b'\t'])
            .chain(0x80..=0xff)
            .collect()
    }

    fn header_byte() -> BoxedStrategy<u8> {
        let alphabet = Self::header_alphabet();
        any::<u8>()
            .prop_map(move |b| alphabet[usize::from(b) % alphabet.len()])
            .boxed()
    }

    /// Bytes from `http`'s header alphabet, or (one time in eight) any byte at all, NUL to 0xff:
    /// mostly refused by `http` before any server sees them.
    fn random_bytes(max: usize) -> Bytes {
        let alphabet = Self::header_alphabet();
        (prop::bool::weighted(1.0 / 8.0), vec(any::<u8>(), 0..=max))
            .prop_map(move |(any_byte, raw)| {
                if any_byte {
                    return raw;
                }
                raw.into_iter()
                    .map(|b| alphabet[usize::from(b) % alphabet.len()])
                    .collect()
            })
            .boxed()
    }

    /// Printable ASCII other than `;`, about a third of it hex digits.
    fn text(len: RangeInclusive<usize>) -> Bytes {
        let hex = b"0123456789abcdef".repeat(3);
        let alphabet = hex.into_iter().chain(0x21..0x7f).filter(|b| *b != b';');
        Self::spelled(alphabet.collect(), len)
    }

    /// A known value with one to three edits.
    fn tampered(&self) -> Bytes {
        // One tuple of plain numbers rather than a union of the six kinds: cheaper to generate,
        // and it still shrinks towards a bit flip at the start.
        let edit = (0u8..6, any::<Index>(), 0u8..8, Self::header_byte()).prop_map(
            |(kind, at, bit, byte)| match kind {
                0 => Edit::Flip(at, bit),
                1 => Edit::Replace(at, byte),
                2 => Edit::Insert(at, byte),
                3 => Edit::Remove(at),
                4 => Edit::Cut(at),
                _ => Edit::Case(at),
            },
        );
        (self.token.clone(), vec(edit, 1..=3))
            .prop_map(|(mut value, edits)| {
                for edit in &edits {
                    edit.apply(&mut value);
                }
                value
            })
            .boxed()
    }

    /// A cookie value: a known value, intact, tampered or quoted, or noise.
    fn value(&self) -> Bytes {
        one_of(vec![
            (2, self.token.clone()),
            (3, self.tampered()),
            (1, Self::text(0..=47)),
            (1, Self::random_bytes(48)),
            (
                1,
                self.token
                    .clone()
                    .prop_map(|token| [&b"\""[..], &token, b"\""].concat())
                    .boxed(),
            ),
        ])
    }

    /// A cookie name: mostly `id`, or one that looks like it, or another.
    fn name() -> Bytes {
        let names: [&[u8]; 8] = [
            b"id", b"id", b"id", b"ID", b" id ", b"i d", b"session", b"a",
        ];
        one_of(vec![
            (9, select(names.map(<[u8]>::to_vec).to_vec()).boxed()),
            (1, Self::text(1..=8)),
        ])
    }

    fn separator() -> BoxedStrategy<&'static [u8]> {
        let separators: [&'static [u8]; 7] = [b"; ", b";", b" ;  ", b";;", b",", b", ", b"\t;"];
        select(separators.to_vec()).boxed()
    }

    /// One `Cookie` header value, of one of several shapes.
    fn cookie(&self) -> Bytes {
        fn id(value: Vec<u8>) -> Vec<u8> {
            [&b"id="[..], &value].concat()
        }
        /// Pairs joined by the separator each comes with (the first one's is not used).
        fn joined(pairs: Vec<(&[u8], Vec<u8>)>) -> Vec<u8> {
            let mut out = Vec::new();
            for (i, (separator, pair)) in pairs.into_iter().enumerate() {
                if i > 0 {
                    out.extend_from_slice(separator);
                }
                out.extend(pair);
            }
            out
        }
        // Single bytes and `id` as one choice, first: a union keeps a lazy copy of the runner
        // for every choice before the one it picks.
        let single = (0usize..8, 0x80u8..=0xff).prop_map(|(i, high)| match i {
            0..=6 => [&b";"[..], b"=", b" ", b"\"", b",", b"id", b"\t"][i].to_vec(),
            _ => vec![high],
        });
        let piece = one_of(vec![
            (8, single.boxed()),
            (2, Self::text(1..=6)),
            (1, self.token.clone()),
            (1, self.tampered()),
        ]);
        // `=` 35 times in 48, ` = ` 7, nothing 6.
        let equals = (0u8..48).prop_map(|i| match i {
            0..35 => &b"="[..],
            35..42 => b" = ",
            _ => b"",
        });
        let pair = (Self::name(), equals, self.value())
            .prop_map(|(name, equals, value)| [&name[..], equals, &value].concat());
        one_of(vec![
            // A known value alone, the way a browser sends it back.
            (2, self.token.clone().prop_map(id).boxed()),
            // A known value with a byte changed: the plain tampering case.
            (2, self.tampered().prop_map(id).boxed()),
            // A few pairs, one of them ours.
            (
                2,
                vec((Self::separator(), pair.clone()), 1..=5)
                    .prop_map(joined)
                    .boxed(),
            ),
            // The same name twice or more.
            (
                1,
                vec((Self::separator(), self.value().prop_map(id)), 2..=4)
                    .prop_map(joined)
                    .boxed(),
            ),
            // Many pairs.
            (
                1,
                vec((Self::separator(), pair), 20..=319)
                    .prop_map(joined)
                    .boxed(),
            ),
            // A very long value, sometimes after a genuine prefix: a short text repeated, so it
            // shrinks by its length and its pattern rather than byte by byte.
            (
                1,
                (
                    option::of(self.token.clone()),
                    Self::text(1..=16),
                    200usize..20_200,
                )
                    .prop_map(|(prefix, pattern, len)| {
                        let mut long = pattern.repeat(len.div_ceil(pattern.len()));
                        long.truncate(len);
                        [id(prefix.unwrap_or_default()), long].concat()
                    })
                    .boxed(),
            ),
            // A soup of separators, names, values and noise.
            (
                1,
                vec(piece, 0..=23)
                    .prop_map(|pieces| pieces.concat())
                    .boxed(),
            ),
            // Random bytes, non-UTF-8 included.
            (1, Self::random_bytes(96)),
        ])
    }

    pub fn case(&self) -> impl Strategy<Value = Case> {
        let cookie = self.cookie();
        let cookies = one_of(vec![
            (1, Just(Vec::new()).boxed()),
            (5, vec(cookie.clone(), 1..=1).boxed()),
            (2, vec(cookie.clone(), 2..=5).boxed()),
        ]);
        let id_header = option::weighted(
            1.0 / 3.0,
            one_of(vec![
                (1, self.token.clone()),
                (1, self.tampered()),
                (1, self.value()),
                (1, cookie),
            ]),
        );
        (any::<bool>(), cookies, id_header).prop_map(|(write, cookies, id_header)| Case {
            write,
            cookies,
            id_header,
        })
    }
}
