//! The SQL hunt holds its limits: hostile queries are refused before they
//! allocate, stopped at their deadline (the plan, not only the response),
//! limited in number per org and in all, and no SQL makes a 500.

use super::{problem, Resp, Server};
use mimamori_core::{Org, OrgKind, Role};
use reqwest::Method;
use serde_json::json;
use std::time::{Duration, Instant};

/// An org with a few archived DNS events.
async fn org_with_events(s: &Server, slug: &str, n: usize) -> Org {
    let org = s.org(&s.root, slug, OrgKind::Member).await;
    let names: Vec<String> = (0..n).map(|i| format!("q{i}.{slug}.example")).collect();
    s.ingest_dns(&org, &names).await;
    org
}

async fn query(s: &Server, token: &str, body: serde_json::Value) -> Resp {
    s.call(Method::POST, "/api/v1/query", Some(token), Some(body))
        .await
}

/// A query and how long its answer took, as the client saw it.
async fn timed(s: &Server, token: &str, body: serde_json::Value) -> (Resp, Duration) {
    let started = Instant::now();
    let r = query(s, token, body).await;
    (r, started.elapsed())
}

/// A 504 came at the deadline: not before `timeout_secs` (the server
/// cannot start its clock before the request arrives), and within a
/// generous margin after it (the plan was stopped, not left to run; a
/// correctness bound, not a speed goal).
#[track_caller]
fn stopped_at_deadline(r: &Resp, took: Duration, timeout_secs: u64) {
    let d = problem(r, 504);
    assert!(d.contains("stopped"), "{d}");
    let timeout = Duration::from_secs(timeout_secs);
    assert!(
        took >= timeout,
        "504 after {took:?}, before the {timeout:?} deadline"
    );
    assert!(
        took <= timeout + Duration::from_secs(5),
        "504 after {took:?}, long past the {timeout:?} deadline"
    );
}

