//! The matcher index: is this name, address, URL, hash or e-mail address
//! an indicator? Built once from normalized indicators, then queried by
//! detection and Protective DNS at high rates.
//!
//! Layout, chosen for memory at 10M indicators and for lookups that do
//! not allocate:
//!
//! - **Domains**: every name is stored once in one byte arena; a
//!   `hashbrown::HashTable<u32>` maps the hash of a name to its entry
//!   (offset, length, exact flag, id), and equality is checked against the
//!   arena. A query is lower-cased into a stack buffer (DNS names are at
//!   most 253 bytes), then the whole name and each parent suffix
//!   (`a.b.evil.com`, `b.evil.com`, `evil.com`, `com`) are hashed and looked
//!   up, most specific first. A parent suffix matches only a non-exact
//!   indicator. About 40 bytes per domain plus the name itself.
//! - **IP addresses and CIDRs**: one hash map per prefix length that
//!   occurs, from network address to id; a query masks the address for
//!   each length, longest first, so the first hit is the longest prefix.
//! - **URLs, e-mail addresses, file names**: hash maps from the normalized
//!   text. **Hashes**: maps keyed by the binary digest (16, 20 or 32
//!   bytes), decoded from the query's hex on the stack.

use std::borrow::Cow;
use std::hash::BuildHasher;
use std::net::IpAddr;

use hashbrown::{DefaultHashBuilder, HashMap, HashTable};
use ipnet::IpNet;

use crate::model::IndicatorKind;

#[derive(Debug, Clone, Copy)]
struct DomainEntry {
    offset: u32,
    len: u8,
    exact: bool,
    id: u32,
}

/// See the module documentation.
#[derive(Default)]
pub struct IndicatorIndex {
    hasher: DefaultHashBuilder,
    arena: Vec<u8>,
    domains: Vec<DomainEntry>,
    domain_table: HashTable<u32>,
    /// `(prefix length, network → id)`, longest prefix first.
    v4: Vec<(u8, HashMap<u32, u32>)>,
    v6: Vec<(u8, HashMap<u128, u32>)>,
    urls: HashMap<Box<str>, u32>,
    emails: HashMap<Box<str>, u32>,
    file_names: HashMap<Box<str>, u32>,
    md5: HashMap<[u8; 16], u32>,
    sha1: HashMap<[u8; 20], u32>,
    sha256: HashMap<[u8; 32], u32>,
    skipped: usize,
}

impl std::fmt::Debug for IndicatorIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IndicatorIndex")
            .field("domains", &self.domains.len())
            .field("ip_prefix_lengths", &(self.v4.len() + self.v6.len()))
            .field("urls", &self.urls.len())
            .field(
                "hashes",
                &(self.md5.len() + self.sha1.len() + self.sha256.len()),
            )
            .field("skipped", &self.skipped)
            .finish()
    }
}

/// Lower-cases `name` (without a trailing dot) into `buf`; `None` if it
/// cannot be a DNS name.
fn lower_name<'b>(name: &str, buf: &'b mut [u8; 253]) -> Option<&'b [u8]> {
    let name = name.strip_suffix('.').unwrap_or(name).as_bytes();
    if name.is_empty() || name.len() > buf.len() {
        return None;
    }
    let out = &mut buf[..name.len()];
    for (o, b) in out.iter_mut().zip(name) {
        *o = b.to_ascii_lowercase();
    }
    Some(out)
}

fn hex_digest<const N: usize>(hex: &str) -> Option<[u8; N]> {
    let b = hex.as_bytes();
    if b.len() != N * 2 {
        return None;
    }
    let nib = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    };
    let mut out = [0u8; N];
    for (i, o) in out.iter_mut().enumerate() {
        *o = nib(b[2 * i])? << 4 | nib(b[2 * i + 1])?;
    }
    Some(out)
}

