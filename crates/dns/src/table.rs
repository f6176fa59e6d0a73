//! The two lookup structures of the policy: a set of wire-format names and a
//! longest-prefix table of IP networks.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::net::IpAddr;

use hashbrown::HashTable;
use ipnet::{IpNet, Ipv4Net, Ipv6Net};

/// No value in a [`Slot`] field.
pub const NONE: u32 = u32::MAX;

/// The two values a name can carry: its own trigger and its `*.` wildcard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    pub exact: u32,
    pub wild: u32,
}

/// A map from lower-case wire-format names to a [`Slot`], built for millions
/// of entries: the names live back to back in one arena (`[len][wire
/// name]`), and the hash table holds only `(arena offset, slot)`, 12 bytes a
/// name. A `HashMap<Box<[u8]>, _>` would cost a heap allocation and ~60
/// bytes per name, which for the 1M-name benchmark zone is most of the RSS
/// budget. A name and its wildcard share one entry, so checking a suffix is
/// one probe (one likely cache miss), not two.
#[derive(Clone)]
pub struct NameTable {
    arena: Vec<u8>,
    table: HashTable<(u32, Slot)>,
    // Seeded per table: names come from clients, so a fixed hash would let
    // them aim at one probe sequence.
    hasher: foldhash::fast::RandomState,
}

impl Default for NameTable {
    fn default() -> Self {
        Self::new()
    }
}

impl NameTable {
    pub fn new() -> Self {
        Self {
            arena: Vec::new(),
            table: HashTable::new(),
            hasher: foldhash::fast::RandomState::default(),
        }
    }

    pub fn len(&self) -> usize {
        self.table.len()
    }

    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    fn key(arena: &[u8], off: u32) -> &[u8] {
        let off = off as usize;
        let len = arena[off] as usize;
        &arena[off + 1..off + 1 + len]
    }

    /// The slot stored for `name`.
    #[inline]
    pub fn get(&self, name: &[u8]) -> Option<Slot> {
        if self.table.is_empty() {
            return None;
        }
        let h = self.hasher.hash_one(name);
        self.table
            .find(h, |&(off, _)| Self::key(&self.arena, off) == name)
            .map(|&(_, v)| v)
    }

    /// Room for `names` more names of `bytes` wire bytes in all, so that a
    /// large zone's load does not rehash the table at every doubling (that
    /// was an eighth of a 1M-name load).
    pub fn reserve(&mut self, names: usize, bytes: usize) {
        self.arena.reserve(bytes);
        let (arena, hasher) = (&self.arena, &self.hasher);
        self.table
            .reserve(names, |&(o, _)| hasher.hash_one(Self::key(arena, o)));
    }

    /// The exact (or wildcard) value of `name` if set (`Ok`); otherwise
    /// stores `value()` there and returns it (`Err`). One hash and one probe,
    /// where `get` then `insert_if_absent` would cost two of each.
    pub fn get_or_insert_with(
        &mut self,
        name: &[u8],
        wild: bool,
        value: impl FnOnce() -> u32,
    ) -> Result<u32, u32> {
        debug_assert!(name.len() <= crate::wire::MAX_NAME);
        let h = self.hasher.hash_one(name);
        let arena = &self.arena;
        if let Some((_, slot)) = self
            .table
            .find_mut(h, |&(off, _)| Self::key(arena, off) == name)
        {
            let field = if wild {
                &mut slot.wild
            } else {
                &mut slot.exact
            };
            if *field != NONE {
                return Ok(*field);
            }
            *field = value();
            return Err(*field);
        }
        let v = value();
        let slot = if wild {
            Slot {
                exact: NONE,
                wild: v,
            }
        } else {
            Slot {
                exact: v,
                wild: NONE,
            }
        };
        self.push_new(h, name, slot);
        Err(v)
    }

    /// Sets the exact (or wildcard) value of `name` unless already set;
    /// returns the value now stored.
    pub fn insert_if_absent(&mut self, name: &[u8], wild: bool, value: u32) -> u32 {
        match self.get_or_insert_with(name, wild, || value) {
            Ok(v) | Err(v) => v,
        }
    }

