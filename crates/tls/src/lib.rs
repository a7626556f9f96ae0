//! Mutual TLS between party-gateways.
//!
//! Every party has its own certificate authority. A gateway's certificate names its party in a
//! URI SAN, `spiffe://fedflow/party/<id>` ([`identity`]), and serves both ends of a connection
//! (server and client authentication). A gateway trusts, per remote party, only that party's CA
//! bundle from its route table: a peer is the party its certificate names, and only when the
//! certificate chains to that party's CA ([`material`]).
//!
//! - [`pki`]: creating a party's CA, issuing its gateway certificate (`fedflow pki`).
//! - [`material`]: the certificate, key and trust bundles read from files, reloaded while the
//!   gateway runs, so certificates rotate without a restart.
//! - [`server`]: the accepting end: TLS handshakes before any request is read, the peer's
//!   party attached to every request of the connection as [`server::PeerParty`].
//! - [`client`]: the connecting end, a connector for tonic channels that checks the server is
//!   the party it was dialled as.

/// The handshake-signature methods of a certificate verifier, the same for both ends (a
/// `ServerCertVerifier` or a `ClientCertVerifier` with a `signatures: Signatures` field): each
/// checks with rustls' function of the same name and the provider's algorithms.
macro_rules! verify_signatures_with_provider {
    () => {
        verify_signatures_with_provider!(verify_tls12_signature);
        verify_signatures_with_provider!(verify_tls13_signature);

        fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
            self.signatures
                .0
                .signature_verification_algorithms
                .supported_schemes()
        }
    };
    ($verify:ident) => {
        fn $verify(
            &self,
            message: &[u8],
            cert: &rustls::pki_types::CertificateDer<'_>,
            dss: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::$verify(
                message,
                cert,
                dss,
                &self.signatures.0.signature_verification_algorithms,
            )
        }
    };
}

pub mod client;
pub mod identity;
pub mod material;
pub mod pki;
pub mod server;

pub use material::{Material, Reloadable, TlsFiles};

/// Why TLS material could not be made, read or used.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {message}")]
    File { path: String, message: String },
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Generate(#[from] rcgen::Error),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

impl Error {
    pub(crate) fn file(path: &std::path::Path, message: impl std::fmt::Display) -> Error {
        Error::File {
            path: path.display().to_string(),
            message: message.to_string(),
        }
    }
}

/// The crypto provider every configuration of this crate uses (ring; TLS 1.3 only).
pub(crate) fn provider() -> std::sync::Arc<rustls::crypto::CryptoProvider> {
    std::sync::Arc::new(rustls::crypto::ring::default_provider())
}

/// The crypto provider of a certificate verifier, whose algorithms check the handshake
/// signatures (`verify_signatures_with_provider!`).
#[derive(Debug)]
pub(crate) struct Signatures(pub(crate) std::sync::Arc<rustls::crypto::CryptoProvider>);
