//! Validation of STIX 2.1 objects against the OASIS JSON schemas
//! (`cti-stix2-json-schemas`, draft 2020-12).
//!
//! The schemas refer to each other with relative `$ref`s
//! (`../common/core.json`), resolved against each file's `$id`. So the whole
//! tree is loaded into one `jsonschema` registry, and one validator is built
//! per object type (`sdos/malware.json` validates `malware`). Objects are
//! validated one by one rather than through `common/bundle.json`: the
//! bundle schema's `oneOf` over every type would validate each object
//! against all of them and report the failures of the wrong ones.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use jsonschema::{Registry, Validator};
use serde_json::Value;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum SchemaError {
    #[error("reading {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not JSON: {source}")]
    Json {
        path: String,
        source: serde_json::Error,
    },
    #[error("schema registry: {0}")]
    Registry(String),
    #[error("schema {path}: {reason}")]
    Build { path: String, reason: String },
    #[error("no STIX schemas found (expected common/core.json under the directory)")]
    Missing,
}

/// One validator per STIX type, plus the generic SDO/SCO cores for custom
/// (`x-…`) types.
pub struct StixSchemas {
    by_type: HashMap<String, Validator>,
    sdo_core: Validator,
    sco_core: Validator,
}

impl std::fmt::Debug for StixSchemas {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut types: Vec<_> = self.by_type.keys().collect();
        types.sort();
        f.debug_struct("StixSchemas")
            .field("types", &types)
            .finish()
    }
}

impl StixSchemas {
    /// Loads every `*.json` under `dir` (the `schemas/` folder of
    /// `cti-stix2-json-schemas`).
    pub fn load(dir: &Path) -> Result<StixSchemas, SchemaError> {
        let mut files = Vec::new();
        collect(dir, dir, &mut files)?;
        StixSchemas::from_files(files)
    }

    /// The STIX 2.1 schemas built into this crate (oasis-open's
    /// `cti-stix2-json-schemas`), so that validation needs no files.
    pub fn bundled() -> Result<StixSchemas, SchemaError> {
        StixSchemas::from_files(
            super::bundled::FILES
                .iter()
                .map(|(rel, bytes)| (rel.to_string(), bytes.to_vec())),
        )
    }

    /// Builds from `(relative path, contents)` pairs, e.g. schemas shipped
    /// inside a binary.
    pub fn from_files(
        files: impl IntoIterator<Item = (String, Vec<u8>)>,
    ) -> Result<StixSchemas, SchemaError> {
        let mut docs: Vec<(String, String, Value)> = Vec::new();
        for (rel, bytes) in files {
            let v: Value = serde_json::from_slice(&bytes).map_err(|source| SchemaError::Json {
                path: rel.clone(),
                source,
            })?;
            // Files without an `$id` are registered under a URI made from
            // their path, so relative references between them still work.
            let id = v
                .get("$id")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .unwrap_or_else(|| format!("urn:mimamori:stix-schemas:/{rel}"));
            docs.push((rel, id, v));
        }
        let registry = Registry::new()
            .extend(docs.iter().map(|(_, id, v)| (id.clone(), v.clone())))
            .and_then(|b| b.prepare())
            .map_err(|e| SchemaError::Registry(e.to_string()))?;
        let build = |rel: &str, id: &str| -> Result<Validator, SchemaError> {
            // Referencing the registered document (instead of building from
            // its value) keeps its `$id` as the base of relative `$ref`s.
            jsonschema::options()
                .with_registry(&registry)
                .build(&serde_json::json!({ "$ref": id }))
                .map_err(|e| SchemaError::Build {
                    path: rel.to_owned(),
                    reason: e.to_string(),
                })
        };
        let mut by_type = HashMap::new();
        let mut sdo_core = None;
        let mut sco_core = None;
        for (rel, id, _) in &docs {
            let rel_n = rel.replace('\\', "/");
            let Some(stem) = rel_n
                .rsplit('/')
                .next()
                .and_then(|f| f.strip_suffix(".json"))
            else {
                continue;
            };
            let dir = rel_n.rsplit('/').nth(1).unwrap_or("");
            match (dir, stem) {
                ("common", "core") => sdo_core = Some(build(rel, id)?),
                ("common", "cyber-observable-core") => sco_core = Some(build(rel, id)?),
                ("common", "marking-definition" | "language-content" | "extension-definition")
                | ("sdos" | "sros" | "observables", _) => {
                    by_type.insert(stem.to_owned(), build(rel, id)?);
                }
                _ => {}
            }
        }
        Ok(StixSchemas {
            by_type,
            sdo_core: sdo_core.ok_or(SchemaError::Missing)?,
            sco_core: sco_core.ok_or(SchemaError::Missing)?,
        })
    }

    /// Whether a schema for `ty` is loaded (custom types are checked
    /// against the core schemas instead).
    pub fn knows(&self, ty: &str) -> bool {
        self.by_type.contains_key(ty)
    }

    /// Validates one object. Each failure is `(JSON pointer inside the
    /// object, reason)`; at most `limit` are returned.
    pub fn validate(&self, obj: &Value, limit: usize) -> Vec<(String, String)> {
        let ty = obj.get("type").and_then(Value::as_str).unwrap_or("");
        let validator = match self.by_type.get(ty) {
            Some(v) => v,
            None if ty.starts_with("x-") && obj.get("created").is_some() => &self.sdo_core,
            None if ty.starts_with("x-") => &self.sco_core,
            None => {
                return vec![(
                    "/type".to_owned(),
                    format!("unknown STIX type {ty:?} (custom types start with \"x-\")"),
                )]
            }
        };
        validator
            .iter_errors(obj)
            .take(limit)
            .map(|e| (e.instance_path().to_string(), e.to_string()))
            .collect()
    }
}

fn collect(root: &Path, dir: &Path, out: &mut Vec<(String, Vec<u8>)>) -> Result<(), SchemaError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| SchemaError::Io { path, source }
    };
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(io(dir))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            collect(root, &p, out)?;
        } else if p.extension().is_some_and(|e| e == "json") {
            let bytes = std::fs::read(&p).map_err(io(&p))?;
            let rel = p
                .strip_prefix(root)
                .unwrap_or(&p)
                .to_string_lossy()
                .into_owned();
            out.push((rel, bytes));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    /// Every schema file in the crate's folder is compiled in.
    #[test]
    fn every_file_of_the_folder_is_bundled() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("stix-schemas");
        let mut on_disk = vec![];
        super::collect(&root, &root, &mut on_disk).unwrap();
        let mut bundled: Vec<(String, Vec<u8>)> = super::super::bundled::FILES
            .iter()
            .map(|(p, b)| (p.to_string(), b.to_vec()))
            .collect();
        bundled.sort();
        on_disk.sort();
        assert_eq!(bundled, on_disk);
    }
}
