//! Framing round trips across arbitrary chunk boundaries, and fuzz-style
//! properties: arbitrary input never panics the frame or envelope decoder,
//! and the decoder never buffers or allocates past its limit.

use bytes::{Bytes, BytesMut};
use proptest::collection::vec;
use proptest::prelude::*;

use super::*;
use crate::envelope::Envelope;
use crate::envelope::tests::arb_envelope;

fn config(max_frame: usize, min_alloc: usize) -> FrameConfig {
    FrameConfig {
        max_frame,
        min_alloc,
    }
}

/// Feeds `input` in chunks of the given sizes (cycled), draining frames
/// after every push, and checks the memory bound at every step.
fn feed(
    decoder: &mut FrameDecoder,
    input: &[u8],
    chunks: &[usize],
) -> Result<Vec<Bytes>, FrameError> {
    let mut frames = Vec::new();
    let mut rest = input;
    let mut sizes = chunks.iter().copied().cycle();
    while !rest.is_empty() {
        let size = sizes.next().unwrap_or(rest.len()).clamp(1, rest.len());
        let mut chunk = &rest[..size];
        rest = &rest[size..];
        while !chunk.is_empty() {
            let taken = decoder.push(chunk);
            chunk = &chunk[taken..];
            assert!(decoder.buffered() <= decoder.buffer_limit());
            assert!(
                decoder.buffered_capacity() <= decoder.buffer_limit(),
                "capacity {} > limit {}",
                decoder.buffered_capacity(),
                decoder.buffer_limit()
            );
            let before = frames.len();
            while let Some(frame) = decoder.next_frame()? {
                frames.push(frame);
            }
            // Progress: either bytes were taken or frames came out.
            assert!(taken > 0 || frames.len() > before, "decoder stalled");
        }
    }
    Ok(frames)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn frames_round_trip_across_any_chunking(
        bodies in vec(vec(any::<u8>(), 0..300), 0..20),
        chunks in vec(1usize..64, 1..10),
        min_alloc in 0usize..1024,
    ) {
        let cfg = config(300, min_alloc);
        let encoder = FrameEncoder::new(cfg);
        let mut wire = BytesMut::new();
        for body in &bodies {
            encoder.encode(body, &mut wire)?;
        }
        let mut decoder = FrameDecoder::new(cfg);
        let frames = feed(&mut decoder, &wire, &chunks)?;
        decoder.finish()?;
        prop_assert_eq!(frames.len(), bodies.len());
        for (frame, body) in frames.iter().zip(&bodies) {
            prop_assert_eq!(&frame[..], &body[..]);
        }
    }

    #[test]
    fn split_frame_matches_the_push_decoder(
        bodies in vec(vec(any::<u8>(), 0..100), 0..10),
    ) {
        let cfg = config(100, 0);
        let encoder = FrameEncoder::new(cfg);
        let mut wire = BytesMut::new();
        for body in &bodies {
            encoder.encode(body, &mut wire)?;
        }
        let mut split = Vec::new();
        while let Some(frame) = split_frame(&mut wire, 100)? {
            split.push(frame);
        }
        prop_assert!(wire.is_empty());
        prop_assert_eq!(split.len(), bodies.len());
    }

    #[test]
    fn envelopes_round_trip_through_frames(
        envs in vec(arb_envelope(), 1..8),
        chunks in vec(1usize..97, 1..6),
    ) {
        let cfg = FrameConfig::default();
        let encoder = FrameEncoder::new(cfg);
        let mut wire = BytesMut::new();
        for env in &envs {
            let start = encoder.begin(&mut wire);
            env.encode(&mut wire);
            encoder.finish(start, &mut wire)?;
        }
        let mut decoder = FrameDecoder::new(cfg);
        let frames = feed(&mut decoder, &wire, &chunks)?;
        let decoded = frames.into_iter().map(Envelope::decode).collect::<Result<Vec<_>, _>>()?;
        prop_assert_eq!(decoded, envs);
    }

    /// The fuzz property: arbitrary bytes in arbitrary chunks never panic the
    /// frame decoder or the envelope decoder behind it, never make the frame
    /// decoder buffer or allocate past `max_frame + 4` (checked in `feed`
    /// after every push), and an oversized length is an error.
    #[test]
    fn arbitrary_input_never_panics_or_overallocates(
        input in vec(any::<u8>(), 0..2048),
        chunks in vec(1usize..512, 1..8),
        max_frame in 0usize..600,
        min_alloc in 0usize..4096,
    ) {
        let mut decoder = FrameDecoder::new(config(max_frame, min_alloc));
        match feed(&mut decoder, &input, &chunks) {
            Ok(frames) => {
                for frame in frames {
                    prop_assert!(frame.len() <= max_frame);
                    let _ = Envelope::decode(frame);
                }
            }
            Err(FrameError::Oversized { len, max }) => {
                prop_assert_eq!(max, max_frame);
                prop_assert!(len > max_frame as u64);
                prop_assert_eq!(decoder.push(b"more"), 0);
                prop_assert!(decoder.next_frame().is_err());
            }
            Err(other) => prop_assert!(false, "unexpected {other:?}"),
        }
    }

    /// Like the above, but starting from valid traffic with bytes flipped,
    /// so the decoders see mostly-plausible prefixes and headers.
    #[test]
    fn mutated_traffic_never_panics(
        envs in vec(arb_envelope(), 1..4),
        flips in vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        chunks in vec(1usize..200, 1..4),
    ) {
        let cfg = config(512, 64);
        let encoder = FrameEncoder::new(cfg);
        let mut wire = BytesMut::new();
        for env in &envs {
            let start = encoder.begin(&mut wire);
            env.encode(&mut wire);
            let _ = encoder.finish(start, &mut wire); // oversized ones vanish
        }
        let mut wire = wire.to_vec();
        if !wire.is_empty() {
            for (at, byte) in flips {
                let i = at.index(wire.len());
                wire[i] = byte;
            }
        }
        let mut decoder = FrameDecoder::new(cfg);
        if let Ok(frames) = feed(&mut decoder, &wire, &chunks) {
            for frame in frames {
                let _ = Envelope::decode(frame);
            }
        }
    }
}

