//! `Str`: the small immutable string for words and keys. Up to 23 bytes
//! live inline (no allocation, copied in a few fixed-size moves); longer
//! strings are shared behind an `Arc`, so cloning never copies heap data.
//!
//! It is the hot type of string-keyed shuffles, so its two operations in
//! combine loops are made cheap: building one from a `&str` copies with
//! fixed-size loads instead of a `memcpy` call, and comparing two inline
//! strings compares their 24 bytes (length and zero-padded buffer) at once.

use serde::de::{Deserialize, Deserializer, Visitor};
use serde::ser::{Serialize, Serializer};
use std::borrow::Borrow;
use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Deref;
use std::sync::Arc;

const INLINE: usize = 23;

/// A small immutable string: up to 23 bytes inline, longer ones shared
/// behind an `Arc`. Cloning never copies heap data, which keeps words and
/// keys cheap in shuffles and caches. Prefer it over `String` for keys.
///
/// ```
/// use spate::Str;
/// let w = Str::from("spate");
/// assert_eq!(w, "spate");
/// assert_eq!(w.len(), 5);
/// let long = Str::from("a string longer than twenty-three bytes");
/// assert_eq!(long.clone().as_str(), long.as_str());
/// ```
#[derive(Clone)]
pub struct Str(Repr);

#[derive(Clone)]
enum Repr {
    /// `buf[..len]` holds the bytes, the rest is zero.
    Inline {
        len: Len,
        buf: [u8; INLINE],
    },
    Heap(Arc<str>),
}

/// An inline length, 0..=23: its unused values let `Repr` stay 24 bytes.
#[derive(Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
#[rustfmt::skip]
enum Len {
    L0, L1, L2, L3, L4, L5, L6, L7, L8, L9, L10, L11, L12, L13, L14, L15,
    L16, L17, L18, L19, L20, L21, L22, L23,
}

impl Len {
    #[inline]
    fn new(n: usize) -> Len {
        const ALL: [Len; INLINE + 1] = {
            use Len::*;
            [
                L0, L1, L2, L3, L4, L5, L6, L7, L8, L9, L10, L11, L12, L13, L14, L15, L16, L17,
                L18, L19, L20, L21, L22, L23,
            ]
        };
        ALL[n]
    }
}

const _: () = assert!(std::mem::size_of::<Str>() == 24);

impl Str {
    /// A `Str` holding `text`.
    #[inline]
    pub fn new(text: &str) -> Str {
        let bytes = text.as_bytes();
        let n = bytes.len();
        if n > INLINE {
            return Str(Repr::Heap(Arc::from(text)));
        }
        let mut buf = [0u8; INLINE];
        // Two overlapping fixed-size copies cover any length in a range.
        if n >= 16 {
            buf[..16].copy_from_slice(&bytes[..16]);
            buf[n - 8..n].copy_from_slice(&bytes[n - 8..]);
        } else if n >= 8 {
            buf[..8].copy_from_slice(&bytes[..8]);
            buf[n - 8..n].copy_from_slice(&bytes[n - 8..]);
        } else if n >= 4 {
            buf[..4].copy_from_slice(&bytes[..4]);
            buf[n - 4..n].copy_from_slice(&bytes[n - 4..]);
        } else if n > 0 {
            // 1 to 3 bytes: first, middle and last cover them all.
            buf[0] = bytes[0];
            buf[n / 2] = bytes[n / 2];
            buf[n - 1] = bytes[n - 1];
        }
        Str(Repr::Inline {
            len: Len::new(n),
            buf,
        })
    }

    /// The string.
    #[inline]
    pub fn as_str(&self) -> &str {
        match &self.0 {
            Repr::Inline { len, buf } => {
                let bytes = &buf[..*len as usize];
                // SAFETY: `buf[..len]` is a copy of a `&str` (see `new`),
                // so it is valid UTF-8.
                unsafe { std::str::from_utf8_unchecked(bytes) }
            }
            Repr::Heap(s) => s,
        }
    }
}

