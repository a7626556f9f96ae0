//! The connecting end: a tonic channel to another party's gateway that presents this gateway's
//! current certificate and accepts the server only if its certificate chains to that party's
//! CA and names that party.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use rustls::SignatureScheme;
use rustls::client::danger::{ServerCertVerified, ServerCertVerifier};
use rustls::client::{ClientConfig, ResolvesClientCert};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::sign::CertifiedKey;
use tokio::net::TcpStream;
use tonic::transport::{Channel, Endpoint};

use crate::material::Reloadable;
use crate::server::refused;
use crate::{Error, Signatures, identity, provider};

/// The client configuration for connections to party `dest`'s gateway.
pub fn config(material: Arc<Reloadable>, dest: &str) -> Result<Arc<ClientConfig>, Error> {
    let resolver = Arc::new(CurrentClientCert(material.clone()));
    finish(builder(material, dest)?.with_client_cert_resolver(resolver))
}

/// A client configuration that checks the server as [`config`] does but presents no
/// certificate: what a caller from outside the federation looks like (for tests and
/// diagnostics; a gateway refuses it).
pub fn anonymous_config(material: Arc<Reloadable>, dest: &str) -> Result<Arc<ClientConfig>, Error> {
    finish(builder(material, dest)?.with_no_client_auth())
}

fn builder(
    material: Arc<Reloadable>,
    dest: &str,
) -> Result<rustls::ConfigBuilder<ClientConfig, rustls::client::WantsClientCert>, Error> {
    let provider = provider();
    Ok(ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| Error::Invalid(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(PartyServerVerifier {
            material,
            dest: dest.to_owned(),
            signatures: Signatures(provider),
        })))
}

fn finish(mut config: ClientConfig) -> Result<Arc<ClientConfig>, Error> {
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

/// A lazily connected channel to party `dest`'s gateway at `addr` (`host:port`).
pub fn channel(addr: &str, material: Arc<Reloadable>, dest: &str) -> Result<Channel, Error> {
    channel_with(addr, config(material, dest)?)
}

/// A lazily connected TLS channel to a client API at `addr` (`host:port`), whose certificate
/// must chain to a CA in the PEM file `ca` and name the host (standard server authentication,
/// no client certificate).
pub fn server_auth_channel(addr: &str, ca: &std::path::Path) -> Result<Channel, Error> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).map_err(|e| Error::file(ca, e))? {
        roots
            .add(cert.map_err(|e| Error::file(ca, e))?)
            .map_err(|e| Error::file(ca, e))?;
    }
    let config = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| Error::Invalid(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let host = addr
        .rsplit_once(':')
        .map_or(addr, |(host, _)| host)
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let name =
        ServerName::try_from(host).map_err(|e| Error::Invalid(format!("address {addr:?}: {e}")))?;
    connect_lazy(addr, finish(config)?, name)
}

/// A lazily connected channel to `addr` with the given client configuration.
pub fn channel_with(addr: &str, config: Arc<ClientConfig>) -> Result<Channel, Error> {
    connect_lazy(
        addr,
        config,
        ServerName::try_from(PARTY_SERVER_NAME).map_err(|e| Error::Invalid(e.to_string()))?,
    )
}

/// The name sent when dialling a party's gateway: the verifier checks the party instead.
const PARTY_SERVER_NAME: &str = "gateway.fedflow.invalid";

fn connect_lazy(
    addr: &str,
    config: Arc<ClientConfig>,
    name: ServerName<'static>,
) -> Result<Channel, Error> {
    let endpoint = Endpoint::from_shared(format!("http://{addr}"))
        .map_err(|e| Error::Invalid(format!("address {addr:?}: {e}")))?
        .connect_timeout(Duration::from_secs(3))
        .http2_keep_alive_interval(Duration::from_secs(30))
        .keep_alive_while_idle(true)
        .max_frame_size(fedflow_core::wire::HTTP2_MAX_FRAME);
    Ok(endpoint.connect_with_connector_lazy(Connector { config, name }))
}

#[derive(Debug)]
struct CurrentClientCert(Arc<Reloadable>);

impl ResolvesClientCert for CurrentClientCert {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        Some(self.0.current().key.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

#[derive(Debug)]
struct PartyServerVerifier {
    material: Arc<Reloadable>,
    dest: String,
    signatures: Signatures,
}

impl ServerCertVerifier for PartyServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let dest = &self.dest;
        let material = self.material.current();
        let roots = material.roots.get(dest).ok_or_else(|| {
            refused(format!(
                "party {dest} has no CA in this gateway's route table"
            ))
        })?;
        let cert = ParsedCertificate::try_from(end_entity)?;
        rustls::client::verify_server_cert_signed_by_trust_anchor(
            &cert,
            roots,
            intermediates,
            now,
            self.signatures.0.signature_verification_algorithms.all,
        )?;
        let party = identity::party_of(end_entity).map_err(|e| refused(e.to_string()))?;
        if &party != dest {
            return Err(refused(format!(
                "the gateway dialled as party {dest} presented a certificate for party {party}"
            )));
        }
        Ok(ServerCertVerified::assertion())
    }

    verify_signatures_with_provider!();
}

/// Dials TCP and runs the TLS handshake, sending `name`.
#[derive(Clone)]
struct Connector {
    config: Arc<ClientConfig>,
    name: ServerName<'static>,
}

type Connecting = Pin<
    Box<
        dyn Future<
                Output = Result<
                    TokioIo<tokio_rustls::client::TlsStream<TcpStream>>,
                    std::io::Error,
                >,
            > + Send,
    >,
>;

impl tower::Service<http::Uri> for Connector {
    type Response = TokioIo<tokio_rustls::client::TlsStream<TcpStream>>;
    type Error = std::io::Error;
    type Future = Connecting;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: http::Uri) -> Self::Future {
        let config = self.config.clone();
        let name = self.name.clone();
        Box::pin(async move {
            let authority = uri
                .authority()
                .ok_or_else(|| std::io::Error::other(format!("no host in {uri}")))?
                .to_string();
            let tcp = TcpStream::connect(&authority).await?;
            tcp.set_nodelay(true)?;
            let tls = tokio_rustls::TlsConnector::from(config)
                .connect(name, tcp)
                .await?;
            Ok(TokioIo::new(tls))
        })
    }
}

/// Connects to party `dest`'s gateway at `addr`, completes a handshake as [`config`] does, and
/// returns the SHA-256 fingerprint of the certificate it presented: which certificate a
/// gateway serves now (after a rotation, say).
pub async fn peer_fingerprint(
    addr: &str,
    material: Arc<Reloadable>,
    dest: &str,
) -> Result<String, Error> {
    let config = config(material, dest)?;
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from(PARTY_SERVER_NAME).map_err(std::io::Error::other)?;
    let tls = tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await?;
    tls.get_ref()
        .1
        .peer_certificates()
        .and_then(|certs| certs.first())
        .map(|cert| crate::material::fingerprint(cert))
        .ok_or_else(|| Error::Invalid(format!("party {dest} presented no certificate")))
}
