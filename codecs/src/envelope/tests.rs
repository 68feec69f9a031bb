//! Round trips for every kind with random fields, exact lengths, and
//! hostile-input tests for the decoder.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use proptest::collection::vec;
use proptest::prelude::*;

use super::*;
use crate::error::EnvelopeError;

pub(crate) fn arb_kind() -> impl Strategy<Value = Kind> {
    proptest::sample::select(Kind::ALL.to_vec())
}

fn arb_str() -> impl Strategy<Value = WireStr> {
    prop_oneof![
        Just(WireStr::from_static("")),
        "[a-z.]{1,24}".prop_map(WireStr::from),
        "\\PC{0,12}".prop_map(WireStr::from),
    ]
}

fn arb_target() -> impl Strategy<Value = Option<Target>> {
    proptest::option::of(prop_oneof![
        arb_str().prop_map(Target::Name),
        any::<u64>().prop_map(Target::Id),
    ])
}

fn arb_traceparent() -> impl Strategy<Value = Option<TraceParent>> {
    proptest::option::of(
        (1u128.., 1u64.., any::<u8>()).prop_filter_map("valid", |(t, p, f)| {
            TraceParent::new(t.to_be_bytes(), p.to_be_bytes(), f).ok()
        }),
    )
}

fn arb_metadata() -> impl Strategy<Value = Metadata> {
    vec((arb_str(), arb_str()), 0..6).prop_map(|pairs| {
        let mut md = Metadata::new();
        for (k, v) in pairs {
            let _ = md.insert(k, v);
        }
        md
    })
}

/// Any valid envelope; deadlines in whole microseconds, as the wire carries them.
pub(crate) fn arb_envelope() -> impl Strategy<Value = Envelope> {
    (
        (arb_kind(), any::<bool>()),
        any::<u64>(),
        proptest::option::of((arb_str(), any::<u32>())),
        arb_target(),
        proptest::option::of(any::<u64>()),
        arb_traceparent(),
        arb_metadata(),
        vec(any::<u8>(), 0..200),
    )
        .prop_map(
            |(
                (kind, from_callee),
                correlation,
                message,
                target,
                deadline,
                traceparent,
                metadata,
                payload,
            )| {
                let mut env = Envelope::new(kind, correlation);
                env.from_callee = from_callee;
                env.message = message.map(|(name, version)| MessageId { name, version });
                env.target = target;
                env.deadline = deadline.map(Duration::from_micros);
                env.traceparent = traceparent;
                env.metadata = metadata;
                env.payload = Bytes::from(payload);
                env
            },
        )
}

