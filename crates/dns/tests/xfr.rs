//! RPZ zones from a primary over real sockets: a stand-in primary serving
//! AXFR and IXFR over TCP, the resolver answering on UDP, and the zone
//! swapped in after each transfer while a client keeps querying.

mod common;

use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use mimamori_dns::{
    PdnsConfig, Policy, PolicyHandle, Refreshed, Secondary, XfrConfig, XfrError, Zone,
};

const APEX: &str = "rpz.test.";

fn rr(name: &str, rtype: &str, rdata: &str) -> Record {
    let rt = RecordType::from_str(rtype).unwrap();
    let n = Name::from_ascii(format!("{name}.{APEX}")).unwrap();
    Record::from_rdata(n, 60, RData::try_from_str(rt, rdata).unwrap())
}

fn soa(serial: u32) -> Record {
    let rd = format!("ns.rpz.test. hostmaster.rpz.test. {serial} 3600 600 86400 60");
    Record::from_rdata(
        Name::from_ascii(APEX).unwrap(),
        60,
        RData::try_from_str(RecordType::SOA, &rd).unwrap(),
    )
}

/// The primary's versions of the zone, oldest first.
#[derive(Default)]
struct Versions(Vec<(u32, Vec<Record>)>);

struct PrimaryState {
    versions: Mutex<Versions>,
    ixfr: AtomicBool,
    down: AtomicBool,
    transfers: AtomicUsize,
}

fn serial_of(r: &Record) -> Option<u32> {
    match &r.data {
        RData::SOA(s) => Some(s.serial),
        _ => None,
    }
}

/// Answers SOA, AXFR (in two messages) and IXFR (a chain of differences
/// from the client's version) as a primary does.
fn answer(state: &PrimaryState, req: &Message) -> Vec<Message> {
    if state.down.load(Ordering::SeqCst) {
        return vec![];
    }
    let v = state.versions.lock().unwrap();
    let (serial, recs) = v.0.last().cloned().unwrap();
    let q = req.queries[0].clone();
    match q.query_type() {
        RecordType::SOA => vec![response_to(req, vec![soa(serial)], ResponseCode::NoError)],
        RecordType::AXFR => {
            state.transfers.fetch_add(1, Ordering::SeqCst);
            let mut all = vec![soa(serial)];
            all.extend(recs);
            all.push(soa(serial));
            let second = all.split_off(all.len() / 2);
            vec![
                response_to(req, all, ResponseCode::NoError),
                response_to(req, second, ResponseCode::NoError),
            ]
        }
        RecordType::IXFR => {
            state.transfers.fetch_add(1, Ordering::SeqCst);
            if !state.ixfr.load(Ordering::SeqCst) {
                return vec![response_to(req, vec![], ResponseCode::NotImp)];
            }
            let theirs = req.authorities.iter().find_map(serial_of).unwrap();
            if theirs == serial {
                return vec![response_to(req, vec![soa(serial)], ResponseCode::NoError)];
            }
            let from = v.0.iter().position(|(s, _)| *s == theirs).unwrap();
            let mut out = vec![soa(serial)];
            for pair in v.0[from..].windows(2) {
                let ((old_s, old), (new_s, new)) = (&pair[0], &pair[1]);
                out.push(soa(*old_s));
                out.extend(old.iter().filter(|r| !new.contains(r)).cloned());
                out.push(soa(*new_s));
                out.extend(new.iter().filter(|r| !old.contains(r)).cloned());
            }
            out.push(soa(serial));
            vec![response_to(req, out, ResponseCode::NoError)]
        }
        _ => vec![response_to(req, vec![], ResponseCode::Refused)],
    }
}

fn push(state: &PrimaryState, serial: u32, recs: Vec<Record>) {
    state.versions.lock().unwrap().0.push((serial, recs));
}