    /// Stores `slot` for `name`, replacing what was there. An overlay table
    /// (see `Zone::with_overlay`) uses a slot of two `NONE`s to mean "no
    /// trigger here any more".
    pub fn set(&mut self, name: &[u8], slot: Slot) {
        debug_assert!(name.len() <= crate::wire::MAX_NAME);
        let h = self.hasher.hash_one(name);
        let arena = &self.arena;
        if let Some((_, s)) = self
            .table
            .find_mut(h, |&(off, _)| Self::key(arena, off) == name)
        {
            *s = slot;
            return;
        }
        self.push_new(h, name, slot);
    }

    /// Appends `name` (hash `h`, known absent) to the arena and the table.
    fn push_new(&mut self, h: u64, name: &[u8], slot: Slot) {
        let off = self.arena.len() as u32;
        self.arena.push(name.len() as u8);
        self.arena.extend_from_slice(name);
        let (arena, hasher) = (&self.arena, &self.hasher);
        self.table.insert_unique(h, (off, slot), |&(o, _)| {
            hasher.hash_one(Self::key(arena, o))
        });
    }

    /// Frees the slack left by growth (the zone is immutable once built).
    pub fn shrink(&mut self) {
        self.arena.shrink_to_fit();
        let (arena, hasher) = (&self.arena, &self.hasher);
        self.table
            .shrink_to_fit(|&(o, _)| hasher.hash_one(Self::key(arena, o)));
    }

    /// Bytes held (for load reports).
    pub fn heap_bytes(&self) -> usize {
        self.arena.capacity() + self.table.capacity() * 13
    }
}

/// Longest-prefix match over IPv4 and IPv6 networks: one hash map per prefix
/// length present, probed from the longest. Used for org networks and RPZ
/// client-IP / response-IP triggers, which are few compared with names.
#[derive(Debug, Clone)]
pub struct IpTable<T> {
    v4: Vec<(u8, HashMap<u32, T>)>,
    v6: Vec<(u8, HashMap<u128, T>)>,
}

impl<T> Default for IpTable<T> {
    fn default() -> Self {
        Self {
            v4: Vec::new(),
            v6: Vec::new(),
        }
    }
}

fn mask4(len: u8) -> u32 {
    if len == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(len))
    }
}

fn mask6(len: u8) -> u128 {
    if len == 0 {
        0
    } else {
        u128::MAX << (128 - u32::from(len))
    }
}

impl<T> IpTable<T> {
    pub fn is_empty(&self) -> bool {
        self.v4.is_empty() && self.v6.is_empty()
    }

    /// Inserts `net` unless present (the first insert wins); returns whether
    /// it was inserted.
    pub fn insert(&mut self, net: IpNet, value: T) -> bool {
        fn slot<K, T>(v: &mut Vec<(u8, HashMap<K, T>)>, len: u8) -> &mut HashMap<K, T> {
            let i = match v.iter().position(|(l, _)| *l == len) {
                Some(i) => i,
                None => {
                    v.push((len, HashMap::new()));
                    // Longest prefix first, so the first hit is the best.
                    v.sort_by_key(|e| std::cmp::Reverse(e.0));
                    v.iter().position(|(l, _)| *l == len).unwrap_or(0)
                }
            };
            &mut v[i].1
        }
        match net {
            IpNet::V4(n) => {
                let len = n.prefix_len();
                let key = u32::from(n.addr()) & mask4(len);
                let m = slot(&mut self.v4, len);
                if m.contains_key(&key) {
                    return false;
                }
                m.insert(key, value);
            }
            IpNet::V6(n) => {
                let len = n.prefix_len();
                let key = u128::from(n.addr()) & mask6(len);
                let m = slot(&mut self.v6, len);
                if m.contains_key(&key) {
                    return false;
                }
                m.insert(key, value);
            }
        }
        true
    }

    /// Mutable access to the value stored for exactly `net`.
    pub fn get_exact_mut(&mut self, net: IpNet) -> Option<&mut T> {
        match net {
            IpNet::V4(n) => {
                let len = n.prefix_len();
                let key = u32::from(n.addr()) & mask4(len);
                self.v4.iter_mut().find(|(l, _)| *l == len)?.1.get_mut(&key)
            }
            IpNet::V6(n) => {
                let len = n.prefix_len();
                let key = u128::from(n.addr()) & mask6(len);
                self.v6.iter_mut().find(|(l, _)| *l == len)?.1.get_mut(&key)
            }
        }
    }