#[test]
fn oversized_length_is_refused_before_allocating() {
    let mut decoder = FrameDecoder::new(config(1024, 0));
    // Claims 4 GiB - 1; only the prefix arrives.
    assert_eq!(decoder.push(&[0xff, 0xff, 0xff, 0xff]), 4);
    assert_eq!(
        decoder.next_frame(),
        Err(FrameError::Oversized {
            len: u64::from(u32::MAX),
            max: 1024
        })
    );
    assert!(decoder.buffered_capacity() <= 1028);
    assert_eq!(
        decoder.buffered_capacity(),
        0,
        "failed decoder drops its buffer"
    );
    assert_eq!(decoder.push(&[0; 10]), 0);
    assert!(decoder.finish().is_err());
}

#[test]
fn exactly_max_frame_is_accepted_and_one_more_refused() {
    let cfg = config(16, 0);
    let encoder = FrameEncoder::new(cfg);
    let mut out = BytesMut::new();
    encoder.encode(&[7; 16], &mut out).unwrap();
    assert_eq!(
        encoder.encode(&[7; 17], &mut out),
        Err(FrameError::Oversized { len: 17, max: 16 })
    );
    assert_eq!(out.len(), 20, "refused frame wrote nothing");
    let mut decoder = FrameDecoder::new(cfg);
    assert_eq!(decoder.push(&out), 20);
    assert_eq!(decoder.next_frame().unwrap().unwrap().len(), 16);
    assert_eq!(decoder.buffered_capacity(), 0);
}

#[test]
fn finish_rolls_back_an_oversized_body() {
    let encoder = FrameEncoder::new(config(4, 0));
    let mut out = BytesMut::from(&b"kept"[..]);
    let start = encoder.begin(&mut out);
    out.extend_from_slice(b"too long");
    assert!(encoder.finish(start, &mut out).is_err());
    assert_eq!(&out[..], b"kept");
}

#[test]
fn push_takes_only_what_fits() {
    let mut decoder = FrameDecoder::new(config(4, 0));
    let wire = [0, 0, 0, 2, b'a', b'b', 0, 0, 0, 1, b'c'];
    assert_eq!(decoder.push(&wire), 8, "limit is max_frame + 4");
    assert_eq!(decoder.push(&wire[8..]), 0, "full until drained");
    assert_eq!(decoder.next_frame().unwrap().as_deref(), Some(&b"ab"[..]));
    assert_eq!(decoder.push(&wire[8..]), 3);
    assert_eq!(decoder.next_frame().unwrap().as_deref(), Some(&b"c"[..]));
    assert_eq!(decoder.next_frame().unwrap(), None);
    decoder.finish().unwrap();
}

#[test]
fn truncated_stream_is_reported_at_finish() {
    let mut decoder = FrameDecoder::new(FrameConfig::default());
    assert_eq!(decoder.push(&[0, 0, 0, 9, 1, 2]), 6);
    assert_eq!(decoder.next_frame(), Ok(None));
    assert_eq!(decoder.finish(), Err(FrameError::Truncated { buffered: 6 }));
}