impl IndicatorIndex {
    /// Builds the index from `(id, kind, normalized value)`. When two
    /// indicators have the same value, the first id is kept, except that a
    /// non-exact domain replaces an exact one (it covers more). Values
    /// that do not parse for their kind are skipped and counted
    /// ([`IndicatorIndex::skipped`]).
    pub fn build<I, S>(items: I) -> IndicatorIndex
    where
        I: IntoIterator<Item = (u32, IndicatorKind, S)>,
        S: AsRef<str>,
    {
        let mut ix = IndicatorIndex::default();
        let mut v4: HashMap<u8, HashMap<u32, u32>> = HashMap::new();
        let mut v6: HashMap<u8, HashMap<u128, u32>> = HashMap::new();
        for (id, kind, value) in items {
            let value = value.as_ref();
            let ok = match kind {
                IndicatorKind::Domain { exact } => ix.add_domain(id, value, exact),
                IndicatorKind::Ipv4 | IndicatorKind::Ipv6 | IndicatorKind::Cidr => {
                    let net = value
                        .parse::<IpNet>()
                        .ok()
                        .or_else(|| value.parse::<IpAddr>().ok().map(IpNet::from));
                    match net.map(|n| n.trunc()) {
                        Some(IpNet::V4(n)) => {
                            v4.entry(n.prefix_len())
                                .or_default()
                                .entry(u32::from(n.network()))
                                .or_insert(id);
                            true
                        }
                        Some(IpNet::V6(n)) => {
                            v6.entry(n.prefix_len())
                                .or_default()
                                .entry(u128::from(n.network()))
                                .or_insert(id);
                            true
                        }
                        None => false,
                    }
                }
                IndicatorKind::Url => {
                    ix.urls.entry(value.into()).or_insert(id);
                    true
                }
                IndicatorKind::Email => {
                    ix.emails.entry(value.to_lowercase().into()).or_insert(id);
                    true
                }
                IndicatorKind::FileName => {
                    ix.file_names.entry(value.into()).or_insert(id);
                    true
                }
                IndicatorKind::Md5 => hex_digest::<16>(value)
                    .map(|d| ix.md5.entry(d).or_insert(id))
                    .is_some(),
                IndicatorKind::Sha1 => hex_digest::<20>(value)
                    .map(|d| ix.sha1.entry(d).or_insert(id))
                    .is_some(),
                IndicatorKind::Sha256 => hex_digest::<32>(value)
                    .map(|d| ix.sha256.entry(d).or_insert(id))
                    .is_some(),
            };
            if !ok {
                ix.skipped += 1;
            }
        }
        ix.v4 = v4.into_iter().collect();
        ix.v4.sort_by_key(|e| std::cmp::Reverse(e.0));
        ix.v6 = v6.into_iter().collect();
        ix.v6.sort_by_key(|e| std::cmp::Reverse(e.0));
        ix.arena.shrink_to_fit();
        ix.domains.shrink_to_fit();
        ix.domain_table.shrink_to_fit(|&e| {
            let d = ix.domains[e as usize];
            ix.hasher
                .hash_one(&ix.arena[d.offset as usize..d.offset as usize + d.len as usize])
        });
        ix
    }

    fn add_domain(&mut self, id: u32, value: &str, exact: bool) -> bool {
        let mut buf = [0u8; 253];
        let Some(name) = lower_name(value, &mut buf) else {
            return false;
        };
        // Offsets are u32 to keep entries small: 4 GiB of names is far
        // beyond the 10M-indicator goal (about 250 MB).
        let Ok(offset) = u32::try_from(self.arena.len()) else {
            return false;
        };
        let hash = self.hasher.hash_one(name);
        let (arena, domains) = (&self.arena, &mut self.domains);
        let eq = |&e: &u32| {
            let d = domains[e as usize];
            &arena[d.offset as usize..d.offset as usize + d.len as usize] == name
        };
        if let Some(&e) = self.domain_table.find(hash, eq) {
            let d = &mut self.domains[e as usize];
            if d.exact && !exact {
                d.exact = false;
                d.id = id;
            }
            return true;
        }
        let Ok(entry) = u32::try_from(self.domains.len()) else {
            return false;
        };
        self.arena.extend_from_slice(name);
        self.domains.push(DomainEntry {
            offset,
            // lower_name bounds the length by 253.
            len: name.len() as u8,
            exact,
            id,
        });
        let (arena, domains, hasher) = (&self.arena, &self.domains, &self.hasher);
        self.domain_table.insert_unique(hash, entry, |&e| {
            let d = domains[e as usize];
            hasher.hash_one(&arena[d.offset as usize..d.offset as usize + d.len as usize])
        });
        true
    }

    fn find_domain(&self, name: &[u8]) -> Option<DomainEntry> {
        let hash = self.hasher.hash_one(name);
        self.domain_table
            .find(hash, |&e| {
                let d = self.domains[e as usize];
                &self.arena[d.offset as usize..d.offset as usize + d.len as usize] == name
            })
            .map(|&e| self.domains[e as usize])
    }

