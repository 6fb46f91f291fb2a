//! What more than one test file here needs.

/// A xorshift generator: the same cases on every run, so a failure can be replayed.
pub struct Rng(pub u64);

#[allow(dead_code, reason = "each test file uses its own subset")]
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
