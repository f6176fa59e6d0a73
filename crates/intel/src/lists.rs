//! Line-oriented indicator lists: plain (one value per line), hosts files
//! and CSV (abuse.ch style); and the plain-list and RPZ exports.

use std::fmt::Write as _;

use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{OffsetDateTime, PrimitiveDateTime};

use crate::model::{union_into, ImportBatch, Indicator, IndicatorKind, Kind, Provenance, Tlp};
use crate::normalize::{display, normalize};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListFormat {
    /// One value per line; `#` and `;` start comments; blank lines skipped.
    Plain,
    /// `0.0.0.0 evil.com other.evil.com` (the address is ignored).
    Hosts,
    /// Comma-separated values with `#` comment lines; the header may be
    /// the last comment line (abuse.ch) or the first line.
    Csv,
}

#[derive(Debug, Clone)]
pub struct ListOptions {
    pub provenance: Provenance,
    /// What the values are; `None`: guessed per value (CSV: from the
    /// column name first). Whether domains cover their sub-domains is the
    /// provenance's default ([`Provenance::subdomains`]); a value written
    /// `=name` is that name only, `*.name` the name and its sub-domains.
    pub kind_hint: Option<Kind>,
    /// CSV: the column holding the indicator, by header name. `None`:
    /// a well-known name (`url`, `ioc_value`, `dst_ip`, …), else the column
    /// whose values normalize most often.
    pub column: Option<String>,
}

impl ListOptions {
    pub fn new(provenance: Provenance) -> ListOptions {
        ListOptions {
            provenance,
            kind_hint: None,
            column: None,
        }
    }
}

/// Imports a list. Every bad line is rejected with its 1-based line number
/// and the reason; the good lines around it are kept.
pub fn import_list(text: &str, format: ListFormat, opts: &ListOptions) -> ImportBatch {
    match format {
        ListFormat::Plain => plain(text, opts),
        ListFormat::Hosts => hosts(text, opts),
        ListFormat::Csv => csv_list(text, opts),
    }
}

/// The line without an inline comment (` # …`, ` ; …`).
fn strip_comment(line: &str) -> &str {
    let t = line.trim();
    if t.starts_with('#') || t.starts_with(';') {
        return "";
    }
    let mut cut = t.len();
    for (i, w) in t.char_indices() {
        if w.is_whitespace() {
            if let Some(next) = t[i..].trim_start().chars().next() {
                if next == '#' || next == ';' {
                    cut = i;
                    break;
                }
            }
        }
    }
    t[..cut].trim()
}

/// A value's own sub-domain marker: `=name` is the name only (`Some(false)`,
/// and the value without the `=`), `*.name` the name and its sub-domains
/// (`Some(true)`); anything else follows the source's default (`None`).
fn domain_marker(v: &str) -> (Option<bool>, &str) {
    if let Some(rest) = v.strip_prefix('=') {
        (Some(false), rest.trim_start())
    } else if v.starts_with("*.") {
        (Some(true), v)
    } else {
        (None, v)
    }
}

/// Normalizes one list value under the source's provenance and the value's
/// own sub-domain marker.
fn list_indicator(
    hint: Option<Kind>,
    v: &str,
    prov: &Provenance,
) -> Result<Indicator, crate::normalize::NormError> {
    let (marker, v) = domain_marker(v);
    // A `domain` column or hint names domains, not their coverage: that is
    // the source's default or the value's marker.
    let hint = match hint {
        Some(Kind::Domain) => Some(Kind::Hostname),
        h => h,
    };
    let (kind, value) = normalize(hint, v)?;
    let mut ind = prov.indicator(kind, value);
    if let Some(sub) = marker {
        ind.set_subdomains(sub);
    }
    Ok(ind)
}

fn plain(text: &str, opts: &ListOptions) -> ImportBatch {
    let mut batch = ImportBatch::with_capacity(text.bytes().filter(|&b| b == b'\n').count());
    for (n, line) in text.lines().enumerate() {
        let v = strip_comment(line);
        if v.is_empty() {
            continue;
        }
        match list_indicator(opts.kind_hint, v, &opts.provenance) {
            Ok(ind) => batch.push(ind),
            Err(e) => batch.reject(format!("line {}", n + 1), e.to_string()),
        }
    }
    batch
}

