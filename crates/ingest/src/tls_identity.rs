//! Syslog over TLS with client certificates: the sender's org from its
//! certificate.
//!
//! The listener asks every sender for a certificate and verifies it against
//! the configured CAs (rustls' `WebPkiClientVerifier`). A verified
//! certificate is matched against a table of identities, most specific
//! first:
//!
//! 1. `sha256:<hex>`: the SHA-256 fingerprint of the certificate (DER);
//! 2. its subject alternative names: `dns:<name>`, `ip:<address>`,
//!    `email:<address>`, `uri:<uri>`;
//! 3. `cn:<name>`: its subject common name(s).
//!
//! The first identity in the table names the org. A sender whose
//! certificate names no org (or who sent none, where certificates are
//! optional) is attributed by its address, as plain TCP senders are, only
//! when the network fallback is on; otherwise the connection is refused.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, RwLock};
use x509_cert::der::asn1::ObjectIdentifier;
use x509_cert::der::Decode;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::SubjectAltName;

#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{0} holds no PEM certificate")]
    NoCert(String),
    #[error("{0} holds no PEM private key (PKCS#8, PKCS#1 or SEC1)")]
    NoKey(String),
    #[error("the client CA file {path} is not usable: {reason}")]
    ClientCa { path: String, reason: String },
    #[error("the certificate and key do not make a TLS configuration: {0}")]
    Config(rustls::Error),
    #[error("bad client identity {0:?}: expected sha256:HEX, cn:NAME, dns:NAME, ip:ADDRESS, email:ADDRESS or uri:URI")]
    Identity(String),
}

// By hand, not `#[from]`: the message already includes the inner error,
// and as its `source` too `{:#}` (anyhow's chain) would print it twice.
impl From<rustls::Error> for TlsSetupError {
    fn from(e: rustls::Error) -> Self {
        TlsSetupError::Config(e)
    }
}

/// Whether senders must present a certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// A sender without a valid certificate fails the handshake.
    Required,
    /// A sender may connect without one (and is then attributed by address
    /// if the network fallback is on); one that sends a certificate must
    /// send a valid one.
    Optional,
}

