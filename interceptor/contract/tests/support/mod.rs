//! What more than one test file here needs.
#![allow(dead_code, reason = "each test file uses its own subset")]

use std::path::PathBuf;

use serde_json::Value;

/// The golden vectors of `tests/vectors/<folder>` (the repository's), by name: each file's
/// stem with its JSON, sorted by name. Only that folder's own `.json` files, not its
/// subfolders' (`resources/` holds the agents' vectors, not the event batches').
pub fn vectors(folder: &str) -> Vec<(String, Value)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/vectors")
        .join(folder);
    let mut out: Vec<(String, Value)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{} is readable: {e}", dir.display()))
        .map(|e| e.expect("readable entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| {
            let text = std::fs::read_to_string(&p).expect("readable vector");
            let name = p.file_stem().expect("named").to_string_lossy().into_owned();
            (name, serde_json::from_str(&text).expect("vector is JSON"))
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// A vector's body as sent: `body_text` verbatim (for bodies that are not valid JSON),
/// else `body` serialised.
pub fn body(v: &Value) -> Vec<u8> {
    match (&v["body_text"], &v["body"]) {
        (Value::String(s), _) => s.as_bytes().to_vec(),
        (_, body) => serde_json::to_vec(body).expect("serialisable"),
    }
}

/// A xorshift generator: the same cases on every run, so a failure can be replayed.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    pub fn chance(&mut self, one_in: u64) -> bool {
        self.next() % one_in == 0
    }

    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }
}
