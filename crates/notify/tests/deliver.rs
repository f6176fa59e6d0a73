//! Notifications end to end: an alert opened in the store is delivered to a
//! webhook (signature checked), a syslog receiver and an SMTP sink, all real
//! sockets on loopback; failures are retried, not lost.

use mimamori_core::org::OrgProfile;
use mimamori_core::{NewOrg, OrgKind, Validated};
use mimamori_notify::{sign, Notifier, NotifyConfig};
use mimamori_store::{
    AlertKind, AuditActor, CampaignPolicy, ChannelKind, Detection, NewChannel, Severity, Store,
};
use serde_json::json;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

fn profile(name: &str) -> OrgProfile {
    NewOrg {
        slug: "x".into(),
        name: name.into(),
        ..Default::default()
    }
    .validate()
    .unwrap()
    .1
}

/// A minimal HTTP/1.1 server: records (headers, body) of each request and
/// answers with `status`.
async fn webhook_sink(status: u16) -> (String, Arc<Mutex<Vec<(String, Vec<u8>)>>>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let got = Arc::new(Mutex::new(vec![]));
    let g = got.clone();
    tokio::spawn(async move {
        loop {
            let Ok((s, _)) = l.accept().await else { return };
            let g = g.clone();
            tokio::spawn(async move {
                let mut r = BufReader::new(s);
                let mut head = String::new();
                loop {
                    let mut line = String::new();
                    if r.read_line(&mut line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    if line == "\r\n" {
                        break;
                    }
                    head.push_str(&line);
                }
                let len: usize = head
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().parse().unwrap())
                    })
                    .unwrap_or(0);
                let mut body = vec![0; len];
                r.read_exact(&mut body).await.unwrap();
                g.lock().unwrap().push((head, body));
                let resp = format!(
                    "HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                );
                let _ = r.get_mut().write_all(resp.as_bytes()).await;
            });
        }
    });
    (format!("http://{addr}/hook"), got)
}

/// Newline-framed syslog over TCP: records lines.
async fn syslog_sink() -> (String, Arc<Mutex<Vec<String>>>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let got = Arc::new(Mutex::new(vec![]));
    let g = got.clone();
    tokio::spawn(async move {
        loop {
            let Ok((s, _)) = l.accept().await else { return };
            let g = g.clone();
            tokio::spawn(async move {
                let mut lines = BufReader::new(s).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    g.lock().unwrap().push(line);
                }
            });
        }
    });
    (format!("tcp://{addr}"), got)
}

