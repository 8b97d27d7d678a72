//! Maps keyed by the small integers every event carries (function ids,
//! tids): an identity-style hash, and a per-thread table with a one-entry
//! cache, because both are hit on every event.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// A fast hasher for the small integer keys used here (function ids, tids):
/// one multiply, enough spread for hashbrown's top-bit tags.
#[derive(Default, Clone, Copy)]
pub struct IdHasher(u64);

impl Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }

    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.write_u64(u64::from(i));
    }

    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.0 = (self.0.rotate_left(26) ^ i).wrapping_mul(0x517c_c1b7_2722_0a95);
    }

    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
}

pub type IdMap<K, V> = HashMap<K, V, BuildHasherDefault<IdHasher>>;

/// Per-thread state, looked up once per call with a one-entry cache in front.
pub struct PerThread<T> {
    index: IdMap<u32, usize>,
    items: Vec<(u32, T)>,
    last: Option<(u32, usize)>,
}

impl<T: Default> Default for PerThread<T> {
    fn default() -> Self {
        PerThread {
            index: IdMap::default(),
            items: Vec::new(),
            last: None,
        }
    }
}

impl<T: Default> PerThread<T> {
    #[inline]
    pub fn get(&mut self, tid: u32) -> &mut T {
        let i = match self.last {
            Some((t, i)) if t == tid => i,
            _ => {
                let next = self.items.len();
                let i = *self.index.entry(tid).or_insert(next);
                if i == next {
                    self.items.push((tid, T::default()));
                }
                self.last = Some((tid, i));
                i
            }
        };
        &mut self.items[i].1
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// (tid, state) in order of first appearance.
    pub fn iter(&self) -> impl Iterator<Item = &(u32, T)> {
        self.items.iter()
    }
}
