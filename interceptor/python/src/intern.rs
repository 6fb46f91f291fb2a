//! Interned strings for the few values that repeat on every event.
//!
//! Routes, methods, model names, versions and measure names come from a small set, so
//! each is leaked once and then shared by every event as a `&'static str`. That takes an
//! allocation on the request thread (and the matching free on the publisher's thread)
//! out of every field of every event. The table is capped, so a stream of ever-new values
//! (a router bug, a path parameter used as a model name) costs memory only up to the cap;
//! past it, values are copied as before.

use std::borrow::Cow;
use std::collections::HashSet;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::{Mutex, PoisonError};

const MAX_INTERNED: usize = 4096;

pub struct Interner {
    table: Mutex<HashSet<&'static str, Seeded>>,
}

impl Default for Interner {
    fn default() -> Self {
        // The seed comes from std's per-process random keys, so colliding values cannot
        // be prepared in advance; the cap bounds what a collision could cost anyway.
        let seed = RandomState::new().hash_one(0u8) | 1;
        Interner {
            table: Mutex::new(HashSet::with_hasher(Seeded(seed))),
        }
    }
}

impl Interner {
    /// `s`, shared when it has been seen before (or the table has room), else copied.
    pub fn get(&self, s: &str) -> Cow<'static, str> {
        self.get_if(s, |_| true)
            .unwrap_or_else(|| Cow::Owned(s.to_owned()))
    }

    /// Like `get`, but a value not in the table yet must pass `accept` before it is
    /// added; `None` when it does not. Values in the table passed it once, so the
    /// common case (a value seen before) skips the check.
    pub fn get_if(&self, s: &str, accept: impl FnOnce(&str) -> bool) -> Option<Cow<'static, str>> {
        let mut table = self.table.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(&k) = table.get(s) {
            return Some(Cow::Borrowed(k));
        }
        if !accept(s) {
            return None;
        }
        if table.len() >= MAX_INTERNED {
            return Some(Cow::Owned(s.to_owned()));
        }
        let leaked: &'static str = Box::leak(s.to_owned().into_boxed_str());
        table.insert(leaked);
        Some(Cow::Borrowed(leaked))
    }
}

/// A multiply-rotate hash, eight bytes at a step: these keys are short, and `SipHash`'s
/// set-up alone cost more than the rest of a lookup.
#[derive(Clone, Copy)]
struct Seeded(u64);

impl BuildHasher for Seeded {
    type Hasher = Quick;
    fn build_hasher(&self) -> Quick {
        Quick(self.0)
    }
}

struct Quick(u64);

impl Quick {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
}

impl Hasher for Quick {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        let mut word = [0u8; 8];
        word[..rest.len()].copy_from_slice(rest);
        self.add(u64::from_le_bytes(word) ^ ((rest.len() as u64) << 56));
    }

    fn write_u8(&mut self, byte: u8) {
        self.add(u64::from(byte));
    }

    fn finish(&self) -> u64 {
        // The table picks buckets from the low bits and tags from the high ones: fold.
        self.0 ^ (self.0 >> 29)
    }
}
