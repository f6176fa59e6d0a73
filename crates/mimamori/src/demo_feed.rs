//! Generated telemetry for the demo: every org's DNS, proxy, endpoint and
//! cloud activity, with a few planted attacks:
//!
//! - one command-and-control domain queried from three orgs (MOF, MHLW and
//!   JAXA): the cross-org campaign a central SOC exists to see;
//! - an encoded PowerShell download cradle at METI;
//! - a payload fetched over plain HTTP from a bare IP at NICT;
//! - a cloud console login without MFA, followed by IAM changes, at MEXT.
//!
//! Records are written as NDJSON lines and go through the same parser and
//! ingest pipeline as a sensor's HTTP submission.

use mimamori_core::Org;
use mimamori_ingest::Ingest;
use mimamori_parse::{Format, LineParser};
use serde_json::{json, Value};
use std::time::Duration;

/// The planted C2 domain, for the demo's printed hints.
pub const C2_DOMAIN: &str = "update-check.cdn-telemetry.example";

const BENIGN_DOMAINS: &[&str] = &[
    "www.e-gov.go.jp",
    "outlook.office365.com",
    "login.microsoftonline.com",
    "www.google.com",
    "update.microsoft.com",
    "ocsp.digicert.com",
    "www.nhk.or.jp",
    "teams.microsoft.com",
    "slack.com",
    "github.com",
    "www.yahoo.co.jp",
    "time.windows.com",
];
/// (process name, image path, command line) of everyday processes.
const BENIGN_PROCESSES: &[(&str, &str, &str)] = &[
    (
        "explorer.exe",
        "C:\\Windows\\explorer.exe",
        "C:\\Windows\\Explorer.EXE",
    ),
    (
        "OUTLOOK.EXE",
        "C:\\Program Files\\Microsoft Office\\root\\Office16\\OUTLOOK.EXE",
        "\"C:\\Program Files\\Microsoft Office\\root\\Office16\\OUTLOOK.EXE\"",
    ),
    (
        "chrome.exe",
        "C:\\Program Files\\Google\\Chrome\\Application\\chrome.exe",
        "\"C:\\Program Files\\Google\\Chrome\\Application\\chrome.exe\" --type=renderer",
    ),
    (
        "svchost.exe",
        "C:\\Windows\\System32\\svchost.exe",
        "C:\\Windows\\system32\\svchost.exe -k netsvcs -p",
    ),
    (
        "Teams.exe",
        "C:\\Users\\user\\AppData\\Local\\Microsoft\\Teams\\current\\Teams.exe",
        "\"C:\\Users\\user\\AppData\\Local\\Microsoft\\Teams\\current\\Teams.exe\"",
    ),
];

/// A small deterministic generator (xorshift): the demo is reproducible.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[(self.next() % items.len() as u64) as usize]
    }
}

/// An address inside the org's first declared private range.
fn host_ip(org: &Org, rng: &mut Rng) -> String {
    let net = org
        .networks
        .iter()
        .find(|n| n.to_string().starts_with("10."))
        .or(org.networks.first());
    match net.map(|n| n.network().to_string()) {
        Some(base) => {
            let parts: Vec<&str> = base.split('.').collect();
            if parts.len() == 4 {
                format!(
                    "{}.{}.{}.{}",
                    parts[0],
                    parts[1],
                    1 + rng.next() % 20,
                    10 + rng.next() % 200
                )
            } else {
                base
            }
        }
        None => "10.0.0.10".into(),
    }
}