impl Default for Str {
    fn default() -> Str {
        Str::new("")
    }
}

impl Deref for Str {
    type Target = str;
    #[inline]
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for Str {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl Borrow<str> for Str {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl PartialEq for Str {
    #[inline]
    fn eq(&self, other: &Str) -> bool {
        match (&self.0, &other.0) {
            // Canonical forms: equal strings have equal lengths and buffers.
            (Repr::Inline { len: a, buf: x }, Repr::Inline { len: b, buf: y }) => a == b && x == y,
            _ => self.as_str() == other.as_str(),
        }
    }
}

impl Eq for Str {}

impl PartialEq<str> for Str {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Str {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialEq<Str> for &str {
    fn eq(&self, other: &Str) -> bool {
        *self == other.as_str()
    }
}

impl PartialEq<String> for Str {
    fn eq(&self, other: &String) -> bool {
        self.as_str() == other
    }
}

impl Hash for Str {
    /// As `str` hashes, so a map keyed by `Str` can be looked up with `&str`.
    #[inline]
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_str().hash(state)
    }
}

impl PartialOrd for Str {
    fn partial_cmp(&self, other: &Str) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Str {
    fn cmp(&self, other: &Str) -> Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl fmt::Display for Str {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self.as_str(), f)
    }
}

impl fmt::Debug for Str {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl From<&str> for Str {
    #[inline]
    fn from(s: &str) -> Str {
        Str::new(s)
    }
}

impl From<&String> for Str {
    fn from(s: &String) -> Str {
        Str::new(s)
    }
}

impl From<String> for Str {
    fn from(s: String) -> Str {
        if s.len() <= INLINE {
            Str::new(&s)
        } else {
            Str(Repr::Heap(Arc::from(s)))
        }
    }
}

impl From<Str> for String {
    fn from(s: Str) -> String {
        s.as_str().to_owned()
    }
}

impl std::str::FromStr for Str {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Str, Self::Err> {
        Ok(Str::new(s))
    }
}

impl Serialize for Str {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Str {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Str, D::Error> {
        struct StrVisitor;
        impl Visitor<'_> for StrVisitor {
            type Value = Str;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Str, E> {
                Ok(Str::new(v))
            }
            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Str, E> {
                Ok(Str::from(v))
            }
        }
        d.deserialize_str(StrVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn behaves_like_the_str_it_holds(a in ".{0,40}", b in ".{0,40}") {
            let (sa, sb) = (Str::from(a.as_str()), Str::from(b.clone()));
            prop_assert_eq!(sa.as_str(), a.as_str());
            prop_assert_eq!(sb.as_str(), b.as_str());
            prop_assert_eq!(sa == sb, a == b);
            prop_assert_eq!(sa.cmp(&sb), a.cmp(&b));
            let hash = |x: &dyn Fn(&mut std::collections::hash_map::DefaultHasher)| {
                let mut h = std::collections::hash_map::DefaultHasher::new();
                x(&mut h);
                h.finish()
            };
            prop_assert_eq!(hash(&|h| sa.hash(h)), hash(&|h| a.as_str().hash(h)));
            let bytes = bincode::serde::encode_to_vec(&sa, bincode::config::standard()).unwrap();
            let (back, _): (Str, usize) =
                bincode::serde::decode_from_slice(&bytes, bincode::config::standard()).unwrap();
            prop_assert_eq!(back, sa);
        }
    }

    #[test]
    fn every_inline_length_round_trips() {
        let text = "abcdefghijklmnopqrstuvwxyzé";
        for n in 0..=text.len() {
            if let Some(prefix) = text.get(..n) {
                assert_eq!(Str::from(prefix).as_str(), prefix);
                assert_eq!(Str::from(prefix), Str::from(prefix.to_string()));
            }
        }
    }
}
