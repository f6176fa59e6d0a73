//! The overview: open alerts by org and severity, alerts over the last day,
//! open campaigns. Every number links to the list behind it.

use crate::layout::{json_data, page, time, url_encode};
use crate::pages::{require, PageId};
use crate::session::Session;
use axum::extract::State;
use axum::response::Response;
use maud::html;
use mimamori_api::error::ApiQuery;
use mimamori_api::routes::alerts::{self, SummaryParams};
use mimamori_api::AppState;
use mimamori_store::{AlertStatus, Severity};
use std::collections::BTreeMap;

pub async fn show(State(state): State<AppState>, s: Session) -> Response {
    let p = match require(&s, PageId::Overview) {
        Ok(p) => p,
        Err(r) => return *r,
    };
    let summary = match alerts::summary(
        State(state.clone()),
        s.caller.clone(),
        ApiQuery(SummaryParams {
            hours: Some(24),
            bucket_minutes: Some(60),
        }),
    )
    .await
    {
        Ok(axum::Json(x)) => x,
        Err(e) => return crate::layout::api_error(s.lang, e),
    };
    let campaigns = match alerts::campaigns(State(state.clone()), s.caller.clone()).await {
        Ok(axum::Json(l)) => l.items,
        Err(e) => return crate::layout::api_error(s.lang, e),
    };
    let orgs = crate::data::orgs(&state, &s).await;

    // Open alerts per org and severity, and totals.
    let mut open: BTreeMap<&str, [i64; 5]> = BTreeMap::new();
    let (mut open_total, mut urgent, mut all_total) = (0i64, 0i64, 0i64);
    for c in &summary.by_org {
        all_total += c.count;
        if c.status.is_closed() {
            continue;
        }
        open.entry(c.org_id.as_str()).or_default()[c.severity as usize] += c.count;
        open_total += c.count;
        if c.severity >= Severity::High {
            urgent += c.count;
        }
    }
    let new_count: i64 = summary
        .by_org
        .iter()
        .filter(|c| c.status == AlertStatus::New)
        .map(|c| c.count)
        .sum();
    // The chart's data: hour starts (seconds) and a series per severity.
    // Every hour of the window, empty ones included, so the chart's axis
    // is the last day whatever the data.
    const HOUR: i64 = 3_600_000;
    let now = mimamori_core::now_millis();
    let first = (now - 24 * HOUR).div_euclid(HOUR) * HOUR;
    let hours: Vec<i64> = (0..=24)
        .map(|k| first + k * HOUR)
        .filter(|h| *h <= now)
        .collect();
    let series: Vec<serde_json::Value> = Severity::ALL
        .iter()
        .rev()
        .map(|sev| {
            let counts: Vec<i64> = hours
                .iter()
                .map(|h| {
                    summary
                        .timeline
                        .iter()
                        .filter(|t| t.start == *h && t.severity == *sev)
                        .map(|t| t.count)
                        .sum()
                })
                .collect();
            serde_json::json!({
                "severity": sev.as_str(),
                "label": s.lang.t(severity_key(*sev)),
                "counts": counts,
            })
        })
        .collect();
    let chart = serde_json::json!({
        "t": hours.iter().map(|h| h / 1000).collect::<Vec<_>>(),
        "series": series,
    });
    let open_campaigns: Vec<_> = campaigns.iter().take(10).collect();
    let lang = s.lang;
    let body = html! {
        section.cards aria-label=(lang.t("overview-totals")) {
            a.card href="/console/alerts?open=true" data-testid="open-alerts" {
                span.n { (open_total) } span.l { (lang.t("overview-open-alerts")) }
            }
            a.card href="/console/alerts?status=new" {
                span.n { (new_count) } span.l { (lang.t("overview-new-alerts")) }
            }
            a.card.urgent href="/console/alerts?open=true&severity=high" {
                span.n { (urgent) } span.l { (lang.t("overview-urgent")) }
            }
            a.card href="/console/campaigns" {
                span.n { (campaigns.len()) } span.l { (lang.t("overview-campaigns")) }
            }
            a.card href="/console/alerts" {
                span.n { (all_total) } span.l { (lang.t("overview-all-alerts")) }
            }
        }
        section aria-labelledby="h-timeline" {
            h2 #h-timeline { (lang.ta("overview-timeline", &[("hours", 24.into())])) }
            div #chart-alerts .chart role="img" aria-label=(lang.ta("overview-timeline", &[("hours", 24.into())])) {}
            (json_data("chart-alerts-data", &chart))
            p.legend {
                @for sev in Severity::ALL.iter().rev() {
                    a class={ "sev sev-" (sev.as_str()) } href={ "/console/alerts?severity=" (sev.as_str()) } {
                        (lang.t(severity_key(*sev)))
                    }
                    " "
                }
            }
        }
        section aria-labelledby="h-orgs" {
            h2 #h-orgs { (lang.t("overview-by-org")) }
            @if open.is_empty() {
                p { (lang.t("overview-no-open")) }
            } @else {
                table.data {
                    thead { tr {
                        th scope="col" { (lang.t("col-org")) }
                        @for sev in Severity::ALL.iter().rev() {
                            th.num scope="col" { (lang.t(severity_key(*sev))) }
                        }
                        th.num scope="col" { (lang.t("col-total")) }
                    } }
                    tbody {
                        @for (org_id, counts) in &open {
                            @let org = orgs.get(*org_id);
                            tr {
                                th scope="row" {
                                    a href={ "/console/alerts?open=true&org_id=" (url_encode(org_id)) } {
                                        (org.map_or(*org_id, |o| o.slug.as_str()))
                                    }
                                    @if let Some(o) = org { " " span.muted { (o.name) } }
                                }
                                @for sev in Severity::ALL.iter().rev() {
                                    td.num {
                                        @let n = counts[*sev as usize];
                                        @if n > 0 {
                                            a href={ "/console/alerts?open=true&org_id=" (url_encode(org_id)) "&severity=" (sev.as_str()) } { (n) }
                                        } @else { "0" }
                                    }
                                }
                                td.num { (counts.iter().sum::<i64>()) }
                            }
                        }
                    }
                }
            }
        }
        section aria-labelledby="h-campaigns" {
            h2 #h-campaigns { (lang.t("overview-campaigns-title")) }
            @if open_campaigns.is_empty() {
                p { (lang.t("campaigns-none")) }
            } @else {
                ul.campaigns {
                    @for c in open_campaigns {
                        li {
                            a href={ "/console/campaigns/" (url_encode(&c.id)) } { (c.title) }
                            " — " (lang.ta("campaign-orgs", &[("count", (c.org_ids.len() as i64).into())]))
                            " · " (lang.t("col-last-seen")) " " (time(c.last_seen))
                        }
                    }
                }
            }
        }
    };
    page(&s, &lang.t(p.key), body)
}