fn records(org: &Org, tick: u64, rng: &mut Rng) -> Vec<Value> {
    let now = mimamori_core::now_millis();
    let mut out = vec![];
    let host = |rng: &mut Rng| format!("{}-pc{:03}", org.slug, rng.next() % 300);
    for _ in 0..20 {
        out.push(json!({"time": now, "class": "dns_activity", "source": "pdns.query",
            "src_ip": host_ip(org, rng), "dns_query": rng.pick(BENIGN_DOMAINS), "dns_qtype": "A", "dns_rcode": "NOERROR"}));
    }
    for _ in 0..5 {
        let d = rng.pick(BENIGN_DOMAINS);
        out.push(json!({"time": now, "class": "http_activity", "source": "squid",
            "src_ip": host_ip(org, rng), "url": format!("https://{d}/"), "http_host": d, "http_method": "CONNECT", "http_status": 200}));
    }
    for _ in 0..3 {
        let (name, image, cmd) = rng.pick(BENIGN_PROCESSES);
        out.push(json!({"time": now, "class": "process_activity", "source": "windows.sysmon",
            "Channel": "Microsoft-Windows-Sysmon/Operational",
            "hostname": host(rng), "process_name": name, "process_cmdline": cmd, "user": format!("{}\\user{}", org.slug.to_uppercase(), rng.next() % 50),
            "EventID": 1, "Image": image, "CommandLine": cmd}));
    }
    // Planted attacks, every tenth tick so they stand out in volume.
    if tick % 10 == 3 {
        match org.slug.as_str() {
            "mof" | "mhlw" | "jaxa" => out.push(json!({"time": now, "class": "dns_activity", "source": "pdns.query",
                "src_ip": host_ip(org, rng), "dns_query": C2_DOMAIN, "dns_qtype": "A", "dns_rcode": "NOERROR", "dns_answers": ["192.0.2.66"]})),
            "meti" => {
                let cmd = "powershell.exe -NoP -W Hidden -Enc SQBFAFgAIAAoAE4AZQB3AC0ATwBiAGoAZQBjAHQAIABOAGUAdAAuAFcAZQBiAEMAbABpAGUAbgB0ACkA";
                out.push(json!({"time": now, "class": "process_activity", "source": "windows.sysmon",
                    "Channel": "Microsoft-Windows-Sysmon/Operational", "Computer": "meti-pc042",
                    "hostname": "meti-pc042", "process_name": "powershell.exe", "process_cmdline": cmd, "parent_process_name": "WINWORD.EXE",
                    "user": "METI\\user7", "EventID": 1, "Image": "C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe",
                    "ParentImage": "C:\\Program Files\\Microsoft Office\\root\\Office16\\WINWORD.EXE", "CommandLine": cmd}));
            }
            "nict" => out.push(json!({"time": now, "class": "http_activity", "source": "squid",
                "src_ip": host_ip(org, rng), "url": "http://192.0.2.66/dl/invoice.exe", "http_host": "192.0.2.66", "http_method": "GET", "http_status": 200})),
            "mext" => {
                for (op, status) in [("ConsoleLogin", "success"), ("CreateAccessKey", "success"), ("AttachUserPolicy", "success")] {
                    out.push(json!({"time": now, "class": "api_activity", "source": "cloudtrail",
                        "src_ip": "198.18.0.77", "api_operation": op, "api_service": "iam.amazonaws.com", "user": "arn:aws:iam::111122223333:user/ops-admin",
                        "cloud_account": "111122223333", "cloud_region": "ap-northeast-1", "status": status,
                        "additionalEventData": {"MFAUsed": "No"}}));
                }
            }
            _ => {}
        }
    }
    out
}

/// Feeds every org's telemetry once a second until the process stops.
pub async fn run(ingest: Ingest, orgs: Vec<Org>) {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut tick = 0u64;
    let mut interval = tokio::time::interval(Duration::from_secs(1));
    loop {
        interval.tick().await;
        for org in orgs.iter().filter(|o| o.parent_id.is_some()) {
            let mut parser = LineParser::new(Format::Ndjson);
            let bodies: Vec<_> = records(org, tick, &mut rng)
                .iter()
                .filter_map(|r| {
                    let line = serde_json::to_vec(r).ok()?;
                    parser.push_line(&line)?.ok()
                })
                .collect();
            if let Err(e) = ingest.submit(org.id.as_str(), bodies).await {
                tracing::warn!(error = %e, org = %org.slug, "demo telemetry not stored");
                return;
            }
        }
        tick += 1;
    }
}
