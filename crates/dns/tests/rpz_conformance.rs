//! RPZ conformance: Unbound's own RPZ replay scenarios
//! (`shared/corpora/rpz/unbound/*.rpl`) run against our engine.
//!
//! The engine is driven directly ([`Engine::answer_fast`], then
//! [`Engine::resolve`]), not over sockets, with a canned upstream built from
//! each scenario's RANGE entries: that keeps per-step client addresses and
//! TCP/UDP under the test's control. The canned upstream answers like a
//! recursive server: an entry matching the exact query name (and type, when
//! the entry says `qtype`) wins; referral-only entries (`subdomain` with an
//! empty answer) are ignored; nothing found is SERVFAIL. Sections are
//! compared as sorted lists of `name type rdata` (TTLs ignored, as
//! testbound's `MATCH all` does without `ttl`).
//!
//! Scenarios needing what this resolver does not have are skipped with the
//! reason printed; the count of passing scenarios must not regress.

mod common;

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use mimamori_dns::policy::LocalCname;
use mimamori_dns::upstream::BoxFuture;
use mimamori_dns::{Action, LocalData};
use mimamori_dns::{
    Engine, EngineConfig, Fast, Policy, PolicyHandle, Scratch, Secondary, Transport, Upstream,
    UpstreamError, XfrConfig, Zone,
};

/// Scenarios that pass today; raise it when more pass, never lower it.
const EXPECTED_PASSED: usize = 20;

#[derive(Debug, Default, Clone)]
struct Entry {
    matches: Vec<String>,
    reply: Vec<String>,
    question: Option<(Name, RecordType)>,
    sections: [Vec<Record>; 3],
}

#[derive(Debug)]
struct Range {
    from: u32,
    to: u32,
    entries: Vec<Entry>,
}

#[derive(Debug)]
struct Step {
    n: u32,
    kind: String,
    address: Option<IpAddr>,
    entry: Option<Entry>,
}

#[derive(Debug, Default)]
struct Scenario {
    config: String,
    /// Zones with a `master:`: loaded from their zone file, then kept
    /// current by transfers from the scenario's canned primary.
    masters: Vec<String>,
    /// Zones with `rpz-signal-nxdomain-ra: yes`.
    signal_nxdomain_ra: Vec<String>,
    /// (zone name, zone text, rpz-action-override, rpz-cname-override)
    zones: Vec<(String, String, Option<String>, Option<String>)>,
    ranges: Vec<Range>,
    steps: Vec<Step>,
}

fn strip_comment(l: &str) -> &str {
    let mut in_q = false;
    for (i, c) in l.char_indices() {
        match c {
            '"' => in_q = !in_q,
            ';' if !in_q => return &l[..i],
            _ => {}
        }
    }
    l
}

fn parse_rr(line: &str) -> Result<Record, String> {
    // Parentheses only group the fields of one record (an SOA over lines).
    let toks: Vec<&str> = line
        .split_whitespace()
        .filter(|t| *t != "(" && *t != ")")
        .collect();
    let (name, mut rest) = toks.split_first().ok_or("empty record")?;
    let mut ttl = 3600;
    loop {
        match rest.first() {
            Some(t) if t.parse::<u32>().is_ok() => ttl = t.parse().unwrap_or(3600),
            Some(t) if t.eq_ignore_ascii_case("IN") => {}
            _ => break,
        }
        rest = &rest[1..];
    }
    let (rtype, rdata) = rest.split_first().ok_or("no type")?;
    let rt = RecordType::from_str(&rtype.to_ascii_uppercase()).map_err(|e| e.to_string())?;
    let name = if name.ends_with('.') {
        name.to_string()
    } else {
        format!("{name}.")
    };
    let n = Name::from_ascii(&name).map_err(|e| e.to_string())?;
    // Relative names in RDATA are absolute in testbound files.
    let rdata: Vec<String> = rdata.iter().map(|s| s.to_string()).collect();
    let text = rdata.join(" ");
    let mut rd = RData::try_from_str(rt, &text).map_err(|e| format!("{line}: {e}"))?;
    // Testbound reads names in RDATA relative to the root.
    match &mut rd {
        RData::CNAME(n) => n.0.set_fqdn(true),
        RData::NS(n) => n.0.set_fqdn(true),
        RData::PTR(n) => n.0.set_fqdn(true),
        _ => {}
    }
    Ok(Record::from_rdata(n, ttl, rd))
}

