//! Delivery of alert notifications.
//!
//! The store writes what is owed into its outbox in the same transaction
//! that opens an alert; [`Notifier::run`] polls the outbox, delivers each
//! item on its channel and marks it done, or records the error and retries
//! later with exponential backoff (up to [`mimamori_store::MAX_ATTEMPTS`]).
//! Delivery is at least once: a crash after sending and before marking
//! sends again, so receivers should de-duplicate on the alert id (it is in
//! every payload).
//!
//! Channels:
//! - **webhook**: `POST` of the JSON payload with
//!   `X-Mimamori-Signature: sha256=<hex HMAC-SHA256(secret, timestamp + "." + body)>`
//!   and `X-Mimamori-Timestamp` (Unix seconds), so receivers can check both
//!   origin and freshness;
//! - **syslog**: one RFC 5424 message whose MSG is a CEF record, over TCP
//!   (newline-framed) or UDP, to the org's own SIEM;
//! - **email**: a plain-text message through the SOC's SMTP relay.

use hmac::{Hmac, Mac};
use mimamori_store::{ChannelKind, OutboxItem, Store};
use serde_json::Value;
use sha2::Sha256;
use std::time::Duration;
use tokio::io::AsyncWriteExt;

/// How the notifier reaches the outside world.
#[derive(Debug, Clone)]
pub struct NotifyConfig {
    /// SMTP relay for e-mail channels: `smtp://host:port` (plain, for a
    /// local relay), `smtp+starttls://host:port` or `smtps://host:port`.
    pub smtp_url: Option<String>,
    /// The From address of e-mails.
    pub smtp_from: String,
    /// How often the outbox is polled.
    pub poll: Duration,
    /// Per-delivery timeout.
    pub timeout: Duration,
    /// Host name put in syslog headers.
    pub hostname: String,
    /// Which addresses webhooks may be posted to (internal ones are
    /// refused unless `[security] allow_fetch_networks` allows them).
    pub fetch: mimamori_fetch::FetchPolicy,
}

impl Default for NotifyConfig {
    fn default() -> Self {
        NotifyConfig {
            smtp_url: None,
            smtp_from: "mimamori@localhost".into(),
            poll: Duration::from_secs(1),
            timeout: Duration::from_secs(10),
            hostname: "mimamori".into(),
            fetch: Default::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    #[error("webhook: {0}")]
    Http(String),
    #[error("syslog: {0}")]
    Syslog(String),
    #[error("e-mail: {0}")]
    Email(String),
    #[error("timed out after {0:?}")]
    Timeout(Duration),
}

/// The delivery worker.
pub struct Notifier {
    store: Store,
    config: NotifyConfig,
    http: mimamori_fetch::Fetcher,
}

impl Notifier {
    pub fn new(store: Store, config: NotifyConfig) -> Result<Notifier, DeliveryError> {
        let http = mimamori_fetch::Fetcher::new(
            config.fetch.clone(),
            reqwest::Client::builder()
                .timeout(config.timeout)
                .user_agent(concat!("mimamori/", env!("CARGO_PKG_VERSION"))),
        )
        .map_err(|e| DeliveryError::Http(e.to_string()))?;
        Ok(Notifier {
            store,
            config,
            http,
        })
    }

    /// Delivers what is due until `shutdown` resolves.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        loop {
            match self.deliver_due().await {
                Ok(n) if n > 0 => continue,
                Ok(_) => {}
                Err(e) => tracing::error!(error = %e, "cannot read the notification outbox"),
            }
            tokio::select! {
                _ = &mut shutdown => return,
                _ = tokio::time::sleep(self.config.poll) => {}
            }
        }
    }

    /// Delivers every item due now; returns how many were attempted.
    pub async fn deliver_due(&self) -> Result<usize, mimamori_store::StoreError> {
        let items = self.store.outbox_due(100).await?;
        let n = items.len();
        for item in items {
            let result = tokio::time::timeout(self.config.timeout, self.deliver(&item))
                .await
                .unwrap_or(Err(DeliveryError::Timeout(self.config.timeout)));
            match result {
                Ok(()) => self.store.outbox_done(&item.id).await?,
                Err(e) => {
                    // 2 s, 4 s, 8 s, … capped at 10 minutes.
                    let backoff = (2_000i64 << item.attempts.clamp(0, 20)).min(600_000);
                    tracing::warn!(channel = %item.channel_id, attempt = item.attempts + 1, error = %e, "notification delivery failed; will retry");
                    self.store
                        .outbox_failed(&item.id, &e.to_string(), backoff)
                        .await?;
                }
            }
        }
        Ok(n)
    }

    async fn deliver(&self, item: &OutboxItem) -> Result<(), DeliveryError> {
        match item.kind {
            ChannelKind::Webhook => self.webhook(item).await,
            ChannelKind::Syslog => self.syslog(item).await,
            ChannelKind::Email => self.email(item).await,
        }
    }

