//! Inputs the fuzz targets `lists` and `misp` (fuzz/fuzz_targets) found,
//! kept as regressions: every imported indicator must already be in normal
//! form, so that normalizing it again (as a re-import of an export does)
//! changes nothing.

use mimamori_intel::misp::{import_misp_event, MispOptions};
use mimamori_intel::model::ImportBatch;
use mimamori_intel::normalize::{hint_for, normalize};
use mimamori_intel::{import_list, refang, ListFormat, ListOptions, Provenance};

fn provenance() -> Provenance {
    Provenance::new("fuzz", time::OffsetDateTime::UNIX_EPOCH)
}

fn input(name: &str) -> Vec<u8> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz_regressions")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn assert_normal_form(batch: &ImportBatch) {
    assert!(!batch.indicators.is_empty(), "the input imports something");
    for ind in &batch.indicators {
        let (kind, value) = normalize(Some(hint_for(ind.kind)), &ind.value).unwrap_or_else(|e| {
            panic!(
                "{:?} {:?} does not normalize again: {e}",
                ind.kind, ind.value
            )
        });
        assert_eq!((kind, value.as_str()), (ind.kind, ind.value.as_str()));
    }
}

/// A MISP hostname `*.hxxp1.example.com`: the wildcard came off after
/// refanging, and `hxxp1…` was then refanged on the next normalization
/// into `http1…`. `hxxp` is now refanged only as a URL scheme.
#[test]
fn a_name_starting_with_hxxp_is_not_a_defanged_scheme() {
    let batch = import_misp_event(
        &input("misp-not-normal-form-hxxp.json"),
        &MispOptions::new(provenance()),
    )
    .expect("the event parses");
    assert_normal_form(&batch);
    assert!(
        batch
            .indicators
            .iter()
            .any(|i| i.value == "hxxp1.example.com"),
        "{:?}",
        batch
            .indicators
            .iter()
            .map(|i| &i.value)
            .collect::<Vec<_>>()
    );
}

/// A plain list (the fuzz target's first byte 0: plain, source default
/// exact) with defanged URLs.
#[test]
fn defanged_list_entries_import_in_normal_form() {
    let data = input("lists-not-normal-form-refang.txt");
    let text = std::str::from_utf8(&data[1..]).expect("UTF-8");
    let mut opts = ListOptions::new(provenance());
    opts.provenance.subdomains = data[0] & 4 != 0;
    let batch = import_list(text, ListFormat::Plain, &opts);
    assert_normal_form(&batch);
    let once = refang(text);
    assert_eq!(refang(&once), once);
}

/// A CSV list (first byte 2) whose URL path holds `\[\]\`: the URL parser
/// turns each `\` into `/`, writing `[/]`, a defanged `/` the text did not
/// have, so the next normalization changed the value. URLs are now parsed
/// until their serialization is refanged already.
#[test]
fn a_url_the_parser_makes_look_defanged_is_still_in_normal_form() {
    let data = input("lists-url-parser-makes-defang.txt");
    let text = std::str::from_utf8(&data[1..]).expect("UTF-8");
    let mut opts = ListOptions::new(provenance());
    opts.provenance.subdomains = data[0] & 4 != 0;
    let batch = import_list(text, ListFormat::Csv, &opts);
    assert_normal_form(&batch);
}