/// Names every hosts file maps to itself; not indicators.
const HOSTS_SELF: [&str; 7] = [
    "localhost",
    "localhost.localdomain",
    "local",
    "broadcasthost",
    "ip6-localhost",
    "ip6-loopback",
    "0.0.0.0",
];

fn hosts(text: &str, opts: &ListOptions) -> ImportBatch {
    let mut batch = ImportBatch::default();
    let hint = Kind::Hostname;
    for (n, line) in text.lines().enumerate() {
        let v = strip_comment(line);
        if v.is_empty() {
            continue;
        }
        let mut words = v.split_whitespace();
        let path = format!("line {}", n + 1);
        match words.next().map(|a| a.parse::<std::net::IpAddr>()) {
            Some(Ok(_)) => {}
            _ => {
                batch.reject(path, "a hosts line starts with an IP address");
                continue;
            }
        }
        let mut any = false;
        for name in words {
            if HOSTS_SELF.contains(&name.to_ascii_lowercase().as_str()) {
                any = true;
                continue;
            }
            any = true;
            match list_indicator(Some(hint), name, &opts.provenance) {
                Ok(ind) => batch.push(ind),
                Err(e) => batch.reject(path.clone(), e.to_string()),
            }
        }
        if !any {
            batch.reject(path, "no host name after the address");
        }
    }
    batch
}

/// Column names that hold the indicator, in order of preference, with the
/// kind they imply.
const IOC_COLUMNS: [(&str, Option<Kind>); 18] = [
    ("ioc_value", None),
    ("ioc", None),
    ("indicator", None),
    ("url", Some(Kind::Url)),
    ("domain", Some(Kind::Domain)),
    ("hostname", Some(Kind::Hostname)),
    ("host", None),
    ("dst_ip", Some(Kind::Ip)),
    ("ip", Some(Kind::Ip)),
    ("ip_address", Some(Kind::Ip)),
    ("ipaddress", Some(Kind::Ip)),
    ("sha256_hash", Some(Kind::Sha256)),
    ("sha256", Some(Kind::Sha256)),
    ("md5_hash", Some(Kind::Md5)),
    ("md5", Some(Kind::Md5)),
    ("sha1_hash", Some(Kind::Sha1)),
    ("sha1", Some(Kind::Sha1)),
    ("value", None),
];
const FIRST_SEEN_COLUMNS: [&str; 5] = [
    "first_seen_utc",
    "first_seen",
    "dateadded",
    "date_added",
    "firstseen",
];
const MALWARE_COLUMNS: [&str; 3] = ["malware", "malware_printable", "signature"];
const TAG_COLUMNS: [&str; 3] = ["threat", "threat_type", "tags"];

fn parse_csv_line(line: &str) -> Option<Vec<String>> {
    let mut r = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(line.as_bytes());
    let rec = r.records().next()?.ok()?;
    Some(rec.iter().map(str::to_owned).collect())
}

/// `2024-01-31 12:00:00` (abuse.ch, UTC) or RFC 3339.
fn parse_time(s: &str) -> Option<OffsetDateTime> {
    let fmt = format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
    PrimitiveDateTime::parse(s, &fmt)
        .map(PrimitiveDateTime::assume_utc)
        .ok()
        .or_else(|| OffsetDateTime::parse(s, &Rfc3339).ok())
}

