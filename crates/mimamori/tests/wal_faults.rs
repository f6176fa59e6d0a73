//! Disk faults in the write-ahead log, through the real binary: events are
//! acknowledged over HTTP, the server is killed (`kill -9`, so the WAL holds
//! what the archive has not flushed), WAL bytes are destroyed, and the
//! server is started again. Every acknowledged event outside the destroyed
//! bytes must be found (queried with `mimamori query`), the loss counted
//! exactly (metrics, `mimamori wal check`), logged as an ERROR naming the
//! damaged WAL positions and the segment's byte range, and raised as an
//! alert in the root org. A clean stop (SIGTERM) deletes the segments the
//! checkpoints cover.

mod common;

use common::{mimamori, run_ok};
use serde_json::Value;
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::Duration;

const PER_BATCH: usize = 50;

struct Server {
    child: Child,
    url: String,
    log: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    fn kill_9(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// A clean stop: SIGTERM, then waits (up to a generous deadline) for
    /// the exit, which must succeed. Returns the log.
    fn stop(mut self) -> String {
        let pid = self.child.id().to_string();
        run_ok(std::process::Command::new("kill").args(["-TERM", &pid]));
        let started = std::time::Instant::now();
        let status = loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                break st;
            }
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "serve did not stop within 120 s of SIGTERM:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        assert!(status.success(), "{status}:\n{}", self.stderr());
        self.stderr()
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

struct Setup {
    _dir: tempfile::TempDir,
    data: PathBuf,
    sensor: String,
    admin: String,
    starts: usize,
}

/// A data dir whose archive never flushes on its own (so the WAL keeps
/// everything until a clean stop) and whose WAL rolls every 64 KiB.
fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let init: Value =
        serde_json::from_str(&run_ok(mimamori(&data).args(["init", "--json"]))).unwrap();
    let admin = init["admin_token"].as_str().unwrap().to_string();
    run_ok(mimamori(&data).args([
        "org", "add", "--parent", "soc", "--slug", "a", "--name", "A",
    ]));
    let out = run_ok(mimamori(&data).args([
        "token", "create", "--org", "a", "--role", "sensor", "--name", "s", "--json",
    ]));
    let v: Value = serde_json::from_str(&out).unwrap();
    let sensor = v["secret"].as_str().unwrap().to_string();
    let cfg_path = data.join("mimamori.toml");
    let cfg = std::fs::read_to_string(&cfg_path).unwrap();
    assert!(cfg.contains("[ingest]\n"), "{cfg}");
    let cfg = cfg.replacen(
        "[ingest]\n",
        "[ingest]\nflush_interval_ms = 600000\nwal_segment_bytes = 65536\n",
        1,
    );
    std::fs::write(&cfg_path, cfg).unwrap();
    Setup {
        _dir: dir,
        data,
        sensor,
        admin,
        starts: 0,
    }
}

impl Setup {
    fn serve(&mut self) -> Server {
        self.starts += 1;
        let log = self.data.with_extension(format!("stderr-{}", self.starts));
        let mut child = mimamori(&self.data)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .env("MIMAMORI_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let line = lines.next().unwrap().unwrap();
        std::thread::spawn(move || for _ in lines {});
        let url = line.split_whitespace().last().unwrap().to_string();
        assert!(url.starts_with("http://"), "{line}");
        Server { child, url, log }
    }

    fn wal_dir(&self) -> PathBuf {
        self.data.join("ingest/wal")
    }

    /// The WAL segments: (start position, path, length).
    fn segments(&self) -> Vec<(u64, PathBuf, u64)> {
        let mut v: Vec<_> = std::fs::read_dir(self.wal_dir())
            .unwrap()
            .filter_map(|e| {
                let p = e.unwrap().path();
                let name = p.file_name()?.to_str()?.to_string();
                let start = name
                    .strip_prefix("wal-")?
                    .strip_suffix(".log")?
                    .parse()
                    .ok()?;
                let len = std::fs::metadata(&p).ok()?.len();
                Some((start, p, len))
            })
            .collect();
        v.sort();
        v
    }

    /// Every `dns_query` in the archive, by `mimamori query`.
    fn archived(&self) -> BTreeSet<String> {
        let out = run_ok(mimamori(&self.data).args([
            "query",
            "SELECT query.hostname AS dns_query FROM events",
            "--max-rows",
            "1000000",
        ]));
        out.lines()
            .map(|l| {
                let v: Value = serde_json::from_str(l).unwrap();
                v["dns_query"].as_str().unwrap().to_string()
            })
            .collect()
    }
}

/// One acknowledged batch: its markers and the WAL bytes `[start, end)`
/// its record lies in (from `ingest_wal_position` before and after).
struct Batch {
    markers: Vec<String>,
    start: u64,
    end: u64,
}

async fn metric(url: &str, name: &str) -> u64 {
    let text = reqwest::get(format!("{url}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("mimamori_{name} ")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no metric {name}"))
}

/// Sends `n` batches one after the other (so each is one WAL record, in
/// order), each acknowledged; waits past the WAL's mark interval before the
/// last one, so the log's end is recorded.
async fn ingest(s: &Setup, srv: &Server, n: usize) -> Vec<Batch> {
    let client = reqwest::Client::new();
    let mut out = vec![];
    let mut pos = metric(&srv.url, "ingest_wal_position").await;
    for b in 0..n {
        if b == n - 1 {
            tokio::time::sleep(Duration::from_millis(1200)).await;
        }
        let markers: Vec<String> = (0..PER_BATCH)
            .map(|i| format!("b{b}-e{i}.example"))
            .collect();
        let body: String = markers
            .iter()
            .map(|m| {
                format!(
                    "{{\"class\":\"dns_activity\",\"dns_query\":\"{m}\",\"pad\":\"{}\"}}\n",
                    "x".repeat(40)
                )
            })
            .collect();
        let r = client
            .post(format!("{}/ingest/v1/events", srv.url))
            .bearer_auth(&s.sensor)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["accepted"], PER_BATCH, "{v}");
        let end = metric(&srv.url, "ingest_wal_position").await;
        assert!(end > pos);
        out.push(Batch {
            markers,
            start: pos,
            end,
        });
        pos = end;
    }
    out
}

/// A batch acknowledged just before a segment rolled reports the position
/// after the new segment's header; its record ends that header earlier.
fn record_spans(mut batches: Vec<Batch>, segs: &[(u64, PathBuf, u64)]) -> Vec<Batch> {
    for b in &mut batches {
        if segs.iter().any(|(start, _, _)| *start + 36 == b.end) {
            b.end -= 36;
        }
    }
    batches
}

/// After the fault: restart, and check that exactly the batches overlapping
/// `destroyed` (global WAL byte ranges) are missing, and the loss is
/// counted, logged and alerted. The ERROR must name `range`, the damaged
/// stretch's global WAL positions (covering `destroyed` and no surviving
/// record), and hold each of `names` (the segment and the byte range within
/// it). Returns the server.
async fn restart_and_verify(
    s: &mut Setup,
    batches: &[Batch],
    destroyed: &[(u64, u64)],
    range: (u64, u64),
    names: &[String],
) -> Server {
    let lost: Vec<&Batch> = batches
        .iter()
        .filter(|b| destroyed.iter().any(|(x, y)| b.start < *y && *x < b.end))
        .collect();
    assert!(
        !lost.is_empty() && lost.len() < batches.len(),
        "the fault must hit some batches, not all"
    );
    let srv = s.serve();
    // What is found: every acknowledged event outside the destroyed bytes.
    let found = s.archived();
    let want: BTreeSet<String> = batches
        .iter()
        .filter(|b| !lost.iter().any(|l| std::ptr::eq(*l, *b)))
        .flat_map(|b| b.markers.iter().cloned())
        .collect();
    let missing: Vec<_> = want.difference(&found).take(5).collect();
    assert!(
        missing.is_empty(),
        "acknowledged, outside the destroyed bytes, and lost: {missing:?}"
    );
    let extra: Vec<_> = found.difference(&want).take(5).collect();
    assert!(
        extra.is_empty(),
        "found events that were destroyed?: {extra:?}"
    );
    // Counted exactly.
    let lost_events = (lost.len() * PER_BATCH) as u64;
    assert_eq!(
        metric(&srv.url, "ingest_wal_lost_events").await,
        lost_events
    );
    assert_eq!(
        metric(&srv.url, "ingest_wal_lost_records").await,
        lost.len() as u64
    );
    assert!(metric(&srv.url, "ingest_wal_damaged_regions").await >= 1);
    // Logged as an ERROR naming the segment.
    let log = srv.stderr();
    let line = log
        .lines()
        .find(|l| l.contains("ERROR") && l.contains("WAL damage"))
        .unwrap_or_else(|| panic!("no ERROR about WAL damage in:\n{log}"));
    let (a, b) = range;
    assert!(
        destroyed.iter().all(|(x, y)| a <= *x && *y <= b),
        "the expected range {a}..{b} must cover the destroyed bytes {destroyed:?}"
    );
    assert!(
        batches
            .iter()
            .filter(|x| !lost.iter().any(|l| std::ptr::eq(*l, *x)))
            .all(|x| x.end <= a || b <= x.start),
        "the expected range {a}..{b} overlaps a surviving record"
    );
    assert!(
        line.contains(&format!("{} bytes at WAL positions {a}..{b} (", b - a)),
        "the ERROR does not name the damaged range {a}..{b}: {line}"
    );
    for n in names {
        assert!(line.contains(n.as_str()), "no {n:?} in: {line}");
    }
    assert!(
        line.contains(&format!("{lost_events} events lost")),
        "{line}"
    );
    // Alerted in the root org.
    let alerts: Value = reqwest::Client::new()
        .get(format!("{}/api/v1/alerts?kind=system", srv.url))
        .bearer_auth(&s.admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let items = alerts["items"]
        .as_array()
        .unwrap_or_else(|| panic!("{alerts}"));
    let total: u64 = items
        .iter()
        .map(|a| a["context"]["events_lost"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(total, lost_events, "{alerts}");
    assert!(
        items
            .iter()
            .all(|a| a["severity"] == "high" && a["rule_id"] == "mimamori:wal-damage"),
        "{alerts}"
    );
    srv
}

fn name(p: &Path) -> String {
    p.file_name().unwrap().to_string_lossy().into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flipped_bytes_mid_segment_lose_only_that_record() {
    let mut s = setup();
    let srv = s.serve();
    let batches = ingest(&s, &srv, 60).await;
    srv.kill_9();
    let segs = s.segments();
    let batches = record_spans(batches, &segs);
    assert!(segs.len() >= 4, "{segs:?}");
    // Flip four bytes in the middle of a record of the second segment.
    let (start, path, len) = &segs[1];
    let b = batches
        .iter()
        .find(|b| b.start > *start + 100 && b.end < start + len)
        .unwrap();
    let at = (b.start + b.end) / 2;
    let mut data = std::fs::read(path).unwrap();
    for i in 0..4 {
        data[(at - start) as usize + i] ^= 0x5A;
    }
    std::fs::write(path, data).unwrap();
    let places = [format!(
        "({} bytes {}..{})",
        name(path),
        b.start - start,
        b.end - start
    )];
    let srv =
        restart_and_verify(&mut s, &batches, &[(at, at + 4)], (b.start, b.end), &places).await;
    // Nothing set aside or renamed: every segment is still there.
    assert!(std::fs::read_dir(s.wal_dir()).unwrap().all(|e| !e
        .unwrap()
        .path()
        .to_string_lossy()
        .ends_with(".corrupt")));
    drop(srv);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_middle_segment_loses_only_its_records() {
    let mut s = setup();
    let srv = s.serve();
    let batches = ingest(&s, &srv, 60).await;
    srv.kill_9();
    let segs = s.segments();
    let batches = record_spans(batches, &segs);
    assert!(segs.len() >= 4, "{segs:?}");
    let (start, path, len) = segs[1].clone();
    std::fs::remove_file(&path).unwrap();
    let places = [
        format!("{len} bytes missing between"),
        format!("(no {})", name(&path)),
    ];
    let srv = restart_and_verify(
        &mut s,
        &batches,
        &[(start, start + len)],
        (start, start + len),
        &places,
    )
    .await;
    drop(srv);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_segment_truncated_mid_record_loses_only_the_cut_bytes() {
    let mut s = setup();
    let srv = s.serve();
    let batches = ingest(&s, &srv, 60).await;
    srv.kill_9();
    let segs = s.segments();
    let batches = record_spans(batches, &segs);
    let (start, path, len) = segs[1].clone();
    let b = batches
        .iter()
        .find(|b| b.start > start + 100 && b.end < start + len)
        .unwrap();
    let cut = b.start + 13;
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(cut - start)
        .unwrap();
    // The cut record's surviving head is damaged too, and the bytes cut
    // off are missing before the next segment.
    let places = [
        format!(
            "({} bytes {}..{};",
            name(&path),
            b.start - start,
            cut - start
        ),
        format!(
            "{} bytes missing between {}",
            start + len - cut,
            name(&path)
        ),
    ];
    let srv = restart_and_verify(
        &mut s,
        &batches,
        &[(cut, start + len)],
        (b.start, start + len),
        &places,
    )
    .await;
    // The next start does not raise it again.
    srv.kill_9();
    let srv = s.serve();
    let alerts: Value = reqwest::Client::new()
        .get(format!("{}/api/v1/alerts?kind=system", srv.url))
        .bearer_auth(&s.admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        alerts["items"].as_array().map(Vec::len),
        Some(1),
        "{alerts}"
    );
}

/// The last segment cut mid-record (the case that used to be called "a torn
/// tail of a crash"): `wal check` reports it exactly and fails, `wal
/// salvage` keeps the original aside, and the restart still counts the
/// loss from the WAL's recorded end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_segment_truncated_is_checked_salvaged_and_counted() {
    let mut s = setup();
    let srv = s.serve();
    let batches = ingest(&s, &srv, 28).await;
    srv.kill_9();
    let segs = s.segments();
    let batches = record_spans(batches, &segs);
    let (start, path, len) = segs.last().unwrap().clone();
    assert!(len > 36, "the last segment must hold records: {segs:?}");
    let in_last: Vec<&Batch> = batches.iter().filter(|b| b.start >= start).collect();
    assert!(in_last.len() >= 2, "{segs:?}");
    let cut = in_last[1].start + 13;
    let n_lost = in_last.len() - 1;
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(cut - start)
        .unwrap();
    let out = mimamori(&s.data).args(["wal", "check"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains(&format!(
            "{n_lost} records, {} events lost",
            n_lost * PER_BATCH
        )),
        "{text}"
    );
    assert!(text.contains(&name(&path)), "{text}");
    run_ok(mimamori(&s.data).args(["wal", "salvage"]));
    assert!(path.with_extension("log.damaged").exists());
    // Salvage cut the damaged tail off: what is missing is from the cut
    // record's start to the WAL's mark.
    let cut_record = in_last[1].start;
    let places = [format!("bytes missing after the end of {}", name(&path))];
    let srv = restart_and_verify(
        &mut s,
        &batches,
        &[(cut, start + len)],
        (cut_record, start + len),
        &places,
    )
    .await;
    drop(srv);
}

/// A clean stop (SIGTERM, and the exit waited for) archives everything and
/// deletes every WAL segment the checkpoints then cover; the data is still
/// all there after the next start, and nothing is replayed or lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_stop_removes_the_covered_wal_segments() {
    let mut s = setup();
    let srv = s.serve();
    let batches = ingest(&s, &srv, 60).await;
    let before = s.segments();
    assert!(before.len() >= 4, "{before:?}");
    let batches = record_spans(batches, &before);
    let end = batches.last().unwrap().end;
    let log = srv.stop();
    // Every segment whose bytes all lie before the last acknowledged
    // record's end is gone; what may remain holds no record (a fresh
    // segment's header after a roll).
    let after = s.segments();
    for (start, path, len) in &before {
        if start + len <= end {
            assert!(
                !path.exists(),
                "covered segment kept: {} (last record ends at {end}; before {before:?}, after {:?}):\n{log}",
                path.display(),
                s.segments()
            );
        }
    }
    assert!(
        after.iter().all(|(_, _, len)| *len <= 36),
        "segments with records remain after a clean stop: {after:?}"
    );
    let removed: u64 = before
        .iter()
        .filter(|(_, p, _)| !p.exists())
        .map(|(_, _, len)| len)
        .sum();
    assert!(
        log.lines().any(
            |l| l.contains("removed the WAL segments the checkpoints cover")
                && l.contains(&format!("bytes={removed}"))
        ),
        "no log line naming the {removed} bytes removed:\n{log}"
    );
    // The next start finds every acknowledged event, replays nothing and
    // counts no loss.
    let srv = s.serve();
    let want: BTreeSet<String> = batches
        .iter()
        .flat_map(|b| b.markers.iter().cloned())
        .collect();
    assert_eq!(want.len(), 60 * PER_BATCH);
    let found = s.archived();
    let missing: Vec<_> = want.difference(&found).take(5).collect();
    assert!(missing.is_empty(), "lost after a clean stop: {missing:?}");
    assert_eq!(found.len(), want.len(), "duplicates or strangers");
    eprintln!(
        "clean stop: {} of {} segments removed ({removed} bytes), left {after:?}; {} of {} events found after the restart",
        before.len() - after.len(),
        before.len(),
        found.len(),
        want.len()
    );
    assert_eq!(metric(&srv.url, "ingest_wal_lost_events").await, 0);
    assert_eq!(metric(&srv.url, "ingest_wal_damaged_regions").await, 0);
    assert!(
        !srv.stderr().contains("replayed the WAL"),
        "{}",
        srv.stderr()
    );
}
