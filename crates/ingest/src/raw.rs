//! Raw submissions: messages made durable as received and normalized after
//! the WAL fsync, off the acknowledgement path.
//!
//! A stream source (syslog) hands over the messages of one read as one
//! [`RawBatch`]: one queue entry, one WAL record, no per-message parsing or
//! JSON before the fsync. The record holds everything normalization needs,
//! so replaying it after a crash yields the same events with the same ids:
//!
//! ```text
//! [0x01][format len u8][format][org len u16 LE][org][received i64 LE]
//! [base id u128 LE][count u32 LE] then per message [len u32 LE][bytes]
//! ```
//!
//! Event `i` of the record gets the id `base` with `i` added to its 62
//! random bits (see [`event_id`]): unique within the record, and as unlikely
//! to collide across records as any two UUIDv7.
//!
//! Older WAL records are NDJSON of events and start with `{`; the first
//! byte tells the two apart.

use mimamori_event::Event;
use mimamori_parse::{Format, LineParser};

/// First byte of a raw WAL record.
const RAW_RECORD: u8 = 0x01;

/// Messages of one format from one source, in arrival order, encoded as the
/// body of their WAL record.
#[derive(Debug, Clone)]
pub struct RawBatch {
    format: Format,
    count: u32,
    /// `[len u32 LE][bytes]` per message.
    body: Vec<u8>,
}

impl RawBatch {
    pub fn new(format: Format) -> Self {
        Self::with_capacity(format, 0)
    }

    /// A batch with room for `bytes` of messages (plus their lengths).
    pub fn with_capacity(format: Format, bytes: usize) -> Self {
        RawBatch {
            format,
            count: 0,
            body: Vec::with_capacity(bytes),
        }
    }

    /// Adds one message. Sources cap message sizes far below 4 GiB; a longer
    /// one is cut at `u32::MAX` bytes rather than mis-framed.
    pub fn push(&mut self, msg: &[u8]) {
        let msg = &msg[..msg.len().min(u32::MAX as usize)];
        self.body
            .extend_from_slice(&(msg.len() as u32).to_le_bytes());
        self.body.extend_from_slice(msg);
        self.count += 1;
    }

