//! A syslog TCP byte stream (RFC 6587: octet counting or line ends) through
//! the ingest's `Framer`, cut into reads the way a socket delivers them.
//! The first byte picks the read size; the rest is the stream. Checked:
//! however the stream is cut, the frames are the same as when it comes in
//! one read; nothing is left over at the end of the stream; no frame is
//! longer than `MAX_MESSAGE`; every skipped frame says why.
#![no_main]
use libfuzzer_sys::fuzz_target;
use mimamori_ingest::syslog::{Framer, MAX_MESSAGE};

fuzz_target!(|data: &[u8]| {
    let Some((&cut, stream)) = data.split_first() else {
        return;
    };
    let whole = Framer::frames_in_reads(stream, stream.len().max(1));
    for f in &whole {
        match f {
            Ok(m) => assert!(m.len() <= MAX_MESSAGE, "frame of {} bytes", m.len()),
            Err(why) => assert!(!why.is_empty(), "a skipped frame without a reason"),
        }
    }
    let chunk = usize::from(cut) % 64 + 1;
    assert_eq!(
        Framer::frames_in_reads(stream, chunk),
        whole,
        "reads of {chunk} bytes"
    );
});
