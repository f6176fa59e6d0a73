//! The page shell (header with the user's scope, navigation, language
//! switch, sign-out) and the small pieces every page uses.

use crate::i18n::Lang;
use crate::pages::PAGES;
use crate::session::{Session, CSRF_FIELD};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use maud::{html, Markup, PreEscaped, DOCTYPE};
use mimamori_core::UnixMillis;

/// A whole page for a signed-in user.
pub fn page(s: &Session, title: &str, body: Markup) -> Response {
    let p = s.principal();
    let scope_kind = if p.role.sees_subtree() {
        s.lang.t("scope-subtree")
    } else {
        s.lang.t("scope-only")
    };
    let markup = html! {
        (DOCTYPE)
        html lang=(s.lang.tag()) {
            (head(title))
            body {
                a.skip href="#main" { (s.lang.t("skip-to-content")) }
                header.top {
                    a.brand href="/console/" { "mimamori " span lang="ja" { "見守り" } }
                    nav aria-label=(s.lang.t("nav-label")) {
                        ul {
                            @for pg in PAGES.iter().filter(|pg| pg.in_nav && p.can(pg.needs)) {
                                @let here = is_current(pg.route, &s.path);
                                li {
                                    a href=(pg.route) aria-current=[here.then_some("page")] { (s.lang.t(pg.key)) }
                                }
                            }
                        }
                    }
                    div.who {
                        span.scope data-testid="scope" {
                            (s.lang.ta("signed-in-as", &[
                                ("role", p.role.as_str().into()),
                                ("org", s.org_slug.clone().into()),
                            ]))
                            " · "
                            (scope_kind) " " (s.org_name)
                        }
                        " "
                        span.tz { (s.lang.t("times-in")) " " span data-tz { "UTC" } }
                        (lang_switch(s.lang, &s.path))
                        form.inline method="post" action="/console/logout" {
                            input type="hidden" name=(CSRF_FIELD) value=(s.csrf);
                            button type="submit" { (s.lang.t("sign-out")) }
                        }
                    }
                }
                main #main tabindex="-1" {
                    h1 { (title) }
                    (body)
                }
            }
        }
    };
    html_response(StatusCode::OK, markup)
}

fn head(title: &str) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            title { (title) " — mimamori" }
            // No icon: without this the browser asks for /favicon.ico.
            link rel="icon" href="data:,";
            link rel="stylesheet" href=(crate::assets::url("console.css"));
            link rel="stylesheet" href=(crate::assets::url("uPlot.min.css"));
            script src=(crate::assets::url("uPlot.iife.min.js")) defer {}
            script src=(crate::assets::url("console.js")) defer {}
        }
    }
}

/// A page for someone not signed in (the sign-in page, errors before a
/// session exists).
pub fn bare_page(lang: Lang, status: StatusCode, title: &str, body: Markup) -> Response {
    let markup = html! {
        (DOCTYPE)
        html lang=(lang.tag()) {
            (head(title))
            body.bare {
                main #main {
                    p.brand { "mimamori " span lang="ja" { "見守り" } }
                    h1 { (title) }
                    (body)
                }
            }
        }
    };
    html_response(status, markup)
}

/// An error page; it needs no session and shows no data.
pub fn error_page(lang: Lang, status: StatusCode, message: &str) -> Response {
    let title = match status {
        StatusCode::NOT_FOUND => lang.t("error-not-found-title"),
        StatusCode::FORBIDDEN => lang.t("error-forbidden-title"),
        StatusCode::BAD_REQUEST | StatusCode::UNPROCESSABLE_ENTITY | StatusCode::CONFLICT => {
            lang.t("error-bad-request-title")
        }
        _ => lang.t("error-title"),
    };
    bare_page(
        lang,
        status,
        &title,
        html! {
            p.error role="alert" { (message) }
            p { a href="/console/" { (lang.t("back-to-overview")) } }
        },
    )
}

/// The API's refusal as a console page: the same status, its detail.
pub fn api_error(lang: Lang, e: mimamori_api::error::ApiError) -> Response {
    let msg = if e.status == StatusCode::NOT_FOUND {
        lang.t("error-not-found")
    } else {
        e.detail.clone()
    };
    error_page(lang, e.status, &msg)
}

fn html_response(status: StatusCode, markup: Markup) -> Response {
    let mut r = (status, markup.into_string()).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    r
}

fn is_current(route: &str, path: &str) -> bool {
    if route == "/console/" {
        path == "/console/" || path == "/console"
    } else {
        path == route || path.starts_with(&format!("{route}/"))
    }
}

/// Links to the other language; the choice is kept in a cookie.
pub fn lang_switch(lang: Lang, back: &str) -> Markup {
    html! {
        span.langs {
            @for l in Lang::ALL {
                @if l == lang {
                    span aria-current="true" lang=(l.tag()) { (lang_name(l)) }
                } @else {
                    a href={ "/console/lang/" (l.tag()) "?next=" (url_encode(back)) } lang=(l.tag()) hreflang=(l.tag()) { (lang_name(l)) }
                }
            }
        }
    }
}

fn lang_name(l: Lang) -> &'static str {
    match l {
        Lang::En => "English",
        Lang::Ja => "日本語",
    }
}

/// A time as `<time>`: UTC in the markup, turned into the browser's time
/// zone by `console.js` (without script the UTC text stays, labelled).
pub fn time(ms: UnixMillis) -> Markup {
    let iso = mimamori_core::millis_to_rfc3339(ms);
    let text = iso
        .get(..16)
        .map(|t| format!("{} UTC", t.replace('T', " ")))
        .unwrap_or_else(|| iso.clone());
    html! { time datetime=(iso) { (text) } }
}

/// Percent-encodes a query-string value.
pub fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// A hidden CSRF field for a form of this session.
pub fn csrf_field(s: &Session) -> Markup {
    html! { input type="hidden" name=(CSRF_FIELD) value=(s.csrf); }
}

/// A JSON value embedded for the page's script, escaped so it cannot end
/// the `<script>` element.
pub fn json_data(id: &str, value: &serde_json::Value) -> Markup {
    let text = value
        .to_string()
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026");
    html! { script type="application/json" id=(id) { (PreEscaped(text)) } }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_json_cannot_close_its_script_element() {
        let v = serde_json::json!({"t": "</script><script>alert(1)</script>"});
        let s = json_data("x", &v).into_string();
        assert_eq!(s.matches("</script>").count(), 1, "{s}");
        let inner = s
            .trim_start_matches("<script type=\"application/json\" id=\"x\">")
            .trim_end_matches("</script>");
        let back: serde_json::Value = serde_json::from_str(inner).unwrap();
        assert_eq!(back, v);
    }

    #[test]
    fn url_encoding_keeps_paths_and_escapes_the_rest() {
        assert_eq!(
            url_encode("/console/alerts?x=1&y"),
            "/console/alerts%3Fx%3D1%26y"
        );
        assert_eq!(url_encode("日"), "%E6%97%A5");
    }

    #[test]
    fn current_page_matching() {
        assert!(is_current("/console/", "/console/"));
        assert!(!is_current("/console/", "/console/alerts"));
        assert!(is_current("/console/alerts", "/console/alerts/abc"));
        assert!(!is_current("/console/alerts", "/console/alertsx"));
    }
}