/// An SMTP sink speaking just enough of RFC 5321 for a client to deliver:
/// records (recipients, data) of each message.
async fn smtp_sink() -> (String, Arc<Mutex<Vec<(Vec<String>, String)>>>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let got = Arc::new(Mutex::new(vec![]));
    let g = got.clone();
    tokio::spawn(async move {
        loop {
            let Ok((s, _)) = l.accept().await else { return };
            let g = g.clone();
            tokio::spawn(async move {
                let (r, mut w) = s.into_split();
                let mut r = BufReader::new(r);
                w.write_all(b"220 sink ESMTP\r\n").await.unwrap();
                let mut rcpt = vec![];
                loop {
                    let mut line = String::new();
                    if r.read_line(&mut line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    let upper = line.to_ascii_uppercase();
                    if upper.starts_with("EHLO") || upper.starts_with("HELO") {
                        w.write_all(b"250-sink\r\n250 8BITMIME\r\n").await.unwrap();
                    } else if upper.starts_with("MAIL FROM") {
                        w.write_all(b"250 ok\r\n").await.unwrap();
                    } else if upper.starts_with("RCPT TO") {
                        rcpt.push(line.trim().to_string());
                        w.write_all(b"250 ok\r\n").await.unwrap();
                    } else if upper.starts_with("DATA") {
                        w.write_all(b"354 go\r\n").await.unwrap();
                        let mut data = String::new();
                        loop {
                            let mut l = String::new();
                            r.read_line(&mut l).await.unwrap();
                            if l == ".\r\n" {
                                break;
                            }
                            data.push_str(&l);
                        }
                        g.lock().unwrap().push((std::mem::take(&mut rcpt), data));
                        w.write_all(b"250 queued\r\n").await.unwrap();
                    } else if upper.starts_with("QUIT") {
                        let _ = w.write_all(b"221 bye\r\n").await;
                        return;
                    } else {
                        w.write_all(b"250 ok\r\n").await.unwrap();
                    }
                }
            });
        }
    });
    (format!("smtp://{addr}"), got)
}

#[tokio::test]
async fn alerts_reach_webhook_syslog_and_email_and_failures_retry() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&format!("sqlite://{}/db.sqlite", dir.path().display()))
        .await
        .unwrap();
    let op = AuditActor::local_operator();
    let root = store
        .bootstrap_root(&op, "soc", &profile("SOC"))
        .await
        .unwrap();
    let sup = store
        .org_create(&op, &root, "sup", OrgKind::Supervisor, &profile("S"))
        .await
        .unwrap();
    let a = store
        .org_create(&op, &sup, "a", OrgKind::Member, &profile("A"))
        .await
        .unwrap();
    let b = store
        .org_create(&op, &root, "b", OrgKind::Member, &profile("B"))
        .await
        .unwrap();

    let (hook_url, hooks) = webhook_sink(200).await;
    let (bad_url, bad_hooks) = webhook_sink(500).await;
    let (syslog_url, lines) = syslog_sink().await;
    let (smtp_url, mails) = smtp_sink().await;
    let secret = "a-webhook-secret-of-some-length";
    let chan =
        |org: &mimamori_core::Org, kind, target: &str, secret: Option<&str>, subtree| NewChannel {
            org_id: org.id.to_string(),
            kind,
            target: target.into(),
            secret: secret.map(str::to_string),
            min_severity: Severity::Medium,
            subtree,
        };
    store
        .channel_create(
            &op,
            &a,
            &chan(&a, ChannelKind::Webhook, &hook_url, Some(secret), false),
        )
        .await
        .unwrap();
    store
        .channel_create(
            &op,
            &a,
            &chan(&a, ChannelKind::Syslog, &syslog_url, None, false),
        )
        .await
        .unwrap();
    // The supervisor gets its sub-tree's alerts by e-mail.
    store
        .channel_create(
            &op,
            &sup,
            &chan(
                &sup,
                ChannelKind::Email,
                "soc@sup.example, duty@sup.example",
                None,
                true,
            ),
        )
        .await
        .unwrap();
    // b's webhook is down.
    store
        .channel_create(
            &op,
            &b,
            &chan(&b, ChannelKind::Webhook, &bad_url, Some(secret), false),
        )
        .await
        .unwrap();
    // Invalid channels are refused precisely.
    let err = store
        .channel_create(
            &op,
            &a,
            &chan(&a, ChannelKind::Webhook, &hook_url, None, false),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("secret"), "{err}");
    let err = store
        .channel_create(
            &op,
            &a,
            &chan(&a, ChannelKind::Syslog, "tcp://host", None, false),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("port"), "{err}");

    let detection = |org: &str, sev| Detection {
        org_id: org.into(),
        kind: AlertKind::Sigma,
        rule_id: "rule-1".into(),
        title: "Encoded PowerShell".into(),
        severity: sev,
        entity: "host-1".into(),
        attack: vec!["T1059.001".into()],
        context: json!({}),
        event_ids: vec!["e1".into()],
        time: mimamori_core::now_millis(),
        retro: false,
        campaign_key: None,
    };
    let policy = CampaignPolicy::default();
    let (rec, _) = store
        .alert_record(
            &detection(a.id.as_str(), Severity::High),
            3_600_000,
            &policy,
        )
        .await
        .unwrap();
    let alert_id = rec.alert_id().unwrap().to_string();
    // Below every channel's minimum: nothing owed.
    store
        .alert_record(
            &Detection {
                rule_id: "rule-low".into(),
                ..detection(a.id.as_str(), Severity::Low)
            },
            3_600_000,
            &policy,
        )
        .await
        .unwrap();
    store
        .alert_record(
            &detection(b.id.as_str(), Severity::High),
            3_600_000,
            &policy,
        )
        .await
        .unwrap();
    assert_eq!(store.outbox_backlog().await.unwrap(), (4, 0));

    let notifier = Notifier::new(
        store.clone(),
        NotifyConfig {
            smtp_url: Some(smtp_url),
            // The sinks are on loopback, which webhooks may not reach
            // unless allowed (see `webhooks_to_internal_addresses_are_refused`).
            fetch: mimamori_fetch::FetchPolicy::new(vec!["127.0.0.0/8".parse().unwrap()]),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(notifier.deliver_due().await.unwrap(), 4);

    // The webhook got the alert, signed.
    let (head, body) = hooks.lock().unwrap()[0].clone();
    let header = |name: &str| {
        head.lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
            })
            .unwrap()
    };
    let ts = header("x-mimamori-timestamp");
    assert_eq!(
        header("x-mimamori-signature"),
        format!("sha256={}", sign(secret, &ts, &body))
    );
    let payload: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(payload["alert"]["id"], alert_id.as_str());
    assert_eq!(payload["alert"]["org_id"], a.id.as_str());
    // Syslog got a CEF line for the same alert.
    let line = lines.lock().unwrap()[0].clone();
    assert!(line.contains("CEF:0|mimamori|mimamori|"), "{line}");
    assert!(line.contains(&format!("externalId={alert_id}")), "{line}");
    // The supervisor's e-mail channel got a's alert (sub-tree), to both
    // addresses, and not b's (b is not below it).
    let m = mails.lock().unwrap().clone();
    assert_eq!(m.len(), 1, "{m:?}");
    assert_eq!(m[0].0.len(), 2);
    assert!(m[0].1.contains("Encoded PowerShell"), "{}", m[0].1);
    // b's failing webhook was tried, and is owed again later, not lost.
    assert_eq!(bad_hooks.lock().unwrap().len(), 1);
    assert_eq!(store.outbox_backlog().await.unwrap(), (1, 0));
    assert_eq!(
        notifier.deliver_due().await.unwrap(),
        0,
        "the retry waits for its backoff"
    );
}