/// A question's type; hickory's `FromStr` knows no AXFR/IXFR.
fn qtype(t: &str) -> Result<RecordType, String> {
    match t.to_ascii_uppercase().as_str() {
        "AXFR" => Ok(RecordType::AXFR),
        "IXFR" => Ok(RecordType::IXFR),
        other => RecordType::from_str(other).map_err(|e| e.to_string()),
    }
}

fn parse_entry(lines: &mut std::iter::Peekable<std::str::Lines<'_>>) -> Result<Entry, String> {
    let mut e = Entry::default();
    let mut section = 0usize; // 0 question, 1 answer, 2 authority, 3 additional
    for raw in lines.by_ref() {
        let l = strip_comment(raw).trim();
        if l.is_empty() {
            continue;
        }
        if l == "ENTRY_END" {
            return Ok(e);
        }
        let mut it = l.split_whitespace();
        match it.next() {
            Some("MATCH") => e.matches.extend(it.map(str::to_string)),
            Some("REPLY") => e.reply.extend(it.map(str::to_string)),
            Some("ADJUST") => {}
            Some("SECTION") => {
                section = match it.next() {
                    Some("QUESTION") => 0,
                    Some("ANSWER") => 1,
                    Some("AUTHORITY") => 2,
                    Some("ADDITIONAL") => 3,
                    s => return Err(format!("unknown section {s:?}")),
                }
            }
            _ if section == 0 => {
                let t: Vec<&str> = l.split_whitespace().collect();
                let name = t.first().ok_or("bad question")?;
                let name = if name.ends_with('.') {
                    name.to_string()
                } else {
                    format!("{name}.")
                };
                let rt = t.last().ok_or("bad question")?;
                e.question = Some((
                    Name::from_ascii(&name).map_err(|x| x.to_string())?,
                    qtype(rt)?,
                ));
            }
            _ => e.sections[section - 1].push(parse_rr(l)?),
        }
    }
    Err("unterminated entry".into())
}

fn parse_rpl(text: &str) -> Result<Scenario, String> {
    let mut s = Scenario::default();
    let mut lines = text.lines().peekable();
    let mut zone_name: Option<String> = None;
    let (mut overr, mut cname_overr): (Option<String>, Option<String>) = (None, None);
    while let Some(raw) = lines.next() {
        let l = raw.trim();
        if l == "CONFIG_END" {
            break;
        }
        s.config.push_str(raw);
        s.config.push('\n');
        if l == "rpz:" {
            (overr, cname_overr) = (None, None);
        } else if let Some(v) = l.strip_prefix("rpz-action-override:") {
            overr = Some(v.trim().trim_matches('"').to_string());
            // Attach to the zone already read when the option follows it.
            if let Some(z) = s
                .zones
                .last_mut()
                .filter(|z| z.0 == zone_name.clone().unwrap_or_default())
            {
                z.2 = overr.clone();
            }
        } else if let Some(v) = l.strip_prefix("rpz-cname-override:") {
            cname_overr = Some(v.trim().trim_matches('"').to_string());
            if let Some(z) = s
                .zones
                .last_mut()
                .filter(|z| z.0 == zone_name.clone().unwrap_or_default())
            {
                z.3 = cname_overr.clone();
            }
        } else if let Some(n) = l.strip_prefix("name:") {
            zone_name = Some(n.trim().trim_matches('"').to_string());
        } else if l.starts_with("master:") {
            s.masters.extend(zone_name.clone());
        } else if l.starts_with("rpz-signal-nxdomain-ra:") && l.ends_with("yes") {
            s.signal_nxdomain_ra.extend(zone_name.clone());
        } else if l.starts_with("TEMPFILE_CONTENTS") {
            let mut z = String::new();
            for zl in lines.by_ref() {
                if zl.trim() == "TEMPFILE_END" {
                    break;
                }
                z.push_str(zl);
                z.push('\n');
            }
            s.zones.push((
                zone_name.clone().unwrap_or_else(|| ".".into()),
                z,
                overr.clone(),
                cname_overr.clone(),
            ));
        }
    }
    while let Some(raw) = lines.next() {
        let l = strip_comment(raw).trim();
        let t: Vec<&str> = l.split_whitespace().collect();
        match t.first().copied() {
            Some("RANGE_BEGIN") => {
                let from = t.get(1).and_then(|x| x.parse().ok()).ok_or("bad range")?;
                let to = t.get(2).and_then(|x| x.parse().ok()).ok_or("bad range")?;
                let mut r = Range {
                    from,
                    to,
                    entries: vec![],
                };
                while let Some(rl) = lines.next() {
                    let rl = strip_comment(rl).trim();
                    if rl == "RANGE_END" {
                        break;
                    }
                    if rl == "ENTRY_BEGIN" {
                        r.entries.push(parse_entry(&mut lines)?);
                    }
                }
                s.ranges.push(r);
            }
            Some("STEP") => {
                let n = t.get(1).and_then(|x| x.parse().ok()).ok_or("bad step")?;
                let kind = t.get(2).ok_or("bad step")?.to_string();
                let address = t
                    .iter()
                    .position(|x| *x == "ADDRESS")
                    .and_then(|i| t.get(i + 1))
                    .and_then(|a| a.parse().ok());
                let mut entry = None;
                if kind == "QUERY" || kind == "CHECK_ANSWER" {
                    while let Some(el) = lines.next() {
                        if strip_comment(el).trim() == "ENTRY_BEGIN" {
                            entry = Some(parse_entry(&mut lines)?);
                            break;
                        }
                    }
                }
                s.steps.push(Step {
                    n,
                    kind,
                    address,
                    entry,
                });
            }
            _ => {}
        }
    }
    Ok(s)
}