    async fn webhook(&self, item: &OutboxItem) -> Result<(), DeliveryError> {
        let body =
            serde_json::to_vec(&item.payload).map_err(|e| DeliveryError::Http(e.to_string()))?;
        let ts = time::OffsetDateTime::now_utc().unix_timestamp().to_string();
        let mut req = self
            .http
            .http()
            .post(&item.target)
            .header("content-type", "application/json")
            .header("x-mimamori-timestamp", &ts)
            .header("x-mimamori-delivery", &item.id);
        if let Some(secret) = &item.secret {
            req = req.header(
                "x-mimamori-signature",
                format!("sha256={}", sign(secret, &ts, &body)),
            );
        }
        let resp = self
            .http
            .send(req.body(body))
            .await
            .map_err(|e| DeliveryError::Http(e.to_string()))?;
        if resp.status().is_success() {
            Ok(())
        } else {
            Err(DeliveryError::Http(format!(
                "{} answered {}",
                item.target,
                resp.status()
            )))
        }
    }

    async fn syslog(&self, item: &OutboxItem) -> Result<(), DeliveryError> {
        let line = syslog_line(&self.config.hostname, &item.payload);
        let err = |e: std::io::Error| DeliveryError::Syslog(format!("{}: {e}", item.target));
        if let Some(addr) = item.target.strip_prefix("tcp://") {
            let mut s = tokio::net::TcpStream::connect(addr).await.map_err(err)?;
            s.write_all(line.as_bytes()).await.map_err(err)?;
            s.write_all(b"\n").await.map_err(err)?;
            s.shutdown().await.map_err(err)?;
            Ok(())
        } else if let Some(addr) = item.target.strip_prefix("udp://") {
            let s = tokio::net::UdpSocket::bind("0.0.0.0:0")
                .await
                .map_err(err)?;
            s.send_to(line.as_bytes(), addr).await.map_err(err)?;
            Ok(())
        } else {
            Err(DeliveryError::Syslog(format!(
                "{} is neither tcp:// nor udp://",
                item.target
            )))
        }
    }

    async fn email(&self, item: &OutboxItem) -> Result<(), DeliveryError> {
        use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
        let e = |x: &dyn std::fmt::Display| DeliveryError::Email(x.to_string());
        let Some(url) = &self.config.smtp_url else {
            return Err(DeliveryError::Email(
                "no SMTP relay is configured ([notify] smtp_url)".into(),
            ));
        };
        let (subject, text) = email_text(&item.payload);
        let mut msg = Message::builder()
            .from(self.config.smtp_from.parse().map_err(|x| e(&x))?)
            .subject(subject);
        for to in item.target.split(',') {
            msg = msg.to(to.trim().parse().map_err(|x| e(&x))?);
        }
        let msg = msg.body(text).map_err(|x| e(&x))?;
        let transport: AsyncSmtpTransport<Tokio1Executor> =
            if let Some(rest) = url.strip_prefix("smtp://") {
                let (host, port) = host_port(rest, 25)?;
                AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
                    .port(port)
                    .timeout(Some(self.config.timeout))
                    .build()
            } else if let Some(rest) = url.strip_prefix("smtp+starttls://") {
                let (host, port) = host_port(rest, 587)?;
                AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&host)
                    .map_err(|x| e(&x))?
                    .port(port)
                    .timeout(Some(self.config.timeout))
                    .build()
            } else if let Some(rest) = url.strip_prefix("smtps://") {
                let (host, port) = host_port(rest, 465)?;
                AsyncSmtpTransport::<Tokio1Executor>::relay(&host)
                    .map_err(|x| e(&x))?
                    .port(port)
                    .timeout(Some(self.config.timeout))
                    .build()
            } else {
                return Err(DeliveryError::Email(format!(
                    "{url:?}: expected smtp://, smtp+starttls:// or smtps://"
                )));
            };
        transport.send(msg).await.map_err(|x| e(&x))?;
        Ok(())
    }
}

fn host_port(s: &str, default: u16) -> Result<(String, u16), DeliveryError> {
    match s.rsplit_once(':') {
        Some((h, p)) => p
            .trim_end_matches('/')
            .parse()
            .map(|p| (h.to_string(), p))
            .map_err(|_| DeliveryError::Email(format!("{p:?} is not a port number"))),
        None => Ok((s.trim_end_matches('/').to_string(), default)),
    }
}

/// `hex(HMAC-SHA256(secret, timestamp + "." + body))`: the webhook
/// signature. Public so receivers written in Rust (and tests) can check it.
pub fn sign(secret: &str, timestamp: &str, body: &[u8]) -> String {
    // HMAC accepts keys of any length; this cannot fail.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
        return String::new();
    };
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

fn str_of<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    let mut cur = v;
    for p in path {
        cur = &cur[*p];
    }
    cur.as_str().unwrap_or("")
}

