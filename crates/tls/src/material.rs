//! The TLS material of one gateway: its certificate and key, and per remote party the CA
//! bundle that identifies it. Read from files; [`Reloadable`] re-reads them while the gateway
//! runs and swaps them in when they change and are valid, so certificates and trust bundles
//! rotate without a restart (connections already open keep their handshake).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use rustls::RootCertStore;
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::ClientCertVerifier;
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_util::sync::CancellationToken;

use crate::{Error, identity, provider};

/// Where a gateway's TLS material lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The gateway's certificate chain (PEM), naming this party.
    pub cert: PathBuf,
    /// Its private key (PEM, PKCS#8 or SEC1).
    pub key: PathBuf,
    /// Per remote party, the CA certificate(s) its gateway's certificate must chain to (PEM;
    /// several during a CA rotation).
    pub trust: BTreeMap<String, PathBuf>,
}

/// The material in use: what the files held when last read.
pub struct Material {
    /// The party this gateway's certificate names.
    pub party: String,
    pub key: Arc<CertifiedKey>,
    /// SHA-256 of the certificate (DER), hex: what logs and tests compare.
    pub fingerprint: String,
    pub(crate) roots: HashMap<String, Arc<RootCertStore>>,
    pub(crate) client_verifiers: HashMap<String, Arc<dyn ClientCertVerifier>>,
}

impl std::fmt::Debug for Material {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Material")
            .field("party", &self.party)
            .field("fingerprint", &self.fingerprint)
            .field("trusted_parties", &self.roots.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Material {
    /// Reads and checks `files`: the certificate must name `own_party` and match the key;
    /// every trust bundle must hold at least one CA certificate.
    pub fn load(files: &TlsFiles, own_party: &str) -> Result<Material, Error> {
        let provider = provider();
        let chain = certs(&files.cert)?;
        let leaf = chain
            .first()
            .ok_or_else(|| Error::file(&files.cert, "no certificate in the file"))?;
        let party = identity::party_of(leaf).map_err(|e| Error::file(&files.cert, e))?;
        if party != own_party {
            return Err(Error::file(
                &files.cert,
                format!("the certificate names party {party}, this gateway is party {own_party}"),
            ));
        }
        let fingerprint = fingerprint(leaf);
        let key_der = PrivateKeyDer::from_pem_file(&files.key)
            .map_err(|e| Error::file(&files.key, format!("no readable private key: {e}")))?;
        let signing = provider
            .key_provider
            .load_private_key(key_der)
            .map_err(|e| Error::file(&files.key, e))?;
        let key = CertifiedKey::new(chain, signing);
        key.keys_match().map_err(|e| {
            Error::file(
                &files.key,
                format!(
                    "does not match the certificate {}: {e}",
                    files.cert.display()
                ),
            )
        })?;
        let mut roots = HashMap::new();
        let mut client_verifiers = HashMap::new();
        for (peer, path) in &files.trust {
            let mut store = RootCertStore::empty();
            for cert in certs(path)? {
                store.add(cert).map_err(|e| Error::file(path, e))?;
            }
            let store = Arc::new(store);
            let verifier =
                WebPkiClientVerifier::builder_with_provider(store.clone(), provider.clone())
                    .build()
                    .map_err(|e| Error::file(path, e))?;
            roots.insert(peer.clone(), store);
            client_verifiers.insert(peer.clone(), verifier);
        }
        Ok(Material {
            party,
            key: Arc::new(key),
            fingerprint,
            roots,
            client_verifiers,
        })
    }
}

fn certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, Error> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| Error::file(path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Error::file(path, e))?;
    if certs.is_empty() {
        return Err(Error::file(path, "no certificate in the file"));
    }
    Ok(certs)
}

/// The fingerprint of the first certificate in a PEM file.
pub fn file_fingerprint(path: &Path) -> Result<String, Error> {
    let certs = certs(path)?;
    Ok(fingerprint(&certs[0]))
}

/// SHA-256 of a DER certificate, lowercase hex.
pub fn fingerprint(der: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, der)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// [`Material`] that follows its files.
pub struct Reloadable {
    files: TlsFiles,
    own_party: String,
    current: RwLock<Arc<Material>>,
    /// The files' contents when last read, to notice a change.
    seen: Mutex<Vec<u8>>,
}

impl std::fmt::Debug for Reloadable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.current().fmt(f)
    }
}