fn csv_list(text: &str, opts: &ListOptions) -> ImportBatch {
    let mut batch = ImportBatch::default();
    // The header: the last comment line before the data that reads as
    // several CSV fields (abuse.ch writes `# id,dateadded,url,…`).
    let mut header: Option<Vec<String>> = None;
    for line in text.lines() {
        let t = line.trim();
        if t.is_empty() {
            continue;
        }
        match t.strip_prefix('#') {
            Some(c) => {
                if let Some(f) = parse_csv_line(c.trim()) {
                    if f.len() >= 2 && f.iter().all(|x| !x.is_empty() && x.len() < 64) {
                        header = Some(f);
                    }
                }
            }
            None => break,
        }
    }
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .comment(Some(b'#'))
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let mut rows: Vec<(u64, Vec<String>)> = Vec::new();
    for rec in rdr.records() {
        match rec {
            Ok(r) => {
                let line = r.position().map_or(0, |p| p.line());
                if r.iter().all(str::is_empty) {
                    continue;
                }
                rows.push((line, r.iter().map(str::to_owned).collect()));
            }
            Err(e) => {
                let line = e.position().map_or(0, |p| p.line());
                batch.reject(format!("line {line}"), format!("CSV: {e}"));
            }
        }
    }
    // No header in comments: the first row is one if none of its fields
    // is an indicator.
    if header.is_none() {
        if let Some((_, first)) = rows.first() {
            if first.iter().all(|f| normalize(None, f).is_err()) {
                header = Some(rows.remove(0).1);
            }
        }
    }
    let names: Vec<String> = header
        .unwrap_or_default()
        .iter()
        .map(|h| h.trim().trim_matches('"').to_ascii_lowercase())
        .collect();
    let find = |n: &str| names.iter().position(|h| h == n);

    let (col, col_hint) = if let Some(want) = &opts.column {
        match find(&want.to_ascii_lowercase()) {
            Some(i) => (i, None),
            None => {
                batch.reject(
                    "header",
                    format!("no column named {want:?} (columns: {})", names.join(", ")),
                );
                return batch;
            }
        }
    } else if let Some((i, h)) = IOC_COLUMNS
        .iter()
        .find_map(|(n, h)| find(n).map(|i| (i, *h)))
    {
        (i, h)
    } else {
        // The column whose values normalize most often in the first rows.
        let width = rows.iter().map(|(_, r)| r.len()).max().unwrap_or(0);
        let mut best = (0usize, 0usize);
        for c in 0..width {
            let hits = rows
                .iter()
                .take(50)
                .filter(|(_, r)| {
                    r.get(c).is_some_and(|v| {
                        normalize(opts.kind_hint, v)
                            .is_ok_and(|(k, _)| k != IndicatorKind::FileName)
                    })
                })
                .count();
            if hits > best.1 {
                best = (c, hits);
            }
        }
        if best.1 == 0 && !rows.is_empty() {
            batch.reject("header", "no column holds indicators");
            return batch;
        }
        (best.0, None)
    };
    let hint = opts.kind_hint.or(col_hint);
    let first_seen = FIRST_SEEN_COLUMNS.iter().find_map(|n| find(n));
    let malware = MALWARE_COLUMNS.iter().find_map(|n| find(n));
    let tag_cols: Vec<usize> = TAG_COLUMNS.iter().filter_map(|n| find(n)).collect();

    for (line, row) in rows {
        let path = format!("line {line}");
        let Some(v) = row.get(col).filter(|v| !v.is_empty()) else {
            batch.reject(path, format!("no value in column {}", col + 1));
            continue;
        };
        match list_indicator(hint, v, &opts.provenance) {
            Ok(mut ind) => {
                if let Some(t) = first_seen
                    .and_then(|c| row.get(c))
                    .and_then(|s| parse_time(s))
                {
                    ind.first_seen = t;
                    ind.last_seen = ind.last_seen.max(t);
                }
                if let Some(m) = malware
                    .and_then(|c| row.get(c))
                    .filter(|m| !m.is_empty() && *m != "None" && *m != "n/a")
                {
                    ind.related = vec![format!("malware:{m}")];
                }
                for t in tag_cols.iter().filter_map(|&c| row.get(c)) {
                    let tags = t
                        .split(',')
                        .map(str::trim)
                        .filter(|t| !t.is_empty() && *t != "None")
                        .map(str::to_owned)
                        .collect();
                    union_into(&mut ind.tags, tags);
                }
                batch.push(ind);
            }
            Err(e) => batch.reject(path, e.to_string()),
        }
    }
    batch
}