/// Why a scenario does not apply to this resolver, if it does not.
fn skip_reason(s: &Scenario) -> Option<&'static str> {
    let c = &s.config;
    // Time passing is only modelled as the refresh of transferred zones.
    if !c.contains("master:")
        && s.steps
            .iter()
            .any(|st| st.kind == "TIME_PASSES" || st.kind == "TRAFFIC")
    {
        return Some("needs testbound's virtual clock (TIME_PASSES)");
    }
    if c.contains("access-control-tag") || c.contains("define-tag") {
        return Some("per-client tags are not implemented");
    }
    if c.contains("dns64") {
        return Some("DNS64 is not implemented");
    }
    if c.contains("trust-anchor") {
        return Some("needs DNSSEC validation (a forwarder here)");
    }
    None
}

/// The scenario's RANGE entries as an upstream.
struct Canned {
    ranges: Vec<Range>,
    step: AtomicU32,
}

impl Canned {
    fn answer(&self, req: &[u8]) -> Result<Vec<u8>, UpstreamError> {
        let m = Message::from_vec(req).map_err(|e| UpstreamError::Other(e.to_string()))?;
        let q = m
            .queries
            .first()
            .ok_or(UpstreamError::Other("no question".into()))?
            .clone();
        let step = self.step.load(Ordering::SeqCst);
        let qn = q.name().to_lowercase();
        let live = || {
            self.ranges
                .iter()
                .filter(move |r| r.from <= step && step <= r.to)
                .flat_map(|r| r.entries.iter())
        };
        let fits = |e: &Entry, exact: bool| {
            let Some((en, et)) = &e.question else {
                return false;
            };
            let en = en.to_lowercase();
            let name_ok = if exact {
                en == qn
            } else {
                e.matches.iter().any(|m| m == "subdomain")
                    && en.zone_of(&qn)
                    && !e.sections[0].is_empty()
            };
            let type_ok = !e.matches.iter().any(|m| m == "qtype") || *et == q.query_type();
            name_ok && type_ok && (!exact || e.matches.iter().any(|m| m == "qname"))
        };
        // A referral (no answer, NS records in the authority section) is
        // what an authoritative server says on the way down; a recursive
        // upstream answers with the final answer, so that wins.
        let referral = |e: &Entry| {
            e.sections[0].is_empty()
                && !e.reply.iter().any(|f| f == "NXDOMAIN")
                && e.sections[1]
                    .iter()
                    .any(|r| r.record_type() == RecordType::NS)
        };
        let mut found = live().filter(|e| fits(e, true)).min_by_key(|e| referral(e));
        let mut ns_from_referral = None;
        if found.is_none() && q.query_type() == RecordType::NS {
            // NS queries (for NSDNAME/NSIP triggers): the scenario models
            // iterative resolution, so the NS set of a zone is in the
            // referral to it; answer it with its glue, as a recursive
            // server would. A name that is no zone cut gets NODATA.
            ns_from_referral = live()
                .filter(|e| referral(e))
                .find(|e| {
                    e.sections[1]
                        .iter()
                        .any(|r| r.record_type() == RecordType::NS && r.name.to_lowercase() == qn)
                })
                .map(|e| {
                    let ns: Vec<Record> = e.sections[1]
                        .iter()
                        .filter(|r| {
                            r.record_type() == RecordType::NS && r.name.to_lowercase() == qn
                        })
                        .cloned()
                        .collect();
                    let glue: Vec<Record> = e.sections[2]
                        .iter()
                        .filter(|g| {
                            ns.iter().any(|n| match &n.data {
                                RData::NS(t) => t.0.to_lowercase() == g.name.to_lowercase(),
                                _ => false,
                            })
                        })
                        .cloned()
                        .collect();
                    (ns, glue)
                });
        }
        if found.is_none() && ns_from_referral.is_none() {
            found = live().find(|e| fits(e, false));
        }
        let nodata_ns = found.is_none() && q.query_type() == RecordType::NS;
        let mut r = Message::new(m.metadata.id, MessageType::Response, OpCode::Query);
        r.add_query(q);
        r.metadata.recursion_available = true;
        r.metadata.recursion_desired = true;
        match found {
            Some(e) => {
                for f in &e.reply {
                    match f.as_str() {
                        "AA" => r.metadata.authoritative = true,
                        "TC" => r.metadata.truncation = true,
                        "NXDOMAIN" => r.metadata.response_code = ResponseCode::NXDomain,
                        "SERVFAIL" => r.metadata.response_code = ResponseCode::ServFail,
                        "REFUSED" => r.metadata.response_code = ResponseCode::Refused,
                        _ => {}
                    }
                }
                r.add_answers(e.sections[0].iter().cloned());
                r.add_authorities(e.sections[1].iter().cloned());
                r.add_additionals(e.sections[2].iter().cloned());
            }
            None => match ns_from_referral {
                Some((ns, glue)) => {
                    r.add_answers(ns);
                    r.add_additionals(glue);
                }
                None if nodata_ns => {}
                None => r.metadata.response_code = ResponseCode::ServFail,
            },
        }
        if m.edns.is_some() {
            r.set_edns(Edns::new());
        }
        r.to_vec().map_err(|e| UpstreamError::Other(e.to_string()))
    }
}

