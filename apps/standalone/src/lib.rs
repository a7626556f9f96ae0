//! Runs all four services of N parties in one process on localhost, each on an ephemeral
//! port with its own SQLite file under the data directory, the parties' gateways routed to
//! each other. This is `fedflow standalone` and the federation the end-to-end tests drive.
//!
//! Every listener is bound before any service starts, so each service's configuration can
//! name the others' real addresses; a call that arrives before its server runs waits in the
//! listen backlog.
//!
//! The addresses are kept in `<data_dir>/addresses.json`: started again on the same data
//! directory (after a crash, say), every service comes back on the same address, so the
//! workers still running and the jobs stored there find their services again.
//!
//! With [`Options::metrics`], each party also serves one Prometheus endpoint (`GET /metrics`)
//! for its four services, which share one registry (plus the process metrics).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use fedflow_party_gateway::config::{Route, RouteTable, SecurityMode};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid party id: {0}")]
    Party(String),
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
    #[error("{0}")]
    Addresses(String),
    #[error("party {0} PKI: {1}")]
    Pki(String, fedflow_tls::Error),
}

/// What to start.
#[derive(Debug, Clone)]
pub struct Options {
    pub parties: Vec<String>,
    pub data_dir: PathBuf,
    /// Cores each party's job-controller can give out.
    pub cores: u32,
    /// Per-party overrides of `cores`.
    pub cores_by_party: BTreeMap<String, u32>,
    /// The worker binary; empty = next to the running program.
    pub worker_bin: PathBuf,
    pub heartbeat_interval_ms: u64,
    pub heartbeat_timeout_ms: u64,
    /// Database URL per (party, service name) instead of SQLite under the data dir;
    /// `{party}` and `{service}` are replaced (e.g. one PostgreSQL database per service).
    pub database_url_template: Option<String>,
    /// Mutual TLS between the parties' gateways (the default), with a PKI per party made under
    /// `<data_dir>/pki/<party>` on first start; `false`: plaintext, insecure mode.
    pub mtls: bool,
    /// How often gateways re-read their certificates (ms).
    pub tls_reload_interval_ms: u64,
    /// External components registered on each party (its task-controller's `components`).
    pub components_by_party:
        BTreeMap<String, BTreeMap<String, fedflow_task_controller::config::ComponentConfig>>,
    /// The python of a venv holding pyfate, for every party (each keeps its FATE tables under
    /// its own data directory); empty: the parties run no FATE components.
    pub fate_python: PathBuf,
    /// Warm pyfate interpreters per party (its task-controller's `[fate] warm_pool`).
    pub fate_warm_pool: u32,
    /// One Prometheus endpoint per party, on its own port (off by default).
    pub metrics: bool,
    /// Serve each party's web board (its scheduler's `board.listen`) on a port of its own.
    pub board: bool,
}

impl Options {
    pub fn new(parties: Vec<String>, data_dir: PathBuf) -> Self {
        Options {
            parties,
            data_dir,
            cores: 20,
            cores_by_party: BTreeMap::new(),
            worker_bin: PathBuf::new(),
            heartbeat_interval_ms: 1_000,
            heartbeat_timeout_ms: 10_000,
            database_url_template: None,
            mtls: true,
            tls_reload_interval_ms: 1_000,
            components_by_party: BTreeMap::new(),
            fate_python: PathBuf::new(),
            fate_warm_pool: fedflow_task_controller::config::FateConfig::default().warm_pool,
            metrics: false,
            board: false,
        }
    }

    /// The PKI directory of `party` (mtls mode).
    pub fn pki_dir(&self, party: &str) -> PathBuf {
        self.data_dir.join("pki").join(party)
    }

    fn database(&self, party: &str, service: &str, dir: &Path) -> fedflow_config::DatabaseConfig {
        let url = match &self.database_url_template {
            Some(template) => template
                .replace("{party}", party)
                .replace("{service}", &service.replace('-', "_")),
            None => fedflow_store::sqlite_url(&dir.join(format!("{service}.db"))),
        };
        fedflow_config::DatabaseConfig {
            url,
            max_connections: 8,
        }
    }
}

/// The addresses of one party's services.
#[derive(Debug, Clone)]
pub struct Party {
    pub party_id: String,
    pub scheduler: SocketAddr,
    pub job_controller: SocketAddr,
    pub task_controller: SocketAddr,
    /// The gateway's internal port (this party's services).
    pub gateway: SocketAddr,
    /// The gateway's federation port (other parties' gateways).
    pub federation: SocketAddr,
    /// The gateway's transfer port: FATE's OSX broker for this party's components.
    pub osx: SocketAddr,
    /// The party's Prometheus endpoint (`http://{metrics}/metrics`), when served.
    pub metrics: Option<SocketAddr>,
    /// The scheduler's web board (HTTP), when [`Options::board`] is on.
    pub board: Option<SocketAddr>,
}