fn encode(env: &Envelope) -> Bytes {
    let mut buf = BytesMut::new();
    env.encode(&mut buf);
    buf.freeze()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn every_kind_round_trips(env in arb_envelope()) {
        let bytes = encode(&env);
        prop_assert_eq!(bytes.len(), env.encoded_len());
        prop_assert_eq!(Envelope::decode(bytes)?, env);
    }

    #[test]
    fn read_in_place_matches_the_owned_envelope(env in arb_envelope()) {
        let bytes = encode(&env);
        let borrowed = EnvelopeRef::decode(&bytes)?;
        prop_assert_eq!(EnvelopeRef::peek_kind(&bytes), Some(env.kind));
        prop_assert_eq!(borrowed.kind, env.kind);
        prop_assert_eq!(borrowed.correlation, env.correlation);
        prop_assert_eq!(borrowed.from_callee, env.from_callee);
        prop_assert_eq!(
            borrowed.message,
            env.message.as_ref().map(|m| (m.name.as_str(), m.version))
        );
        let target = env.target.as_ref().map(|t| match t {
            Target::Name(n) => TargetRef::Name(n.as_str()),
            Target::Id(id) => TargetRef::Id(*id),
        });
        prop_assert_eq!(borrowed.target, target);
        prop_assert_eq!(borrowed.deadline, env.deadline);
        prop_assert_eq!(borrowed.traceparent, env.traceparent);
        prop_assert_eq!(borrowed.has_metadata(), !env.metadata.is_empty());
        let entries: Vec<(&str, &str)> = env.metadata.iter().collect();
        prop_assert_eq!(borrowed.metadata().collect::<Vec<_>>(), entries);
        prop_assert_eq!(borrowed.payload, &env.payload[..]);
    }

    #[test]
    fn each_kind_round_trips_with_all_fields(kind in arb_kind(), env in arb_envelope()) {
        // Same as above but forces every kind to be seen with full headers.
        let env = Envelope { kind, ..env }
            .with_message(MessageId::new("orders.PlaceOrder", 1))
            .with_target(Target::Id(7))
            .with_deadline(Duration::from_micros(1_500));
        prop_assert_eq!(Envelope::decode(encode(&env))?, env);
    }

    #[test]
    fn decoded_strings_and_payload_share_the_frame(env in arb_envelope()) {
        let bytes = encode(&env);
        let range = bytes.as_ptr_range();
        let back = Envelope::decode(bytes.clone())?;
        if !back.payload.is_empty() {
            prop_assert!(range.contains(&back.payload.as_ptr()));
        }
        if let Some(m) = back.message.as_ref().filter(|m| !m.name.is_empty()) {
            prop_assert!(range.contains(&m.name.as_ptr()));
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in vec(any::<u8>(), 0..256)) {
        let _ = Envelope::decode(Bytes::from(bytes));
    }

    #[test]
    fn mutated_envelopes_never_panic(env in arb_envelope(), flips in vec((any::<prop::sample::Index>(), any::<u8>()), 1..8), cut in any::<prop::sample::Index>()) {
        let mut bytes = encode(&env).to_vec();
        for (at, byte) in flips {
            let i = at.index(bytes.len());
            bytes[i] = byte;
        }
        bytes.truncate(cut.index(bytes.len() + 1));
        if let Ok(decoded) = Envelope::decode(Bytes::from(bytes)) {
            // Whatever decodes must re-encode and decode to itself.
            prop_assert_eq!(Envelope::decode(encode(&decoded))?, decoded);
        }
    }

    #[test]
    fn every_header_truncation_is_an_error(env in arb_envelope()) {
        let bytes = encode(&env);
        let header = env.header_len();
        for cut in 0..header {
            let result = Envelope::decode(bytes.slice(..cut));
            prop_assert!(result.is_err(), "cut at {} of {} decoded", cut, header);
        }
    }
}

#[test]
fn layout_of_a_small_tell_is_as_documented() {
    let env = Envelope::new(Kind::Tell, 5)
        .with_message(MessageId::new("a.B", 2))
        .with_target(Target::Id(7))
        .with_payload(Bytes::from_static(b"xy"));
    let bytes = encode(&env);
    assert_eq!(
        &bytes[..],
        &[1, 0, 0b0000_0101, 5, 3, b'a', b'.', b'B', 2, 7, b'x', b'y']
    );
}

#[test]
fn a_64_byte_tell_is_88_bytes() {
    let env = Envelope::new(Kind::Tell, 1)
        .with_message(MessageId::new("orders.PlaceOrder", 1))
        .with_target(Target::Id(7))
        .with_payload(Bytes::from(vec![0u8; 64]));
    assert_eq!(env.encoded_len(), 88);
}

#[test]
fn deadline_rounds_down_to_microseconds_and_saturates() {
    let env = Envelope::new(Kind::Ask, 1).with_deadline(Duration::from_nanos(2_999));
    assert_eq!(
        Envelope::decode(encode(&env)).unwrap().deadline,
        Some(Duration::from_micros(2))
    );
    let env = Envelope::new(Kind::Ask, 1).with_deadline(Duration::MAX);
    assert_eq!(
        Envelope::decode(encode(&env)).unwrap().deadline,
        Some(Duration::from_micros(u64::MAX))
    );
}

#[test]
fn malformed_headers_give_typed_errors() {
    let cases: [(&[u8], EnvelopeError); 8] = [
        (&[], EnvelopeError::Truncated { field: "version" }),
        (
            &[2, 0, 0, 0],
            EnvelopeError::UnsupportedVersion { version: 2 },
        ),
        (&[1, 8, 0, 0], EnvelopeError::UnknownKind { kind: 8 }),
        (
            &[1, 0, 0b1000_0000, 0],
            EnvelopeError::InvalidFlags { flags: 0b1000_0000 },
        ),
        (
            &[1, 0, 0b0000_0110, 0],
            EnvelopeError::InvalidFlags { flags: 0b0000_0110 },
        ),
        (
            &[1, 0, 0, 0xff],
            EnvelopeError::Truncated {
                field: "correlation",
            },
        ),
        (
            &[1, 0, 1, 0, 2, 0xff, 0xfe, 1],
            EnvelopeError::InvalidUtf8 {
                field: "message name",
            },
        ),
        (
            &[1, 0, 0b0010_0000, 0, 65],
            EnvelopeError::TooManyMetadata { count: 65, max: 64 },
        ),
    ];
    for (bytes, want) in cases {
        assert_eq!(
            Envelope::decode(Bytes::from_static(bytes)),
            Err(want),
            "{bytes:?}"
        );
    }
}

#[test]
fn zero_trace_ids_and_duplicate_keys_are_refused() {
    let mut bytes = vec![1, 0, 0b0001_0000, 0];
    bytes.extend_from_slice(&[0; 25]);
    assert!(matches!(
        Envelope::decode(Bytes::from(bytes)),
        Err(EnvelopeError::InvalidTraceParent(_))
    ));
    let dup = [1, 0, 0b0010_0000, 0, 2, 1, b'k', 0, 1, b'k', 0];
    assert_eq!(
        Envelope::decode(Bytes::copy_from_slice(&dup)),
        Err(EnvelopeError::DuplicateMetadataKey)
    );
}

#[test]
fn huge_claimed_lengths_do_not_allocate() {
    // A message name claiming u64::MAX bytes: refused as truncated, instantly.
    let mut bytes = vec![1, 0, 1, 0];
    bytes.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]);
    assert_eq!(
        Envelope::decode(Bytes::from(bytes)),
        Err(EnvelopeError::Truncated {
            field: "message name"
        })
    );
    // 64 metadata entries claimed in a 5-byte input: refused before the Vec.
    assert_eq!(
        Envelope::decode(Bytes::from_static(&[1, 0, 0b0010_0000, 0, 64])),
        Err(EnvelopeError::Truncated { field: "metadata" })
    );
}

