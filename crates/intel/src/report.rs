//! Threat reports (text and HTML): the indicators they mention, with
//! context, as *proposals* for an analyst to accept. Nothing here imports
//! anything: prose is too ambiguous (`1.2.3.4` may be a version,
//! `readme.md` a file) to trust without a human.
//!
//! Pages are kept: text is split on form feeds (what `pdftotext` writes
//! between pages), HTML is one page, a PDF gives one page per PDF page
//! (text extracted with `lopdf`, pure Rust, with a cap on pages and on
//! each page's decompressed content).

use std::collections::HashMap;

use serde::Serialize;

use crate::model::IndicatorKind;
use crate::normalize::{normalize, refang};

/// Bytes of context kept on each side of an indicator.
const CONTEXT: usize = 60;

/// Top-level labels that are far more often file extensions than domains
/// in prose. A defanged name (`evil[.]exe`) is still proposed: defanging
/// says the author meant an indicator.
const FILE_EXTENSIONS: [&str; 30] = [
    "exe", "dll", "sys", "bat", "cmd", "ps1", "vbs", "js", "jar", "hta", "lnk", "txt", "log",
    "json", "xml", "yml", "yaml", "ini", "cfg", "tmp", "dat", "bin", "doc", "docx", "xls", "xlsx",
    "pdf", "png", "jpg", "html",
];

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Occurrence {
    /// 1-based page.
    pub page: usize,
    /// The text as the report wrote it (possibly defanged).
    pub as_written: String,
    /// The surrounding text, whitespace collapsed.
    pub snippet: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Proposal {
    pub kind: IndicatorKind,
    pub value: String,
    pub occurrences: Vec<Occurrence>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub pages: Vec<String>,
    /// In order of first mention.
    pub proposals: Vec<Proposal>,
}

/// A text report; form feeds separate pages.
pub fn report_from_text(text: &str) -> Report {
    let pages: Vec<String> = text.split('\x0c').map(str::to_owned).collect();
    let proposals = extract_proposals(&pages);
    Report { pages, proposals }
}

/// An HTML report, as one page of text.
pub fn report_from_html(html: &str) -> Report {
    let pages = vec![html_to_text(html)];
    let proposals = extract_proposals(&pages);
    Report { pages, proposals }
}

/// Bounds on reading a PDF.
#[derive(Debug, Clone, Copy)]
pub struct PdfLimits {
    /// Most pages read; a longer document is refused.
    pub max_pages: usize,
    /// Most decompressed content bytes per page (a small stream can
    /// inflate without end).
    pub max_page_bytes: usize,
    /// Most extracted text, all pages together.
    pub max_text_bytes: usize,
}

impl Default for PdfLimits {
    fn default() -> Self {
        PdfLimits {
            max_pages: 500,
            max_page_bytes: 16 * 1024 * 1024,
            max_text_bytes: 32 * 1024 * 1024,
        }
    }
}

/// Why a PDF cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum PdfError {
    #[error("not a PDF: it does not start with %PDF-")]
    NotPdf,
    #[error("the PDF cannot be parsed: {0}")]
    Parse(String),
    #[error("the PDF is truncated: no %%EOF marker in its last 1024 bytes")]
    Truncated,
    #[error("the PDF is encrypted; upload an unencrypted copy")]
    Encrypted,
    #[error("the PDF has no pages")]
    NoPages,
    #[error("the PDF has {pages} pages; at most {max} are read")]
    TooManyPages { pages: usize, max: usize },
    #[error("PDF page {page} cannot be read: {reason}")]
    Page { page: u32, reason: String },
    #[error("the PDF's text is over {max} bytes")]
    TooMuchText { max: usize },
}

