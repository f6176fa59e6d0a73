//! Shared checks for the line-format targets.
#![allow(dead_code)]

use mimamori_parse::{parse_bytes, Format, Parsed};

/// Parses `data` as `format` and checks what must hold for every input:
/// every reject names a record inside the input and says why, and a
/// one-record-per-line format yields at most one result per line.
pub fn check_lines(format: Format, data: &[u8], one_per_line: bool) -> Parsed {
    let parsed = parse_bytes(format, data);
    let lines = data.split(|&b| b == b'\n').count();
    for r in &parsed.rejects {
        assert!(!r.reason.is_empty(), "reject without a reason: {r:?}");
    }
    if one_per_line {
        let n = parsed.events.len() + parsed.rejects.len();
        assert!(n <= lines, "{n} results from {lines} lines");
        for r in &parsed.rejects {
            assert!(r.record >= 1 && r.record as usize <= lines, "reject outside the input: {r:?}");
        }
    }
    parsed
}