/// One value per line, sorted, of the active indicators at or below
/// `max_tlp` whose kind is in `kinds` (all kinds when empty). Domains are
/// written `*.name` when they cover their sub-domains and `=name` when they
/// do not, which [`import_list`] reads back whatever the source's default.
pub fn export_plain(
    indicators: &[Indicator],
    kinds: &[Kind],
    max_tlp: Tlp,
    now: OffsetDateTime,
) -> String {
    let mut lines: Vec<String> = indicators
        .iter()
        .filter(|i| i.tlp <= max_tlp && i.is_active(now))
        .filter(|i| kinds.is_empty() || kinds.contains(&i.kind.key()))
        .map(|i| match i.kind {
            IndicatorKind::Domain { exact: true } => format!("={}", i.value),
            k => display(k, &i.value).into_owned(),
        })
        .collect();
    lines.sort();
    lines.dedup();
    let mut out = String::with_capacity(lines.iter().map(|l| l.len() + 1).sum());
    for l in lines {
        out.push_str(&l);
        out.push('\n');
    }
    out
}

#[derive(Debug, Clone)]
pub struct RpzOptions {
    /// The zone's SOA and NS name server, fully qualified (`ns.example.`).
    pub name_server: String,
    /// The SOA contact mailbox in DNS form (`hostmaster.example.`).
    pub contact: String,
    pub serial: u32,
    pub ttl: u32,
    pub max_tlp: Tlp,
    pub now: OffsetDateTime,
}