fn rcode(h: &mimamori_dns::Handle, name: &str) -> ResponseCode {
    udp_ask(h.udp_addr(), name, RecordType::A)
        .metadata
        .response_code
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zone_follows_its_primary_by_axfr_ixfr_and_notify() {
    let state = Arc::new(PrimaryState {
        versions: Mutex::default(),
        ixfr: AtomicBool::new(true),
        down: AtomicBool::new(false),
        transfers: AtomicUsize::new(0),
    });
    let v1 = vec![
        rr("evil.test", "CNAME", "."),
        rr("sink.test", "A", "10.0.0.1"),
        rr("txt.test", "TXT", "\"blocked by policy\""),
    ];
    push(&state, 1, v1.clone());
    let primary = {
        let state = state.clone();
        TestPrimary::start(Arc::new(move |m: &Message| answer(&state, m)))
    };
    let up = TestUpstream::start();
    for n in ["evil.test.", "worse.test.", "third.test.", "fourth.test."] {
        up.add(n, 300, "A", "192.0.2.1");
    }

    let mut cfg = XfrConfig::parse(&format!("{APEX}@{}", primary.addr)).unwrap();
    cfg.timeout = Duration::from_secs(2);
    let sec = Secondary::new(cfg);
    assert_eq!(sec.refresh().await.unwrap(), Refreshed::Axfr(1));
    let policy = PolicyHandle::new(Policy::new(vec![sec.zone().unwrap()]));
    let mut pcfg = PdnsConfig::new("127.0.0.1:0".parse().unwrap(), vec![up.addr]);
    pcfg.udp_threads = 1;
    let h = mimamori_dns::start(pcfg, policy.clone()).expect("resolver starts");
    let swap = {
        let (policy, sec) = (policy.clone(), sec.clone());
        move || policy.set(Policy::new(sec.zone().into_iter().collect()))
    };

    assert_eq!(rcode(&h, "evil.test."), ResponseCode::NXDomain);
    assert_eq!(
        a_records(&udp_ask(h.udp_addr(), "sink.test.", RecordType::A)),
        ["10.0.0.1"]
    );
    let txt = udp_ask(h.udp_addr(), "txt.test.", RecordType::TXT);
    assert_eq!(txt.answers.len(), 1);
    assert_eq!(txt.answers[0].data.to_string(), "blocked by policy");

    // A client keeps asking while zones are swapped: no query is lost.
    let stop = Arc::new(AtomicBool::new(false));
    let lost = Arc::new(AtomicUsize::new(0));
    let asked = Arc::new(AtomicUsize::new(0));
    let client = {
        let (stop, lost, asked, addr) = (stop.clone(), lost.clone(), asked.clone(), h.udp_addr());
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                let q = query("sink.test.", RecordType::A, true);
                asked.fetch_add(1, Ordering::SeqCst);
                if udp_ask_from("127.0.0.1:0", addr, &q, Duration::from_secs(2)).is_none() {
                    lost.fetch_add(1, Ordering::SeqCst);
                }
            }
        })
    };

    // One difference by IXFR: evil.test is no longer blocked, worse.test is.
    let mut v2: Vec<Record> = v1[1..].to_vec();
    v2.push(rr("worse.test", "CNAME", "."));
    push(&state, 2, v2.clone());
    assert_eq!(sec.refresh().await.unwrap(), Refreshed::Ixfr(2));
    swap();
    assert_eq!(rcode(&h, "evil.test."), ResponseCode::NoError);
    assert_eq!(rcode(&h, "worse.test."), ResponseCode::NXDomain);

    // Two versions behind: one IXFR with a chain of two differences.
    let mut v3 = v2.clone();
    v3.push(rr("third.test", "CNAME", "."));
    push(&state, 3, v3.clone());
    let mut v4 = v3.clone();
    v4.retain(|r| !r.name.to_ascii().starts_with("worse"));
    push(&state, 4, v4.clone());
    assert_eq!(sec.refresh().await.unwrap(), Refreshed::Ixfr(4));
    swap();
    assert_eq!(rcode(&h, "third.test."), ResponseCode::NXDomain);
    assert_eq!(rcode(&h, "worse.test."), ResponseCode::NoError);

    // Nothing new: nothing transferred.
    let before = state.transfers.load(Ordering::SeqCst);
    assert_eq!(sec.refresh().await.unwrap(), Refreshed::Unchanged);
    assert_eq!(state.transfers.load(Ordering::SeqCst), before);

    // A primary without IXFR: AXFR instead.
    state.ixfr.store(false, Ordering::SeqCst);
    let mut v5 = v4.clone();
    v5.push(rr("fourth.test", "CNAME", "."));
    push(&state, 5, v5.clone());
    assert_eq!(sec.refresh().await.unwrap(), Refreshed::Axfr(5));
    swap();
    assert_eq!(rcode(&h, "fourth.test."), ResponseCode::NXDomain);

    // The primary goes away: the transfer fails, is counted, and the zone
    // in force stays.
    state.down.store(true, Ordering::SeqCst);
    push(&state, 6, vec![]);
    let err = sec.refresh().await.unwrap_err();
    assert!(
        matches!(err, XfrError::Io(..) | XfrError::Protocol(..)),
        "{err}"
    );
    assert_eq!(sec.stats().failures, 1);
    assert_eq!(sec.stats().serial, 5);
    assert_eq!(rcode(&h, "fourth.test."), ResponseCode::NXDomain);

    // Back up, with the refresh loop running: it loads version 6 at once,
    // then waits out the SOA refresh (an hour) unless notified.
    state.down.store(false, Ordering::SeqCst);
    state.ixfr.store(true, Ordering::SeqCst);
    let swap = Arc::new(swap);
    let task = tokio::spawn(sec.clone().run(swap.clone()));
    let wait_for = |serial: u32| {
        let sec = sec.clone();
        async move {
            let t = Instant::now();
            while sec.stats().serial != serial {
                assert!(t.elapsed() < Duration::from_secs(5), "no serial {serial}");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    wait_for(6).await;
    assert_eq!(rcode(&h, "fourth.test."), ResponseCode::NoError);
    push(&state, 7, vec![rr("seventh.test", "CNAME", ".")]);
    // The primary sends a NOTIFY to the resolver's DNS port.
    h.engine()
        .on_notify(mimamori_dns::notify_router(vec![sec.clone()]));
    let notify = |zone: &str| {
        let mut m = Message::new(rand_id(), MessageType::Query, OpCode::Notify);
        m.add_query(Query::query(
            Name::from_ascii(zone).unwrap(),
            RecordType::SOA,
        ));
        let q = m.to_vec().unwrap();
        udp_ask_from("127.0.0.1:0", h.udp_addr(), &q, Duration::from_secs(2)).expect("answered")
    };
    let stranger = notify("other.test.");
    assert_eq!(stranger.metadata.response_code, ResponseCode::Refused);
    let ack = notify(APEX);
    assert_eq!(ack.metadata.response_code, ResponseCode::NoError);
    assert_eq!(ack.metadata.op_code, OpCode::Notify);
    assert!(ack.metadata.authoritative);
    wait_for(7).await;
    // The swap follows the load.
    let t = Instant::now();
    while rcode(&h, "seventh.test.") != ResponseCode::NXDomain {
        assert!(t.elapsed() < Duration::from_secs(5), "policy not swapped");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    task.abort();

    stop.store(true, Ordering::SeqCst);
    client.join().unwrap();
    assert!(asked.load(Ordering::SeqCst) > 0);
    assert_eq!(lost.load(Ordering::SeqCst), 0, "queries lost during swaps");
    let st = sec.stats();
    assert_eq!((st.axfr, st.ixfr), (2, 4), "{st:?}");
    // The resolver owns a runtime, which may not be dropped on this one.
    tokio::task::spawn_blocking(move || drop(h)).await.unwrap();
}

#[tokio::test]
async fn a_seeded_zone_is_brought_up_to_date_by_ixfr() {
    let state = Arc::new(PrimaryState {
        versions: Mutex::default(),
        ixfr: AtomicBool::new(true),
        down: AtomicBool::new(false),
        transfers: AtomicUsize::new(0),
    });
    push(&state, 1, vec![rr("old.test", "CNAME", ".")]);
    push(&state, 2, vec![rr("new.test", "CNAME", "*.")]);
    let primary = {
        let state = state.clone();
        TestPrimary::start(Arc::new(move |m: &Message| answer(&state, m)))
    };
    let sec = Secondary::new(XfrConfig::parse(&format!("{APEX}@{}", primary.addr)).unwrap());
    sec.seed(
        "$ORIGIN rpz.test.\n@ 60 IN SOA ns hostmaster 1 3600 600 86400 60\nold.test CNAME .\n",
    )
    .await
    .unwrap();
    let z = sec.zone().unwrap();
    assert_eq!(z.serial(), Some(1));
    assert_eq!(z.stats().qname_triggers, 1);
    assert_eq!(sec.refresh().await.unwrap(), Refreshed::Ixfr(2));
    let z: Arc<Zone> = sec.zone().unwrap();
    assert_eq!(z.serial(), Some(2));
    let p = Policy::new(vec![z]);
    let ip = "127.0.0.1".parse().unwrap();
    let w = |s: &str| {
        let mut v = Vec::new();
        mimamori_dns::policy::text_to_wire(s, &[0], &mut v).unwrap();
        v
    };
    assert!(p.check_query(None, ip, &w("old.test")).is_none());
    let hit = p.check_query(None, ip, &w("new.test")).unwrap();
    assert_eq!(hit.action, &mimamori_dns::Action::NoData);
}

#[test]
fn bad_sources_are_refused_with_the_reason() {
    for bad in ["rpz.test", "rpz.test@", "@127.0.0.1:53", "rpz.test@host:53"] {
        let e = XfrConfig::parse(bad).unwrap_err().to_string();
        assert!(e.contains(bad), "{e}");
    }
}
