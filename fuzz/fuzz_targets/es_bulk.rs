//! An Elasticsearch `_bulk` body through the API's `parse_bulk`. Checked:
//! one answer item per action, each with one key and the org the events
//! are stored under as its `_index` (never an index the client named);
//! each stored event belongs to a `201` item, in order; every reject names
//! a line of the body and says why; a refused body names its line.
#![no_main]
use libfuzzer_sys::fuzz_target;

const ORG: &str = "org-under-test";

fuzz_target!(|data: &[u8]| {
    let lines = data.split(|b| *b == b'\n').count();
    let bulk = match mimamori_api::routes::ingest::parse_bulk(data, ORG) {
        Ok(b) => b,
        Err(why) => {
            assert!(why.starts_with("line "), "a refusal that names no line: {why}");
            return;
        }
    };
    assert_eq!(bulk.events.len(), bulk.event_items.len());
    assert!(bulk.items.len() <= lines, "{} items from {lines} lines", bulk.items.len());
    for item in &bulk.items {
        let obj = item.as_object().expect("an item is an object");
        assert_eq!(obj.len(), 1, "an item has one action key: {item}");
        let inner = obj.values().next().expect("one value");
        assert_eq!(inner["_index"], ORG, "item names another index: {item}");
    }
    let mut last = None;
    for &k in &bulk.event_items {
        assert!(last.is_none_or(|l| k > l), "event items out of order");
        last = Some(k);
        let inner = bulk.items[k].as_object().and_then(|o| o.values().next());
        assert_eq!(inner.map(|v| v["status"].clone()), Some(201.into()));
    }
    for r in &bulk.rejects {
        assert!(!r.reason.is_empty(), "reject without a reason: {r:?}");
        assert!(r.record >= 1 && r.record as usize <= lines, "reject outside the body: {r:?}");
    }
});