    /// The id of the indicator for `name`: the name itself, or the nearest
    /// parent domain indicated with sub-domains (non-exact). Case and a
    /// trailing dot are ignored; the name must be in its ASCII (punycode)
    /// form, as in DNS. Does not allocate.
    pub fn match_domain(&self, name: &str) -> Option<u32> {
        if self.domains.is_empty() {
            return None;
        }
        let mut buf = [0u8; 253];
        let name = lower_name(name, &mut buf)?;
        if let Some(d) = self.find_domain(name) {
            return Some(d.id);
        }
        let mut rest = name;
        while let Some(dot) = rest.iter().position(|&b| b == b'.') {
            rest = &rest[dot + 1..];
            if let Some(d) = self.find_domain(rest) {
                if !d.exact {
                    return Some(d.id);
                }
            }
        }
        None
    }

    /// The id of the longest prefix (exact address or CIDR) holding `addr`.
    /// IPv4-mapped IPv6 addresses are looked up as IPv4.
    pub fn match_ip(&self, addr: IpAddr) -> Option<u32> {
        match addr.to_canonical() {
            IpAddr::V4(a) => {
                let a = u32::from(a);
                self.v4.iter().find_map(|(len, map)| {
                    let mask = u32::MAX.checked_shl(32 - u32::from(*len)).unwrap_or(0);
                    map.get(&(a & mask)).copied()
                })
            }
            IpAddr::V6(a) => {
                let a = u128::from(a);
                self.v6.iter().find_map(|(len, map)| {
                    let mask = u128::MAX.checked_shl(128 - u32::from(*len)).unwrap_or(0);
                    map.get(&(a & mask)).copied()
                })
            }
        }
    }

    /// The id of the URL indicator equal to `url` once normalized. A URL
    /// already in normalized form is found without allocating.
    pub fn match_url(&self, url: &str) -> Option<u32> {
        if let Some(&id) = self.urls.get(url) {
            return Some(id);
        }
        let (_, n) = crate::normalize::normalize(Some(crate::model::Kind::Url), url).ok()?;
        self.urls.get(n.as_str()).copied()
    }

    /// The id of the MD5, SHA-1 or SHA-256 indicator with this hex digest
    /// (any case). Does not allocate.
    pub fn match_hash(&self, hex: &str) -> Option<u32> {
        match hex.len() {
            32 => self.md5.get(&hex_digest::<16>(hex)?).copied(),
            40 => self.sha1.get(&hex_digest::<20>(hex)?).copied(),
            64 => self.sha256.get(&hex_digest::<32>(hex)?).copied(),
            _ => None,
        }
    }

    /// The id of the e-mail address indicator (any case).
    pub fn match_email(&self, addr: &str) -> Option<u32> {
        let key: Cow<'_, str> = if addr.bytes().any(|b| b.is_ascii_uppercase()) || !addr.is_ascii()
        {
            Cow::Owned(addr.to_lowercase())
        } else {
            Cow::Borrowed(addr)
        };
        self.emails.get(key.as_ref()).copied()
    }

    /// The id of the file-name indicator with exactly this name.
    pub fn match_file_name(&self, name: &str) -> Option<u32> {
        self.file_names.get(name).copied()
    }