impl Reloadable {
    /// Loads the material; an error names the file at fault.
    pub fn load(files: TlsFiles, own_party: &str) -> Result<Arc<Reloadable>, Error> {
        let seen = snapshot(&files);
        let material = Material::load(&files, own_party)?;
        Ok(Arc::new(Reloadable {
            files,
            own_party: own_party.to_owned(),
            current: RwLock::new(Arc::new(material)),
            seen: Mutex::new(seen),
        }))
    }

    /// The material in use now.
    pub fn current(&self) -> Arc<Material> {
        match self.current.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Re-reads the files if they changed. `Ok(true)`: new material is in use; `Ok(false)`:
    /// nothing changed; `Err`: the files changed but are not valid (the old material stays in
    /// use — a rotation caught half-written is picked up on the next try).
    pub fn reload(&self) -> Result<bool, Error> {
        let now = snapshot(&self.files);
        {
            let seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
            if *seen == now {
                return Ok(false);
            }
        }
        let material = Material::load(&self.files, &self.own_party)?;
        tracing::info!(party = %material.party, fingerprint = %material.fingerprint, "TLS material reloaded");
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(material);
        *self.seen.lock().unwrap_or_else(|p| p.into_inner()) = now;
        Ok(true)
    }

    /// Re-reads the files every `interval` until `shutdown`.
    pub fn spawn_reloader(self: &Arc<Self>, interval: Duration, shutdown: CancellationToken) {
        let this = self.clone();
        tokio::spawn(async move {
            let mut warned = false;
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(interval) => {}
                }
                match this.reload() {
                    Ok(_) => warned = false,
                    Err(e) if !warned => {
                        tracing::warn!(error = %e, "TLS files changed but cannot be used; keeping the current ones");
                        warned = true;
                    }
                    Err(_) => {}
                }
            }
        });
    }
}

/// Every file's bytes (or its read error), in a fixed order.
fn snapshot(files: &TlsFiles) -> Vec<u8> {
    let mut all = Vec::new();
    for path in [&files.cert, &files.key]
        .into_iter()
        .chain(files.trust.values())
    {
        match std::fs::read(path) {
            Ok(bytes) => all.extend_from_slice(&bytes),
            Err(e) => all.extend_from_slice(e.to_string().as_bytes()),
        }
        all.push(0);
    }
    all
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::{Layout, Validity};

    fn dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "fedflow-tls-{name}-{}-{}",
            std::process::id(),
            rand::random::<u32>()
        ));
        std::fs::create_dir_all(&dir).expect("a temporary directory");
        dir
    }

    #[test]
    fn material_names_its_party_and_refuses_a_certificate_of_another() {
        let root = dir("material");
        let a = Layout::new(root.join("a"));
        let b = Layout::new(root.join("b"));
        a.init(
            "9999",
            &["localhost".into()],
            Validity::days(2),
            Validity::days(1),
        )
        .expect("init a");
        b.init("10000", &[], Validity::days(2), Validity::days(1))
            .expect("init b");
        let files = TlsFiles {
            cert: a.cert(),
            key: a.key(),
            trust: BTreeMap::from([("10000".to_owned(), b.ca_cert())]),
        };
        let material = Material::load(&files, "9999").expect("loads");
        assert_eq!(material.party, "9999");
        assert_eq!(
            crate::identity::party_of(&material.key.cert[0]).expect("names a party"),
            "9999"
        );
        let err = Material::load(&files, "10000").expect_err("names another party");
        assert!(err.to_string().contains("names party 9999"), "{err}");
        // A key that is not the certificate's.
        let mismatched = TlsFiles {
            key: b.key(),
            ..files.clone()
        };
        let err = Material::load(&mismatched, "9999").expect_err("mismatched key");
        assert!(err.to_string().contains("does not match"), "{err}");
        // A CA is never overwritten by init.
        let again = a.init("9999", &[], Validity::days(2), Validity::days(1));
        assert!(again.is_err());
        // Reload notices a new certificate from `issue`.
        let reloadable = Reloadable::load(files, "9999").expect("loads");
        let before = reloadable.current().fingerprint.clone();
        assert!(!reloadable.reload().expect("unchanged"));
        a.issue("9999", &[], Validity::days(1)).expect("issue");
        assert!(reloadable.reload().expect("changed"));
        assert_ne!(reloadable.current().fingerprint, before);
        let _ = std::fs::remove_dir_all(&root);
    }
}