/// Runs for minutes unless stopped.
const ENDLESS: &str = "SELECT sum(value % 7) AS s FROM range(100000000000)";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_queries_are_refused_before_they_allocate() {
    let s = Server::start().await;
    let m = org_with_events(&s, "m", 5).await;
    let analyst = s.token(&m, Role::OrgAnalyst).await;
    // The red team's query: a gigabyte per value, refused from its arguments.
    for sql in [
        "SELECT repeat('x', 1000000000) FROM events",
        "SELECT repeat(query.hostname, 1000000000) FROM events",
        "SELECT lpad('x', 2000000000) FROM events",
        "SELECT replace(repeat('x', 1000), 'x', repeat('y', 2000)) FROM events",
        "SELECT length(repeat(repeat('x', 1000), 1000000)) FROM events",
    ] {
        let r = query(&s, &analyst, json!({"sql": sql})).await;
        let d = problem(&r, 422);
        assert!(d.contains("max_value_bytes"), "{sql}: {d}");
    }
    // A value under the limit, folded into a constant that every row
    // would copy: refused as a constant too large for a batch.
    let r = query(
        &s,
        &analyst,
        json!({"sql": "SELECT repeat('x', 500000) AS x FROM events"}),
    )
    .await;
    let d = problem(&r, 422);
    assert!(d.contains("constant"), "{d}");
    // Per-row values within the limits still work.
    let r = query(
        &s,
        &analyst,
        json!({"sql": "SELECT length(repeat(query.hostname, 1000)) AS n FROM events ORDER BY n LIMIT 1"}),
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    // q0.m.example: 12 bytes, a thousand times.
    assert_eq!(r.body["rows"][0]["n"], 12_000);
    // The memory pool: a sort over more than the budget fails clearly.
    let r = query(
        &s,
        &analyst,
        json!({"sql": "SELECT count(*) AS groups FROM (SELECT (value * 2654435761) % 1000000007 AS k, count(*) AS n FROM range(100000000) GROUP BY k)", "timeout_secs": 60}),
    )
    .await;
    let d = problem(&r, 422);
    assert!(d.contains("resource limits"), "{d}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deadlines_stop_the_plan_and_queries_are_limited_per_org_and_in_all() {
    let s = Server::start().await;
    let a = org_with_events(&s, "a", 3).await;
    let b = org_with_events(&s, "b", 3).await;
    let a1 = s.token(&a, Role::OrgAnalyst).await;
    let b1 = s.token(&b, Role::OrgAnalyst).await;
    // Two endless queries of a (its limit), each stopped at 3 s.
    let long = json!({"sql": ENDLESS, "timeout_secs": 3});
    let (r1, r2, busy, other) = tokio::join!(
        timed(&s, &a1, long.clone()),
        timed(&s, &a1, long.clone()),
        async {
            tokio::time::sleep(Duration::from_millis(800)).await;
            // A third from a: refused at once, with when to retry.
            let resp = s
                .client
                .post(format!("{}/api/v1/query", s.base))
                .bearer_auth(&a1)
                .json(&json!({"sql": "SELECT count(*) AS n FROM events"}))
                .send()
                .await
                .unwrap();
            let retry = resp
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            (Server::read(resp).await, retry)
        },
        async {
            tokio::time::sleep(Duration::from_millis(800)).await;
            // b is not held up by a's queries.
            query(&s, &b1, json!({"sql": "SELECT count(*) AS n FROM events"})).await
        },
    );
    for (r, took) in [&r1, &r2] {
        stopped_at_deadline(r, *took, 3);
    }
    let (busy, retry) = busy;
    let d = problem(&busy, 429);
    assert!(d.contains("your org"), "{d}");
    assert_eq!(retry.as_deref(), Some("2"));
    assert_eq!(other.status, 200, "{other:?}");
    assert_eq!(other.body["rows"][0]["n"], 3);
    // The stopped plans gave their slots back: they really ended (a slot
    // is held by the running plan, not by the response).
    let start = Instant::now();
    loop {
        let r = query(&s, &a1, json!({"sql": "SELECT count(*) AS n FROM events"})).await;
        if r.status == 200 {
            assert_eq!(r.body["rows"][0]["n"], 3);
            break;
        }
        assert_eq!(r.status, 429, "{r:?}");
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "slots not given back"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // In all: four at once (two orgs' two each), the fifth refused.
    let c = org_with_events(&s, "c", 1).await;
    let c1 = s.token(&c, Role::OrgAnalyst).await;
    let short = json!({"sql": ENDLESS, "timeout_secs": 2});
    let (x1, x2, x3, x4, fifth) = tokio::join!(
        timed(&s, &a1, short.clone()),
        timed(&s, &a1, short.clone()),
        timed(&s, &b1, short.clone()),
        timed(&s, &b1, short.clone()),
        async {
            tokio::time::sleep(Duration::from_millis(600)).await;
            query(&s, &c1, json!({"sql": "SELECT 1 AS one"})).await
        },
    );
    for (r, took) in [&x1, &x2, &x3, &x4] {
        stopped_at_deadline(r, *took, 2);
    }
    assert!(problem(&fifth, 429).contains("the server"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_works_and_no_sql_makes_a_500() {
    let s = Server::start().await;
    let m = org_with_events(&s, "m", 4).await;
    let analyst = s.token(&m, Role::OrgAnalyst).await;
    let r = query(&s, &analyst, json!({"sql": "EXPLAIN SELECT * FROM events"})).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body["columns"], json!(["plan_type", "plan"]));
    let text = r.body["rows"].to_string();
    assert!(text.contains("DataSourceExec"), "{text}");
    // Paths are shown relative to the archive, and only the caller's.
    assert!(!text.contains("ingest/archive"), "{text}");
    assert!(text.contains(&format!("org={}", m.id)), "{text}");
    let r = query(
        &s,
        &analyst,
        json!({"sql": "EXPLAIN ANALYZE SELECT count(*) FROM events"}),
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");

    let odd = [
        "",
        ";",
        "SELECT",
        "SELECT 1; SELECT 2",
        "EXPLAIN VERBOSE SELECT * FROM events",
        "EXPLAIN EXPLAIN SELECT 1",
        "EXPLAIN DROP TABLE events",
        "EXPLAIN ANALYZE SELECT repeat('x', 1000000000) FROM events",
        "DESCRIBE events",
        "SHOW TABLES",
        "SHOW ALL",
        "SELECT * FROM information_schema.tables",
        "SELECT * FROM read_parquet('/etc/passwd')",
        "SELECT * FROM '/etc/passwd'",
        "COPY (SELECT 1) TO '/tmp/mimamori-x.csv'",
        "CREATE EXTERNAL TABLE x STORED AS CSV LOCATION '/etc/'",
        "PREPARE p AS SELECT 1",
        "EXECUTE p",
        "SELECT 1/0",
        "SELECT 1 % 0",
        "SELECT CAST('x' AS INT)",
        "SELECT 9223372036854775807 + 1",
        "SELECT -9223372036854775808 / -1",
        "SELECT abs(-9223372036854775808)",
        "SELECT CAST(1e308 * 10 AS BIGINT)",
        "SELECT substr('abc', -9223372036854775808, 9223372036854775807)",
        "SELECT chr(-1)",
        "SELECT chr(1114112)",
        "SELECT to_timestamp('garbage')",
        "SELECT make_date(2020, 13, 40)",
        "SELECT date_bin(interval '0 seconds', now())",
        "SELECT arrow_cast(1, 'NoSuchType')",
        "SELECT * FROM range(-1)",
        "SELECT * FROM generate_series(1, 10, 0)",
        "SELECT * FROM events ORDER BY 99",
        "SELECT * FROM events LIMIT -1",
        "SELECT * FROM nowhere",
        "SELECT nope()",
        "SELECT 'a' LIKE repeat('%', 100000)",
        "SELECT regexp_replace(raw, '', 'xxxxxxxxxx', 'g') FROM events",
        "SELECT regexp_like('x', '(')",
        "SELECT regexp_match(raw, repeat('(a*)*', 1000)) FROM events",
        "SELECT to_hex(9223372036854775807)",
        "SELECT sum(x) OVER (ROWS BETWEEN 1 FOLLOWING AND 1 PRECEDING) FROM (SELECT 1 AS x)",
        "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT count(*) FROM r",
        "SELECT * FROM events a, events b, events c, events d, events e, events f",
        "SELECT string_agg(raw, repeat(',', 1000)) FROM events",
        "SELECT array_agg(raw) FROM events",
        "SELECT * FROM (VALUES (1), ('x'))",
        "SELECT CAST(now() AS BIGINT) * 1000000000000",
        "SELECT '\u{0}\u{feff}é' || raw FROM events",
        "SELECT id FROM events WHERE time > now() - interval '1000000 years'",
        "SELECT unnest(make_array(1, 2))",
        "SELECT * FROM events UNION SELECT * FROM events UNION SELECT 1",
        "SELECT struct(1, 'a')['x']",
        "SELECT fields -> 'a' FROM events",
        "SELECT * FROM events WHERE raw SIMILAR TO '('",
        "SELECT encode('x', 'nope')",
        "SELECT decode('zz', 'hex')",
        "SELECT overlay('abc' PLACING repeat('x', 900000) FROM 2)",
        "SELECT translate(raw, 'abc', repeat('xyz', 100000)) FROM events",
        "SELECT concat_ws(repeat(',', 600000), raw, raw) FROM events",
        "SELECT uuid() FROM range(1000000)",
        "SELECT * FROM range(10000000000) WHERE value = -1",
    ];
    for sql in odd {
        let r = query(&s, &analyst, json!({"sql": sql, "timeout_secs": 3})).await;
        assert!(
            [200, 422, 504].contains(&r.status),
            "{sql:?} answered {}: {:?}",
            r.status,
            r.body
        );
        if r.status != 200 {
            problem(&r, r.status);
        }
    }
    // The server is still well after all that.
    let r = query(
        &s,
        &analyst,
        json!({"sql": "SELECT count(*) AS n FROM events"}),
    )
    .await;
    assert_eq!(r.body["rows"][0]["n"], 4, "{r:?}");
}