/// A PDF report: the text of each page, then the proposals. All or
/// nothing: a page that cannot be read fails the document (with the page
/// number), so no partial document is kept.
pub fn report_from_pdf(bytes: &[u8], limits: &PdfLimits) -> Result<Report, PdfError> {
    // The header may follow a little junk (the spec allows 1024 bytes).
    let head = &bytes[..bytes.len().min(1024)];
    if !head.windows(5).any(|w| w == b"%PDF-") {
        return Err(PdfError::NotPdf);
    }
    let doc = lopdf::Document::load_mem(bytes).map_err(|e| PdfError::Parse(e.to_string()))?;
    // lopdf rebuilds a damaged cross-reference table by scanning, so a cut
    // file parses into a document missing its later pages. A complete file
    // ends with %%EOF (readers accept it within the last 1024 bytes).
    let tail = &bytes[bytes.len().saturating_sub(1024)..];
    if !tail.windows(5).any(|w| w == b"%%EOF") {
        return Err(PdfError::Truncated);
    }
    if doc.is_encrypted() {
        return Err(PdfError::Encrypted);
    }
    let numbers: Vec<u32> = doc.get_pages().keys().copied().collect();
    if numbers.is_empty() {
        return Err(PdfError::NoPages);
    }
    if numbers.len() > limits.max_pages {
        return Err(PdfError::TooManyPages {
            pages: numbers.len(),
            max: limits.max_pages,
        });
    }
    let mut pages = Vec::with_capacity(numbers.len());
    let mut total = 0usize;
    for n in numbers {
        let text = doc
            .extract_text_with_limit(&[n], limits.max_page_bytes)
            .map_err(|e| PdfError::Page {
                page: n,
                reason: e.to_string(),
            })?;
        total += text.len();
        if total > limits.max_text_bytes {
            return Err(PdfError::TooMuchText {
                max: limits.max_text_bytes,
            });
        }
        pages.push(text);
    }
    let proposals = extract_proposals(&pages);
    Ok(Report { pages, proposals })
}

/// Largest report document accepted.
pub const MAX_REPORT_BYTES: usize = 32 * 1024 * 1024;

/// Why a report cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("the document is {size} bytes; at most {max} are accepted")]
    TooLarge { size: usize, max: usize },
    #[error("the document is empty")]
    Empty,
    #[error("{0:?} is not a report format: pdf, html or text")]
    UnknownFormat(String),
    #[error("a {format} report must be UTF-8 text: {reason}")]
    NotUtf8 {
        format: &'static str,
        reason: String,
    },
    #[error("the report has {pages} pages; at most {max} are read")]
    TooManyPages { pages: usize, max: usize },
    #[error(transparent)]
    Pdf(#[from] PdfError),
}

/// Reads a report document as `format` (`pdf`, `html` or `text`), or as
/// what its bytes look like when `format` is `None` (`%PDF-` → PDF, an
/// HTML start tag → HTML, otherwise text). Returns the format read and the
/// report.
pub fn read_report(
    bytes: &[u8],
    format: Option<&str>,
    limits: &PdfLimits,
) -> Result<(&'static str, Report), ReportError> {
    if bytes.len() > MAX_REPORT_BYTES {
        return Err(ReportError::TooLarge {
            size: bytes.len(),
            max: MAX_REPORT_BYTES,
        });
    }
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ReportError::Empty);
    }
    let head = String::from_utf8_lossy(&bytes[..bytes.len().min(1024)]).to_ascii_lowercase();
    let format = match format {
        Some("pdf") => "pdf",
        Some("html") => "html",
        Some("text") | Some("txt") => "text",
        Some(other) => return Err(ReportError::UnknownFormat(other.to_string())),
        None if head.contains("%pdf-") => "pdf",
        None if head.contains("<html") || head.contains("<!doctype html") => "html",
        None => "text",
    };
    let report = match format {
        "pdf" => report_from_pdf(bytes, limits)?,
        _ => {
            let text = std::str::from_utf8(bytes).map_err(|e| ReportError::NotUtf8 {
                format,
                reason: e.to_string(),
            })?;
            if format == "html" {
                report_from_html(text)
            } else {
                report_from_text(text)
            }
        }
    };
    if report.pages.len() > limits.max_pages {
        return Err(ReportError::TooManyPages {
            pages: report.pages.len(),
            max: limits.max_pages,
        });
    }
    Ok((format, report))
}

