//! Calling a party's gateway on its federation port as another party would: with that party's
//! certificate (or a forged, expired or missing one), in hand-made envelopes. For the tests of
//! authentication, authorisation and replay protection.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use fedflow_proto::gateway::v1 as gw;
use fedflow_tls::pki::{Layout, Pem};
use tonic::transport::Channel;

use crate::TestFederation;

impl TestFederation {
    /// Party `party`'s PKI directory (made by the federation at start).
    pub fn pki(&self, party: &str) -> Layout {
        Layout::new(self.dir.path().join("pki").join(party))
    }

    /// Party `party`'s gateway federation port.
    pub fn federation_addr(&self, party: &str) -> String {
        self.federation
            .party(party)
            .unwrap_or_else(|| panic!("no party {party}"))
            .federation
            .to_string()
    }

    /// A client of `target`'s federation port that authenticates as `party` with its real
    /// certificate.
    pub fn as_party(&self, party: &str, target: &str) -> PartyCaller {
        let pki = self.pki(party);
        self.with_certificate(party, &pki.cert(), &pki.key(), target)
    }

    /// A client of `target`'s federation port presenting the certificate and key files given,
    /// which name `party`.
    pub fn with_certificate(
        &self,
        party: &str,
        cert: &Path,
        key: &Path,
        target: &str,
    ) -> PartyCaller {
        let material = fedflow_tls::Reloadable::load(
            fedflow_tls::TlsFiles {
                cert: cert.to_path_buf(),
                key: key.to_path_buf(),
                trust: BTreeMap::from([(target.to_owned(), self.pki(target).ca_cert())]),
            },
            party,
        )
        .expect("load the caller's TLS material");
        let channel = fedflow_tls::client::channel(&self.federation_addr(target), material, target)
            .expect("a channel");
        PartyCaller::new(party, target, channel)
    }

    /// A client of `target`'s federation port that presents no certificate.
    pub fn anonymous(&self, target: &str) -> PartyCaller {
        let helper = self
            .party_ids()
            .into_iter()
            .find(|p| p != target)
            .expect("another party");
        let pki = self.pki(&helper);
        let material = fedflow_tls::Reloadable::load(
            fedflow_tls::TlsFiles {
                cert: pki.cert(),
                key: pki.key(),
                trust: BTreeMap::from([(target.to_owned(), self.pki(target).ca_cert())]),
            },
            &helper,
        )
        .expect("load TLS material");
        let config =
            fedflow_tls::client::anonymous_config(material, target).expect("a client config");
        let channel = fedflow_tls::client::channel_with(&self.federation_addr(target), config)
            .expect("a channel");
        PartyCaller::new(&helper, target, channel)
    }
}

/// Writes a certificate and key under `dir` as `<name>.crt` / `<name>.key`.
pub fn write_pem(dir: &Path, name: &str, pem: &Pem) -> (PathBuf, PathBuf) {
    let cert = dir.join(format!("{name}.crt"));
    let key = dir.join(format!("{name}.key"));
    std::fs::write(&cert, &pem.cert).expect("write a certificate");
    std::fs::write(&key, &pem.key).expect("write a key");
    (cert, key)
}

/// Sends envelopes to one party's gateway as one party.
#[derive(Clone)]
pub struct PartyCaller {
    pub party: String,
    pub target: String,
    client: gw::federation_client::FederationClient<Channel>,
}

impl PartyCaller {
    fn new(party: &str, target: &str, channel: Channel) -> PartyCaller {
        PartyCaller {
            party: party.to_owned(),
            target: target.to_owned(),
            client: gw::federation_client::FederationClient::new(channel),
        }
    }

    /// An envelope from this caller's party to the target about `job_id`, fresh (issued now,
    /// valid `lifetime_ms`), with a new request id.
    pub fn envelope<M: prost::Message>(
        &self,
        job_id: &str,
        service: &str,
        method: &str,
        request: &M,
        lifetime_ms: i64,
    ) -> gw::Envelope {
        let mut envelope = fedflow_rpc::party::envelope(
            &self.party,
            &self.target,
            job_id,
            (service, method),
            &fedflow_rpc::new_request_id(),
            Bytes::from(request.encode_to_vec()),
            std::time::Duration::from_millis(u64::try_from(lifetime_ms).unwrap_or(0)),
        );
        // As another party's gateway forwards it.
        envelope.hops = 1;
        envelope
    }

    /// Sends `envelope` as it is; the inner reply's bytes.
    pub async fn send(&self, envelope: gw::Envelope) -> Result<Bytes, tonic::Status> {
        let mut request = tonic::Request::new(envelope);
        request.set_timeout(std::time::Duration::from_secs(10));
        Ok(self
            .client
            .clone()
            .forward(request)
            .await?
            .into_inner()
            .payload)
    }

    /// A fresh envelope for `request`, sent; the decoded reply.
    pub async fn call<M: prost::Message, R: prost::Message + Default>(
        &self,
        job_id: &str,
        service: &str,
        method: &str,
        request: &M,
    ) -> Result<R, tonic::Status> {
        let reply = self
            .send(self.envelope(job_id, service, method, request, 10_000))
            .await?;
        R::decode(reply).map_err(|e| tonic::Status::internal(e.to_string()))
    }
}
