//! The data plane's floor: a bare gRPC server and client over mutual TLS on loopback, the
//! same TLS stack, configuration and HTTP/2 frame size as the gateways' federation link
//! (`fedflow_tls`, `fedflow_core::wire`), serving the OSX `push`/`pop` from memory, with no
//! fedflow in between. What the data plane could do at best on this machine; the data-plane
//! figures are set beside it.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fedflow_proto::osx;
use fedflow_tls::material::{Reloadable, TlsFiles};
use fedflow_tls::pki::{self, Validity};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

/// FIFO queues by topic, in memory.
#[derive(Default, Clone)]
struct Queues {
    topics: Arc<Mutex<BTreeMap<String, VecDeque<bytes::Bytes>>>>,
    arrived: Arc<Notify>,
}

fn ok(payload: bytes::Bytes) -> osx::TransportOutbound {
    osx::TransportOutbound {
        code: fedflow_osx::OK.into(),
        payload,
        ..Default::default()
    }
}

#[tonic::async_trait]
impl osx::private_transfer_transport_server::PrivateTransferTransport for Queues {
    async fn peek(
        &self,
        _: Request<osx::PeekInbound>,
    ) -> Result<Response<osx::TransportOutbound>, Status> {
        Err(Status::unimplemented("the floor serves push and pop"))
    }

    async fn pop(
        &self,
        request: Request<osx::PopInbound>,
    ) -> Result<Response<osx::TransportOutbound>, Status> {
        let pop = request.into_inner();
        let deadline =
            tokio::time::Instant::now() + Duration::from_millis(pop.timeout.max(0) as u64);
        loop {
            let arrived = self.arrived.notified();
            if let Some(payload) = self
                .topics
                .lock()
                .expect("queues")
                .get_mut(&pop.topic)
                .and_then(VecDeque::pop_front)
            {
                return Ok(Response::new(ok(payload)));
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                return Ok(Response::new(osx::TransportOutbound {
                    code: fedflow_osx::TIMEOUT.into(),
                    ..Default::default()
                }));
            }
        }
    }

    async fn push(
        &self,
        request: Request<osx::PushInbound>,
    ) -> Result<Response<osx::TransportOutbound>, Status> {
        let push = request.into_inner();
        self.topics
            .lock()
            .expect("queues")
            .entry(push.topic)
            .or_default()
            .push_back(push.payload);
        self.arrived.notify_waiters();
        Ok(Response::new(ok(bytes::Bytes::new())))
    }

    async fn release(
        &self,
        _: Request<osx::ReleaseInbound>,
    ) -> Result<Response<osx::TransportOutbound>, Status> {
        Ok(Response::new(ok(bytes::Bytes::new())))
    }
}

/// The floor's server (party "1") and a client channel to it from party "2", over mutual TLS.
pub(super) struct Floor {
    pub(super) channel: tonic::transport::Channel,
    stop: CancellationToken,
    _dir: tempfile::TempDir,
}

impl Drop for Floor {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

fn material(dir: &std::path::Path, party: &str, peer: &str) -> Arc<Reloadable> {
    let files = TlsFiles {
        cert: dir.join(format!("{party}.crt")),
        key: dir.join(format!("{party}.key")),
        trust: [(peer.to_owned(), dir.join(format!("{peer}-ca.crt")))].into(),
    };
    Reloadable::load(files, party).expect("the floor's TLS material")
}

pub(super) async fn start() -> Floor {
    let dir = tempfile::tempdir().expect("a directory");
    for party in ["1", "2"] {
        let ca = pki::new_ca(party, Validity::days(1)).expect("a CA");
        let cert = pki::issue_gateway(&ca, party, &["127.0.0.1".into()], Validity::days(1))
            .expect("a certificate");
        let write = |name: String, text: &str| {
            std::fs::write(dir.path().join(name), text).expect("write PKI");
        };
        write(format!("{party}-ca.crt"), &ca.cert);
        write(format!("{party}.crt"), &cert.cert);
        write(format!("{party}.key"), &cert.key);
    }
    let server = material(dir.path(), "1", "2");
    let client = material(dir.path(), "2", "1");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the floor");
    let addr = listener.local_addr().expect("address");
    let stop = CancellationToken::new();
    let config = fedflow_tls::server::config(server).expect("the floor's server config");
    let incoming = fedflow_tls::server::incoming(listener, config, true, stop.clone());
    let service = osx::private_transfer_transport_server::PrivateTransferTransportServer::new(
        Queues::default(),
    )
    .max_decoding_message_size(usize::MAX);
    tokio::spawn({
        let stop = stop.clone();
        async move {
            tonic::transport::Server::builder()
                .tcp_nodelay(true)
                .max_frame_size(Some(fedflow_core::wire::HTTP2_MAX_FRAME))
                .add_service(service)
                .serve_with_incoming_shutdown(incoming, stop.cancelled_owned())
                .await
        }
    });
    let channel = fedflow_tls::client::channel(&addr.to_string(), client, "1")
        .expect("the floor's client channel");
    Floor {
        channel,
        stop,
        _dir: dir,
    }
}