/// The indicators mentioned in the pages, de-duplicated, each with every
/// place it occurs.
pub fn extract_proposals(pages: &[String]) -> Vec<Proposal> {
    let mut out: Vec<Proposal> = Vec::new();
    let mut pos: HashMap<(IndicatorKind, String), usize> = HashMap::new();
    for (p, page) in pages.iter().enumerate() {
        for (start, token) in tokens(page) {
            let Some((kind, value)) = candidate(token) else {
                continue;
            };
            let occ = Occurrence {
                page: p + 1,
                as_written: token.to_owned(),
                snippet: snippet(page, start, token.len()),
            };
            match pos.get(&(kind, value.clone())) {
                Some(&i) => out[i].occurrences.push(occ),
                None => {
                    pos.insert((kind, value.clone()), out.len());
                    out.push(Proposal {
                        kind,
                        value,
                        occurrences: vec![occ],
                    });
                }
            }
        }
    }
    out
}

/// Whitespace-separated words with the punctuation prose puts around
/// them removed, and their byte offsets.
fn tokens(text: &str) -> impl Iterator<Item = (usize, &str)> {
    let base = text.as_ptr() as usize;
    text.split(|c: char| c.is_whitespace() || matches!(c, '"' | '<' | '>' | '`'))
        .filter_map(move |w| {
            let t = w
                .trim_start_matches(['(', '\'', ',', ';', '*', '“', '‘', '«'])
                .trim_end_matches([')', '\'', ',', ';', ':', '!', '?', '.', '*', '”', '’', '»']);
            if t.len() < 4 {
                return None;
            }
            // Unbalanced brackets at the ends belong to the prose.
            let t = if t.ends_with(']') && !t.contains('[') {
                &t[..t.len() - 1]
            } else {
                t
            };
            let t = if t.starts_with('[') && !t.contains(']') {
                &t[1..]
            } else {
                t
            };
            Some((t.as_ptr() as usize - base, t))
        })
}

fn candidate(token: &str) -> Option<(IndicatorKind, String)> {
    let hexlike = matches!(token.len(), 32 | 40 | 64);
    if !hexlike && !token.contains(['.', ':', '@', '[', '(']) {
        return None;
    }
    let defanged = refang(token) != token;
    let (kind, value) = normalize(None, token).ok()?;
    match kind {
        IndicatorKind::FileName => None,
        IndicatorKind::Domain { .. } => {
            let tld = value.rsplit('.').next().unwrap_or("");
            let plausible =
                tld.len() >= 2 && tld.bytes().all(|b| b.is_ascii_lowercase() || b == b'-');
            if !plausible || (!defanged && FILE_EXTENSIONS.contains(&tld)) {
                return None;
            }
            Some((kind, value))
        }
        _ => Some((kind, value)),
    }
}

