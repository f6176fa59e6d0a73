//! A Splunk HEC `/services/collector/event` body (concatenated JSON
//! envelopes) through the API's `hec_events`. The first byte picks the
//! request's default sourcetype, so the envelope's event reaches each
//! parser HEC routes to. Checked: every reject names an envelope of the
//! body (1-based) and says why; events and rejects never outnumber the
//! envelopes the body can hold.
#![no_main]
use libfuzzer_sys::fuzz_target;

const SOURCETYPES: [Option<&str>; 8] = [
    None,
    Some("aws:cloudtrail"),
    Some("squid"),
    Some("syslog"),
    Some("cef"),
    Some("zeek_dns"),
    Some("wineventlog"),
    Some("_json"),
];

fuzz_target!(|data: &[u8]| {
    let Some((&pick, body)) = data.split_first() else {
        return;
    };
    let sourcetype = SOURCETYPES[usize::from(pick) % SOURCETYPES.len()];
    let Ok((events, rejects)) = mimamori_api::routes::ingest::hec_events(body, sourcetype) else {
        return;
    };
    // Every JSON value is at least one byte.
    let most = body.len();
    assert!(events.len() + rejects.len() <= most, "more results than bytes");
    for r in &rejects {
        assert!(!r.reason.is_empty(), "reject without a reason: {r:?}");
        assert!(r.record >= 1 && r.record as usize <= most, "reject outside the body: {r:?}");
    }
});