/// A running federation; [`Federation::shutdown`] stops it.
pub struct Federation {
    pub parties: Vec<Party>,
    shutdown: CancellationToken,
    handles: Vec<(String, JoinHandle<Result<(), String>>)>,
}

async fn bind() -> Result<tokio::net::TcpListener, Error> {
    fedflow_rpc::server::bind("127.0.0.1:0")
        .await
        .map_err(|e| Error::Io("bind 127.0.0.1:0".into(), e))
}

/// The file that keeps a data directory's addresses.
pub fn addresses_file(data_dir: &Path) -> PathBuf {
    data_dir.join("addresses.json")
}

/// The addresses kept for the data directory: party → service → `host:port`.
type Kept = BTreeMap<String, BTreeMap<String, String>>;

fn read_kept(data_dir: &Path) -> Result<Kept, Error> {
    let path = addresses_file(data_dir);
    match std::fs::read_to_string(&path) {
        Ok(text) => serde_json::from_str(&text)
            .map_err(|e| Error::Addresses(format!("{}: not valid: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Kept::new()),
        Err(e) => Err(Error::Io(path.display().to_string(), e)),
    }
}

fn write_kept(data_dir: &Path, kept: &Kept) -> Result<(), Error> {
    let path = addresses_file(data_dir);
    let tmp = data_dir.join("addresses.json.tmp");
    let text = serde_json::to_string_pretty(kept).unwrap_or_default();
    std::fs::write(&tmp, text).map_err(|e| Error::Io(tmp.display().to_string(), e))?;
    std::fs::rename(&tmp, &path).map_err(|e| Error::Io(path.display().to_string(), e))
}

/// Binds the address kept for (party, service), or a fresh ephemeral one.
async fn bind_kept(
    kept: &Kept,
    party: &str,
    service: &str,
    data_dir: &Path,
) -> Result<tokio::net::TcpListener, Error> {
    let Some(addr) = kept.get(party).and_then(|p| p.get(service)) else {
        return bind().await;
    };
    fedflow_rpc::server::bind(addr).await.map_err(|e| {
        Error::Addresses(format!(
            "party {party} {service}: cannot listen on {addr}, its address for the data \
             directory {} (kept in {}): {e}; is another fedflow standalone running on it?",
            data_dir.display(),
            addresses_file(data_dir).display()
        ))
    })
}

fn addr(listener: &tokio::net::TcpListener) -> Result<SocketAddr, Error> {
    listener
        .local_addr()
        .map_err(|e| Error::Io("local address".into(), e))
}

impl Federation {
    pub async fn start(options: Options) -> Result<Federation, Error> {
        struct Listeners {
            scheduler: tokio::net::TcpListener,
            job_controller: tokio::net::TcpListener,
            task_controller: tokio::net::TcpListener,
            gateway: tokio::net::TcpListener,
            federation: tokio::net::TcpListener,
            osx: tokio::net::TcpListener,
            metrics: Option<tokio::net::TcpListener>,
            board: Option<tokio::net::TcpListener>,
        }
        let mut bound = Vec::new();
        let mut parties = Vec::new();
        std::fs::create_dir_all(&options.data_dir)
            .map_err(|e| Error::Io(options.data_dir.display().to_string(), e))?;
        let mut kept = read_kept(&options.data_dir)?;
        for party_id in &options.parties {
            fedflow_core::ids::party_id(party_id).map_err(|e| Error::Party(e.to_string()))?;
            let dir = &options.data_dir;
            let l = Listeners {
                scheduler: bind_kept(&kept, party_id, "scheduler", dir).await?,
                job_controller: bind_kept(&kept, party_id, "job-controller", dir).await?,
                task_controller: bind_kept(&kept, party_id, "task-controller", dir).await?,
                gateway: bind_kept(&kept, party_id, "party-gateway", dir).await?,
                federation: bind_kept(&kept, party_id, "party-gateway-federation", dir).await?,
                osx: bind_kept(&kept, party_id, "party-gateway-osx", dir).await?,
                metrics: match options.metrics {
                    true => Some(bind_kept(&kept, party_id, "metrics", dir).await?),
                    false => None,
                },
                board: match options.board {
                    true => Some(bind_kept(&kept, party_id, "scheduler-board", dir).await?),
                    false => None,
                },
            };
            parties.push(Party {
                party_id: party_id.clone(),
                scheduler: addr(&l.scheduler)?,
                job_controller: addr(&l.job_controller)?,
                task_controller: addr(&l.task_controller)?,
                gateway: addr(&l.gateway)?,
                federation: addr(&l.federation)?,
                osx: addr(&l.osx)?,
                metrics: l.metrics.as_ref().map(addr).transpose()?,
                board: l.board.as_ref().map(addr).transpose()?,
            });
            bound.push(l);
        }
        for p in &parties {
            let previous = kept.remove(&p.party_id).unwrap_or_default();
            kept.insert(
                p.party_id.clone(),
                BTreeMap::from([
                    ("scheduler".to_owned(), p.scheduler.to_string()),
                    ("job-controller".to_owned(), p.job_controller.to_string()),
                    ("task-controller".to_owned(), p.task_controller.to_string()),
                    ("party-gateway".to_owned(), p.gateway.to_string()),
                    (
                        "party-gateway-federation".to_owned(),
                        p.federation.to_string(),
                    ),
                    ("party-gateway-osx".to_owned(), p.osx.to_string()),
                ]),
            );
            // The metrics and board ports are kept once used, also by a start that does not
            // serve them.
            for (service, served) in [("metrics", p.metrics), ("scheduler-board", p.board)] {
                let served = served.map(|a| a.to_string());
                if let Some(addr) = served.or_else(|| previous.get(service).cloned()) {
                    kept.entry(p.party_id.clone())
                        .or_default()
                        .insert(service.to_owned(), addr);
                }
            }
        }
        write_kept(&options.data_dir, &kept)?;
        if options.mtls {
            for p in &parties {
                let layout = fedflow_tls::pki::Layout::new(options.pki_dir(&p.party_id));
                if !layout.ca_cert().exists() {
                    layout
                        .init(
                            &p.party_id,
                            &["localhost".to_owned(), "127.0.0.1".to_owned()],
                            fedflow_tls::pki::Validity::days(3650),
                            fedflow_tls::pki::Validity::days(365),
                        )
                        .map_err(|e| Error::Pki(p.party_id.clone(), e))?;
                }
            }
        }
        let routes: BTreeMap<String, Route> = parties
            .iter()
            .map(|p| {
                let route = if options.mtls {
                    Route::Full(RouteTable {
                        address: p.federation.to_string(),
                        ca: Some(
                            fedflow_tls::pki::Layout::new(options.pki_dir(&p.party_id)).ca_cert(),
                        ),
                    })
                } else {
                    Route::Address(p.federation.to_string())
                };
                (p.party_id.clone(), route)
            })
            .collect();
        let shutdown = CancellationToken::new();
        let mut handles = Vec::new();
        for (party, l) in parties.iter().zip(bound) {
            let dir = options.data_dir.join(&party.party_id);
            std::fs::create_dir_all(&dir).map_err(|e| Error::Io(dir.display().to_string(), e))?;
            let id = party.party_id.clone();
            let registry = fedflow_telemetry::metrics::Metrics::for_endpoint();
            if let Some(listener) = l.metrics {
                handles.push(spawn_service(
                    format!("{id} metrics"),
                    fedflow_telemetry::metrics::serve(listener, registry.clone(), shutdown.clone()),
                ));
            }

            let config = fedflow_party_gateway::Config {
                party_id: id.clone(),
                local: fedflow_party_gateway::config::LocalServices {
                    scheduler: party.scheduler.to_string(),
                    job_controller: party.job_controller.to_string(),
                    task_controller: party.task_controller.to_string(),
                },
                routes: routes
                    .iter()
                    .filter(|(p, _)| **p != id)
                    .map(|(p, a)| (p.clone(), a.clone()))
                    .collect(),
                federation: {
                    let layout = fedflow_tls::pki::Layout::new(options.pki_dir(&id));
                    fedflow_party_gateway::config::FederationConfig {
                        listen: party.federation.to_string(),
                        mode: if options.mtls {
                            SecurityMode::Mtls
                        } else {
                            SecurityMode::Insecure
                        },
                        cert: if options.mtls {
                            layout.cert()
                        } else {
                            Default::default()
                        },
                        key: if options.mtls {
                            layout.key()
                        } else {
                            Default::default()
                        },
                        reload_interval_ms: options.tls_reload_interval_ms,
                        ..Default::default()
                    }
                },
                transfer: fedflow_party_gateway::config::TransferConfig {
                    listen: party.osx.to_string(),
                    data_dir: dir.clone(),
                    ..Default::default()
                },
                ..Default::default()
            };
            let listeners = fedflow_party_gateway::Listeners {
                internal: l.gateway,
                federation: l.federation,
                transfer: l.osx,
            };
            handles.push(spawn_service(
                format!("{id} party-gateway"),
                fedflow_party_gateway::run_with_metrics(
                    config,
                    listeners,
                    shutdown.clone(),
                    registry.clone(),
                ),
            ));

            let config = fedflow_job_controller::Config {
                party_id: id.clone(),
                database: options.database(&id, "job-controller", &dir),
                task_controller: party.task_controller.to_string(),
                resources: fedflow_job_controller::config::Resources {
                    cores: options
                        .cores_by_party
                        .get(&id)
                        .copied()
                        .unwrap_or(options.cores),
                    ..Default::default()
                },
                ..Default::default()
            };
            handles.push(spawn_service(
                format!("{id} job-controller"),
                fedflow_job_controller::run_with_metrics(
                    config,
                    l.job_controller,
                    shutdown.clone(),
                    registry.clone(),
                ),
            ));

            let config = fedflow_task_controller::Config {
                party_id: id.clone(),
                database: options.database(&id, "task-controller", &dir),
                gateway: party.gateway.to_string(),
                data_plane: party.osx.to_string(),
                data_dir: dir.clone(),
                worker: fedflow_task_controller::config::WorkerConfig {
                    bin: options.worker_bin.clone(),
                    heartbeat_interval_ms: options.heartbeat_interval_ms,
                    heartbeat_timeout_ms: options.heartbeat_timeout_ms,
                    ..Default::default()
                },
                components: options
                    .components_by_party
                    .get(&id)
                    .cloned()
                    .unwrap_or_default(),
                fate: fedflow_task_controller::config::FateConfig {
                    python: options.fate_python.clone(),
                    data_dir: PathBuf::new(),
                    warm_pool: options.fate_warm_pool,
                },
                ..Default::default()
            };
            handles.push(spawn_service(
                format!("{id} task-controller"),
                fedflow_task_controller::run_with_metrics(
                    config,
                    l.task_controller,
                    shutdown.clone(),
                    registry.clone(),
                ),
            ));

            let config = fedflow_scheduler::Config {
                party_id: id.clone(),
                database: options.database(&id, "scheduler", &dir),
                gateway: party.gateway.to_string(),
                board: fedflow_scheduler::config::Board {
                    listen: party.board.map(|a| a.to_string()).unwrap_or_default(),
                },
                ..Default::default()
            };
            let listeners = fedflow_scheduler::Listeners {
                grpc: l.scheduler,
                api: None,
                board: l.board,
            };
            handles.push(spawn_service(
                format!("{id} scheduler"),
                fedflow_scheduler::run_with_metrics(config, listeners, shutdown.clone(), registry),
            ));
        }
        Ok(Federation {
            parties,
            shutdown,
            handles,
        })
    }

    pub fn party(&self, party_id: &str) -> Option<&Party> {
        self.parties.iter().find(|p| p.party_id == party_id)
    }

    /// A service that stopped on its own (an error at start-up, say), if any.
    pub fn failed(&self) -> Option<String> {
        self.handles
            .iter()
            .find(|(_, h)| h.is_finished())
            .map(|(name, _)| name.clone())
    }

    /// Stops every service and waits for them; returns the errors they ended with.
    pub async fn shutdown(self) -> Vec<String> {
        self.shutdown.cancel();
        let mut errors = Vec::new();
        for (name, handle) in self.handles {
            match handle.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => errors.push(format!("{name}: {e}")),
                Err(e) => errors.push(format!("{name}: {e}")),
            }
        }
        errors
    }

    /// Waits until a service stops on its own (or forever); returns its name and error.
    pub async fn wait_any(&mut self) -> String {
        loop {
            if let Some(index) = self.handles.iter().position(|(_, h)| h.is_finished()) {
                let (name, handle) = self.handles.remove(index);
                return match handle.await {
                    Ok(Ok(())) => format!("{name} stopped"),
                    Ok(Err(e)) => format!("{name}: {e}"),
                    Err(e) => format!("{name}: {e}"),
                };
            }
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    }
}

/// One service of the federation running as a task named `name`; it ends with the service's
/// error as text.
fn spawn_service<E: std::fmt::Display>(
    name: String,
    service: impl Future<Output = Result<(), E>> + Send + 'static,
) -> (String, JoinHandle<Result<(), String>>) {
    let handle = tokio::spawn(async move { service.await.map_err(|e| e.to_string()) });
    (name, handle)
}
