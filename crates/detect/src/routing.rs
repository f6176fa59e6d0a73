//! Logsource routing: which Sigma `logsource` an event belongs to.
//!
//! Sigma rules name the log they apply to with `product`, `service` and
//! `category` instead of conditions on `Channel` or `EventID`. RSigma
//! evaluates a rule against an event only when every dimension the rule names
//! is present and equal in the event's logsource (`Engine::evaluate_with_logsource`).
//! Routing events here, once, is both what the Sigma taxonomy means and what
//! keeps RSigma's candidate index effective: adding pySigma-style
//! `Channel`/`EventID` conditions to the rules instead costs about 5× in
//! throughput.
//!
//! An event may belong to several categories at once (a Sysmon registry value
//! set is both `registry_set` and `registry_event`), so [`route`] returns
//! one [`Logsource`] per alternative; the detector evaluates each and merges
//! the results.
//!
//! The mapping (from `sigma-appendix-taxonomy.md`, version 2.1.0):
//!
//! | event `source` | product | service | category |
//! |---|---|---|---|
//! | `windows.*` | `windows` | from `Channel`, see [`windows_service`] (without a channel: `security` for provider Security-Auditing, `powershell` for provider PowerShell) | Sysmon: by `EventID`, see [`sysmon_categories`]; Security 4688: `process_creation`; PowerShell 4103/4104: `ps_module`/`ps_script`; Windows PowerShell 400/600/800: `ps_classic_start`/`ps_classic_provider_start`/`ps_classic_script` |
//! | `windows.*` with `Channel` `Linux-Sysmon/Operational` | `linux` | `sysmon` | by `EventID`: 1 `process_creation`, 3 `network_connection`, 11 `file_event` |
//! | `zeek.<log>` | `zeek` | `<log>` (`dns`, `http`, `smb_files`, …) | `dns` for the DNS log; `id_orig_h`-style names also answer to `id.orig_h` |
//! | `cloudtrail` | `aws` | `cloudtrail` | — |
//! | `squid` | — | — | `proxy` |
//! | `bind.query`, `unbound.query` | — | — | `dns` |
//! | `syslog` | `linux` | the program (`sshd`, `cron`, `sudo`, `vsftpd`, `clamav`, `guacamole`) and also `syslog`; `auth` for the auth facilities | — |
//! | anything else | from the event's own `product`/`service`/`category` fields if it has them | | |
//!
//! Everything else (generic NDJSON, CEF) is routed *loosely*: the event's own
//! `product`/`service`/`category` fields (if any) only prune rules that
//! conflict with them, and all other rules are evaluated, as RSigma does
//! without routing.

use mimamori_event::{EventBody, OcsfClass};
use serde_json::{Map, Value};

/// One logsource alternative of an event.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Logsource {
    pub product: Option<String>,
    pub service: Option<String>,
    pub category: Option<String>,
}

impl Logsource {
    fn new(product: Option<&str>, service: Option<&str>, category: Option<&str>) -> Self {
        Logsource {
            product: product.map(str::to_string),
            service: service.map(str::to_string),
            category: category.map(str::to_string),
        }
    }

    pub(crate) fn to_rsigma(&self) -> rsigma_parser::LogSource {
        rsigma_parser::LogSource {
            product: self.product.clone(),
            service: self.service.clone(),
            category: self.category.clone(),
            ..Default::default()
        }
    }
}

/// How an event's logsource is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// The source is known: evaluate a rule only when every dimension it
    /// names matches one of these alternatives (never empty).
    Strict(Vec<Logsource>),
    /// The source is not known: skip only rules that conflict with what the
    /// event says about itself (empty dimensions conflict with nothing).
    Loose(Logsource),
}

/// Fields Sigma rules use under another name in our parsed events, per
/// source: `(sigma name, raw name)`. Read only when the event lacks the
/// Sigma name itself.
pub(crate) type Aliases = &'static [(&'static str, &'static str)];

