//! A syslog TCP byte stream (RFC 6587: octet counting or line ends) through
//! the ingest's `Framer`, cut into reads the way a socket delivers them.
//! The first byte picks the read size; the rest is the stream. Checked:
//! however the stream is cut, the frames are the same as when it comes in
//! one read; nothing is left over at the end of the stream; no frame is
//! longer than `MAX_MESSAGE`; every skipped frame says why.
#![no_main]
use libfuzzer_sys::fuzz_target;
use mimamori_ingest::syslog::{Framer, MAX_MESSAGE};

type Frames = Vec<Result<Vec<u8>, String>>;

/// Feeds `input` in reads of `chunk` bytes, unconsumed bytes coming again
/// before the next read's, as `read_stream` does.
fn frames_in_reads(input: &[u8], chunk: usize) -> Frames {
    let mut framer = Framer::default();
    let mut out = vec![];
    let mut buf: Vec<u8> = vec![];
    let mut fed = 0;
    loop {
        let take = chunk.min(input.len() - fed);
        buf.extend_from_slice(&input[fed..fed + take]);
        fed += take;
        let eof = take == 0;
        let used = framer.frames(&buf, eof, |f| out.push(f.map(<[u8]>::to_vec)));
        assert!(used <= buf.len(), "consumed {used} of {} bytes", buf.len());
        buf.drain(..used);
        if eof {
            assert!(buf.is_empty(), "{} bytes left at end of stream", buf.len());
            return out;
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&cut, stream)) = data.split_first() else {
        return;
    };
    let whole = frames_in_reads(stream, stream.len().max(1));
    for f in &whole {
        match f {
            Ok(m) => assert!(m.len() <= MAX_MESSAGE, "frame of {} bytes", m.len()),
            Err(why) => assert!(!why.is_empty(), "a skipped frame without a reason"),
        }
    }
    let chunk = usize::from(cut) % 64 + 1;
    assert_eq!(frames_in_reads(stream, chunk), whole, "reads of {chunk} bytes");
});