impl Canned {
    /// The canned primary: SOA, AXFR and IXFR queries answered from the
    /// entries for that exact name and type, in one message.
    fn answer_primary(&self, req: &Message) -> Vec<Message> {
        let Some(q) = req.queries.first() else {
            return vec![];
        };
        let step = self.step.load(Ordering::SeqCst);
        let qn = q.name().to_lowercase();
        let found = self
            .ranges
            .iter()
            .filter(|r| r.from <= step && step <= r.to)
            .flat_map(|r| r.entries.iter())
            .find(|e| {
                e.question
                    .as_ref()
                    .is_some_and(|(n, t)| n.to_lowercase() == qn && *t == q.query_type())
            });
        let (answers, rcode) = match found {
            Some(e) => (e.sections[0].clone(), ResponseCode::NoError),
            None => (vec![], ResponseCode::Refused),
        };
        vec![common::response_to(req, answers, rcode)]
    }
}

impl Upstream for Canned {
    fn query<'a>(&'a self, request: &'a [u8]) -> BoxFuture<'a, Result<Vec<u8>, UpstreamError>> {
        Box::pin(async move { self.answer(request) })
    }
}

fn norm(recs: &[Record]) -> Vec<String> {
    let mut v: Vec<String> = recs
        .iter()
        .filter(|r| r.record_type() != RecordType::OPT)
        .map(|r| format!("{} {} {}", r.name.to_lowercase(), r.record_type(), r.data))
        .collect();
    v.sort();
    v
}

fn flags_of(m: &Message) -> Vec<String> {
    let md = &m.metadata;
    let mut f = Vec::new();
    for (on, n) in [
        (md.message_type == MessageType::Response, "QR"),
        (md.authoritative, "AA"),
        (md.truncation, "TC"),
        (md.recursion_desired, "RD"),
        (md.recursion_available, "RA"),
        (m.edns.as_ref().is_some_and(|e| e.flags().dnssec_ok), "DO"),
    ] {
        if on {
            f.push(n.to_string());
        }
    }
    f.push(
        match md.response_code {
            ResponseCode::NoError => "NOERROR",
            ResponseCode::NXDomain => "NXDOMAIN",
            ResponseCode::ServFail => "SERVFAIL",
            ResponseCode::Refused => "REFUSED",
            ResponseCode::FormErr => "FORMERR",
            _ => "OTHER",
        }
        .to_string(),
    );
    f.sort();
    f
}

