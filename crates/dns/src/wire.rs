//! The hand-written part of the wire format: the question of a query, and the
//! answers the fast path builds without hickory.
//!
//! hickory-proto's full `Message` decode allocates a `Name`, a `Vec` per
//! section and every record; that is most of the ≈15 µs per query its own
//! server spends. A query needs only its header, one question and the EDNS
//! OPT record, so this module reads exactly those, with a bounds check on
//! every byte, and writes block answers and cached answers straight into a
//! reusable buffer. Everything else (odd opcodes, several questions, TSIG) is
//! left to the hickory slow path.

use std::net::{Ipv4Addr, Ipv6Addr};

/// Longest name on the wire (RFC 1035 §2.3.4), terminating zero included.
pub const MAX_NAME: usize = 255;
/// The UDP payload size we advertise and accept from upstreams (DNS flag
/// day 2020 recommendation; avoids IP fragmentation).
pub const OUR_UDP_SIZE: u16 = 1232;

pub const TYPE_A: u16 = 1;
pub const TYPE_NS: u16 = 2;
pub const TYPE_CNAME: u16 = 5;
pub const TYPE_SOA: u16 = 6;
pub const TYPE_TXT: u16 = 16;
pub const TYPE_AAAA: u16 = 28;
pub const TYPE_OPT: u16 = 41;
pub const CLASS_IN: u16 = 1;

pub const RCODE_NOERROR: u8 = 0;
pub const RCODE_FORMERR: u8 = 1;
pub const RCODE_SERVFAIL: u8 = 2;
pub const RCODE_NXDOMAIN: u8 = 3;
pub const RCODE_NOTIMP: u8 = 4;
pub const RCODE_REFUSED: u8 = 5;

/// RFC 8914 Extended DNS Error codes we send.
pub const EDE_BLOCKED: u16 = 15;
pub const EDE_FILTERED: u16 = 17;
pub const EDE_STALE: u16 = 3;

const FLAG_QR: u16 = 0x8000;
const FLAG_AA: u16 = 0x0400;
const FLAG_TC: u16 = 0x0200;
const FLAG_RD: u16 = 0x0100;
const FLAG_RA: u16 = 0x0080;
const FLAG_CD: u16 = 0x0010;

/// Why a packet is not a query the fast path can answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("shorter than a DNS header")]
    Short,
    #[error("not a query (QR set)")]
    NotQuery,
    #[error("opcode other than QUERY")]
    Opcode,
    #[error("not exactly one question")]
    QuestionCount,
    #[error("answer or authority records in a query")]
    Sections,
    #[error("malformed name")]
    Name,
    #[error("truncated question")]
    Truncated,
    #[error("additional records other than one OPT")]
    Additional,
}

/// EDNS as the client sent it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientEdns {
    pub udp_size: u16,
    pub dnssec_ok: bool,
    pub version: u8,
}

/// A parsed query: the header fields that matter and the question, with the
/// name lower-cased into an inline buffer so no allocation is needed.
#[derive(Clone)]
pub struct Question {
    pub id: u16,
    /// The raw flags word of the query.
    pub flags: u16,
    name: [u8; MAX_NAME],
    name_len: u8,
    pub qtype: u16,
    pub qclass: u16,
    /// Offset just past the question in the packet (the question bytes,
    /// `packet[12..question_end]`, are echoed with the client's case).
    pub question_end: usize,
    pub edns: Option<ClientEdns>,
}

impl std::fmt::Debug for Question {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Question")
            .field("id", &self.id)
            .field("name", &name_to_string(self.name()))
            .field("qtype", &self.qtype)
            .field("edns", &self.edns)
            .finish()
    }
}

impl Question {
    /// The lower-cased wire-format name, terminating zero included.
    pub fn name(&self) -> &[u8] {
        &self.name[..self.name_len as usize]
    }
    pub fn rd(&self) -> bool {
        self.flags & FLAG_RD != 0
    }
    pub fn cd(&self) -> bool {
        self.flags & FLAG_CD != 0
    }
    pub fn dnssec_ok(&self) -> bool {
        self.edns.is_some_and(|e| e.dnssec_ok)
    }
    /// Largest UDP answer this client accepts (RFC 6891 §6.2.5: at least 512).
    pub fn udp_limit(&self) -> usize {
        match self.edns {
            Some(e) => usize::from(e.udp_size.clamp(512, 4096)),
            None => 512,
        }
    }
}

