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
use std::num::NonZeroU64;
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
#[repr(C)]
pub struct Str {
    /// Inline: bytes 0..16 of the string. Heap: the `Arc<str>`'s data
    /// pointer and length.
    head: [u64; 2],
    /// Inline: bytes 16..23, zero-padded; heap: zero. The top byte (the
    /// last in memory) is the tag, never zero, which leaves `Option<Str>`
    /// at 24 bytes.
    tail: NonZeroU64,
}

// Words are stored little-endian so that, on any target, the 24 bytes in
// memory are the inline string's bytes in order followed by the tag.
const TAG_SHIFT: u32 = 56;
/// The tag of a heap string; an inline one of `n` bytes has tag `n + 1`.
const HEAP: u64 = 0xff;

// SAFETY: a `Str` is either plain bytes or an `Arc<str>`, which is Send
// and Sync.
unsafe impl Send for Str {}
unsafe impl Sync for Str {}

const _: () = assert!(std::mem::size_of::<Str>() == 24);
const _: () = assert!(std::mem::size_of::<Option<Str>>() == 24);

/// Reads 8 bytes as a little-endian word (the first byte lowest).
#[inline(always)]
fn word(bytes: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(w)
}

/// Reads 4 bytes as a little-endian word.
#[inline(always)]
fn half(bytes: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 4];
    w.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(w) as u64
}

/// Bytes `from..n` of `bytes` (at most 8 of them) as the low bytes of a
/// word, for `8 <= n`: one load of the last 8 bytes, shifted down.
#[inline(always)]
fn rest(bytes: &[u8], from: usize, n: usize) -> u64 {
    // `(x >> 8) >> k` rather than `x >> (8 + k)`, which overflows at 64.
    (word(bytes, n - 8) >> 8) >> ((from + 7 - n) * 8)
}

impl Str {
    /// A `Str` holding `text`.
    ///
    /// ```
    /// let s = spate::Str::new("word");
    /// assert_eq!(s.as_str(), "word");
    /// ```
    #[inline]
    pub fn new(text: &str) -> Str {
        let b = text.as_bytes();
        let n = b.len();
        // Whole words built in registers from a few fixed-size loads: no
        // byte-wise copy through memory that a later word load would stall on.
        let (w0, w1, w2) = match n {
            0 => (0, 0, 0),
            1..=3 => {
                let w = b[0] as u64
                    | (b[n / 2] as u64) << (n / 2 * 8)
                    | (b[n - 1] as u64) << ((n - 1) * 8);
                (w, 0, 0)
            }
            4..=7 => (half(b, 0) | half(b, n - 4) << ((n - 4) * 8), 0, 0),
            8..=15 => (word(b, 0), rest(b, 8, n), 0),
            16..=INLINE => (word(b, 0), word(b, 8), rest(b, 16, n)),
            _ => return Str::heap_copy(text),
        };
        Str::from_words(w0, w1, w2 | (n as u64 + 1) << TAG_SHIFT)
    }

    /// Kept out of `new` so that the inline path inlines into callers.
    #[cold]
    #[inline(never)]
    fn heap_copy(text: &str) -> Str {
        Str::heap(Arc::from(text))
    }

    #[inline(always)]
    fn from_words(w0: u64, w1: u64, tail: u64) -> Str {
        Str {
            head: [w0.to_le(), w1.to_le()],
            // SAFETY: every caller sets a non-zero tag in the top byte.
            tail: unsafe { NonZeroU64::new_unchecked(tail.to_le()) },
        }
    }

    #[cold]
    fn heap(text: Arc<str>) -> Str {
        let len = text.len() as u64;
        // `as usize` exposes the pointer's provenance; `heap_ptr` takes it
        // back from the integer.
        let ptr = Arc::into_raw(text) as *const u8 as usize as u64;
        Str::from_words(ptr, len, HEAP << TAG_SHIFT)
    }

    #[inline(always)]
    fn tag(&self) -> u64 {
        u64::from_le(self.tail.get()) >> TAG_SHIFT
    }

    /// The `Arc<str>` a heap string holds, as the raw pointer `into_raw` gave.
    #[inline(always)]
    fn heap_ptr(&self) -> *const str {
        let ptr = u64::from_le(self.head[0]) as usize as *const u8;
        let len = u64::from_le(self.head[1]) as usize;
        std::ptr::slice_from_raw_parts(ptr, len) as *const str
    }

    /// The string.
    ///
    /// ```
    /// let s = spate::Str::from("a rather longer string that does not fit inline");
    /// assert!(s.as_str().starts_with("a rather"));
    /// ```
    #[inline]
    pub fn as_str(&self) -> &str {
        let tag = self.tag();
        if tag == HEAP {
            // SAFETY: a heap `Str` owns one strong count of the `Arc<str>`
            // at `heap_ptr`, alive as long as `self`.
            unsafe { &*self.heap_ptr() }
        } else {
            // SAFETY: inline, the first `tag - 1` bytes of `self` (see
            // `new`, stored little-endian) are a copy of a `&str`'s bytes.
            unsafe {
                let bytes =
                    std::slice::from_raw_parts(self as *const Str as *const u8, tag as usize - 1);
                std::str::from_utf8_unchecked(bytes)
            }
        }
    }
}

impl Clone for Str {
    #[inline]
    fn clone(&self) -> Str {
        if self.tag() == HEAP {
            // SAFETY: `heap_ptr` came from `Arc::into_raw` and is alive.
            unsafe { Arc::increment_strong_count(self.heap_ptr()) };
        }
        Str {
            head: self.head,
            tail: self.tail,
        }
    }
}

impl Drop for Str {
    #[inline]
    fn drop(&mut self) {
        if self.tag() == HEAP {
            // SAFETY: this `Str` owns one strong count, given back once.
            drop(unsafe { Arc::from_raw(self.heap_ptr()) });
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
        // Canonical forms: strings of up to 23 bytes are always inline, with
        // the length in the tag and zero padding, so equal words mean equal
        // strings, and unequal words do unless both are on the heap.
        if self.head == other.head && self.tail == other.tail {
            return true;
        }
        self.tag() == HEAP && other.tag() == HEAP && self.as_str() == other.as_str()
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
            Str::heap(Arc::from(s))
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
    fn heap_strings_share_one_allocation_and_outlive_their_clones() {
        let text = "a string longer than the twenty-three inline bytes";
        let original = Str::from(text);
        let copies: Vec<Str> = (0..100).map(|_| original.clone()).collect();
        assert!(copies.iter().all(|c| c.as_ptr() == original.as_ptr()));
        drop(original);
        let last = copies.last().cloned();
        drop(copies);
        assert_eq!(last.as_deref(), Some(text));
        assert_eq!(std::mem::size_of::<Option<Str>>(), 24);
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
