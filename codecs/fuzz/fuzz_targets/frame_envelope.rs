//! Arbitrary bytes through everything a peer can make this node parse: the
//! frame decoder (in chunks whose sizes come from the input), each frame as
//! an envelope and as a bound tell, each envelope's payload through the
//! registry with every codec, and the whole input as a handshake. Nothing
//! may panic, and the frame decoder's buffer may never exceed one maximal
//! frame.
#![no_main]

use libfuzzer_sys::fuzz_target;
use plexus_codecs::{
    BoundTell, CodecKind, Envelope, FrameConfig, FrameDecoder, Handshake, Registry, WireError,
    remote_message,
};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct Sample {
    name: String,
    blob: Vec<u8>,
    numbers: Vec<u64>,
    maybe: Option<String>,
}
remote_message!(Sample, "fuzz.Sample", 1, reply = ());

fuzz_target!(|data: &[u8]| {
    let Some((&knobs, input)) = data.split_first() else {
        return;
    };
    let _ = Handshake::decode(input);
    let _ = WireError::from_payload(input);

    let mut registry = Registry::new();
    if registry.register::<Sample>().is_err() {
        return;
    }
    let max_frame = 16 + usize::from(knobs) * 8;
    let chunk = 1 + usize::from(knobs % 61);
    let mut decoder = FrameDecoder::new(FrameConfig {
        max_frame,
        min_alloc: 64,
    });
    for mut piece in input.chunks(chunk) {
        while !piece.is_empty() {
            let taken = decoder.push(piece);
            piece = &piece[taken..];
            assert!(decoder.buffered_capacity() <= max_frame + 4);
            loop {
                match decoder.next_frame() {
                    Ok(Some(frame)) => {
                        assert!(frame.len() <= max_frame);
                        let _ = BoundTell::decode(&frame);
                        if let Ok(envelope) = Envelope::decode(frame) {
                            for codec in CodecKind::ALL {
                                let _ = registry.decode_envelope(codec, &envelope);
                            }
                            let _ = envelope.wire_error();
                            let _ = envelope.credits();
                        }
                    }
                    Ok(None) => break,
                    Err(_) => return,
                }
            }
        }
    }
    let _ = decoder.finish();
});