fn be16(p: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*p.get(at)?, *p.get(at + 1)?]))
}

/// Reads the header, the single question and an optional OPT record.
pub fn parse_query(p: &[u8]) -> Result<Question, WireError> {
    if p.len() < 12 {
        return Err(WireError::Short);
    }
    let id = u16::from_be_bytes([p[0], p[1]]);
    let flags = u16::from_be_bytes([p[2], p[3]]);
    if flags & FLAG_QR != 0 {
        return Err(WireError::NotQuery);
    }
    if (flags >> 11) & 0xf != 0 {
        return Err(WireError::Opcode);
    }
    let qd = u16::from_be_bytes([p[4], p[5]]);
    let an = u16::from_be_bytes([p[6], p[7]]);
    let ns = u16::from_be_bytes([p[8], p[9]]);
    let ar = u16::from_be_bytes([p[10], p[11]]);
    if qd != 1 {
        return Err(WireError::QuestionCount);
    }
    if an != 0 || ns != 0 {
        return Err(WireError::Sections);
    }
    let mut name = [0u8; MAX_NAME];
    let mut n = 0usize;
    let mut at = 12usize;
    loop {
        let len = *p.get(at).ok_or(WireError::Truncated)? as usize;
        // Compression pointers and the reserved 0x40/0x80 label types have no
        // business in a question that starts at offset 12.
        if len > 63 {
            return Err(WireError::Name);
        }
        if n + len + 1 > MAX_NAME {
            return Err(WireError::Name);
        }
        let label = p.get(at + 1..at + 1 + len).ok_or(WireError::Truncated)?;
        name[n] = len as u8;
        for (d, s) in name[n + 1..n + 1 + len].iter_mut().zip(label) {
            *d = s.to_ascii_lowercase();
        }
        n += len + 1;
        at += len + 1;
        if len == 0 {
            break;
        }
    }
    let qtype = be16(p, at).ok_or(WireError::Truncated)?;
    let qclass = be16(p, at + 2).ok_or(WireError::Truncated)?;
    let question_end = at + 4;
    let edns = match ar {
        0 => None,
        1 => Some(parse_opt(p, question_end)?),
        _ => return Err(WireError::Additional),
    };
    Ok(Question {
        id,
        flags,
        name,
        name_len: n as u8,
        qtype,
        qclass,
        question_end,
        edns,
    })
}

fn parse_opt(p: &[u8], at: usize) -> Result<ClientEdns, WireError> {
    // Owner must be the root name.
    if p.get(at) != Some(&0) {
        return Err(WireError::Additional);
    }
    let rtype = be16(p, at + 1).ok_or(WireError::Truncated)?;
    if rtype != TYPE_OPT {
        return Err(WireError::Additional);
    }
    let udp_size = be16(p, at + 3).ok_or(WireError::Truncated)?;
    let version = *p.get(at + 6).ok_or(WireError::Truncated)?;
    let eflags = be16(p, at + 7).ok_or(WireError::Truncated)?;
    let rdlen = be16(p, at + 9).ok_or(WireError::Truncated)? as usize;
    if p.len() < at + 11 + rdlen {
        return Err(WireError::Truncated);
    }
    Ok(ClientEdns {
        udp_size,
        dnssec_ok: eflags & 0x8000 != 0,
        version,
    })
}

/// `www.example.com` for a wire name (lower-case, no trailing dot; `.` for
/// the root). Bytes outside printable ASCII are escaped as `\DDD`.
pub fn name_to_string(wire: &[u8]) -> String {
    let mut s = String::with_capacity(wire.len());
    let mut at = 0;
    while let Some(&len) = wire.get(at) {
        if len == 0 {
            break;
        }
        if !s.is_empty() {
            s.push('.');
        }
        let end = (at + 1 + len as usize).min(wire.len());
        for &b in &wire[at + 1..end] {
            if b.is_ascii_graphic() && b != b'.' && b != b'\\' {
                s.push(b as char);
            } else {
                s.push_str(&format!("\\{b:03}"));
            }
        }
        at = end;
    }
    if s.is_empty() {
        s.push('.');
    }
    s
}

/// Offsets of the labels of a wire name: every suffix starts at one of them.
/// The last one is the terminating zero (the root).
pub fn label_offsets(wire: &[u8], out: &mut [u8; 128]) -> usize {
    let mut n = 0;
    let mut at = 0usize;
    while let Some(&len) = wire.get(at) {
        if n == out.len() {
            break;
        }
        out[n] = at as u8;
        n += 1;
        if len == 0 {
            break;
        }
        at += 1 + len as usize;
    }
    n
}