fn expected_flags(e: &Entry) -> Vec<String> {
    let mut f: Vec<String> = e.reply.clone();
    if !f.iter().any(|x| {
        matches!(
            x.as_str(),
            "NOERROR" | "NXDOMAIN" | "SERVFAIL" | "REFUSED" | "FORMERR"
        )
    }) {
        f.push("NOERROR".into());
    }
    f.sort();
    f
}

fn build_query(e: &Entry) -> Option<Vec<u8>> {
    let (n, t) = e.question.clone()?;
    let mut m = Message::new(0x4242, MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = e.reply.iter().any(|f| f == "RD");
    m.add_query(Query::query(n, t));
    if e.reply.iter().any(|f| f == "DO") {
        let mut ed = Edns::new();
        ed.set_dnssec_ok(true);
        m.set_edns(ed);
    }
    m.to_vec().ok()
}

/// Runs one scenario; `Ok((passed_steps, checked_steps))` or a setup error.
/// A policy zone of a scenario: from its file, or kept current from the
/// canned primary.
enum Source {
    File(Arc<Zone>),
    Primary(Arc<Secondary>),
}

fn zones_now(sources: &[Source]) -> Vec<Arc<Zone>> {
    sources
        .iter()
        .filter_map(|s| match s {
            Source::File(z) => Some(z.clone()),
            Source::Primary(p) => p.zone(),
        })
        .collect()
}

async fn run(s: Scenario) -> Result<(usize, usize, Vec<String>), String> {
    let canned = Arc::new(Canned {
        ranges: s.ranges,
        step: AtomicU32::new(0),
    });
    let primary = (!s.masters.is_empty()).then(|| {
        let canned = canned.clone();
        common::TestPrimary::start(Arc::new(move |m: &Message| canned.answer_primary(m)))
    });
    let mut sources = Vec::new();
    for (name, text, overr, cname) in &s.zones {
        if let (Some(p), true) = (&primary, s.masters.contains(name)) {
            if overr.is_some() {
                return Err("override on a transferred zone".into());
            }
            let cfg = XfrConfig::parse(&format!("{name}@{}", p.addr)).map_err(|e| e.to_string())?;
            let sec = Secondary::new(cfg);
            sec.seed(text).await.map_err(|e| e.to_string())?;
            sources.push(Source::Primary(sec));
            continue;
        }
        let mut z = Zone::parse_rpz(name, text).map_err(|e| e.to_string())?;
        if s.signal_nxdomain_ra.contains(name) {
            z = z.with_signal_nxdomain_ra();
        }
        z = match overr.as_deref() {
            None => z,
            Some("disabled") => z.disabled(),
            Some("nxdomain") => z.with_action_override(Action::NxDomain),
            Some("nodata") => z.with_action_override(Action::NoData),
            Some("passthru") => z.with_action_override(Action::Passthru),
            Some("drop") => z.with_action_override(Action::Drop),
            Some("tcp-only") => z.with_action_override(Action::TcpOnly),
            Some("cname") => {
                let target = cname
                    .as_deref()
                    .ok_or("cname override without rpz-cname-override")?;
                let target = if target.ends_with('.') {
                    target.to_string()
                } else {
                    format!("{target}.")
                };
                let name = Name::from_ascii(&target).map_err(|e| e.to_string())?;
                z.with_action_override(Action::Local(Box::new(LocalData {
                    ttl: 3600,
                    cname: Some(LocalCname::Fixed(name)),
                    ..LocalData::default()
                })))
            }
            Some(o) => return Err(format!("unknown override {o}")),
        };
        sources.push(Source::File(Arc::new(z)));
    }
    // Unbound with `minimal-responses: no` puts the policy zone's SOA in
    // the additional section of some rewrites.
    let cfg = EngineConfig {
        rpz_soa_in_additional: s.config.contains("minimal-responses: no"),
        ..EngineConfig::default()
    };
    let engine = Engine::new(
        PolicyHandle::new(Policy::new(zones_now(&sources))),
        canned.clone(),
        cfg,
        None,
    );
    let mut scratch = Scratch::default();
    let mut last: Option<Option<Vec<u8>>> = None;
    let (mut passed, mut checked, mut why) = (0, 0, Vec::new());
    for st in s.steps {
        canned.step.store(st.n, Ordering::SeqCst);
        if st.kind == "TRAFFIC" {
            // Time has passed (TIME_PASSES): the refresh timers of
            // transferred zones have fired.
            for src in &sources {
                if let Source::Primary(sec) = src {
                    if let Err(e) = sec.refresh().await {
                        why.push(format!("step {}: transfer: {e}", st.n));
                    }
                }
            }
            engine.policy().set(Policy::new(zones_now(&sources)));
        }
        let Some(e) = st.entry else { continue };
        match st.kind.as_str() {
            "QUERY" => {
                let pkt = build_query(&e).ok_or("bad query")?;
                let tcp = e.matches.iter().any(|m| m == "TCP");
                let transport = if tcp { Transport::Tcp } else { Transport::Udp };
                let ip = st.address.unwrap_or(IpAddr::from([127, 0, 0, 1]));
                let client = SocketAddr::new(ip, 5353);
                let mut out = Vec::new();
                let reply =
                    match engine.answer_fast(&pkt, client, transport, &mut out, &mut scratch) {
                        Fast::Reply => Some(out),
                        Fast::Drop => None,
                        Fast::Defer => engine.resolve(&pkt, client, transport).await,
                    };
                last = Some(reply);
            }
            "CHECK_ANSWER" => {
                checked += 1;
                let Some(Some(reply)) = last.take() else {
                    why.push(format!("step {}: no answer", st.n));
                    continue;
                };
                let m = Message::from_vec(&reply).map_err(|e| e.to_string())?;
                let (ef, af) = (expected_flags(&e), flags_of(&m));
                let mut bad = Vec::new();
                if ef != af {
                    bad.push(format!("flags {af:?} want {ef:?}"));
                }
                for (i, (want, got)) in [
                    (&e.sections[0], &m.answers),
                    (&e.sections[1], &m.authorities),
                    (&e.sections[2], &m.additionals),
                ]
                .into_iter()
                .enumerate()
                {
                    let (w, g) = (norm(want), norm(got));
                    if w != g {
                        bad.push(format!("section {i}: got {g:?} want {w:?}"));
                    }
                }
                if bad.is_empty() {
                    passed += 1;
                } else {
                    why.push(format!("step {}: {}", st.n, bad.join("; ")));
                }
            }
            _ => {}
        }
    }
    Ok((passed, checked, why))
}

#[tokio::test]
async fn unbound_rpz_replay_scenarios() {
    let dir = common::corpora().join("rpz/unbound");
    let files = common::files(&dir, ".rpl");
    assert!(!files.is_empty(), "no .rpl files in {}", dir.display());
    let total = files.len();
    let (mut applicable, mut passed) = (0, 0);
    let (mut steps_ok, mut steps) = (0, 0);
    let mut report = BTreeMap::new();
    for f in &files {
        let name = f.file_name().unwrap().to_string_lossy().to_string();
        let text = std::fs::read_to_string(f).unwrap();
        let s = match parse_rpl(&text) {
            Ok(s) => s,
            Err(e) => {
                // Judge by the config alone when the scenario part holds
                // records the harness cannot build (IXFR, RRSIG).
                let only_config = Scenario {
                    config: text.clone(),
                    ..Scenario::default()
                };
                let why = skip_reason(&only_config)
                    .map_or_else(|| format!("harness cannot read it: {e}"), str::to_string);
                report.insert(name, format!("SKIP {why}"));
                continue;
            }
        };
        if let Some(reason) = skip_reason(&s) {
            report.insert(name, format!("SKIP {reason}"));
            continue;
        }
        applicable += 1;
        match run(s).await {
            Ok((p, c, why)) => {
                steps_ok += p;
                steps += c;
                if p == c {
                    passed += 1;
                    report.insert(name, format!("PASS {p}/{c} steps"));
                } else {
                    report.insert(
                        name,
                        format!("FAIL {p}/{c} steps\n      {}", why.join("\n      ")),
                    );
                }
            }
            Err(e) => {
                report.insert(name, format!("FAIL setup: {e}"));
            }
        }
    }
    for (n, r) in &report {
        println!("{n}: {r}");
    }
    println!("RPZ conformance: {passed} passed / {applicable} applicable / {total} total scenarios; {steps_ok}/{steps} checked steps of applicable scenarios");
    assert!(
        passed >= EXPECTED_PASSED,
        "regression: {passed} scenarios pass, {EXPECTED_PASSED} did"
    );
}