/// The message id of a severity's name.
pub fn severity_key(s: Severity) -> &'static str {
    match s {
        Severity::Informational => "severity-informational",
        Severity::Low => "severity-low",
        Severity::Medium => "severity-medium",
        Severity::High => "severity-high",
        Severity::Critical => "severity-critical",
    }
}

/// The message id of a status's name.
pub fn status_key(s: AlertStatus) -> &'static str {
    match s {
        AlertStatus::New => "status-new",
        AlertStatus::Acknowledged => "status-acknowledged",
        AlertStatus::Investigating => "status-investigating",
        AlertStatus::Resolved => "status-resolved",
        AlertStatus::FalsePositive => "status-false-positive",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::i18n::{ids, CATALOGUES};

    /// The ids chosen by value (not literal in a `.t("…")` call, so the
    /// source scan in `i18n` cannot see them).
    #[test]
    fn every_severity_and_status_has_a_name_in_both_languages() {
        let keys: Vec<&str> = Severity::ALL
            .into_iter()
            .map(severity_key)
            .chain(AlertStatus::ALL.into_iter().map(status_key))
            .collect();
        for (lang, src) in CATALOGUES {
            let defined = ids(src);
            for k in &keys {
                assert!(
                    defined.iter().any(|d| d == k),
                    "{k} missing in {}.ftl",
                    lang.tag()
                );
            }
        }
    }
}