/// A DNS Response Policy Zone that answers NXDOMAIN (`CNAME .`) for every
/// active domain indicator at or below `max_tlp`; non-exact domains also
/// get `*.name`. Owner names are relative to the zone's origin, so the
/// same text serves whatever name the zone is loaded under.
pub fn export_rpz(indicators: &[Indicator], opts: &RpzOptions) -> String {
    let mut names: Vec<(&str, bool)> = indicators
        .iter()
        .filter(|i| i.tlp <= opts.max_tlp && i.is_active(opts.now))
        .filter_map(|i| match i.kind {
            IndicatorKind::Domain { exact } => Some((i.value.as_str(), exact)),
            _ => None,
        })
        .collect();
    names.sort();
    // An exact and a non-exact entry for the same name: keep the wider.
    names.dedup_by(|b, a| {
        if a.0 == b.0 {
            a.1 &= b.1;
            true
        } else {
            false
        }
    });
    let mut out = String::new();
    let _ = writeln!(out, "$TTL {}", opts.ttl);
    let _ = writeln!(
        out,
        "@ IN SOA {} {} {} 3600 600 604800 {}",
        opts.name_server, opts.contact, opts.serial, opts.ttl
    );
    let _ = writeln!(out, "@ IN NS {}", opts.name_server);
    for (name, exact) in names {
        let _ = writeln!(out, "{name} CNAME .");
        if !exact {
            let _ = writeln!(out, "*.{name} CNAME .");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> ListOptions {
        ListOptions::new(Provenance::new("t", OffsetDateTime::UNIX_EPOCH))
    }

    #[test]
    fn plain_lists() {
        let text = "# comment\n; other comment\n\nevil[.]com\n1.2.3.4 # inline\nnot a value\n*.wide.example\nhxxp://x.example/a\n10.0.0.1/8\n= only.example\n";
        let b = import_list(text, ListFormat::Plain, &opts());
        let got: Vec<(IndicatorKind, &str)> = b
            .indicators
            .iter()
            .map(|i| (i.kind, i.value.as_str()))
            .collect();
        // By default a domain covers its sub-domains; `=name` does not.
        assert_eq!(
            got,
            vec![
                (IndicatorKind::Domain { exact: false }, "evil.com"),
                (IndicatorKind::Ipv4, "1.2.3.4"),
                (IndicatorKind::Domain { exact: false }, "wide.example"),
                (IndicatorKind::Url, "http://x.example/a"),
                (IndicatorKind::Domain { exact: true }, "only.example"),
            ]
        );
        assert_eq!(b.rejects.len(), 2);
        assert_eq!(b.rejects[0].path, "line 6");
        assert_eq!(b.rejects[1].path, "line 9");
        assert!(b.rejects[1].reason.contains("host bits"), "{:?}", b.rejects);

        // A source that lists exact names: bare names are exact, the
        // markers still decide for their own line.
        let mut exact = opts();
        exact.provenance.subdomains = false;
        let b = import_list(
            "evil.com\n*.wide.example\n=only.example\n",
            ListFormat::Plain,
            &exact,
        );
        let got: Vec<(Option<bool>, &str)> = b
            .indicators
            .iter()
            .map(|i| (i.subdomains(), i.value.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![
                (Some(false), "evil.com"),
                (Some(true), "wide.example"),
                (Some(false), "only.example"),
            ]
        );
        // `=` on something that is not a domain is just that value.
        let b = import_list("=192.0.2.1\n", ListFormat::Plain, &opts());
        assert_eq!(b.indicators[0].kind, IndicatorKind::Ipv4);
    }

    #[test]
    fn hosts_and_csv_follow_the_source_default() {
        let hosts = "0.0.0.0 ads.example =exact.example\n";
        let b = import_list(hosts, ListFormat::Hosts, &opts());
        let got: Vec<Option<bool>> = b.indicators.iter().map(|i| i.subdomains()).collect();
        assert_eq!(got, vec![Some(true), Some(false)]);
        let mut exact = opts();
        exact.provenance.subdomains = false;
        let b = import_list(hosts, ListFormat::Hosts, &exact);
        let got: Vec<Option<bool>> = b.indicators.iter().map(|i| i.subdomains()).collect();
        assert_eq!(got, vec![Some(false), Some(false)]);

        let csv = "# domain,malware\nbad.example,x\n=host.bad.example,y\n";
        let b = import_list(csv, ListFormat::Csv, &opts());
        let got: Vec<(Option<bool>, &str)> = b
            .indicators
            .iter()
            .map(|i| (i.subdomains(), i.value.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![
                (Some(true), "bad.example"),
                (Some(false), "host.bad.example")
            ]
        );
        let b = import_list(csv, ListFormat::Csv, &exact);
        assert_eq!(b.indicators[0].subdomains(), Some(false));
    }

    #[test]
    fn hosts_files() {
        let text = "127.0.0.1 localhost\n::1 ip6-localhost\n0.0.0.0 ads.example tracker.example # x\nevil.com\n0.0.0.0 bad_host!.com\n0.0.0.0\n";
        let b = import_list(text, ListFormat::Hosts, &opts());
        let got: Vec<&str> = b.indicators.iter().map(|i| i.value.as_str()).collect();
        assert_eq!(got, vec!["ads.example", "tracker.example"]);
        let paths: Vec<&str> = b.rejects.iter().map(|r| r.path.as_str()).collect();
        assert_eq!(paths, vec!["line 4", "line 5", "line 6"]);
    }

    #[test]
    fn abuse_ch_csv() {
        let text = "################\n# URLhaus dump #\n# Terms of use: x\n#\n# id,dateadded,url,url_status,last_online,threat,tags,urlhaus_link,reporter\n\
\"3409203\",\"2025-01-02 03:04:05\",\"http://evil.example/bins/x.arm\",\"online\",\"2025-01-02 03:04:05\",\"malware_download\",\"elf,mirai\",\"https://urlhaus.abuse.ch/url/3409203/\",\"geenensp\"\n\
\"3409204\",\"2025-01-02 03:04:06\",\"not a url\",\"online\",\"\",\"malware_download\",\"None\",\"x\",\"y\"\n";
        let b = import_list(text, ListFormat::Csv, &opts());
        assert_eq!(b.indicators.len(), 1, "{:?}", b.rejects);
        let i = &b.indicators[0];
        assert_eq!(i.value, "http://evil.example/bins/x.arm");
        assert_eq!(
            i.first_seen,
            time::macros::datetime!(2025-01-02 03:04:05 UTC)
        );
        assert_eq!(i.tags, vec!["malware_download", "elf", "mirai"]);
        assert_eq!(b.rejects.len(), 1);
        assert_eq!(b.rejects[0].path, "line 7");

        // Feodo: header in a comment, IP column by name.
        let feodo = "# first_seen_utc,dst_ip,dst_port,c2_status,last_online,malware\n2021-01-17 07:44:46,51.178.161.32,4643,online,2021-06-01,Dridex\n";
        let b = import_list(feodo, ListFormat::Csv, &opts());
        assert_eq!(b.indicators[0].value, "51.178.161.32");
        assert_eq!(b.indicators[0].related, vec!["malware:Dridex"]);

        // No header: the column is found by content.
        let bare = "1,foo,d41d8cd98f00b204e9800998ecf8427e\n2,bar,e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n";
        let b = import_list(bare, ListFormat::Csv, &opts());
        assert_eq!(b.indicators.len(), 2);
        assert_eq!(b.indicators[1].kind, IndicatorKind::Sha256);

        // A first-line header, and a column chosen by name.
        let named = "name,address\nx,192.0.2.1\n";
        let b = import_list(
            named,
            ListFormat::Csv,
            &ListOptions {
                column: Some("Address".into()),
                ..opts()
            },
        );
        assert_eq!(b.indicators[0].value, "192.0.2.1");
        let b = import_list(
            named,
            ListFormat::Csv,
            &ListOptions {
                column: Some("nope".into()),
                ..opts()
            },
        );
        assert_eq!(b.rejects[0].path, "header");
        assert!(b.indicators.is_empty());
    }

    #[test]
    fn exports() {
        let mut p = Provenance::new("t", OffsetDateTime::UNIX_EPOCH);
        p.subdomains = false;
        let mut inds = vec![
            p.indicator(IndicatorKind::Domain { exact: false }, "evil.com".into()),
            p.indicator(IndicatorKind::Domain { exact: true }, "host.example".into()),
            p.indicator(IndicatorKind::Ipv4, "192.0.2.1".into()),
            p.indicator(IndicatorKind::Domain { exact: true }, "red.example".into()),
            p.indicator(
                IndicatorKind::Domain { exact: true },
                "context.example".into(),
            ),
        ];
        inds[3].tlp = Tlp::Red;
        inds[4].detection = false;
        let now = OffsetDateTime::UNIX_EPOCH;
        let plain = export_plain(&inds, &[], Tlp::Amber, now);
        assert_eq!(plain, "*.evil.com\n192.0.2.1\n=host.example\n");
        // Read back under the default (sub-domains) and an exact source
        // alike: the same indicators.
        for sub in [true, false] {
            let mut o = opts();
            o.provenance.subdomains = sub;
            let back = import_list(&plain, ListFormat::Plain, &o);
            assert!(back.rejects.is_empty());
            let kinds: Vec<IndicatorKind> = back.indicators.iter().map(|i| i.kind).collect();
            assert_eq!(
                kinds,
                vec![
                    IndicatorKind::Domain { exact: false },
                    IndicatorKind::Ipv4,
                    IndicatorKind::Domain { exact: true },
                ]
            );
        }
        assert_eq!(
            export_plain(&inds, &[Kind::Ipv4], Tlp::Amber, now),
            "192.0.2.1\n"
        );

        let zone = export_rpz(
            &inds,
            &RpzOptions {
                name_server: "ns.rpz.example.".into(),
                contact: "hostmaster.rpz.example.".into(),
                serial: 7,
                ttl: 300,
                max_tlp: Tlp::Amber,
                now,
            },
        );
        assert_eq!(
            zone,
            "$TTL 300\n@ IN SOA ns.rpz.example. hostmaster.rpz.example. 7 3600 600 604800 300\n\
@ IN NS ns.rpz.example.\nevil.com CNAME .\n*.evil.com CNAME .\nhost.example CNAME .\n"
        );
    }

    proptest::proptest! {
        /// Any text: no panic, and every non-comment line is either kept
        /// or rejected with its number.
        #[test]
        fn any_text_is_kept_or_rejected(s in "([a-z0-9.,#;:/\\[\\] \"-]{0,30}\n){0,8}") {
            for f in [ListFormat::Plain, ListFormat::Hosts, ListFormat::Csv] {
                let b = import_list(&s, f, &opts());
                for r in &b.rejects {
                    proptest::prop_assert!(r.path.starts_with("line ") || r.path == "header");
                }
            }
            let b = import_list(&s, ListFormat::Plain, &opts());
            let lines = s.lines().filter(|l| !strip_comment(l).is_empty()).count();
            // Duplicates merge, so at most one indicator per line.
            proptest::prop_assert!(b.indicators.len() + b.rejects.len() <= lines);
            proptest::prop_assert!(b.rejects.len() <= lines);
        }
    }
}