    /// Indicators held (after de-duplication).
    pub fn len(&self) -> usize {
        self.domains.len()
            + self.v4.iter().map(|(_, m)| m.len()).sum::<usize>()
            + self.v6.iter().map(|(_, m)| m.len()).sum::<usize>()
            + self.urls.len()
            + self.emails.len()
            + self.file_names.len()
            + self.md5.len()
            + self.sha1.len()
            + self.sha256.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Values given to [`IndicatorIndex::build`] that did not parse.
    pub fn skipped(&self) -> usize {
        self.skipped
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ix() -> IndicatorIndex {
        IndicatorIndex::build([
            (1, IndicatorKind::Domain { exact: false }, "evil.com"),
            (
                2,
                IndicatorKind::Domain { exact: true },
                "exact.example.org",
            ),
            (3, IndicatorKind::Domain { exact: false }, "deep.evil.com"),
            (4, IndicatorKind::Ipv4, "192.0.2.1"),
            (5, IndicatorKind::Cidr, "192.0.2.0/24"),
            (6, IndicatorKind::Cidr, "10.0.0.0/8"),
            (7, IndicatorKind::Ipv6, "2001:db8::1"),
            (8, IndicatorKind::Cidr, "2001:db8::/32"),
            (9, IndicatorKind::Url, "http://evil.com/gate.php"),
            (10, IndicatorKind::Md5, "d41d8cd98f00b204e9800998ecf8427e"),
            (11, IndicatorKind::Email, "bad@evil.com"),
            (12, IndicatorKind::Domain { exact: true }, "evil.com"),
            (13, IndicatorKind::Ipv4, "not an ip"),
            (14, IndicatorKind::FileName, "Invoice.exe"),
            (
                15,
                IndicatorKind::Sha256,
                "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            ),
        ])
    }

    #[test]
    fn domains_match_self_and_parents_when_not_exact() {
        let ix = ix();
        assert_eq!(ix.match_domain("evil.com"), Some(1));
        assert_eq!(ix.match_domain("EVIL.com."), Some(1));
        assert_eq!(ix.match_domain("a.b.evil.com"), Some(1));
        // The most specific indicator wins.
        assert_eq!(ix.match_domain("x.deep.evil.com"), Some(3));
        assert_eq!(ix.match_domain("exact.example.org"), Some(2));
        assert_eq!(ix.match_domain("sub.exact.example.org"), None);
        assert_eq!(ix.match_domain("notevil.com"), None);
        assert_eq!(ix.match_domain("com"), None);
        assert_eq!(ix.match_domain(""), None);
        assert_eq!(ix.match_domain(&"a.".repeat(200)), None);
        assert_eq!(ix.skipped(), 1);
    }

    #[test]
    fn ips_longest_prefix() {
        let ix = ix();
        let ip = |s: &str| ix.match_ip(s.parse().unwrap());
        assert_eq!(ip("192.0.2.1"), Some(4));
        assert_eq!(ip("192.0.2.2"), Some(5));
        assert_eq!(ip("10.255.0.1"), Some(6));
        assert_eq!(ip("11.0.0.1"), None);
        assert_eq!(ip("::ffff:192.0.2.1"), Some(4));
        assert_eq!(ip("2001:db8::1"), Some(7));
        assert_eq!(ip("2001:db8:ffff::1"), Some(8));
        assert_eq!(ip("2001:db9::1"), None);
        let all = IndicatorIndex::build([(1, IndicatorKind::Cidr, "0.0.0.0/0")]);
        assert_eq!(all.match_ip("8.8.8.8".parse().unwrap()), Some(1));
    }

    #[test]
    fn urls_hashes_emails_files() {
        let ix = ix();
        assert_eq!(ix.match_url("http://evil.com/gate.php"), Some(9));
        assert_eq!(ix.match_url("HTTP://EVIL.COM:80/gate.php#x"), Some(9));
        assert_eq!(ix.match_url("http://evil.com/other"), None);
        assert_eq!(ix.match_hash("D41D8CD98F00B204E9800998ECF8427E"), Some(10));
        assert_eq!(
            ix.match_hash("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
            Some(15)
        );
        assert_eq!(ix.match_hash("d41d8cd98f00b204e9800998ecf8427f"), None);
        assert_eq!(ix.match_hash("zz1d8cd98f00b204e9800998ecf8427e"), None);
        assert_eq!(ix.match_email("Bad@Evil.com"), Some(11));
        assert_eq!(ix.match_file_name("Invoice.exe"), Some(14));
        assert_eq!(ix.match_file_name("invoice.exe"), None);
    }

    proptest! {
        /// The index agrees with a naive scan over the indicators.
        #[test]
        fn domain_matches_agree_with_a_scan(
            inds in proptest::collection::vec(("[abc]{1,2}(\\.[abc]{1,2}){0,2}", any::<bool>()), 1..30),
            queries in proptest::collection::vec("[abc]{1,2}(\\.[abc]{1,2}){0,3}", 1..30),
        ) {
            let ix = IndicatorIndex::build(inds.iter().enumerate().map(|(i, (v, exact))| {
                (i as u32, IndicatorKind::Domain { exact: *exact }, v.as_str())
            }));
            for q in &queries {
                // Naive: the most specific suffix with a usable indicator.
                let mut expect = None;
                let labels: Vec<&str> = q.split('.').collect();
                for start in 0..labels.len() {
                    let suffix = labels[start..].join(".");
                    let hits: Vec<usize> = inds.iter().enumerate()
                        .filter(|(_, (v, exact))| *v == suffix && (start == 0 || !exact))
                        .map(|(i, _)| i).collect();
                    if !hits.is_empty() {
                        // The first id, or the first non-exact one when a
                        // non-exact duplicate replaced an exact entry.
                        let all: Vec<usize> = inds.iter().enumerate()
                            .filter(|(_, (v, _))| *v == suffix).map(|(i, _)| i).collect();
                        let first = all[0];
                        let chosen = if inds[first].1 {
                            all.iter().copied().find(|&i| !inds[i].1).unwrap_or(first)
                        } else { first };
                        expect = Some(chosen as u32);
                        break;
                    }
                }
                prop_assert_eq!(ix.match_domain(q), expect, "query {}", q);
            }
        }
    }
}
