//! Fuzz-style proof that hostile input cannot make the decoders allocate
//! past their limits: a counting global allocator records the largest single
//! allocation made while arbitrary bytes go through the frame decoder, the
//! envelope decoder and the registry's payload decoding.
//!
//! One `#[test]` in its own binary, so no other test allocates while the
//! counter is armed; proptest generates inputs outside the armed window.

#![allow(unsafe_code)] // the counting allocator below; it only forwards to `System`

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use bytes::Bytes;
use plexus_codecs::{CodecKind, Envelope, FrameConfig, FrameDecoder, Registry, remote_message};
use proptest::collection::vec;
use proptest::prelude::*;
use serde::{Deserialize, Serialize};

struct Counting;

static ARMED: AtomicBool = AtomicBool::new(false);
static LARGEST: AtomicUsize = AtomicUsize::new(0);

fn record(size: usize) {
    if ARMED.load(Ordering::Relaxed) {
        LARGEST.fetch_max(size, Ordering::Relaxed);
    }
}

// SAFETY: every method forwards to `System` with the caller's arguments
// unchanged; the only addition is a relaxed atomic read and max.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        record(layout.size());
        // SAFETY: forwarded contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        record(layout.size());
        // SAFETY: forwarded contract.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded contract.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        record(new_size);
        // SAFETY: forwarded contract.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Largest single allocation made by `f`.
fn largest_allocation(f: impl FnOnce()) -> usize {
    LARGEST.store(0, Ordering::SeqCst);
    ARMED.store(true, Ordering::SeqCst);
    f();
    ARMED.store(false, Ordering::SeqCst);
    LARGEST.load(Ordering::SeqCst)
}

#[derive(Debug, Serialize, Deserialize)]
struct Hostile {
    name: String,
    blob: Vec<u8>,
    numbers: Vec<u64>,
    maybe: Option<String>,
}
remote_message!(Hostile, "test.Hostile", 1, reply = ());

/// What one envelope's metadata list may take: 64 pairs of `WireStr`.
const METADATA_VEC: usize = 64 * 2 * std::mem::size_of::<Bytes>();

fn codecs() -> Vec<CodecKind> {
    CodecKind::ALL
        .into_iter()
        .filter(|k| k.is_available())
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn hostile_input_never_allocates_past_the_limits(
        input in prop_oneof![
            vec(any::<u8>(), 0..4096),
            // Plausible prefixes: a length just under the limit, then junk.
            (vec(any::<u8>(), 0..64)).prop_map(|mut v| { v.splice(0..0, [0, 0, 1, 0]); v }),
        ],
        chunk in 1usize..700,
        max_frame in 16usize..2048,
    ) {
        let mut registry = Registry::new();
        registry.register::<Hostile>().map_err(|e| TestCaseError::fail(e.to_string()))?;
        let config = FrameConfig { max_frame, min_alloc: 256 };

        // 1. Framing and envelopes: nothing bigger than one maximal frame
        //    (or a full metadata list) is ever allocated.
        let largest = largest_allocation(|| {
            let mut decoder = FrameDecoder::new(config);
            'feed: for mut piece in input.chunks(chunk) {
                while !piece.is_empty() {
                    let taken = decoder.push(piece);
                    piece = &piece[taken..];
                    loop {
                        match decoder.next_frame() {
                            Ok(Some(frame)) => drop(Envelope::decode(frame)),
                            Ok(None) => break,
                            Err(_) => break 'feed,
                        }
                    }
                }
            }
        });
        let bound = (max_frame + 4).max(METADATA_VEC);
        prop_assert!(largest <= bound, "framing allocated {largest} > {bound}");

        // 2. Payloads, decoded by name: bounded by the payload's size, not by
        //    any length it claims. (bincode: by a limit ladder, see Bincode::decode.)
        for codec in codecs() {
            let payload = Bytes::from(input.clone());
            let largest = largest_allocation(|| {
                let _ = registry.decode(codec, "test.Hostile", 1, &payload);
            });
            let bound = (16 * input.len()).max(4096);
            // serde itself pre-allocates sequences from a claimed length up to
            // 1 MiB (its `size_hint::cautious` cap); bincode passes claims on.
            let bound = if codec == CodecKind::Bincode { bound.max(1 << 20) } else { bound };
            prop_assert!(largest <= bound, "{codec} allocated {largest} > {bound} for {} bytes", input.len());
        }
    }
}
