//! Decompression of feed payloads with guards against decompression bombs.
//!
//! A feed may arrive gzip- or zip-compressed. A few kilobytes of deflate can
//! expand to gigabytes, so inflation stops as soon as the output passes
//! either an absolute size or a ratio to the compressed input (checked
//! while reading, never after the fact).

use std::io::Read;

use thiserror::Error;

#[derive(Debug, Clone, Copy)]
pub struct InflateLimits {
    /// Most bytes all outputs together may have.
    pub max_output: u64,
    /// Most output bytes per input byte (zip bombs reach 1000:1 and more;
    /// JSON and text feeds compress to about 5–20:1).
    pub max_ratio: u64,
    /// Most members of a zip archive.
    pub max_entries: usize,
}

impl Default for InflateLimits {
    fn default() -> Self {
        InflateLimits {
            max_output: 512 << 20,
            max_ratio: 200,
            max_entries: 10_000,
        }
    }
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum InflateError {
    #[error("{name}: inflates past {limit} bytes (limit)")]
    TooLarge { name: String, limit: u64 },
    #[error("{name}: inflates more than {ratio}:1 (limit), refused as a decompression bomb")]
    Ratio { name: String, ratio: u64 },
    #[error("zip archive has more than {0} members")]
    TooManyEntries(usize),
    #[error("{name}: {reason}")]
    Corrupt { name: String, reason: String },
}

/// The payload's files: a gzip stream gives one (its name without `.gz`),
/// a zip archive its members (directories skipped), anything else is
/// returned as it is.
pub fn inflate(
    name: &str,
    bytes: &[u8],
    limits: &InflateLimits,
) -> Result<Vec<(String, Vec<u8>)>, InflateError> {
    let budget = limits
        .max_output
        .min((bytes.len() as u64).saturating_mul(limits.max_ratio));
    if bytes.starts_with(&[0x1f, 0x8b]) {
        let out_name = name.strip_suffix(".gz").unwrap_or(name).to_owned();
        let data = read_bounded(
            flate2::read::MultiGzDecoder::new(bytes),
            name,
            budget,
            limits,
        )?;
        return Ok(vec![(out_name, data)]);
    }
    if bytes.starts_with(b"PK\x03\x04") {
        let corrupt = |e: zip::result::ZipError| InflateError::Corrupt {
            name: name.to_owned(),
            reason: e.to_string(),
        };
        let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes)).map_err(corrupt)?;
        if archive.len() > limits.max_entries {
            return Err(InflateError::TooManyEntries(limits.max_entries));
        }
        let mut out = Vec::new();
        let mut left = budget;
        for i in 0..archive.len() {
            let file = archive.by_index(i).map_err(corrupt)?;
            if file.is_dir() {
                continue;
            }
            let member = file.name().map_err(corrupt)?.into_owned();
            // The declared size is not trusted: reading stops at the budget
            // whatever the header says.
            let data = read_bounded(file, &format!("{name}:{member}"), left, limits)?;
            left -= data.len() as u64;
            out.push((member, data));
        }
        return Ok(out);
    }
    Ok(vec![(name.to_owned(), bytes.to_vec())])
}

fn read_bounded(
    r: impl Read,
    name: &str,
    budget: u64,
    limits: &InflateLimits,
) -> Result<Vec<u8>, InflateError> {
    let mut data = Vec::new();
    r.take(budget.saturating_add(1))
        .read_to_end(&mut data)
        .map_err(|e| InflateError::Corrupt {
            name: name.to_owned(),
            reason: e.to_string(),
        })?;
    if data.len() as u64 > budget {
        return Err(if budget < limits.max_output {
            InflateError::Ratio {
                name: name.to_owned(),
                ratio: limits.max_ratio,
            }
        } else {
            InflateError::TooLarge {
                name: name.to_owned(),
                limit: limits.max_output,
            }
        });
    }
    Ok(data)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gz(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn gzip_and_plain() {
        let text = b"evil.com\n1.2.3.4\n".repeat(10);
        let out = inflate("list.txt.gz", &gz(&text), &InflateLimits::default()).unwrap();
        assert_eq!(out, vec![("list.txt".to_owned(), text.clone())]);
        let out = inflate("list.txt", &text, &InflateLimits::default()).unwrap();
        assert_eq!(out[0].1, text);
    }

    #[test]
    fn bombs_are_refused() {
        // 64 MiB of zeros compresses to about 64 KiB: over 1000:1.
        let bomb = gz(&vec![0u8; 64 << 20]);
        assert!(bomb.len() < 100_000);
        assert!(matches!(
            inflate("bomb.gz", &bomb, &InflateLimits::default()),
            Err(InflateError::Ratio { .. })
        ));
        let small = InflateLimits {
            max_output: 1000,
            max_ratio: 1_000_000,
            ..InflateLimits::default()
        };
        assert!(matches!(
            inflate("bomb.gz", &bomb, &small),
            Err(InflateError::TooLarge { limit: 1000, .. })
        ));
        // Truncated gzip: an error, not a panic or a short result.
        assert!(matches!(
            inflate(
                "t.gz",
                &gz(b"hello world hello world")[..15],
                &InflateLimits::default()
            ),
            Err(InflateError::Corrupt { .. })
        ));
    }

    #[test]
    fn zip_members() {
        let mut buf = std::io::Cursor::new(Vec::new());
        {
            let mut w = zip::ZipWriter::new(&mut buf);
            let o = zip::write::SimpleFileOptions::default()
                .compression_method(zip::CompressionMethod::Deflated);
            w.start_file("a.json", o).unwrap();
            w.write_all(b"{\"a\":1}").unwrap();
            w.start_file("zeros.bin", o).unwrap();
            w.write_all(&vec![0u8; 8 << 20]).unwrap();
            w.finish().unwrap();
        }
        let bytes = buf.into_inner();
        assert!(matches!(
            inflate("feed.zip", &bytes, &InflateLimits::default()),
            Err(InflateError::Ratio { .. })
        ));
        let lax = InflateLimits {
            max_ratio: 100_000,
            ..InflateLimits::default()
        };
        let out = inflate("feed.zip", &bytes, &lax).unwrap();
        assert_eq!(out[0], ("a.json".to_owned(), b"{\"a\":1}".to_vec()));
        assert_eq!(out[1].1.len(), 8 << 20);
    }
}
