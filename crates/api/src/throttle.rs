//! Login throttling: repeated wrong passwords lock the account, and many
//! from one address lock that address, for a while (429 with
//! `Retry-After`). Checked before the password is, so a locked account
//! cannot be guessed at even with the right password. In memory: a
//! restart forgets, and a few servers behind one balancer count apart.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Limits on wrong passwords.
#[derive(Debug, Clone, Copy)]
pub struct LoginLimits {
    /// Wrong passwords for one account (org and user name) within
    /// `window` that lock it.
    pub account_failures: u32,
    /// Failed logins from one client address within `window` that lock it.
    pub address_failures: u32,
    pub window: Duration,
    /// How long a lock lasts.
    pub lockout: Duration,
}

impl Default for LoginLimits {
    fn default() -> Self {
        LoginLimits {
            account_failures: 5,
            address_failures: 20,
            window: Duration::from_secs(900),
            lockout: Duration::from_secs(900),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Account(String, String),
    Address(IpAddr),
}

#[derive(Debug)]
struct Entry {
    since: Instant,
    failures: u32,
    locked_until: Option<Instant>,
}

/// Entries kept at most (then the stale ones go, then the oldest).
const MAX_ENTRIES: usize = 100_000;

/// What is locked, for how much longer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Locked {
    /// "account" or "address".
    pub what: &'static str,
    pub retry_after: Duration,
}

#[derive(Debug, Default)]
pub struct LoginThrottle {
    limits: LoginLimits,
    entries: Mutex<HashMap<Key, Entry>>,
}

impl LoginThrottle {
    pub fn new(limits: LoginLimits) -> Self {
        LoginThrottle {
            limits,
            entries: Default::default(),
        }
    }

    fn keys(org: &str, username: &str, addr: Option<IpAddr>) -> Vec<Key> {
        let mut keys = vec![Key::Account(org.to_lowercase(), username.to_lowercase())];
        if let Some(a) = addr {
            keys.push(Key::Address(a));
        }
        keys
    }

    /// Refuses an attempt while its account or address is locked.
    pub fn check(&self, org: &str, username: &str, addr: Option<IpAddr>) -> Result<(), Locked> {
        let now = Instant::now();
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        for key in Self::keys(org, username, addr) {
            if let Some(until) = entries.get(&key).and_then(|e| e.locked_until) {
                if until > now {
                    return Err(Locked {
                        what: match key {
                            Key::Account(..) => "account",
                            Key::Address(_) => "address",
                        },
                        retry_after: until - now,
                    });
                }
            }
        }
        Ok(())
    }

    /// Counts a failed attempt; returns the locks it starts.
    pub fn failed(&self, org: &str, username: &str, addr: Option<IpAddr>) -> Vec<Locked> {
        let now = Instant::now();
        let l = self.limits;
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= MAX_ENTRIES {
            entries
                .retain(|_, e| e.locked_until.is_some_and(|u| u > now) || now - e.since < l.window);
            if entries.len() >= MAX_ENTRIES {
                if let Some(oldest) = entries
                    .iter()
                    .min_by_key(|(_, e)| e.since)
                    .map(|(k, _)| k.clone())
                {
                    entries.remove(&oldest);
                }
            }
        }
        let mut started = vec![];
        for key in Self::keys(org, username, addr) {
            let (what, max) = match key {
                Key::Account(..) => ("account", l.account_failures),
                Key::Address(_) => ("address", l.address_failures),
            };
            let e = entries.entry(key).or_insert(Entry {
                since: now,
                failures: 0,
                locked_until: None,
            });
            if now - e.since > l.window {
                e.since = now;
                e.failures = 0;
            }
            e.failures += 1;
            if e.failures >= max.max(1) {
                e.locked_until = Some(now + l.lockout);
                e.failures = 0;
                e.since = now;
                started.push(Locked {
                    what,
                    retry_after: l.lockout,
                });
            }
        }
        started
    }

    /// A successful login clears its account's count (not its address's).
    pub fn succeeded(&self, org: &str, username: &str) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries.remove(&Key::Account(org.to_lowercase(), username.to_lowercase()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locks_after_the_limit_and_expires() {
        let t = LoginThrottle::new(LoginLimits {
            account_failures: 3,
            address_failures: 5,
            window: Duration::from_secs(60),
            lockout: Duration::from_millis(50),
        });
        let ip: Option<IpAddr> = "192.0.2.1".parse().ok();
        for _ in 0..2 {
            assert!(t.check("o", "u", ip).is_ok());
            assert!(t.failed("o", "u", ip).is_empty());
        }
        assert_eq!(t.failed("o", "U", ip)[0].what, "account");
        assert_eq!(t.check("O", "u", ip).unwrap_err().what, "account");
        // Other accounts from the same address, until the address locks.
        assert!(t.check("o", "v", ip).is_ok());
        t.failed("o", "v", ip);
        assert_eq!(t.failed("o", "w", ip)[0].what, "address");
        assert_eq!(t.check("o", "x", ip).unwrap_err().what, "address");
        assert!(t.check("o", "x", "192.0.2.2".parse().ok()).is_ok());
        std::thread::sleep(Duration::from_millis(60));
        assert!(t.check("o", "u", ip).is_ok());
    }
}
