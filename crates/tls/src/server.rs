//! The accepting end: every connection completes a mutual TLS handshake before any request on
//! it is read. The client certificate must name a party (URI SAN) and chain to that party's CA
//! from the route table; anything else (no certificate, self-signed, another party's CA,
//! expired, unknown party) fails the handshake, so no handler ever runs for it.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ClientHello, ResolvesServerCert, ServerConfig};
use rustls::sign::CertifiedKey;
use rustls::{CertificateError, DistinguishedName};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;

use crate::material::Reloadable;
use crate::{Error, Signatures, identity, provider};

/// How long a peer may take to complete its handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The authenticated party at the other end of a connection: in the request extensions of
/// every request that arrived on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerParty(pub String);

/// The server configuration of a gateway: its current certificate, and client certificates
/// checked against the current trust bundles (both follow `material`'s reloads).
pub fn config(material: Arc<Reloadable>) -> Result<Arc<ServerConfig>, Error> {
    let provider = provider();
    let mut config = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| Error::Invalid(e.to_string()))?
        .with_client_cert_verifier(Arc::new(PartyClientVerifier {
            material: material.clone(),
            signatures: Signatures(provider),
        }))
        .with_cert_resolver(Arc::new(CurrentCert(material)));
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

#[derive(Debug)]
struct CurrentCert(Arc<Reloadable>);

impl ResolvesServerCert for CurrentCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.current().key.clone())
    }
}

#[derive(Debug)]
struct PartyClientVerifier {
    material: Arc<Reloadable>,
    signatures: Signatures,
}

pub(crate) fn refused(message: String) -> rustls::Error {
    rustls::Error::InvalidCertificate(CertificateError::Other(rustls::OtherError(Arc::new(
        std::io::Error::other(message),
    ))))
}

impl ClientCertVerifier for PartyClientVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let party = identity::party_of(end_entity).map_err(|e| refused(e.to_string()))?;
        let material = self.material.current();
        let verifier = material.client_verifiers.get(&party).ok_or_else(|| {
            refused(format!(
                "the certificate names party {party}, which has no CA in this gateway's route table"
            ))
        })?;
        verifier
            .verify_client_cert(end_entity, intermediates, now)
            .map_err(|e| match e {
                rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer) => refused(
                    format!("the certificate names party {party} but does not chain to party {party}'s CA"),
                ),
                other => other,
            })
    }

    verify_signatures_with_provider!();
}

/// A server configuration for a client API: TLS with the certificate and key in these PEM
/// files (any CA; clients check it), no client certificates. Read once.
pub fn client_api_config(
    cert: &std::path::Path,
    key: &std::path::Path,
) -> Result<Arc<ServerConfig>, Error> {
    use rustls::pki_types::pem::PemObject;
    let chain = rustls::pki_types::CertificateDer::pem_file_iter(cert)
        .map_err(|e| Error::file(cert, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Error::file(cert, e))?;
    let key_der = rustls::pki_types::PrivateKeyDer::from_pem_file(key)
        .map_err(|e| Error::file(key, format!("no readable private key: {e}")))?;
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| Error::Invalid(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, key_der)
        .map_err(|e| Error::file(cert, e))?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

/// A connection that completed the handshake, with the party it authenticated as (none on a
/// server without client certificates, see [`client_api_config`]).
pub struct PartyStream {
    inner: tokio_rustls::server::TlsStream<TcpStream>,
    party: Option<PeerParty>,
}

impl tonic::transport::server::Connected for PartyStream {
    type ConnectInfo = Option<PeerParty>;

    fn connect_info(&self) -> Option<PeerParty> {
        self.party.clone()
    }
}

impl AsyncRead for PartyStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for PartyStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// Accepts connections on `listener` and completes their handshakes (each in its own task,
/// so a slow peer holds up no one); yields only connections that completed it, and with
/// `require_party` only those whose certificate names a party. Refused handshakes are logged
/// with the reason. Ends at `shutdown` or when the stream is dropped.
pub fn incoming(
    listener: TcpListener,
    config: Arc<ServerConfig>,
    require_party: bool,
    shutdown: CancellationToken,
) -> ReceiverStream<Result<PartyStream, std::io::Error>> {
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    tokio::spawn(async move {
        loop {
            let (tcp, addr) = tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tx.closed() => return,
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            let _ = tcp.set_nodelay(true);
            let acceptor = acceptor.clone();
            let tx = tx.clone();
            tokio::spawn(async move {
                let handshake = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await;
                let stream = match handshake {
                    Ok(Ok(stream)) => stream,
                    Ok(Err(e)) => {
                        tracing::warn!(peer = %addr, error = %e, "TLS handshake refused");
                        return;
                    }
                    Err(_) => {
                        tracing::warn!(peer = %addr, "TLS handshake timed out");
                        return;
                    }
                };
                let party = stream
                    .get_ref()
                    .1
                    .peer_certificates()
                    .and_then(|certs| certs.first())
                    .map(|cert| identity::party_of(cert));
                let party = match (party, require_party) {
                    (Some(Ok(party)), _) => Some(PeerParty(party)),
                    (None, false) => None,
                    _ => {
                        tracing::warn!(peer = %addr, "connection without a party certificate dropped");
                        return;
                    }
                };
                tracing::debug!(peer = %addr, party = ?party, "connected");
                let _ = tx
                    .send(Ok(PartyStream {
                        inner: stream,
                        party,
                    }))
                    .await;
            });
        }
    });
    ReceiverStream::new(rx)
}