/// Security 4688 carries the process as `NewProcessName` and its parent as
/// `ParentProcessName`; `process_creation` rules say `Image`/`ParentImage`
/// (the mapping of pySigma's Windows audit pipeline). `ProcessId` is not
/// aliased: in 4688 it is the *creator's* id.
const SECURITY_4688: Aliases = &[
    ("Image", "NewProcessName"),
    ("ParentImage", "ParentProcessName"),
];

/// Squid's native log against the proxy taxonomy (`c-uri`, `cs-method`, …).
const SQUID: Aliases = &[
    ("c-uri", "url"),
    ("cs-method", "method"),
    ("c-ip", "client"),
    ("sc-status", "status"),
    ("cs-bytes", "bytes"),
];

/// Zeek's JSON writer names the connection tuple `id.orig_h` …; some
/// shippers (the APT29 evaluation data, Security Onion) write `id_orig_h`.
/// Sigma's Zeek rules use the dotted names.
const ZEEK: Aliases = &[
    ("id.orig_h", "id_orig_h"),
    ("id.orig_p", "id_orig_p"),
    ("id.resp_h", "id_resp_h"),
    ("id.resp_p", "id_resp_p"),
];

/// The routing decision and the field aliases for an event.
pub(crate) fn route_with_aliases(body: &EventBody) -> (Route, Aliases) {
    let src = body.source.as_str();
    if let Some(rest) = src.strip_prefix("windows") {
        if rest.is_empty() || rest.starts_with('.') {
            return windows(&body.raw);
        }
    }
    if let Some(log) = src.strip_prefix("zeek.") {
        let mut alts = vec![Logsource::new(Some("zeek"), Some(log), None)];
        if log == "dns" {
            alts[0].category = Some("dns".into());
        }
        return (Route::Strict(alts), ZEEK);
    }
    match src {
        "cloudtrail" => (
            Route::Strict(vec![Logsource::new(Some("aws"), Some("cloudtrail"), None)]),
            &[],
        ),
        "squid" => (
            Route::Strict(vec![Logsource::new(None, None, Some("proxy"))]),
            SQUID,
        ),
        // mimamori's own resolver log, and DNS logs shippers label so.
        "bind.query" | "unbound.query" | "mimamori.pdns" | "pdns.query" => (
            Route::Strict(vec![Logsource::new(None, None, Some("dns"))]),
            &[],
        ),
        "syslog" => (Route::Strict(syslog(&body.raw)), &[]),
        _ => {
            let declared = self_declared(&body.raw);
            if declared.product.is_some()
                || declared.service.is_some()
                || declared.category.is_some()
            {
                return (Route::Loose(declared), &[]);
            }
            // Nothing says what log this is (generic NDJSON, CEF): route by
            // the normalized class where the taxonomy has a category for it,
            // and otherwise run no rules. Evaluating every rule against an
            // unknown record fires the ones whose fields it happens to lack
            // (a DNS record "matches" "Publicly Accessible RDP Service").
            match body.class {
                OcsfClass::DnsActivity => (
                    Route::Strict(vec![Logsource::new(None, None, Some("dns"))]),
                    &[],
                ),
                OcsfClass::HttpActivity => (
                    Route::Strict(vec![Logsource::new(None, None, Some("proxy"))]),
                    &[],
                ),
                _ => (Route::Strict(vec![]), &[]),
            }
        }
    }
}

/// The logsource route of an event (see the module documentation).
pub fn route(body: &EventBody) -> Route {
    route_with_aliases(body).0
}

fn text<'a>(raw: &'a Map<String, Value>, k: &str) -> Option<&'a str> {
    raw.get(k)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