    /// Number of messages.
    pub fn len(&self) -> usize {
        self.count as usize
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Encoded size (what the batch occupies in the queue and the WAL).
    pub fn bytes(&self) -> usize {
        self.body.len()
    }

    pub fn format(&self) -> Format {
        self.format
    }

    pub(crate) fn body(&self) -> &[u8] {
        &self.body
    }
}

/// The header of a raw WAL record.
pub(crate) fn encode_header(
    batch: &RawBatch,
    org_id: &str,
    received: i64,
    base_id: u128,
    out: &mut Vec<u8>,
) {
    let format = batch.format.as_str().as_bytes();
    let org = &org_id.as_bytes()[..org_id.len().min(u16::MAX as usize)];
    out.push(RAW_RECORD);
    out.push(format.len() as u8);
    out.extend_from_slice(format);
    out.extend_from_slice(&(org.len() as u16).to_le_bytes());
    out.extend_from_slice(org);
    out.extend_from_slice(&received.to_le_bytes());
    out.extend_from_slice(&base_id.to_le_bytes());
    out.extend_from_slice(&batch.count.to_le_bytes());
}

/// A raw record, decoded but not yet normalized.
pub(crate) struct RawRecord {
    pub org_id: String,
    pub received: i64,
    pub base_id: u128,
    pub batch: RawBatch,
}

/// Whether a WAL payload is a raw record (else it is NDJSON of events).
pub(crate) fn is_raw(payload: &[u8]) -> bool {
    payload.first() == Some(&RAW_RECORD)
}

/// Reads a raw WAL record back.
pub(crate) fn decode(payload: &[u8]) -> Result<RawRecord, String> {
    let mut r = Reader(payload);
    if r.take(1)? != [RAW_RECORD] {
        return Err("not a raw record".into());
    }
    let flen = r.take(1)?[0] as usize;
    let fname = std::str::from_utf8(r.take(flen)?).map_err(|e| e.to_string())?;
    let format = Format::parse(fname).ok_or_else(|| format!("unknown format {fname:?}"))?;
    let olen = u16::from_le_bytes(r.array()?) as usize;
    let org_id = std::str::from_utf8(r.take(olen)?)
        .map_err(|e| e.to_string())?
        .to_string();
    let received = i64::from_le_bytes(r.array()?);
    let base_id = u128::from_le_bytes(r.array()?);
    let count = u32::from_le_bytes(r.array()?);
    let body = r.0;
    // Check the framing now, so normalization can trust it.
    let mut check = Reader(body);
    for _ in 0..count {
        let len = u32::from_le_bytes(check.array()?) as usize;
        check.take(len)?;
    }
    if !check.0.is_empty() {
        return Err("trailing bytes after the last message".into());
    }
    Ok(RawRecord {
        org_id,
        received,
        base_id,
        batch: RawBatch {
            format,
            count,
            body: body.to_vec(),
        },
    })
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.0.len() < n {
            return Err("raw record is truncated".into());
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let b = self.take(N)?;
        let mut a = [0u8; N];
        a.copy_from_slice(b);
        Ok(a)
    }
}

/// The id of message `i` of a record whose base id is `base`: `i` added to
/// the UUIDv7's 62 random bits (modulo 2^62), keeping its time, version and
/// variant.
pub(crate) fn event_id(base: u128, i: u32) -> String {
    const RAND_B: u128 = (1 << 62) - 1;
    let low = (base & RAND_B).wrapping_add(u128::from(i)) & RAND_B;
    uuid::Uuid::from_u128((base & !RAND_B) | low).to_string()
}

/// Parses the messages of a raw record into events, appending them to
/// `out`. Messages that do not parse are skipped; their number is returned
/// and the first reason logged.
pub(crate) fn normalize(rec: &RawRecord, out: &mut Vec<Event>) -> u64 {
    let mut parser = LineParser::new(rec.batch.format);
    let mut rejected = 0u64;
    let mut first_reason: Option<String> = None;
    let mut r = Reader(&rec.batch.body);
    for i in 0..rec.batch.count {
        // `decode` and `RawBatch::push` guarantee the framing.
        let Ok(len) = r.array::<4>().map(u32::from_le_bytes) else {
            break;
        };
        let Ok(msg) = r.take(len as usize) else {
            break;
        };
        match parser.push_line(msg) {
            Some(Ok(body)) => out.push(Event {
                id: event_id(rec.base_id, i),
                org_id: rec.org_id.clone(),
                received: rec.received,
                body,
            }),
            Some(Err(reason)) => {
                rejected += 1;
                first_reason.get_or_insert(reason);
            }
            None => {}
        }
    }
    if let Some(reason) = first_reason {
        tracing::debug!(
            org = %rec.org_id,
            rejected,
            first = %reason,
            "rejected raw messages"
        );
    }
    rejected
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_round_trips_and_ids_are_stable_and_distinct() {
        let mut b = RawBatch::new(Format::Syslog);
        b.push(b"<13>1 2026-11-25T10:00:00Z h app - - - one");
        b.push(b"not syslog");
        b.push(b"<13>Nov 25 10:00:00 h app: three");
        let base = uuid::Uuid::now_v7().as_u128() | ((1 << 62) - 2);
        let mut payload = vec![];
        encode_header(&b, "org-1", 42, base, &mut payload);
        payload.extend_from_slice(b.body());
        assert!(is_raw(&payload));
        let rec = decode(&payload).unwrap();
        assert_eq!(rec.org_id, "org-1");
        assert_eq!(rec.received, 42);
        let mut events = vec![];
        assert_eq!(normalize(&rec, &mut events), 1);
        assert_eq!(events.len(), 2);
        assert!(events
            .iter()
            .all(|e| e.org_id == "org-1" && e.received == 42));
        // Ids come from the record alone (a replay gives the same ones),
        // stay UUIDv7 even where the counter wraps, and differ.
        let mut again = vec![];
        normalize(&decode(&payload).unwrap(), &mut again);
        assert_eq!(events, again);
        let ids: Vec<uuid::Uuid> = events.iter().map(|e| e.id.parse().unwrap()).collect();
        assert_ne!(ids[0], ids[1]);
        for id in &ids {
            assert_eq!(id.get_version_num(), 7);
            assert_eq!(id.get_variant(), uuid::Variant::RFC4122);
        }
        // Damage is refused, not mis-read.
        assert!(decode(&payload[..payload.len() - 1]).is_err());
        let mut longer = payload.clone();
        longer.push(0);
        assert!(decode(&longer).is_err());
        assert!(!is_raw(b"{\"id\":1}"));
    }
}
