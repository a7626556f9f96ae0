//! A party's PKI: its own certificate authority and its gateway's certificate, as `fedflow
//! pki` makes them. Keys are ECDSA P-256. The CA is constrained to issue end-entity
//! certificates only (path length 0).
//!
//! A party directory holds:
//!
//! | file | what | who needs it |
//! |---|---|---|
//! | `ca.crt` | the party's CA certificate | every other party (its route to this party names it) |
//! | `ca.key` | the CA's key (0600) | only whoever issues this party's certificates |
//! | `gateway.crt` | the gateway's certificate, URI SAN `spiffe://fedflow/party/<id>` | this gateway |
//! | `gateway.key` | the gateway's key (0600) | this gateway |

use std::io::Write;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use time::{Duration, OffsetDateTime};

use crate::Error;
use crate::identity::party_uri;

/// When a certificate is valid.
#[derive(Debug, Clone, Copy)]
pub struct Validity {
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
}

impl Validity {
    /// From an hour ago (clocks differ between parties) for `days` days.
    pub fn days(days: u32) -> Validity {
        let now = OffsetDateTime::now_utc();
        Validity {
            not_before: now - Duration::hours(1),
            not_after: now + Duration::days(i64::from(days)),
        }
    }
}

/// A certificate and its key, PEM-encoded.
#[derive(Debug, Clone)]
pub struct Pem {
    pub cert: String,
    pub key: String,
}

/// A new CA for `party`.
pub fn new_ca(party: &str, validity: Validity) -> Result<Pem, Error> {
    check_party(party)?;
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::default();
    params.distinguished_name = name(&format!("fedflow party {party} CA"));
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.serial_number = Some(serial());
    params.not_before = validity.not_before;
    params.not_after = validity.not_after;
    let cert = params.self_signed(&key)?;
    Ok(Pem {
        cert: cert.pem(),
        key: key.serialize_pem(),
    })
}

/// A gateway certificate for `party`, issued by `ca`: URI SAN naming the party, the given DNS
/// names and IP addresses (for tools that check host names; fedflow checks the party), server
/// and client authentication.
pub fn issue_gateway(
    ca: &Pem,
    party: &str,
    hosts: &[String],
    validity: Validity,
) -> Result<Pem, Error> {
    let ca_key = KeyPair::from_pem(&ca.key)?;
    let issuer = Issuer::from_ca_cert_pem(&ca.cert, ca_key)?;
    let key = KeyPair::generate()?;
    let mut params = gateway_params(party, hosts, validity)?;
    params.use_authority_key_identifier_extension = true;
    let cert = params.signed_by(&key, &issuer)?;
    Ok(Pem {
        cert: cert.pem(),
        key: key.serialize_pem(),
    })
}

/// What every gateway certificate says: the party (URI SAN), host names for tools, server and
/// client authentication, a random serial, the validity.
fn gateway_params(
    party: &str,
    hosts: &[String],
    validity: Validity,
) -> Result<CertificateParams, Error> {
    check_party(party)?;
    let mut params = CertificateParams::default();
    params.distinguished_name = name(&format!("fedflow party {party} gateway"));
    let mut sans = vec![SanType::URI(party_uri(party).try_into()?)];
    for host in hosts {
        sans.push(match host.parse::<std::net::IpAddr>() {
            Ok(ip) => SanType::IpAddress(ip),
            Err(_) => SanType::DnsName(host.clone().try_into()?),
        });
    }
    params.subject_alt_names = sans;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.serial_number = Some(serial());
    params.not_before = validity.not_before;
    params.not_after = validity.not_after;
    Ok(params)
}

/// A self-signed certificate naming `party`, which no CA vouches for: what an impostor could
/// make. For tests and trials; a gateway refuses it.
pub fn self_signed_gateway(party: &str, validity: Validity) -> Result<Pem, Error> {
    let key = KeyPair::generate()?;
    let cert = gateway_params(party, &[], validity)?.self_signed(&key)?;
    Ok(Pem {
        cert: cert.pem(),
        key: key.serialize_pem(),
    })
}

/// The files of a party's PKI directory.
#[derive(Debug, Clone)]
pub struct Layout {
    pub dir: PathBuf,
}

impl Layout {
    pub fn new(dir: impl Into<PathBuf>) -> Layout {
        Layout { dir: dir.into() }
    }
    pub fn ca_cert(&self) -> PathBuf {
        self.dir.join("ca.crt")
    }
    pub fn ca_key(&self) -> PathBuf {
        self.dir.join("ca.key")
    }
    pub fn cert(&self) -> PathBuf {
        self.dir.join("gateway.crt")
    }
    pub fn key(&self) -> PathBuf {
        self.dir.join("gateway.key")
    }

    /// Creates the party's CA and a first gateway certificate. Refuses to overwrite an
    /// existing CA.
    pub fn init(
        &self,
        party: &str,
        hosts: &[String],
        ca_validity: Validity,
        validity: Validity,
    ) -> Result<(), Error> {
        if self.ca_key().exists() || self.ca_cert().exists() {
            return Err(Error::file(
                &self.ca_cert(),
                "a CA already exists here; `fedflow pki issue` makes a new gateway certificate from it",
            ));
        }
        std::fs::create_dir_all(&self.dir).map_err(|e| Error::file(&self.dir, e))?;
        let ca = new_ca(party, ca_validity)?;
        write_atomic(&self.ca_key(), ca.key.as_bytes(), true)?;
        write_atomic(&self.ca_cert(), ca.cert.as_bytes(), false)?;
        self.issue(party, hosts, validity)
    }

    /// A new gateway key and certificate from the directory's CA, replacing the old ones (each
    /// file replaced atomically; a gateway that reloads reads either the old pair or the new).
    pub fn issue(&self, party: &str, hosts: &[String], validity: Validity) -> Result<(), Error> {
        let ca = Pem {
            cert: read(&self.ca_cert())?,
            key: read(&self.ca_key())?,
        };
        let leaf = issue_gateway(&ca, party, hosts, validity)?;
        write_atomic(&self.key(), leaf.key.as_bytes(), true)?;
        write_atomic(&self.cert(), leaf.cert.as_bytes(), false)?;
        Ok(())
    }
}

fn check_party(party: &str) -> Result<(), Error> {
    fedflow_core::ids::party_id(party).map_err(|e| Error::Invalid(e.to_string()))
}

fn name(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "fedflow");
    dn.push(DnType::CommonName, common_name);
    dn
}

fn serial() -> SerialNumber {
    let mut bytes: [u8; 16] = rand::random();
    bytes[0] &= 0x7f;
    SerialNumber::from_slice(&bytes)
}

fn read(path: &Path) -> Result<String, Error> {
    std::fs::read_to_string(path).map_err(|e| Error::file(path, e))
}

/// Writes `path` through a temporary file and a rename; `secret` files are 0600.
pub fn write_atomic(path: &Path, contents: &[u8], secret: bool) -> Result<(), Error> {
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(if secret { 0o600 } else { 0o644 })
        .open(&tmp)
        .map_err(|e| Error::file(&tmp, e))?;
    file.write_all(contents)
        .and_then(|()| file.sync_all())
        .map_err(|e| Error::file(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::file(path, e))
}