/// Builds the syslog TLS acceptor: the server's certificate chain and key,
/// and, when `client_ca` is given, verification of senders' certificates
/// against the CAs in that PEM file.
pub fn acceptor(
    cert: &std::path::Path,
    key: &std::path::Path,
    client_ca: Option<(&std::path::Path, ClientAuth)>,
) -> Result<tokio_rustls::TlsAcceptor, TlsSetupError> {
    let read = |p: &std::path::Path| {
        std::fs::read(p).map_err(|source| TlsSetupError::Read {
            path: p.display().to_string(),
            source,
        })
    };
    let pem_certs = |p: &std::path::Path| -> Result<Vec<_>, TlsSetupError> {
        let pem = read(p)?;
        let certs: Vec<_> = rustls_pemfile::certs(&mut pem.as_slice())
            .collect::<Result<_, _>>()
            .map_err(|source| TlsSetupError::Read {
                path: p.display().to_string(),
                source,
            })?;
        if certs.is_empty() {
            return Err(TlsSetupError::NoCert(p.display().to_string()));
        }
        Ok(certs)
    };
    let certs = pem_certs(cert)?;
    let key_pem = read(key)?;
    let key_der = rustls_pemfile::private_key(&mut key_pem.as_slice())
        .map_err(|source| TlsSetupError::Read {
            path: key.display().to_string(),
            source,
        })?
        .ok_or_else(|| TlsSetupError::NoKey(key.display().to_string()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let config = match client_ca {
        None => builder.with_no_client_auth(),
        Some((ca_path, auth)) => {
            let ca_err = |reason: String| TlsSetupError::ClientCa {
                path: ca_path.display().to_string(),
                reason,
            };
            let mut roots = rustls::RootCertStore::empty();
            for ca in pem_certs(ca_path)? {
                roots.add(ca).map_err(|e| ca_err(e.to_string()))?;
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            );
            let verifier = match auth {
                ClientAuth::Required => verifier,
                ClientAuth::Optional => verifier.allow_unauthenticated(),
            };
            let verifier = verifier.build().map_err(|e| ca_err(e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let config = config.with_single_cert(certs, key_der)?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// Client certificate identity → org id.
#[derive(Debug, Default)]
pub struct ClientOrgs {
    orgs: RwLock<HashMap<String, String>>,
    network_fallback: bool,
}

impl ClientOrgs {
    /// `entries` are (identity, org id); identities are checked and put in
    /// canonical form (see [`canonical_identity`]).
    pub fn new(
        entries: Vec<(String, String)>,
        network_fallback: bool,
    ) -> Result<Self, TlsSetupError> {
        let c = ClientOrgs {
            orgs: Default::default(),
            network_fallback,
        };
        c.replace(entries)?;
        Ok(c)
    }

    /// Replaces the table (when orgs change).
    pub fn replace(&self, entries: Vec<(String, String)>) -> Result<(), TlsSetupError> {
        let mut map = HashMap::with_capacity(entries.len());
        for (identity, org) in entries {
            map.insert(canonical_identity(&identity)?, org);
        }
        *self.orgs.write().unwrap_or_else(|p| p.into_inner()) = map;
        Ok(())
    }

    /// Whether senders whose certificate names no org are attributed by
    /// their address.
    pub fn network_fallback(&self) -> bool {
        self.network_fallback
    }

    /// The org the certificate (DER) names, by its most specific identity
    /// in the table.
    pub fn resolve(&self, cert_der: &[u8]) -> Option<String> {
        let orgs = self.orgs.read().unwrap_or_else(|p| p.into_inner());
        certificate_identities(cert_der)
            .iter()
            .find_map(|id| orgs.get(id).cloned())
    }
}

/// The canonical form of a configured identity: the scheme lower-cased;
/// `sha256` hex lower-cased without `:` separators (as `openssl x509
/// -fingerprint -sha256` prints it); `dns` names lower-cased without a
/// trailing dot; `ip` addresses in their standard text form.
pub fn canonical_identity(s: &str) -> Result<String, TlsSetupError> {
    let bad = || TlsSetupError::Identity(s.to_string());
    let (scheme, value) = s.split_once(':').ok_or_else(bad)?;
    let value = value.trim();
    if value.is_empty() {
        return Err(bad());
    }
    Ok(match scheme.trim().to_ascii_lowercase().as_str() {
        "sha256" => {
            let hex: String = value.chars().filter(|c| *c != ':').collect();
            if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(bad());
            }
            format!("sha256:{}", hex.to_ascii_lowercase())
        }
        "dns" => format!("dns:{}", value.trim_end_matches('.').to_ascii_lowercase()),
        "ip" => format!("ip:{}", value.parse::<IpAddr>().map_err(|_| bad())?),
        "cn" => format!("cn:{value}"),
        "email" => format!("email:{value}"),
        "uri" => format!("uri:{value}"),
        _ => return Err(bad()),
    })
}

/// A certificate's identities in canonical form, most specific first:
/// fingerprint, subject alternative names, subject common names. A
/// certificate that does not decode has only its fingerprint.
pub fn certificate_identities(der: &[u8]) -> Vec<String> {
    use sha2::Digest;
    let mut out = vec![format!("sha256:{}", hex::encode(sha2::Sha256::digest(der)))];
    let Ok(cert) = x509_cert::Certificate::from_der(der) else {
        return out;
    };
    let tbs = &cert.tbs_certificate;
    if let Ok(Some((_, SubjectAltName(names)))) = tbs.get::<SubjectAltName>() {
        for name in names {
            match name {
                GeneralName::DnsName(n) => out.push(format!(
                    "dns:{}",
                    n.as_str().trim_end_matches('.').to_ascii_lowercase()
                )),
                GeneralName::Rfc822Name(n) => out.push(format!("email:{}", n.as_str())),
                GeneralName::UniformResourceIdentifier(n) => {
                    out.push(format!("uri:{}", n.as_str()))
                }
                GeneralName::IpAddress(octets) => {
                    let b = octets.as_bytes();
                    let ip = match b.len() {
                        4 => <[u8; 4]>::try_from(b).ok().map(IpAddr::from),
                        16 => <[u8; 16]>::try_from(b).ok().map(IpAddr::from),
                        _ => None,
                    };
                    if let Some(ip) = ip {
                        out.push(format!("ip:{ip}"));
                    }
                }
                _ => {}
            }
        }
    }
    const CN: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.3");
    for rdn in &tbs.subject.0 {
        for atv in rdn.0.iter() {
            if atv.oid == CN {
                // UTF8String, PrintableString and IA5String (what CAs use)
                // are all UTF-8 text as encoded.
                if let Ok(cn) = std::str::from_utf8(atv.value.value()) {
                    out.push(format!("cn:{cn}"));
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identities_of_a_generated_certificate() {
        let mut params = rcgen::CertificateParams::new(vec!["FW1.Acme.example".into()]).unwrap();
        params
            .subject_alt_names
            .push(rcgen::SanType::IpAddress("192.0.2.7".parse().unwrap()));
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "firewall one");
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let der = cert.der().to_vec();
        let ids = certificate_identities(&der);
        use sha2::Digest;
        assert_eq!(
            ids[0],
            format!("sha256:{}", hex::encode(sha2::Sha256::digest(&der)))
        );
        assert!(ids.contains(&"dns:fw1.acme.example".to_string()), "{ids:?}");
        assert!(ids.contains(&"ip:192.0.2.7".to_string()), "{ids:?}");
        assert_eq!(ids.last().unwrap(), "cn:firewall one");

        // The fingerprint wins over the name; unknown certificates map to
        // nothing.
        let fp = ids[0].trim_start_matches("sha256:").to_uppercase();
        let colons: Vec<String> = fp
            .as_bytes()
            .chunks(2)
            .map(|c| String::from_utf8(c.to_vec()).unwrap())
            .collect();
        let orgs = ClientOrgs::new(
            vec![
                ("CN:firewall one".into(), "by-cn".into()),
                (format!("SHA256:{}", colons.join(":")), "by-fp".into()),
            ],
            false,
        )
        .unwrap();
        assert_eq!(orgs.resolve(&der).as_deref(), Some("by-fp"));
        orgs.replace(vec![("dns:fw1.acme.example.".into(), "by-dns".into())])
            .unwrap();
        assert_eq!(orgs.resolve(&der).as_deref(), Some("by-dns"));
        orgs.replace(vec![("cn:someone else".into(), "x".into())])
            .unwrap();
        assert_eq!(orgs.resolve(&der), None);
        assert_eq!(orgs.resolve(b"not a certificate"), None);
        for bad in ["fw1", "sha256:abc", "ip:not-an-ip", "serial:1", "cn:"] {
            assert!(canonical_identity(bad).is_err(), "{bad}");
        }
    }
}