fn event_id(raw: &Map<String, Value>) -> Option<u64> {
    match raw.get("EventID")? {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn windows(raw: &Map<String, Value>) -> (Route, Aliases) {
    let channel = text(raw, "Channel").unwrap_or("");
    let provider = text(raw, "Provider_Name").unwrap_or("");
    let id = event_id(raw);
    if channel.eq_ignore_ascii_case("Linux-Sysmon/Operational") {
        let cat = match id {
            Some(1) => Some("process_creation"),
            Some(3) => Some("network_connection"),
            Some(11) => Some("file_event"),
            _ => None,
        };
        let ls = Logsource::new(Some("linux"), Some("sysmon"), cat);
        return (Route::Strict(vec![ls]), &[]);
    }
    let sysmon = channel.eq_ignore_ascii_case("Microsoft-Windows-Sysmon/Operational")
        || provider.eq_ignore_ascii_case("Microsoft-Windows-Sysmon");
    let service = if sysmon {
        Some("sysmon")
    } else if channel.is_empty() {
        // Some shippers drop the channel but keep the provider.
        match provider {
            p if p.eq_ignore_ascii_case("Microsoft-Windows-Security-Auditing") => Some("security"),
            p if p.eq_ignore_ascii_case("Microsoft-Windows-PowerShell") => Some("powershell"),
            _ => None,
        }
    } else {
        windows_service(channel)
    };
    let mut aliases: Aliases = &[];
    let cats: &[&str] = match (service, id) {
        (Some("sysmon"), Some(id)) => sysmon_categories(id),
        (Some("security"), Some(4688)) => {
            aliases = SECURITY_4688;
            &["process_creation"]
        }
        (Some("powershell"), Some(4103)) => &["ps_module"],
        (Some("powershell"), Some(4104)) => &["ps_script"],
        (Some("powershell-classic"), Some(400)) => &["ps_classic_start"],
        (Some("powershell-classic"), Some(600)) => &["ps_classic_provider_start"],
        (Some("powershell-classic"), Some(800)) => &["ps_classic_script"],
        _ => &[],
    };
    // PowerShell 7 logs the same events to its own channel, which the
    // taxonomy lists under the ps_* categories but gives no service.
    let cats = if cats.is_empty() && channel.eq_ignore_ascii_case("PowerShellCore/Operational") {
        match id {
            Some(4103) => &["ps_module"][..],
            Some(4104) => &["ps_script"][..],
            _ => &[],
        }
    } else {
        cats
    };
    let alts = if cats.is_empty() {
        vec![Logsource::new(Some("windows"), service, None)]
    } else {
        cats.iter()
            .map(|c| Logsource::new(Some("windows"), service, Some(c)))
            .collect()
    };
    (Route::Strict(alts), aliases)
}

/// The Sigma categories of a Sysmon event id (taxonomy "Windows Folder /
/// Category"). Registry events belong to their specific category and to
/// `registry_event`; event 12 creates *and* deletes keys, so it is both
/// `registry_add` and `registry_delete`.
pub fn sysmon_categories(event_id: u64) -> &'static [&'static str] {
    match event_id {
        1 => &["process_creation"],
        2 => &["file_change"],
        3 => &["network_connection"],
        4 | 16 => &["sysmon_status"],
        5 => &["process_termination"],
        6 => &["driver_load"],
        7 => &["image_load"],
        8 => &["create_remote_thread"],
        9 => &["raw_access_thread"],
        10 => &["process_access"],
        11 => &["file_event"],
        12 => &["registry_add", "registry_delete", "registry_event"],
        13 => &["registry_set", "registry_event"],
        14 => &["registry_rename", "registry_event"],
        15 => &["create_stream_hash"],
        17 | 18 => &["pipe_created"],
        19..=21 => &["wmi_event"],
        22 => &["dns_query"],
        23 => &["file_delete"],
        24 => &["clipboard_capture"],
        25 => &["process_tampering"],
        26 => &["file_delete_detected"],
        27 => &["file_block_executable"],
        28 => &["file_block_shredding"],
        29 => &["file_executable_detected"],
        255 => &["sysmon_error"],
        _ => &[],
    }
}

/// The Sigma `service` of a Windows event log channel (taxonomy "Windows
/// Folder / Service"), compared case-insensitively. `None` for a channel the
/// taxonomy does not name: such events still reach `product: windows` rules
/// that name no service.
pub fn windows_service(channel: &str) -> Option<&'static str> {
    const EXACT: &[(&str, &str)] = &[
        ("Security", "security"),
        ("System", "system"),
        ("Application", "application"),
        ("Microsoft-Windows-Sysmon/Operational", "sysmon"),
        ("Microsoft-Windows-PowerShell/Operational", "powershell"),
        ("Windows PowerShell", "powershell-classic"),
        (
            "Microsoft-Windows-TaskScheduler/Operational",
            "taskscheduler",
        ),
        ("Microsoft-Windows-WMI-Activity/Operational", "wmi"),
        (
            "Microsoft-Windows-Windows Defender/Operational",
            "windefend",
        ),
        (
            "Microsoft-Windows-CodeIntegrity/Operational",
            "codeintegrity-operational",
        ),
        (
            "Microsoft-Windows-AppXDeploymentServer/Operational",
            "appxdeployment-server",
        ),
        (
            "Microsoft-Windows-AppxPackaging/Operational",
            "appxpackaging-om",
        ),
        (
            "Microsoft-Windows-AppModel-Runtime/Admin",
            "appmodel-runtime",
        ),
        (
            "Microsoft-Windows-Windows Firewall With Advanced Security/Firewall",
            "firewall-as",
        ),
        ("Microsoft-Windows-Bits-Client/Operational", "bits-client"),
        ("MSExchange Management", "msexchange-management"),
        (
            "Microsoft-Windows-DNS Client Events/Operational",
            "dns-client",
        ),
        ("DNS Server", "dns-server"),
        (
            "Microsoft-Windows-DNS-Server/Analytical",
            "dns-server-analytic",
        ),
        ("Microsoft-Windows-DNS-Server/Audit", "dns-server-audit"),
        (
            "Microsoft-IIS-Configuration/Operational",
            "iis-configuration",
        ),
        ("Microsoft-Windows-NTLM/Operational", "ntlm"),
        (
            "Microsoft-Windows-TerminalServices-LocalSessionManager/Operational",
            "terminalservices-localsessionmanager",
        ),
        ("Microsoft-Windows-Shell-Core/Operational", "shell-core"),
        (
            "Microsoft-Windows-CertificateServicesClient-Lifecycle-System/Operational",
            "certificateservicesclient-lifecycle-system",
        ),
        (
            "Microsoft-Windows-DriverFrameworks-UserMode/Operational",
            "driver-framework",
        ),
        ("Microsoft-Windows-LDAP-Client/Debug", "ldap"),
        ("Microsoft-Windows-SmbClient/Security", "smbclient-security"),
        (
            "Microsoft-Windows-SMBServer/Connectivity",
            "smbserver-connectivity",
        ),
        (
            "Microsoft-Windows-Diagnosis-Scripted/Operational",
            "diagnosis-scripted",
        ),
        ("Microsoft-Windows-LSA/Operational", "lsa-server"),
        ("OpenSSH/Operational", "openssh"),
        ("Microsoft-Windows-CAPI2/Operational", "capi2"),
        (
            "Microsoft-Windows-BitLocker/BitLocker Management",
            "bitlocker",
        ),
        ("Microsoft-Windows-DHCP-Server/Operational", "dhcp"),
        ("Microsoft-Windows-Ntfs/Operational", "ntfs"),
        ("Microsoft-Windows-PrintService/Admin", "printservice-admin"),
        (
            "Microsoft-Windows-PrintService/Operational",
            "printservice-operational",
        ),
        ("Microsoft-Windows-SENSE/Operational", "sense"),
        ("Microsoft-Windows-VHDMP/Operational", "vhdmp"),
    ];
    // Channels named by family (several channels, or a suffix that varies).
    // SigmaHQ rules still say `microsoft-servicebus-client` where the
    // taxonomy says `servicebus-client`; the rules decide what matches.
    const PREFIX: &[(&str, &str)] = &[
        ("Microsoft-Windows-AppLocker/", "applocker"),
        (
            "Microsoft-Windows-Application-Experience/",
            "application-experience",
        ),
        (
            "Microsoft-Windows-Security-Mitigations/",
            "security-mitigations",
        ),
        (
            "Microsoft-ServiceBus-Client/",
            "microsoft-servicebus-client",
        ),
        ("Microsoft-Windows-Hyper-V-Worker", "hyper-v-worker"),
        (
            "Microsoft-Windows-Kernel-EventTracing",
            "kernel-event-tracing",
        ),
        ("Microsoft-Windows-Kernel-ShimEngine/", "kernel-shimengine"),
    ];
    let c = channel.trim();
    if let Some((_, s)) = EXACT.iter().find(|(k, _)| k.eq_ignore_ascii_case(c)) {
        return Some(s);
    }
    PREFIX
        .iter()
        .find(|(p, _)| {
            c.len() >= p.len()
                && c.is_char_boundary(p.len())
                && c[..p.len()].eq_ignore_ascii_case(p)
        })
        .map(|(_, s)| *s)
}

