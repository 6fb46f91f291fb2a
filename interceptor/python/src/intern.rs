//! Interned strings for the few values that repeat on every event.
//!
//! Routes, methods, model names and versions come from a small set, so each is leaked
//! once and then shared by every event as a `&'static str`. That takes an allocation on
//! the request thread (and the matching free on the publisher's thread) out of every
//! field of every event. The table is capped, so a stream of ever-new values (a router
//! bug, a path parameter used as a model name) costs memory only up to the cap; past it,
//! values are copied as before.

use std::borrow::Cow;
use std::collections::HashSet;
use std::sync::{Mutex, PoisonError};

const MAX_INTERNED: usize = 4096;

#[derive(Default)]
pub struct Interner {
    table: Mutex<HashSet<&'static str>>,
}

impl Interner {
    /// `s`, shared when it has been seen before (or the table has room), else copied.
    pub fn get(&self, s: &str) -> Cow<'static, str> {
        let mut table = self.table.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(&k) = table.get(s) {
            return Cow::Borrowed(k);
        }
        if table.len() >= MAX_INTERNED {
            return Cow::Owned(s.to_owned());
        }
        let leaked: &'static str = Box::leak(s.to_owned().into_boxed_str());
        table.insert(leaked);
        Cow::Borrowed(leaked)
    }
}