#[test]
fn credit_and_error_helpers_round_trip() {
    let credit = Envelope::decode(encode(&Envelope::credit(9, 300))).unwrap();
    assert_eq!(
        (credit.kind, credit.correlation, credit.credits()),
        (Kind::Credit, 9, Some(300))
    );
    let err = Envelope::decode(encode(&Envelope::error(9, &WireError::MailboxFull))).unwrap();
    assert_eq!(err.wire_error().unwrap().unwrap(), WireError::MailboxFull);
    assert!(credit.wire_error().is_none());
    assert!(err.credits().is_none());
}

/// A plain tell: what a bind frame carries.
fn arb_plain_tell() -> impl Strategy<Value = Envelope> {
    (
        any::<u64>(),
        arb_str(),
        any::<u32>(),
        arb_str(),
        vec(any::<u8>(), 0..200),
    )
        .prop_map(|(channel, name, version, target, payload)| {
            Envelope::new(Kind::Tell, channel)
                .with_message(MessageId { name, version })
                .with_target(Target::Name(target))
                .with_payload(Bytes::from(payload))
        })
}

fn bind_frame(binding: u64, tell: &Envelope) -> Bytes {
    let mut buf = BytesMut::new();
    BoundTell::encode_bind_prefix(binding, &mut buf);
    tell.encode(&mut buf);
    buf.freeze()
}

