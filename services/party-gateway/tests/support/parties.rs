//! Test support for the data plane: each party's task-controller and job-controller faked by
//! one tonic server (`Sessions.GetSession` and `JobController.GetJob` answered from a table
//! the test edits), a PKI per party, gateway configurations, and OSX clients sending the
//! headers pyfate sends. Every wait polls with a deadline.

#![allow(dead_code)]

use std::collections::{BTreeSet, HashMap, HashSet};
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use fedflow_party_gateway::config::{
    Config, FederationConfig, LocalServices, Route, RouteTable, SecurityMode, TransferConfig,
};
use fedflow_proto::jobcontroller::v1 as jc;
use fedflow_proto::osx as pb;
use fedflow_proto::taskcontroller::v1 as tc;
use parking_lot::Mutex;
use tonic::transport::Channel;
use tonic::{Request, Response, Status};

pub const A: &str = "9999";
pub const B: &str = "10000";
pub const JOB: &str = "202612010000000000000001";
pub const SESSION: &str = "202612010000000000000001_hetero_lr_0_0";

/// A directory removed when dropped.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new() -> TempDir {
        let dir = std::env::temp_dir().join(format!(
            "fedflow-osx-test-{}",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&dir).expect("create a temporary directory");
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Polls `check` until it returns `Ok` or `within` passes, then panics with `what` and the
/// last thing `check` said.
pub async fn eventually<T, F, Fut>(what: &str, within: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = tokio::time::Instant::now() + within;
    let mut pause = Duration::from_millis(5);
    loop {
        match check().await {
            Ok(value) => return value,
            Err(seen) if tokio::time::Instant::now() >= deadline => {
                panic!("timed out after {within:?} waiting for {what}; last seen: {seen}")
            }
            Err(_) => {}
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(100));
    }
}

/// What a party's fake task-controller and job-controller answer.
#[derive(Default)]
pub struct World {
    /// Sessions with a running attempt on this party.
    pub running: HashSet<String>,
    /// Sessions whose task waits to start on this party.
    pub pending: HashSet<String>,
    /// How often each session was asked about.
    pub asked: HashMap<String, usize>,
    /// Job id -> (scheduler party, participants).
    pub jobs: HashMap<String, (String, BTreeSet<String>)>,
}

/// One party's fake task-controller (`Sessions`) and job-controller (`GetJob`).
#[derive(Clone, Default)]
pub struct Fakes {
    pub world: Arc<Mutex<World>>,
}

impl Fakes {
    /// A world where `SESSION` runs here and `JOB`'s participants are `participants`.
    pub fn with_job(participants: &[&str]) -> Fakes {
        let fakes = Fakes::default();
        {
            let mut w = fakes.world.lock();
            w.running.insert(SESSION.to_owned());
            w.jobs.insert(
                JOB.to_owned(),
                (
                    A.to_owned(),
                    participants.iter().map(|p| (*p).to_owned()).collect(),
                ),
            );
        }
        fakes
    }

    /// Serves both fakes on a free port of 127.0.0.1; returns the address.
    pub async fn serve(&self) -> SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the fakes");
        let addr = listener.local_addr().expect("the fakes' address");
        let routes =
            tonic::service::Routes::new(tc::sessions_server::SessionsServer::new(self.clone()))
                .add_service(jc::job_controller_server::JobControllerServer::new(
                    self.clone(),
                ));
        tokio::spawn(async move {
            tonic::transport::Server::builder()
                .add_routes(routes)
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
                .await
        });
        addr
    }
}

#[tonic::async_trait]
impl tc::sessions_server::Sessions for Fakes {
    async fn get_session(
        &self,
        request: Request<tc::GetSessionRequest>,
    ) -> Result<Response<tc::GetSessionResponse>, Status> {
        let id = request.into_inner().session_id;
        let (running, pending) = {
            let mut w = self.world.lock();
            *w.asked.entry(id.clone()).or_default() += 1;
            (w.running.contains(&id), w.pending.contains(&id))
        };
        Ok(Response::new(tc::GetSessionResponse {
            pending,
            running,
            job_id: id.chars().take(24).collect(),
            scheduler_party_id: A.into(),
            roles: if running {
                vec!["guest".into()]
            } else {
                vec![]
            },
        }))
    }
}