    /// The value of the longest network holding `ip`, and that network.
    /// An IPv4-mapped IPv6 address is looked up as IPv4.
    pub fn lookup(&self, ip: IpAddr) -> Option<(&T, IpNet)> {
        let ip = match ip {
            IpAddr::V6(v6) => v6
                .to_ipv4_mapped()
                .map(IpAddr::V4)
                .unwrap_or(IpAddr::V6(v6)),
            v4 => v4,
        };
        match ip {
            IpAddr::V4(a) => {
                let a = u32::from(a);
                self.v4.iter().find_map(|(len, m)| {
                    let key = a & mask4(*len);
                    m.get(&key).map(|v| {
                        let net = Ipv4Net::new(key.into(), *len).map(IpNet::V4);
                        (v, net.unwrap_or_default())
                    })
                })
            }
            IpAddr::V6(a) => {
                let a = u128::from(a);
                self.v6.iter().find_map(|(len, m)| {
                    let key = a & mask6(*len);
                    m.get(&key).map(|v| {
                        let net = Ipv6Net::new(key.into(), *len).map(IpNet::V6);
                        (v, net.unwrap_or_default())
                    })
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_table_first_insert_wins() {
        let mut t = NameTable::new();
        assert_eq!(t.insert_if_absent(b"\x01a\x00", false, 1), 1);
        assert_eq!(t.insert_if_absent(b"\x01a\x00", false, 2), 1);
        assert_eq!(t.insert_if_absent(b"\x01a\x00", true, 5), 5);
        assert_eq!(t.insert_if_absent(b"\x01b\x00", true, 3), 3);
        assert_eq!(t.get(b"\x01a\x00"), Some(Slot { exact: 1, wild: 5 }));
        assert_eq!(
            t.get(b"\x01b\x00"),
            Some(Slot {
                exact: NONE,
                wild: 3
            })
        );
        assert_eq!(t.get(b"\x01c\x00"), None);
        for i in 0..10_000u32 {
            let name = format!("\x05{i:05}\x00");
            t.insert_if_absent(name.as_bytes(), false, i);
        }
        t.shrink();
        assert_eq!(t.get(b"\x0500042\x00").map(|s| s.exact), Some(42));
        assert_eq!(t.len(), 10_002);
    }

    #[test]
    fn get_or_insert_with_keeps_the_first_value_and_calls_value_only_when_unset() {
        let mut t = NameTable::new();
        t.reserve(4, 64);
        assert_eq!(t.get_or_insert_with(b"\x01a\x00", false, || 1), Err(1));
        assert_eq!(
            t.get_or_insert_with(b"\x01a\x00", false, || panic!("set already")),
            Ok(1)
        );
        assert_eq!(t.get_or_insert_with(b"\x01a\x00", true, || 7), Err(7));
        assert_eq!(t.get(b"\x01a\x00"), Some(Slot { exact: 1, wild: 7 }));
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn longest_prefix_wins() {
        let mut t = IpTable::default();
        assert!(t.insert("10.0.0.0/8".parse().expect("net"), "a"));
        assert!(t.insert("10.1.0.0/16".parse().expect("net"), "b"));
        assert!(!t.insert("10.1.0.0/16".parse().expect("net"), "c"));
        assert!(t.insert("::/0".parse().expect("net"), "v6"));
        let (v, net) = t.lookup("10.1.2.3".parse().expect("ip")).expect("hit");
        assert_eq!((*v, net.to_string().as_str()), ("b", "10.1.0.0/16"));
        assert_eq!(
            t.lookup("10.2.0.1".parse().expect("ip")).map(|x| *x.0),
            Some("a")
        );
        assert_eq!(
            t.lookup("11.0.0.1".parse().expect("ip")).map(|x| *x.0),
            None
        );
        assert_eq!(
            t.lookup("::1".parse().expect("ip")).map(|x| *x.0),
            Some("v6")
        );
        assert_eq!(
            t.lookup("::ffff:10.1.0.1".parse().expect("ip"))
                .map(|x| *x.0),
            Some("b")
        );
    }
}