fn lean_frame(binding: u64, payload: &[u8]) -> Bytes {
    let mut buf = BytesMut::new();
    BoundTell::encode_lean_header(binding, &mut buf);
    buf.extend_from_slice(payload);
    buf.freeze()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn bound_tells_round_trip(tell in arb_plain_tell(), binding in 0..=MAX_BINDING) {
        let bind = bind_frame(binding, &tell);
        let Some(BoundTell::Bind { binding: b, tell: read }) = BoundTell::decode(&bind)? else {
            return Err(TestCaseError::fail("not a bind frame"));
        };
        prop_assert_eq!(b, binding);
        let whole = encode(&tell);
        prop_assert_eq!(read, EnvelopeRef::decode(&whole)?);

        let lean = lean_frame(binding, &tell.payload);
        prop_assert_eq!(
            BoundTell::decode(&lean)?,
            Some(BoundTell::Lean { binding, payload: &tell.payload[..] })
        );
        // The lean form is the header's worth shorter.
        prop_assert_eq!(bind.len() - lean.len(), tell.header_len());
    }

    #[test]
    fn envelopes_are_not_bound_tells(env in arb_envelope()) {
        let bytes = encode(&env);
        prop_assert_eq!(BoundTell::decode(&bytes)?, None);
    }

    #[test]
    fn only_plain_tells_bind(env in arb_envelope(), binding in 0..=MAX_BINDING) {
        let plain = env.kind == Kind::Tell
            && env.message.is_some()
            && matches!(env.target, Some(Target::Name(_)))
            && env.deadline.is_none()
            && env.traceparent.is_none()
            && env.metadata.is_empty();
        let frame = bind_frame(binding, &env);
        let read = BoundTell::decode(&frame);
        if plain {
            let bound = matches!(read, Ok(Some(BoundTell::Bind { .. })));
            prop_assert!(bound, "a plain tell did not bind");
        } else {
            prop_assert_eq!(read, Err(EnvelopeError::InvalidBind));
        }
    }

    #[test]
    fn arbitrary_bound_frames_never_panic(tag in proptest::sample::select(vec![BIND_TAG, LEAN_TAG]), bytes in vec(any::<u8>(), 0..256)) {
        let mut frame = vec![tag];
        frame.extend_from_slice(&bytes);
        if let Ok(Some(read)) = BoundTell::decode(&frame) {
            let binding = match read {
                BoundTell::Bind { binding, .. } | BoundTell::Lean { binding, .. } => binding,
            };
            prop_assert!(binding <= MAX_BINDING);
        }
    }

    #[test]
    fn mutated_bound_frames_never_panic(tell in arb_plain_tell(), binding in 0..=MAX_BINDING, lean in any::<bool>(), flips in vec((any::<prop::sample::Index>(), any::<u8>()), 1..8), cut in any::<prop::sample::Index>()) {
        let frame = if lean { lean_frame(binding, &tell.payload) } else { bind_frame(binding, &tell) };
        let mut bytes = frame.to_vec();
        for (at, byte) in flips {
            let i = at.index(bytes.len());
            bytes[i] = byte;
        }
        bytes.truncate(cut.index(bytes.len() + 1));
        let _ = BoundTell::decode(&bytes);
    }

    #[test]
    fn every_bind_header_truncation_is_an_error(tell in arb_plain_tell(), binding in 0..=MAX_BINDING) {
        let bind = bind_frame(binding, &tell);
        let header = bind.len() - tell.payload.len();
        for cut in 1..header {
            prop_assert!(BoundTell::decode(&bind[..cut]).is_err(), "cut at {} of {} decoded", cut, header);
        }
    }
}

#[test]
fn malformed_bound_tells_give_typed_errors() {
    // A tag alone, or a binding cut short.
    for frame in [&[BIND_TAG][..], &[LEAN_TAG], &[LEAN_TAG, 0x80]] {
        assert_eq!(
            BoundTell::decode(frame),
            Err(EnvelopeError::Truncated { field: "binding" })
        );
    }
    // A binding above the limit.
    let over = lean_frame(MAX_BINDING + 1, b"x");
    assert_eq!(
        BoundTell::decode(&over),
        Err(EnvelopeError::BindingOutOfRange {
            binding: MAX_BINDING + 1,
            max: MAX_BINDING
        })
    );
    // An overlong varint.
    let mut overflow = vec![LEAN_TAG];
    overflow.extend_from_slice(&[0xff; 11]);
    assert_eq!(
        BoundTell::decode(&overflow),
        Err(EnvelopeError::Overflow { field: "binding" })
    );
    // A bind frame whose envelope is not a plain tell, or is malformed.
    let timed = Envelope::new(Kind::Tell, 1)
        .with_message(MessageId::new("m", 1))
        .with_target(Target::Name("t".into()))
        .with_deadline(Duration::from_millis(1));
    assert_eq!(
        BoundTell::decode(&bind_frame(3, &timed)),
        Err(EnvelopeError::InvalidBind)
    );
    assert_eq!(
        BoundTell::decode(&[BIND_TAG, 3, 9]),
        Err(EnvelopeError::UnsupportedVersion { version: 9 })
    );
    // A lean tell may have an empty payload.
    assert_eq!(
        BoundTell::decode(&[LEAN_TAG, 0]),
        Ok(Some(BoundTell::Lean {
            binding: 0,
            payload: &[]
        }))
    );
}