fn unserved<T>() -> Result<Response<T>, Status> {
    Err(Status::unimplemented("fake job-controller"))
}

#[tonic::async_trait]
impl jc::job_controller_server::JobController for Fakes {
    async fn create_job(
        &self,
        _: Request<jc::CreateJobRequest>,
    ) -> Result<Response<jc::CreateJobResponse>, Status> {
        unserved()
    }
    async fn apply_resource(
        &self,
        _: Request<jc::ApplyResourceRequest>,
    ) -> Result<Response<jc::ApplyResourceResponse>, Status> {
        unserved()
    }
    async fn return_resource(
        &self,
        _: Request<jc::ReturnResourceRequest>,
    ) -> Result<Response<jc::ReturnResourceResponse>, Status> {
        unserved()
    }
    async fn start_job(
        &self,
        _: Request<jc::StartJobRequest>,
    ) -> Result<Response<jc::StartJobResponse>, Status> {
        unserved()
    }
    async fn update_job_status(
        &self,
        _: Request<jc::UpdateJobStatusRequest>,
    ) -> Result<Response<jc::UpdateJobStatusResponse>, Status> {
        unserved()
    }
    async fn get_resources(
        &self,
        _: Request<jc::GetResourcesRequest>,
    ) -> Result<Response<jc::GetResourcesResponse>, Status> {
        unserved()
    }
    async fn get_job(
        &self,
        request: Request<jc::GetJobRequest>,
    ) -> Result<Response<jc::GetJobResponse>, Status> {
        let job_id = request.into_inner().job_id;
        let Some((scheduler, participants)) = self.world.lock().jobs.get(&job_id).cloned() else {
            return Err(Status::not_found(format!("job {job_id} is not here")));
        };
        Ok(Response::new(jc::GetJobResponse {
            jobs: vec![jc::PartyJob {
                job_id,
                scheduler_party_id: scheduler,
                ..Default::default()
            }],
            participants: participants.into_iter().collect(),
        }))
    }
}

/// Makes `party`'s CA and gateway certificate under `dir/pki/<party>`.
pub fn pki(dir: &Path, party: &str) -> fedflow_tls::pki::Layout {
    let layout = fedflow_tls::pki::Layout::new(dir.join("pki").join(party));
    if !layout.ca_cert().exists() {
        layout
            .init(
                party,
                &["localhost".to_owned()],
                fedflow_tls::pki::Validity::days(30),
                fedflow_tls::pki::Validity::days(30),
            )
            .expect("make a party's PKI");
    }
    layout
}

/// The addresses of one party's gateway.
#[derive(Debug, Clone)]
pub struct Ports {
    pub internal: SocketAddr,
    pub federation: SocketAddr,
    pub osx: SocketAddr,
}

/// A gateway configuration in mtls mode: `party`'s certificate, routes to `peers`
/// (party, federation address), its task- and job-controller at `fakes`, its store under
/// `dir/<party>`.
pub fn config(
    dir: &Path,
    party: &str,
    ports: &Ports,
    fakes: SocketAddr,
    peers: &[(&str, SocketAddr)],
    transfer: TransferConfig,
) -> Config {
    let own = pki(dir, party);
    Config {
        party_id: party.to_owned(),
        grpc: fedflow_config::GrpcConfig {
            listen: ports.internal.to_string(),
            ..Default::default()
        },
        federation: FederationConfig {
            listen: ports.federation.to_string(),
            mode: SecurityMode::Mtls,
            cert: own.cert(),
            key: own.key(),
            ..Default::default()
        },
        local: LocalServices {
            scheduler: fakes.to_string(),
            job_controller: fakes.to_string(),
            task_controller: fakes.to_string(),
        },
        routes: peers
            .iter()
            .map(|(p, addr)| {
                (
                    (*p).to_owned(),
                    Route::Full(RouteTable {
                        address: addr.to_string(),
                        ca: Some(pki(dir, p).ca_cert()),
                    }),
                )
            })
            .collect(),
        transfer: TransferConfig {
            listen: ports.osx.to_string(),
            data_dir: dir.join(party),
            ..transfer
        },
        ..Default::default()
    }
}