fn snippet(page: &str, start: usize, len: usize) -> String {
    let mut a = start.saturating_sub(CONTEXT);
    while !page.is_char_boundary(a) {
        a -= 1;
    }
    let mut b = (start + len + CONTEXT).min(page.len());
    while !page.is_char_boundary(b) {
        b += 1;
    }
    page[a..b].split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The text of an HTML document: tags dropped (block elements become line
/// breaks), `script` and `style` contents dropped, character references
/// decoded. Written by hand because only the text is needed, not a DOM, and
/// it must not fail on broken markup.
pub fn html_to_text(html: &str) -> String {
    let mut out = String::with_capacity(html.len() / 2);
    let mut rest = html;
    while let Some(lt) = rest.find('<') {
        decode_entities(&rest[..lt], &mut out);
        rest = &rest[lt..];
        let Some(gt) = rest.find('>') else {
            rest = "";
            break;
        };
        let tag = rest[1..gt].trim().to_ascii_lowercase();
        rest = &rest[gt + 1..];
        let name: String = tag
            .trim_start_matches('/')
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric())
            .collect();
        if (name == "script" || name == "style") && !tag.starts_with('/') {
            let close = format!("</{name}");
            let lower = rest.to_ascii_lowercase();
            rest = match lower.find(&close) {
                Some(i) => &rest[i..],
                None => "",
            };
            continue;
        }
        if tag.starts_with("!--") {
            // A comment may hold '>' before its end.
            continue;
        }
        let block = matches!(
            name.as_str(),
            "p" | "br"
                | "div"
                | "li"
                | "tr"
                | "td"
                | "th"
                | "h1"
                | "h2"
                | "h3"
                | "h4"
                | "h5"
                | "h6"
                | "pre"
                | "table"
                | "ul"
                | "ol"
                | "section"
                | "article"
                | "blockquote"
                | "code"
                | "title"
        );
        out.push(if block { '\n' } else { ' ' });
    }
    decode_entities(rest, &mut out);
    out
}

fn decode_entities(s: &str, out: &mut String) {
    let mut rest = s;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        rest = &rest[amp..];
        let end = rest[..rest.len().min(12)].find(';');
        let decoded = end.and_then(|e| {
            let name = &rest[1..e];
            let ch = match name {
                "amp" => Some('&'),
                "lt" => Some('<'),
                "gt" => Some('>'),
                "quot" => Some('"'),
                "apos" => Some('\''),
                "nbsp" => Some(' '),
                _ => name
                    .strip_prefix("#x")
                    .or_else(|| name.strip_prefix("#X"))
                    .and_then(|h| u32::from_str_radix(h, 16).ok())
                    .or_else(|| name.strip_prefix('#').and_then(|d| d.parse().ok()))
                    .and_then(char::from_u32),
            };
            ch.map(|c| (c, e))
        });
        match decoded {
            Some((c, e)) => {
                out.push(c);
                rest = &rest[e + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_report_with_pages_and_defanged_indicators() {
        let text = "The actor used hxxp://evil[.]example/gate.php (see below).\n\
            C2 at 203.0.113[.]7, mail from bad[at]evil.example.\x0c\
            Page two: the dropper's SHA-256 is E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855.\n\
            It also wrote readme.txt and config.json; see e.g. version 1.2 and evil[.]example again.";
        let r = report_from_text(text);
        assert_eq!(r.pages.len(), 2);
        let got: Vec<(IndicatorKind, &str, usize)> = r
            .proposals
            .iter()
            .map(|p| (p.kind, p.value.as_str(), p.occurrences.len()))
            .collect();
        assert_eq!(
            got,
            vec![
                (IndicatorKind::Url, "http://evil.example/gate.php", 1),
                (IndicatorKind::Ipv4, "203.0.113.7", 1),
                (IndicatorKind::Email, "bad@evil.example", 1),
                (
                    IndicatorKind::Sha256,
                    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
                    1
                ),
                (IndicatorKind::Domain { exact: true }, "evil.example", 1),
            ]
        );
        let url = &r.proposals[0].occurrences[0];
        assert_eq!(url.page, 1);
        assert_eq!(url.as_written, "hxxp://evil[.]example/gate.php");
        assert!(url.snippet.contains("The actor used"));
        assert_eq!(r.proposals[3].occurrences[0].page, 2);
    }

    #[test]
    fn html_report() {
        let html = "<html><head><title>x</title><style>.a{color:red}</style>\
            <script>var u = 'http://not-this.example/';</script></head>\
            <body><p>Beacon to <code>update[.]bad-cdn.net</code> &amp; \
            <a href=\"https://ignored.example/\">1.2.3.4</a>&#46;</p><!-- c -->\
            <p>caf&eacute; &#x41;</p></body></html>";
        let text = html_to_text(html);
        assert!(!text.contains("not-this"));
        assert!(text.contains("update[.]bad-cdn.net"));
        assert!(text.contains("& "));
        assert!(text.contains("&eacute;"));
        assert!(text.contains('A'));
        let r = report_from_html(html);
        let values: Vec<&str> = r.proposals.iter().map(|p| p.value.as_str()).collect();
        assert_eq!(values, vec!["update.bad-cdn.net", "1.2.3.4"]);
    }

    #[test]
    fn never_panics_on_odd_input() {
        for s in [
            "",
            "&",
            "&#xFFFFFFFF;",
            "<",
            "<script",
            "é<é>é",
            "a.b.c.d.e.f \u{0} ....",
        ] {
            let _ = report_from_html(s);
            let _ = report_from_text(s);
        }
    }
}