/// How a blocked or locally answered query is answered by the fast path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Synth<'a> {
    /// An empty answer with this rcode.
    Empty { rcode: u8, aa: bool, tc: bool },
    /// NOERROR with A records (owner = the question).
    A(&'a [Ipv4Addr]),
    /// NOERROR with AAAA records.
    Aaaa(&'a [Ipv6Addr]),
}

/// Writes the response header for `q`: ID and RD/CD echoed, RA set.
fn header(out: &mut Vec<u8>, q: &Question, rcode: u8, aa: bool, tc: bool, an: u16, ar: u16) {
    let mut flags = FLAG_QR | FLAG_RA | (q.flags & (FLAG_RD | FLAG_CD)) | u16::from(rcode & 0xf);
    if aa {
        flags |= FLAG_AA;
    }
    if tc {
        flags |= FLAG_TC;
    }
    out.extend_from_slice(&q.id.to_be_bytes());
    out.extend_from_slice(&flags.to_be_bytes());
    out.extend_from_slice(&1u16.to_be_bytes());
    out.extend_from_slice(&an.to_be_bytes());
    out.extend_from_slice(&0u16.to_be_bytes());
    out.extend_from_slice(&ar.to_be_bytes());
}

/// Appends an OPT record answering the client's EDNS: our payload size, DO
/// echoed (RFC 3225), and an Extended DNS Error when `ede` is given.
pub fn push_opt(out: &mut Vec<u8>, edns: ClientEdns, ede: Option<(u16, &str)>) {
    out.push(0);
    out.extend_from_slice(&TYPE_OPT.to_be_bytes());
    out.extend_from_slice(&OUR_UDP_SIZE.to_be_bytes());
    out.extend_from_slice(&[0, 0]); // extended rcode, version 0
    let flags: u16 = if edns.dnssec_ok { 0x8000 } else { 0 };
    out.extend_from_slice(&flags.to_be_bytes());
    match ede {
        Some((code, text)) => {
            // Keep the extra text short enough that the whole answer always
            // fits 512 bytes.
            let text = &text.as_bytes()[..text.len().min(100)];
            let optlen = 2 + text.len();
            out.extend_from_slice(&((4 + optlen) as u16).to_be_bytes());
            out.extend_from_slice(&15u16.to_be_bytes()); // option code: EDE
            out.extend_from_slice(&(optlen as u16).to_be_bytes());
            out.extend_from_slice(&code.to_be_bytes());
            out.extend_from_slice(text);
        }
        None => out.extend_from_slice(&0u16.to_be_bytes()),
    }
}

/// Builds a synthesized answer to `q` (whose packet is `pkt`) into `out`.
/// `ede` is attached when the client used EDNS.
pub fn synth(
    out: &mut Vec<u8>,
    pkt: &[u8],
    q: &Question,
    what: Synth<'_>,
    ttl: u32,
    ede: Option<(u16, &str)>,
) {
    out.clear();
    let ar = u16::from(q.edns.is_some());
    let (rcode, aa, tc, an) = match what {
        Synth::Empty { rcode, aa, tc } => (rcode, aa, tc, 0),
        Synth::A(a) => (RCODE_NOERROR, true, false, a.len().min(16)),
        Synth::Aaaa(a) => (RCODE_NOERROR, true, false, a.len().min(16)),
    };
    header(out, q, rcode, aa, tc, an as u16, ar);
    out.extend_from_slice(&pkt[12..q.question_end]);
    let rr = |out: &mut Vec<u8>, rtype: u16, rdata: &[u8]| {
        out.extend_from_slice(&[0xc0, 12]); // pointer to the question name
        out.extend_from_slice(&rtype.to_be_bytes());
        out.extend_from_slice(&CLASS_IN.to_be_bytes());
        out.extend_from_slice(&ttl.to_be_bytes());
        out.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        out.extend_from_slice(rdata);
    };
    match what {
        Synth::Empty { .. } => {}
        Synth::A(a) => a
            .iter()
            .take(16)
            .for_each(|ip| rr(out, TYPE_A, &ip.octets())),
        Synth::Aaaa(a) => a
            .iter()
            .take(16)
            .for_each(|ip| rr(out, TYPE_AAAA, &ip.octets())),
    }
    if let Some(e) = q.edns {
        push_opt(out, e, ede);
    }
}

/// A minimal error answer (FORMERR, NOTIMP, SERVFAIL, REFUSED) for a packet
/// that may not even parse: the header and, when it can be found, the
/// question are echoed. `None` when the packet is too short to answer or is
/// itself a response (answering responses invites loops).
pub fn error_reply(pkt: &[u8], rcode: u8) -> Option<Vec<u8>> {
    if pkt.len() < 12 || pkt[2] & 0x80 != 0 {
        return None;
    }
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(&pkt[0..2]);
    let flags = FLAG_QR | FLAG_RA | (u16::from_be_bytes([pkt[2], pkt[3]]) & (0x7800 | FLAG_RD));
    out.extend_from_slice(&(flags | u16::from(rcode & 0xf)).to_be_bytes());
    // Echo the question only when it is well-formed.
    let q = question_span(pkt);
    out.extend_from_slice(&u16::from(q.is_some()).to_be_bytes());
    out.extend_from_slice(&[0; 6]);
    if let Some(end) = q {
        out.extend_from_slice(&pkt[12..end]);
    }
    Some(out)
}

fn question_span(pkt: &[u8]) -> Option<usize> {
    if be16(pkt, 4)? == 0 {
        return None;
    }
    let mut at = 12;
    loop {
        let len = *pkt.get(at)? as usize;
        if len > 63 {
            return None;
        }
        at += 1 + len;
        if len == 0 {
            break;
        }
        // RFC 1035 §3.1: a name, root label included, is at most 255
        // octets, so the labels before the root at most 254 (found by fuzzing:
        // a longer one was echoed, and the reply did not decode).
        if at - 12 > 254 {
            return None;
        }
    }
    (pkt.len() >= at + 4).then_some(at + 4)
}

/// Skips a possibly compressed name at `at`; returns the offset after it.
pub fn skip_name(p: &[u8], mut at: usize) -> Option<usize> {
    loop {
        let len = *p.get(at)?;
        match len {
            0 => return Some(at + 1),
            1..=63 => at += 1 + len as usize,
            0xc0..=0xff => {
                p.get(at + 1)?;
                return Some(at + 2);
            }
            _ => return None,
        }
    }
}

/// Reads a possibly compressed name at `at` into lower-case wire form.
/// Bounded: at most 128 pointer hops, at most 255 bytes.
pub fn read_name(p: &[u8], mut at: usize, out: &mut Vec<u8>) -> Option<()> {
    out.clear();
    let mut hops = 0;
    loop {
        let len = *p.get(at)?;
        match len {
            0 => {
                out.push(0);
                return (out.len() <= MAX_NAME).then_some(());
            }
            1..=63 => {
                let label = p.get(at + 1..at + 1 + len as usize)?;
                out.push(len);
                out.extend(label.iter().map(u8::to_ascii_lowercase));
                if out.len() > MAX_NAME {
                    return None;
                }
                at += 1 + len as usize;
            }
            0xc0..=0xff => {
                hops += 1;
                if hops > 128 {
                    return None;
                }
                at = (usize::from(len & 0x3f) << 8) | usize::from(*p.get(at + 1)?);
            }
            _ => return None,
        }
    }
}

/// One resource record found by [`walk_records`].
#[derive(Debug, Clone, Copy)]
pub struct RrRef {
    /// Offset of the owner name.
    pub owner: usize,
    pub rtype: u16,
    /// Offset of the 4-byte TTL.
    pub ttl_at: usize,
    pub ttl: u32,
    /// Offset and length of the RDATA.
    pub rdata: usize,
    pub rdlen: usize,
    /// 0 answer, 1 authority, 2 additional.
    pub section: u8,
}

/// Walks every record of a response; `None` when the packet is malformed.
pub fn walk_records(p: &[u8], mut f: impl FnMut(RrRef)) -> Option<()> {
    let qd = be16(p, 4)?;
    let counts = [be16(p, 6)?, be16(p, 8)?, be16(p, 10)?];
    let mut at = 12;
    for _ in 0..qd {
        at = skip_name(p, at)? + 4;
    }
    for (section, &count) in counts.iter().enumerate() {
        for _ in 0..count {
            let owner = at;
            at = skip_name(p, at)?;
            let rtype = be16(p, at)?;
            let ttl_at = at + 4;
            let ttl = u32::from_be_bytes(p.get(ttl_at..ttl_at + 4)?.try_into().ok()?);
            let rdlen = be16(p, at + 8)? as usize;
            let rdata = at + 10;
            p.get(rdata..rdata + rdlen)?;
            f(RrRef {
                owner,
                rtype,
                ttl_at,
                ttl,
                rdata,
                rdlen,
                section: section as u8,
            });
            at = rdata + rdlen;
        }
    }
    Some(())
}

/// The header flags a cached answer is sent with: QR, RA, the client's RD
/// and CD, the stored rcode. AA is never set on a cached answer.
pub fn cached_flags(q: &Question, stored: u16) -> u16 {
    FLAG_QR | FLAG_RA | (q.flags & (FLAG_RD | FLAG_CD)) | (stored & 0x000f) | (stored & 0x0020)
}

/// Marks `out` (a response being built) as truncated and drops every record:
/// the client retries over TCP.
pub fn truncated(out: &mut Vec<u8>, pkt: &[u8], q: &Question) {
    synth(
        out,
        pkt,
        q,
        Synth::Empty {
            rcode: RCODE_NOERROR,
            aa: false,
            tc: true,
        },
        0,
        None,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(name: &str, qtype: u16, edns: bool) -> Vec<u8> {
        let mut p = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, u8::from(edns)];
        for l in name.split('.').filter(|l| !l.is_empty()) {
            p.push(l.len() as u8);
            p.extend_from_slice(l.as_bytes());
        }
        p.push(0);
        p.extend_from_slice(&qtype.to_be_bytes());
        p.extend_from_slice(&1u16.to_be_bytes());
        if edns {
            p.extend_from_slice(&[0, 0, 41, 0x04, 0xd0, 0, 0, 0x80, 0, 0, 0]);
        }
        p
    }

    #[test]
    fn parses_and_lowercases() {
        let p = query("WWW.Example.COM", 1, true);
        let q = parse_query(&p).expect("valid query");
        assert_eq!(q.id, 0x1234);
        assert_eq!(q.name(), b"\x03www\x07example\x03com\x00");
        assert_eq!(name_to_string(q.name()), "www.example.com");
        assert_eq!(q.qtype, 1);
        assert!(q.rd());
        assert_eq!(
            q.edns,
            Some(ClientEdns {
                udp_size: 1232,
                dnssec_ok: true,
                version: 0
            })
        );
        let mut offs = [0u8; 128];
        assert_eq!(label_offsets(q.name(), &mut offs), 4);
        assert_eq!(&offs[..4], &[0, 4, 12, 16]);
    }

    #[test]
    fn rejects_bad_packets() {
        assert_eq!(parse_query(&[0; 5]).unwrap_err(), WireError::Short);
        let mut p = query("a.b", 1, false);
        p[2] |= 0x80;
        assert_eq!(parse_query(&p).unwrap_err(), WireError::NotQuery);
        let mut p = query("a.b", 1, false);
        p[12] = 0xc0;
        assert_eq!(parse_query(&p).unwrap_err(), WireError::Name);
        let p = query("a.b", 1, false);
        assert_eq!(
            parse_query(&p[..p.len() - 1]).unwrap_err(),
            WireError::Truncated
        );
    }

    #[test]
    fn synth_nxdomain_with_ede_decodes_in_hickory() {
        let p = query("Bad.Example", 1, true);
        let q = parse_query(&p).expect("valid");
        let mut out = Vec::new();
        synth(
            &mut out,
            &p,
            &q,
            Synth::Empty {
                rcode: RCODE_NXDOMAIN,
                aa: true,
                tc: false,
            },
            0,
            Some((EDE_BLOCKED, "zone")),
        );
        let m = hickory_proto::op::Message::from_vec(&out).expect("decodes");
        assert_eq!(m.metadata.id, 0x1234);
        assert_eq!(
            m.metadata.response_code,
            hickory_proto::op::ResponseCode::NXDomain
        );
        assert_eq!(m.queries[0].name().to_ascii(), "Bad.Example.");
        let edns = m.edns.expect("edns");
        let ede = edns
            .option(hickory_proto::rr::rdata::opt::EdnsCode::Unknown(15))
            .expect("EDE option");
        let bytes: Vec<u8> = ede.try_into().expect("encodes");
        assert_eq!(&bytes[..2], &[0, 15]);
    }
}
