//! Scoring and lifecycle: how much an indicator is worth now.
//!
//! The score is the indicator's confidence (0–100) halved every
//! *half-life* since it was last seen:
//!
//! ```text
//! score = confidence × 0.5 ^ ((now − last_seen) / half_life)
//! ```
//!
//! and 0 once it is no longer active (revoked, context only, or past
//! `valid_until`). Infrastructure changes hands at different speeds, so the
//! default half-lives differ by kind ([`ScoreConfig::default`]): IP
//! addresses and CIDRs 14 days (re-assigned quickly, shared hosting), domains,
//! URLs and e-mail addresses 60 days, hashes and file names 365 days (a
//! file's hash never changes meaning). A re-observation resets the clock
//! ([`Indicator::observe`]); a confirmed true positive also extends
//! `valid_until` ([`Indicator::confirm`]).

use time::{Duration, OffsetDateTime};

use crate::model::{Indicator, IndicatorKind};

/// Half-lives of the score decay, by family of kind.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScoreConfig {
    pub ip_half_life: Duration,
    pub domain_half_life: Duration,
    pub hash_half_life: Duration,
}

impl Default for ScoreConfig {
    fn default() -> Self {
        ScoreConfig {
            ip_half_life: Duration::days(14),
            domain_half_life: Duration::days(60),
            hash_half_life: Duration::days(365),
        }
    }
}

impl ScoreConfig {
    /// The same half-life for every kind.
    pub fn uniform(half_life: Duration) -> ScoreConfig {
        ScoreConfig {
            ip_half_life: half_life,
            domain_half_life: half_life,
            hash_half_life: half_life,
        }
    }

    pub fn half_life(&self, kind: IndicatorKind) -> Duration {
        match kind {
            IndicatorKind::Ipv4 | IndicatorKind::Ipv6 | IndicatorKind::Cidr => self.ip_half_life,
            IndicatorKind::Domain { .. } | IndicatorKind::Url | IndicatorKind::Email => {
                self.domain_half_life
            }
            IndicatorKind::Md5
            | IndicatorKind::Sha1
            | IndicatorKind::Sha256
            | IndicatorKind::FileName => self.hash_half_life,
        }
    }
}

/// [`Indicator::score`] with the default half-lives.
pub fn score(indicator: &Indicator, now: OffsetDateTime) -> f32 {
    indicator.score(now, &ScoreConfig::default())
}

impl Indicator {
    /// Used for detection at `now`: not revoked, not context only, and not
    /// past `valid_until`.
    pub fn is_active(&self, now: OffsetDateTime) -> bool {
        self.detection && !self.revoked && self.valid_until.is_none_or(|end| now < end)
    }

    /// 0–100: the confidence decayed by the time since `last_seen`; 0 when
    /// not active. A `last_seen` in the future counts as now.
    pub fn score(&self, now: OffsetDateTime, cfg: &ScoreConfig) -> f32 {
        if !self.is_active(now) {
            return 0.0;
        }
        let age = (now - self.last_seen).max(Duration::ZERO);
        let half = cfg.half_life(self.kind).as_seconds_f64();
        let factor = if half <= 0.0 {
            // A zero half-life means "only what was seen just now counts".
            if age.is_zero() {
                1.0
            } else {
                0.0
            }
        } else {
            0.5f64.powf(age.as_seconds_f64() / half)
        };
        (f64::from(self.confidence.min(100)) * factor) as f32
    }

    /// Seen again at `at` (in a feed or in telemetry): `last_seen` moves
    /// forward, so the score starts decaying from full confidence again.
    pub fn observe(&mut self, at: OffsetDateTime) {
        self.last_seen = self.last_seen.max(at);
        self.first_seen = self.first_seen.min(at);
    }

    /// An analyst confirmed a sighting at `at` as a true positive: observed
    /// again, and kept valid for at least `extend` after `at` (an indicator
    /// without an end keeps none).
    pub fn confirm(&mut self, at: OffsetDateTime, extend: Duration) {
        self.observe(at);
        if let Some(end) = self.valid_until {
            self.valid_until = Some(end.max(at + extend));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Tlp;

    fn ind(kind: IndicatorKind) -> Indicator {
        let mut i = Indicator::new(kind, "x".into(), OffsetDateTime::UNIX_EPOCH);
        i.confidence = 80;
        i.tlp = Tlp::Green;
        i
    }

    #[test]
    fn decays_by_half_life_per_kind() {
        let t0 = OffsetDateTime::UNIX_EPOCH;
        let ip = ind(IndicatorKind::Ipv4);
        assert_eq!(score(&ip, t0), 80.0);
        assert!((score(&ip, t0 + Duration::days(14)) - 40.0).abs() < 1e-3);
        assert!((score(&ip, t0 + Duration::days(28)) - 20.0).abs() < 1e-3);
        let dom = ind(IndicatorKind::Domain { exact: true });
        assert!((score(&dom, t0 + Duration::days(60)) - 40.0).abs() < 1e-3);
        let h = ind(IndicatorKind::Sha256);
        assert!(score(&h, t0 + Duration::days(60)) > 70.0);
        // Future last_seen (clock skew) is not a bonus.
        assert_eq!(score(&ip, t0 - Duration::days(3)), 80.0);
        let cfg = ScoreConfig::uniform(Duration::days(1));
        assert!((ip.score(t0 + Duration::days(2), &cfg) - 20.0).abs() < 1e-3);
    }

    #[test]
    fn lifecycle() {
        let t0 = OffsetDateTime::UNIX_EPOCH;
        let mut i = ind(IndicatorKind::Ipv4);
        i.valid_until = Some(t0 + Duration::days(10));
        assert!(i.is_active(t0 + Duration::days(9)));
        assert!(!i.is_active(t0 + Duration::days(10)));
        assert_eq!(score(&i, t0 + Duration::days(11)), 0.0);

        i.observe(t0 + Duration::days(5));
        assert_eq!(i.last_seen, t0 + Duration::days(5));
        assert_eq!(score(&i, t0 + Duration::days(5)), 80.0);
        // An older observation does not move last_seen back.
        i.observe(t0 + Duration::days(1));
        assert_eq!(i.last_seen, t0 + Duration::days(5));

        i.confirm(t0 + Duration::days(9), Duration::days(30));
        assert_eq!(i.valid_until, Some(t0 + Duration::days(39)));
        assert!(i.is_active(t0 + Duration::days(38)));
        // Confirming never shortens validity.
        i.confirm(t0 + Duration::days(9), Duration::days(1));
        assert_eq!(i.valid_until, Some(t0 + Duration::days(39)));

        i.detection = false;
        assert!(!i.is_active(t0 + Duration::days(10)));
        i.detection = true;
        i.revoked = true;
        assert_eq!(score(&i, t0 + Duration::days(10)), 0.0);
    }
}
