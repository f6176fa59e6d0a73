//! The web console in a real browser: `mimamori demo` started as a user
//! starts it, then `crates/console/tests/browser/console.mjs` drives
//! Debian's Chromium through playwright-core against it (sign-in, alerts,
//! the workflow, campaigns, Japanese, another org's alert by typed URL,
//! axe-core accessibility, keyboard navigation). Screenshots land in
//! `$CARGO_TARGET_TMPDIR/console-screenshots`.
//!
//! Needs node, `npm ci` in that directory and /usr/bin/chromium
//! (`.ci/run` installs them). Outside CI a missing piece skips the test
//! with the reason printed; with `CI` or `MIMAMORI_REQUIRE_BROWSER` set it
//! fails.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn required() -> bool {
    std::env::var_os("CI").is_some() || std::env::var_os("MIMAMORI_REQUIRE_BROWSER").is_some()
}

fn browser_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../console/tests/browser")
}

/// Why the browser test cannot run here, if it cannot.
fn missing() -> Option<String> {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    if !Path::new(&chromium).exists() {
        return Some(format!(
            "no Chromium at {chromium} (apt-get install chromium)"
        ));
    }
    if Command::new("node").arg("--version").output().is_err() {
        return Some("no node on PATH".into());
    }
    let modules = browser_dir().join("node_modules/playwright-core");
    if !modules.is_dir() {
        return Some(format!(
            "no {} (npm ci in {})",
            modules.display(),
            browser_dir().display()
        ));
    }
    None
}

#[test]
fn the_console_works_in_chromium_for_each_kind_of_user() {
    if let Some(why) = missing() {
        assert!(!required(), "the browser test is required here, but: {why}");
        eprintln!("skipped: {why}");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut demo = Command::new(env!("CARGO_BIN_EXE_mimamori"));
    demo.args(["demo", "--port", "0", "--demo-dir"])
        .arg(dir.path().join("demo"))
        .env("MIMAMORI_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    let mut child = common::Running(demo.spawn().unwrap());
    let stdout = child.0.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    // The console's URL and the users, printed before the API's line.
    let (mut url, mut users) = (None, vec![]);
    let start = Instant::now();
    let mut in_users = false;
    loop {
        let line = rx
            .recv_timeout(Duration::from_secs(90).saturating_sub(start.elapsed()))
            .expect("the demo printed its API line within 90 s");
        if let Some(rest) = line.trim().strip_prefix("console:") {
            let u = rest.split_whitespace().next().unwrap_or("");
            url = Some(u.trim_end_matches("/console/").to_string());
            in_users = true;
            continue;
        }
        if in_users {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() == 4 && !line.contains('(') {
                users.push(serde_json::json!({
                    "org": f[0], "username": f[1], "password": f[2], "role": f[3],
                }));
                continue;
            }
            in_users = false;
        }
        if line.trim().starts_with("API:") {
            break;
        }
    }
    let url = url.expect("the demo printed the console's URL");
    assert!(
        users.len() >= 3,
        "the demo printed its console users: {users:?}"
    );
    let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("console-screenshots");
    let out = Command::new("node")
        .arg(browser_dir().join("console.mjs"))
        .env("MIMAMORI_URL", &url)
        .env("MIMAMORI_USERS", serde_json::Value::from(users).to_string())
        .env("SCREENSHOTS", &shots)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{text}");
    assert!(out.status.success(), "browser checks failed:\n{text}");
    assert!(text.contains("all browser checks passed"), "{text}");
    for name in [
        "01-sign-in",
        "02-overview",
        "03-alerts",
        "04-alert-detail",
        "07-overview-ja",
    ] {
        assert!(
            shots.join(format!("{name}.png")).is_file(),
            "screenshot {name}"
        );
    }
    drop(child);
}