/// CEF severity 0–10 from ours.
fn cef_severity(s: &str) -> u8 {
    match s {
        "critical" => 10,
        "high" => 8,
        "medium" => 5,
        "low" => 3,
        _ => 1,
    }
}

/// CEF header fields escape `|` and `\`; extension values escape `=`,
/// `\` and newlines (CEF rev. 25).
fn cef_header(s: &str) -> String {
    s.replace('\\', "\\\\").replace('|', "\\|")
}

fn cef_value(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('=', "\\=")
        .replace('\n', "\\n")
        .replace('\r', "\\r")
}

/// The RFC 5424 message carrying a CEF record of the payload.
pub fn syslog_line(hostname: &str, payload: &Value) -> String {
    let now = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| "-".into());
    let kind = str_of(payload, &["type"]);
    let (sig, name, sev, ext) = match kind {
        "alert" => {
            let a = &payload["alert"];
            (
                str_of(a, &["rule_id"]).to_string(),
                str_of(a, &["title"]).to_string(),
                cef_severity(str_of(a, &["severity"])),
                format!(
                    "externalId={} cs1Label=org cs1={} cs2Label=entity cs2={} cs3Label=kind cs3={} cnt={}",
                    cef_value(str_of(a, &["id"])),
                    cef_value(str_of(a, &["org_id"])),
                    cef_value(str_of(a, &["entity"])),
                    cef_value(str_of(a, &["kind"])),
                    a["event_ids"].as_array().map_or(0, Vec::len)
                ),
            )
        }
        "campaign" => {
            let c = &payload["campaign"];
            (
                str_of(c, &["key"]).to_string(),
                str_of(c, &["title"]).to_string(),
                cef_severity(str_of(c, &["severity"])),
                format!("externalId={}", cef_value(str_of(c, &["id"]))),
            )
        }
        _ => (
            "test".to_string(),
            "mimamori test notification".to_string(),
            1,
            format!("externalId={}", cef_value(str_of(payload, &["channel_id"]))),
        ),
    };
    format!(
        "<113>1 {now} {hostname} mimamori - {kind} - CEF:0|mimamori|mimamori|{}|{}|{}|{sev}|{ext}",
        env!("CARGO_PKG_VERSION"),
        cef_header(&sig),
        cef_header(&name),
    )
}

/// Subject and plain-text body of the e-mail for a payload.
pub fn email_text(payload: &Value) -> (String, String) {
    match str_of(payload, &["type"]) {
        "alert" => {
            let a = &payload["alert"];
            (
                format!(
                    "[mimamori] {} alert: {}",
                    str_of(a, &["severity"]),
                    str_of(a, &["title"])
                ),
                format!(
                    "A new alert was raised for your organization.\n\nTitle: {}\nSeverity: {}\nRule: {}\nEntity: {}\nAlert id: {}\n\nDetails:\n{}\n",
                    str_of(a, &["title"]),
                    str_of(a, &["severity"]),
                    str_of(a, &["rule_id"]),
                    str_of(a, &["entity"]),
                    str_of(a, &["id"]),
                    serde_json::to_string_pretty(a).unwrap_or_default()
                ),
            )
        }
        "campaign" => {
            let c = &payload["campaign"];
            (
                format!("[mimamori] campaign: {}", str_of(c, &["title"])),
                format!(
                    "The same activity was seen at several organizations.\n\nTitle: {}\nKey: {}\nCampaign id: {}\n",
                    str_of(c, &["title"]),
                    str_of(c, &["key"]),
                    str_of(c, &["id"])
                ),
            )
        }
        _ => (
            "[mimamori] test notification".into(),
            "This is a test of a mimamori notification channel.\n".into(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn cef_escapes_and_maps_severity() {
        let p = json!({"type": "alert", "alert": {"id": "a1", "rule_id": "r|1", "title": "x=y|z",
            "severity": "high", "org_id": "o", "entity": "h\\1", "kind": "sigma", "event_ids": ["e1", "e2"]}});
        let line = syslog_line("soc", &p);
        assert!(line.starts_with("<113>1 "), "{line}");
        assert!(line.contains("|r\\|1|x=y\\|z|8|"), "{line}");
        assert!(line.contains("cs2=h\\\\1"), "{line}");
        assert!(line.contains("cnt=2"), "{line}");
    }

    #[test]
    fn signature_is_hmac_sha256_over_timestamp_and_body() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        let sig = sign("Jefe", "what do ya want ", b"for nothing?");
        assert_ne!(sig, sign("Jefe", "what do ya want", b" for nothing?"));
        let whole = {
            let mut mac = Hmac::<Sha256>::new_from_slice(b"Jefe").unwrap();
            mac.update(b"what do ya want for nothing?");
            hex::encode(mac.finalize().into_bytes())
        };
        assert_eq!(
            whole,
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert_eq!(sig.len(), 64);
    }
}