/// An OSX client of one gateway's transfer port, sending pyfate's headers; a new connection
/// per call, as pyfate makes.
#[derive(Clone)]
pub struct Osx {
    pub addr: SocketAddr,
    /// x-ptp-from-node-id: the party of the component calling.
    pub party: String,
}

impl Osx {
    pub fn new(addr: SocketAddr, party: &str) -> Osx {
        Osx {
            addr,
            party: party.to_owned(),
        }
    }

    async fn client(
        &self,
    ) -> pb::private_transfer_transport_client::PrivateTransferTransportClient<Channel> {
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", self.addr))
            .expect("an endpoint")
            .connect_timeout(Duration::from_secs(5))
            .connect_lazy();
        pb::private_transfer_transport_client::PrivateTransferTransportClient::new(channel)
            .max_decoding_message_size(64 << 20)
            .max_encoding_message_size(64 << 20)
    }

    fn headers<T>(
        &self,
        mut request: Request<T>,
        session: &str,
        target: Option<&str>,
    ) -> Request<T> {
        let m = request.metadata_mut();
        m.insert("x-ptp-trace-id", "0123456789abcdef".parse().expect("ascii"));
        m.insert("x-ptp-session-id", session.parse().expect("ascii"));
        if let Some(target) = target {
            m.insert("x-ptp-target-node-id", target.parse().expect("ascii"));
        }
        m.insert("x-ptp-from-node-id", self.party.parse().expect("ascii"));
        m.insert("x-ptp-tech-provider-code", "FATE".parse().expect("ascii"));
        request.set_timeout(Duration::from_secs(60));
        request
    }

    pub async fn push(
        &self,
        session: &str,
        target: &str,
        topic: &str,
        payload: Vec<u8>,
    ) -> Result<pb::TransportOutbound, Status> {
        let request = self.headers(
            Request::new(pb::PushInbound {
                topic: topic.to_owned(),
                payload: payload.into(),
                metadata: Default::default(),
            }),
            session,
            Some(target),
        );
        self.client()
            .await
            .push(request)
            .await
            .map(Response::into_inner)
    }

    pub async fn pop(
        &self,
        session: &str,
        topic: &str,
        timeout_ms: i32,
    ) -> Result<pb::TransportOutbound, Status> {
        let request = self.headers(
            Request::new(pb::PopInbound {
                topic: topic.to_owned(),
                timeout: timeout_ms,
            }),
            session,
            None,
        );
        self.client()
            .await
            .pop(request)
            .await
            .map(Response::into_inner)
    }

    pub async fn peek(&self, session: &str, topic: &str) -> Result<pb::TransportOutbound, Status> {
        let request = self.headers(
            Request::new(pb::PeekInbound {
                topic: topic.to_owned(),
            }),
            session,
            None,
        );
        self.client()
            .await
            .peek(request)
            .await
            .map(Response::into_inner)
    }

    pub async fn release(&self, session: &str) -> Result<pb::TransportOutbound, Status> {
        let request = self.headers(Request::new(pb::ReleaseInbound::default()), session, None);
        self.client()
            .await
            .release(request)
            .await
            .map(Response::into_inner)
    }
}

/// pyfate's payload: a serialised `Message` with a JSON head.
pub fn message(name: &str, body: &[u8]) -> Vec<u8> {
    use prost::Message as _;
    pb::Message {
        msg_id: name.to_owned(),
        head: format!("{{\"content_type\":\"text/plain\",\"message_id\":\"{name}\"}}").into(),
        body: body.to_vec().into(),
    }
    .encode_to_vec()
}

/// The body of a popped payload.
pub fn body_of(payload: &[u8]) -> Vec<u8> {
    use prost::Message as _;
    pb::Message::decode(payload)
        .expect("a popped payload is the pushed Message")
        .body
        .to_vec()
}