#[tokio::test]
async fn webhooks_to_internal_addresses_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&format!("sqlite://{}/db.sqlite", dir.path().display()))
        .await
        .unwrap();
    let op = AuditActor::local_operator();
    let root = store
        .bootstrap_root(&op, "soc", &profile("SOC"))
        .await
        .unwrap();
    let a = store
        .org_create(&op, &root, "a", OrgKind::Member, &profile("A"))
        .await
        .unwrap();
    let (hook_url, hooks) = webhook_sink(200).await;
    // By address and by a name that resolves to loopback, and the cloud
    // metadata address.
    let port = hook_url
        .rsplit(':')
        .next()
        .unwrap()
        .trim_end_matches("/hook");
    for target in [
        hook_url.clone(),
        format!("http://localhost:{port}/hook"),
        "http://169.254.169.254/latest/meta-data/".to_string(),
    ] {
        store
            .channel_create(
                &op,
                &a,
                &NewChannel {
                    org_id: a.id.to_string(),
                    kind: ChannelKind::Webhook,
                    target,
                    secret: Some("a-webhook-secret-of-some-length".into()),
                    min_severity: Severity::Medium,
                    subtree: false,
                },
            )
            .await
            .unwrap();
    }
    store
        .alert_record(
            &Detection {
                org_id: a.id.to_string(),
                kind: AlertKind::Sigma,
                rule_id: "rule-1".into(),
                title: "t".into(),
                severity: Severity::High,
                entity: "host-1".into(),
                attack: vec![],
                context: json!({}),
                event_ids: vec!["e1".into()],
                time: mimamori_core::now_millis(),
                retro: false,
                campaign_key: None,
            },
            3_600_000,
            &CampaignPolicy::default(),
        )
        .await
        .unwrap();
    assert_eq!(store.outbox_backlog().await.unwrap(), (3, 0));
    let notifier = Notifier::new(store.clone(), NotifyConfig::default()).unwrap();
    assert_eq!(notifier.deliver_due().await.unwrap(), 3);
    // Nothing reached the sink; all three are owed (failed), not done.
    assert!(hooks.lock().unwrap().is_empty());
    assert_eq!(store.outbox_backlog().await.unwrap(), (3, 0));
    // Allowed by the configuration, the loopback ones go through.
    let allowed = Notifier::new(
        store.clone(),
        NotifyConfig {
            fetch: mimamori_fetch::FetchPolicy::new(vec!["127.0.0.0/8".parse().unwrap()]),
            ..Default::default()
        },
    )
    .unwrap();
    let start = std::time::Instant::now();
    while hooks.lock().unwrap().len() < 2 {
        assert!(start.elapsed() < std::time::Duration::from_secs(15));
        allowed.deliver_due().await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert_eq!(hooks.lock().unwrap().len(), 2);
}
