//! Generated telemetry for the demo: every org's DNS, proxy, endpoint and
//! cloud activity, with a few planted attacks:
//!
//! - one command-and-control domain queried from three orgs (MOF, MHLW and
//!   JAXA): the cross-org campaign a central SOC exists to see;
//! - an encoded PowerShell download cradle at METI;
//! - a payload fetched over plain HTTP from a bare IP at NICT;
//! - a cloud console login without MFA, followed by IAM changes, at MEXT.
//!
//! Records are written as NDJSON lines (the cloud ones as AWS CloudTrail
//! records) and go through the same parsers and ingest pipeline as a
//! sensor's HTTP submission.

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
            _ => {}
        }
    }
    out
}

/// MEXT's planted cloud activity, as the CloudTrail records AWS writes: a
/// console sign-in without MFA (SigmaHQ's "AWS Successful Console Login
/// Without MFA" matches it), then an access key created and a policy
/// attached by the same user.
fn cloudtrail_records(org: &Org, tick: u64) -> Vec<Value> {
    if org.slug != "mext" || tick % 10 != 3 {
        return vec![];
    }
    let now = mimamori_core::millis_to_rfc3339(mimamori_core::now_millis());
    let identity = json!({"type": "IAMUser", "principalId": "AIDAEXAMPLEOPSADMIN",
        "arn": "arn:aws:iam::111122223333:user/ops-admin", "accountId": "111122223333", "userName": "ops-admin"});
    let common = |name: &str, source: &str| {
        json!({"eventVersion": "1.08", "eventTime": now, "eventName": name, "eventSource": source,
            "awsRegion": "ap-northeast-1", "sourceIPAddress": "198.18.0.77",
            "userAgent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64)", "userIdentity": identity,
            "recipientAccountId": "111122223333", "eventType": "AwsApiCall"})
    };
    let mut login = common("ConsoleLogin", "signin.amazonaws.com");
    login["eventType"] = json!("AwsConsoleSignIn");
    login["responseElements"] = json!({"ConsoleLogin": "Success"});
    login["additionalEventData"] = json!({"LoginTo": "https://console.aws.amazon.com/console/home",
        "MobileVersion": "No", "MFAUsed": "No"});
    let mut key = common("CreateAccessKey", "iam.amazonaws.com");
    key["requestParameters"] = json!({"userName": "ops-admin"});
    let mut policy = common("AttachUserPolicy", "iam.amazonaws.com");
    policy["requestParameters"] = json!({"userName": "ops-admin",
        "policyArn": "arn:aws:iam::aws:policy/AdministratorAccess"});
    vec![login, key, policy]
}

/// Parses generated records with `format`'s line parser, as the ingest
/// endpoint would.
fn parse(format: Format, records: &[Value]) -> Vec<mimamori_event::EventBody> {
    let mut parser = LineParser::new(format);
    records
        .iter()
        .filter_map(|r| {
            let line = serde_json::to_vec(r).ok()?;
            parser.push_line(&line)?.ok()
        })
        .collect()
}

/// Feeds every org's telemetry once a second until the process stops.
pub async fn run(ingest: Ingest, orgs: Vec<Org>) {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut tick = 0u64;
    let mut interval = tokio::time::interval(Duration::from_secs(1));
    loop {
        interval.tick().await;
        for org in orgs.iter().filter(|o| o.parent_id.is_some()) {
            let mut bodies = parse(Format::Ndjson, &records(org, tick, &mut rng));
            bodies.extend(parse(Format::CloudTrail, &cloudtrail_records(org, tick)));
            match ingest.submit(org.id.as_str(), bodies).await {
                Ok(_) => {}
                // Ctrl-C: the pipeline drains and the feed ends with it.
                Err(mimamori_ingest::IngestError::Stopped) => return,
                Err(e) => {
                    tracing::warn!(error = %e, org = %org.slug, "demo telemetry not stored");
                    return;
                }
            }
        }
        tick += 1;
    }
}