/// Syslog: `product: linux`, the program as service where the taxonomy
/// names it, and always also `service: syslog` (the taxonomy's catch-all
/// for Linux syslog). Facilities 4 (auth) and 10 (authpriv) are also
/// `service: auth`.
fn syslog(raw: &Map<String, Value>) -> Vec<Logsource> {
    let mut services: Vec<&str> = vec!["syslog"];
    let app = text(raw, "appname").map(str::to_ascii_lowercase);
    let known = match app.as_deref() {
        Some("sshd") => Some("sshd"),
        Some("cron" | "crond" | "anacron") => Some("cron"),
        Some("sudo") => Some("sudo"),
        Some("vsftpd") => Some("vsftpd"),
        Some("clamd" | "clamav" | "freshclam") => Some("clamav"),
        Some(a) if a.starts_with("guacd") || a.starts_with("guacamole") => Some("guacamole"),
        _ => None,
    };
    services.extend(known);
    if matches!(raw.get("facility").and_then(Value::as_u64), Some(4 | 10)) {
        services.push("auth");
    }
    services
        .into_iter()
        .map(|s| Logsource::new(Some("linux"), Some(s), None))
        .collect()
}

/// What an event of unknown source says about itself.
fn self_declared(raw: &Map<String, Value>) -> Logsource {
    let get = |k: &str| text(raw, k).map(str::to_ascii_lowercase);
    Logsource {
        product: get("product"),
        service: get("service"),
        category: get("category"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mimamori_event::{Normalized, OcsfClass};
    use serde_json::json;

    fn body(source: &str, raw: Value) -> EventBody {
        let Value::Object(raw) = raw else {
            panic!("raw must be an object")
        };
        EventBody {
            time: None,
            class: OcsfClass::BaseEvent,
            source: source.into(),
            fields: Normalized::default(),
            raw,
        }
    }

    fn strict(r: Route) -> Vec<(Option<String>, Option<String>, Option<String>)> {
        match r {
            Route::Strict(v) => v
                .into_iter()
                .map(|l| (l.product, l.service, l.category))
                .collect(),
            Route::Loose(l) => panic!("expected a strict route, got loose {l:?}"),
        }
    }

    fn t(
        p: Option<&str>,
        s: Option<&str>,
        c: Option<&str>,
    ) -> (Option<String>, Option<String>, Option<String>) {
        (
            p.map(String::from),
            s.map(String::from),
            c.map(String::from),
        )
    }

    #[test]
    fn sysmon_process_creation() {
        let b = body(
            "windows.sysmon",
            json!({"Channel": "Microsoft-Windows-Sysmon/Operational", "EventID": 1}),
        );
        assert_eq!(
            strict(route(&b)),
            vec![t(Some("windows"), Some("sysmon"), Some("process_creation"))]
        );
    }

    #[test]
    fn sysmon_registry_set_is_two_categories() {
        let b = body(
            "windows.sysmon",
            json!({"Channel": "Microsoft-Windows-Sysmon/Operational", "EventID": "13"}),
        );
        assert_eq!(
            strict(route(&b)),
            vec![
                t(Some("windows"), Some("sysmon"), Some("registry_set")),
                t(Some("windows"), Some("sysmon"), Some("registry_event")),
            ]
        );
    }

    #[test]
    fn sysmon_by_provider_when_channel_is_missing() {
        let b = body(
            "windows.sysmon",
            json!({"Provider_Name": "Microsoft-Windows-Sysmon", "EventID": 22}),
        );
        assert_eq!(
            strict(route(&b)),
            vec![t(Some("windows"), Some("sysmon"), Some("dns_query"))]
        );
    }

    #[test]
    fn sysmon_event_ids() {
        for (id, cat) in [
            (3, "network_connection"),
            (5, "process_termination"),
            (6, "driver_load"),
            (7, "image_load"),
            (8, "create_remote_thread"),
            (10, "process_access"),
            (11, "file_event"),
            (15, "create_stream_hash"),
            (17, "pipe_created"),
            (18, "pipe_created"),
            (19, "wmi_event"),
            (21, "wmi_event"),
            (23, "file_delete"),
            (25, "process_tampering"),
            (26, "file_delete_detected"),
        ] {
            assert_eq!(sysmon_categories(id), &[cat], "event id {id}");
        }
        assert_eq!(
            sysmon_categories(12),
            &["registry_add", "registry_delete", "registry_event"]
        );
        assert!(sysmon_categories(999).is_empty());
    }

    #[test]
    fn security_4688_is_process_creation_with_aliases() {
        let b = body(
            "windows.security",
            json!({"Channel": "Security", "EventID": 4688}),
        );
        let (r, aliases) = route_with_aliases(&b);
        assert_eq!(
            strict(r),
            vec![t(
                Some("windows"),
                Some("security"),
                Some("process_creation")
            )]
        );
        assert!(aliases.contains(&("Image", "NewProcessName")));
        let b = body(
            "windows.security",
            json!({"Channel": "Security", "EventID": 4624}),
        );
        let (r, aliases) = route_with_aliases(&b);
        assert_eq!(strict(r), vec![t(Some("windows"), Some("security"), None)]);
        assert!(aliases.is_empty());
    }

    #[test]
    fn powershell() {
        let op = "Microsoft-Windows-PowerShell/Operational";
        for (ch, id, svc, cat) in [
            (op, 4104, Some("powershell"), Some("ps_script")),
            (op, 4103, Some("powershell"), Some("ps_module")),
            (op, 40961, Some("powershell"), None),
            (
                "Windows PowerShell",
                400,
                Some("powershell-classic"),
                Some("ps_classic_start"),
            ),
            (
                "Windows PowerShell",
                600,
                Some("powershell-classic"),
                Some("ps_classic_provider_start"),
            ),
            (
                "Windows PowerShell",
                800,
                Some("powershell-classic"),
                Some("ps_classic_script"),
            ),
            ("PowerShellCore/Operational", 4104, None, Some("ps_script")),
        ] {
            let b = body("windows.powershell", json!({"Channel": ch, "EventID": id}));
            assert_eq!(
                strict(route(&b)),
                vec![t(Some("windows"), svc, cat)],
                "{ch} {id}"
            );
        }
    }

    #[test]
    fn windows_services() {
        assert_eq!(windows_service("security"), Some("security"));
        assert_eq!(windows_service("System"), Some("system"));
        assert_eq!(
            windows_service("Microsoft-Windows-TaskScheduler/Operational"),
            Some("taskscheduler")
        );
        assert_eq!(
            windows_service("Microsoft-Windows-WMI-Activity/Operational"),
            Some("wmi")
        );
        assert_eq!(
            windows_service("Microsoft-Windows-AppLocker/EXE and DLL"),
            Some("applocker")
        );
        assert_eq!(windows_service("Some-Vendor/Operational"), None);
        let b = body(
            "windows.other",
            json!({"Channel": "Some-Vendor/Operational", "EventID": 1}),
        );
        assert_eq!(strict(route(&b)), vec![t(Some("windows"), None, None)]);
    }

    #[test]
    fn provider_stands_in_for_a_missing_channel() {
        let b = body(
            "windows.other",
            json!({"Provider_Name": "Microsoft-Windows-Security-Auditing", "EventID": 4688}),
        );
        assert_eq!(
            strict(route(&b)),
            vec![t(
                Some("windows"),
                Some("security"),
                Some("process_creation")
            )]
        );
        let b = body(
            "windows.other",
            json!({"Provider_Name": "Microsoft-Windows-PowerShell", "EventID": 4104}),
        );
        assert_eq!(
            strict(route(&b)),
            vec![t(Some("windows"), Some("powershell"), Some("ps_script"))]
        );
        // A channel, when present, decides.
        let b = body(
            "windows.other",
            json!({"Channel": "Vendor/Log", "Provider_Name": "Microsoft-Windows-Security-Auditing", "EventID": 4688}),
        );
        assert_eq!(strict(route(&b)), vec![t(Some("windows"), None, None)]);
    }

    #[test]
    fn linux_sysmon() {
        let b = body(
            "windows.sysmon",
            json!({"Channel": "Linux-Sysmon/Operational", "EventID": 1}),
        );
        assert_eq!(
            strict(route(&b)),
            vec![t(Some("linux"), Some("sysmon"), Some("process_creation"))]
        );
    }

    #[test]
    fn zeek_cloudtrail_proxy_dns() {
        let b = body("zeek.dns", json!({"query": "example.com"}));
        assert_eq!(
            strict(route(&b)),
            vec![t(Some("zeek"), Some("dns"), Some("dns"))]
        );
        let b = body("zeek.smb_files", json!({}));
        assert_eq!(
            strict(route(&b)),
            vec![t(Some("zeek"), Some("smb_files"), None)]
        );
        let b = body("cloudtrail", json!({"eventName": "ListBuckets"}));
        assert_eq!(
            strict(route(&b)),
            vec![t(Some("aws"), Some("cloudtrail"), None)]
        );
        let b = body("squid", json!({"url": "http://x/"}));
        assert_eq!(strict(route(&b)), vec![t(None, None, Some("proxy"))]);
        let b = body("unbound.query", json!({}));
        assert_eq!(strict(route(&b)), vec![t(None, None, Some("dns"))]);
    }

    #[test]
    fn syslog_services() {
        let b = body("syslog", json!({"appname": "sshd", "facility": 4}));
        assert_eq!(
            strict(route(&b)),
            vec![
                t(Some("linux"), Some("syslog"), None),
                t(Some("linux"), Some("sshd"), None),
                t(Some("linux"), Some("auth"), None),
            ]
        );
        let b = body("syslog", json!({"appname": "nginx", "facility": 1}));
        assert_eq!(
            strict(route(&b)),
            vec![t(Some("linux"), Some("syslog"), None)]
        );
    }

    #[test]
    fn unknown_sources_are_loose_only_when_they_declare_a_logsource() {
        let b = body("ndjson", json!({"product": "Okta", "service": "okta"}));
        assert_eq!(
            route(&b),
            Route::Loose(Logsource {
                product: Some("okta".into()),
                service: Some("okta".into()),
                category: None
            })
        );
        // Undeclared: no rules at all, rather than every rule whose fields
        // the record happens to lack…
        let b = body("cef", json!({}));
        assert_eq!(route(&b), Route::Strict(vec![]));
        // …unless the normalized class has a taxonomy category.
        let mut b = body("ndjson", json!({"query": "x.example"}));
        b.class = OcsfClass::DnsActivity;
        assert_eq!(
            route(&b),
            Route::Strict(vec![Logsource::new(None, None, Some("dns"))])
        );
        let b = body("mimamori.pdns", json!({}));
        assert_eq!(
            route(&b),
            Route::Strict(vec![Logsource::new(None, None, Some("dns"))])
        );
    }
}
