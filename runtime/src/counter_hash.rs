//! A hasher for ids that are our own counters (actor ids, our calls'
//! correlation ids): unique, never chosen by a peer, so one multiplication
//! spreads them well enough and no key is needed. Ids a peer picks need a
//! keyed hash instead ([`crate::protocols::rpc::IdHasher`]).

use std::hash::Hasher;

/// Hashes a counter with one multiplication.
#[derive(Default)]
pub(crate) struct CounterHasher(u64);

impl Hasher for CounterHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(self.0.rotate_left(8) ^ u64::from(b));
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0 ^ n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}
