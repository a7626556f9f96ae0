//! A federation of real processes: each service of each party is its own binary, configured by
//! a TOML file (and `FEDFLOW_*` environment), talking over localhost. Dropping it kills them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use fedflow_core::JobStatus;
use fedflow_proto::scheduler::v1 as sc;
use tonic::transport::Channel;

use crate::netns::Network;
use crate::{TempDir, bin, channel, eventually, serving_on};

pub struct ProcParty {
    pub party_id: String,
    pub scheduler: String,
    pub job_controller: String,
    pub task_controller: String,
    /// The gateway's internal port (this party's services).
    pub gateway: String,
    /// The gateway's federation port (other parties' gateways).
    pub federation: String,
    /// The gateway's transfer port (FATE's OSX broker).
    pub osx: String,
    /// With [`ProcessOptions::observe`]: each service's Prometheus endpoint (binary name →
    /// `host:port`) and the scheduler's web board.
    pub metrics: BTreeMap<&'static str, String>,
    pub board: Option<String>,
}

pub struct ProcessFederation {
    pub parties: Vec<ProcParty>,
    pub dir: TempDir,
    children: Vec<(String, Child)>,
    /// How each child was started, to start it again.
    launches: Vec<Launch>,
    log_level: &'static str,
    /// The namespaces the parties run in (deleted after the services are killed).
    pub network: Option<Arc<Network>>,
    /// Its ports, claimed for as long as it lives (see [`claim`]).
    _claims: Vec<std::fs::File>,
}

/// How one service process was started: its config file, log file and environment.
#[derive(Debug, Clone)]
struct Launch {
    party: String,
    program: PathBuf,
    config: std::path::PathBuf,
    log: std::path::PathBuf,
    env: Vec<(String, String)>,
}

/// How to start a [`ProcessFederation`].
#[derive(Debug, Clone)]
pub struct ProcessOptions {
    /// Cores each party's job-controller can give out.
    pub cores: u32,
    /// The task-controllers' engine: `process` or `instant` (benchmark only).
    pub engine: &'static str,
    /// `RUST_LOG` for every service.
    pub log: &'static str,
    /// Extra environment for every service (`FEDFLOW_<SERVICE>__…` overrides).
    pub env: Vec<(String, String)>,
    /// Plaintext between gateways (`federation.mode = "insecure"`) instead of mutual TLS with
    /// a PKI per party made by `fedflow_tls::pki` under `<dir>/pki/<party>`.
    pub insecure: bool,
    /// Every service serves its Prometheus metrics (`metrics.listen`) and each scheduler its
    /// board (`board.listen`), on ports of their own.
    pub observe: bool,
    /// Parties whose services (and workers) run other binaries than this build's: party id →
    /// the directory holding them (a previous version's, for the mixed-version tests).
    pub binaries: BTreeMap<String, PathBuf>,
    /// Extra environment for the services of one party only (party id → variables), after
    /// `env`: a fault of that party's host, say (see [`faketime`]).
    pub party_env: BTreeMap<String, Vec<(String, String)>>,
    /// Parties whose directory (stores, segments, task directories, configs and logs) lives
    /// elsewhere, on a small filesystem say: party id → an existing directory, which
    /// `<dir>/<party>` then links to.
    pub party_dirs: BTreeMap<String, PathBuf>,
    /// The scheduler's, job-controller's and task-controller's databases by URL instead of
    /// SQLite files in the party's directory: a template with `{party}` and `{service}`
    /// (`scheduler`, `job_controller`, `task_controller`), as `fedflow standalone` takes it.
    /// Written to `<dir>/databases.url`, where the invariants find it.
    pub database_url_template: Option<String>,
    /// Each party in a network namespace of its own (see [`crate::netns`]): services on the
    /// namespace's 127.0.0.1, the federation listener on the party's address there, and the
    /// gateways' routes as the network says.
    pub network: Option<Arc<Network>>,
}

impl ProcessOptions {
    /// The binary `name` that `party` runs.
    fn program(&self, party: &str, name: &str) -> PathBuf {
        match self.binaries.get(party) {
            Some(dir) => dir.join(name),
            None => bin(name),
        }
    }
}

/// The environment that runs a process under libfaketime with its wall clock moved by
/// `offset` (`"+90s"`, `"-10m"`: faketime's syntax) while its monotonic clock stays true (the
/// runtime's timers), or why it cannot: the library is not installed (Debian's `faketime`
/// package).
pub fn faketime(offset: &str) -> Result<Vec<(String, String)>, String> {
    let candidates = [
        "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1",
        "/usr/lib/aarch64-linux-gnu/faketime/libfaketimeMT.so.1",
        "/usr/lib/faketime/libfaketimeMT.so.1",
        "/usr/local/lib/faketime/libfaketimeMT.so.1",
    ];
    let library = candidates
        .iter()
        .find(|path| Path::new(path).exists())
        .ok_or_else(|| {
            format!(
                "libfaketime is not installed (apt-get install faketime): none of {candidates:?}"
            )
        })?;
    Ok([
        ("LD_PRELOAD", (*library).to_owned()),
        ("FAKETIME", offset.to_owned()),
        ("FAKETIME_DONT_FAKE_MONOTONIC", "1".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect())
}

impl Default for ProcessOptions {
    fn default() -> Self {
        ProcessOptions {
            cores: 16,
            engine: "process",
            log: "info",
            env: Vec::new(),
            insecure: false,
            observe: false,
            binaries: BTreeMap::new(),
            party_env: BTreeMap::new(),
            party_dirs: BTreeMap::new(),
            database_url_template: None,
            network: None,
        }
    }
}

/// One service process: its name and pid.
pub struct Service<'a> {
    pub name: &'a str,
    pub pid: u32,
}

/// The four service binaries.
const SERVICES: [&str; 4] = [
    "fedflow-party-gateway",
    "fedflow-job-controller",
    "fedflow-task-controller",
    "fedflow-scheduler",
];

/// `FEDFLOW_<SERVICE>`, the prefix of a binary's configuration variables.
fn env_prefix(binary: &str) -> String {
    format!(
        "FEDFLOW_{}",
        binary
            .trim_start_matches("fedflow-")
            .to_uppercase()
            .replace('-', "_")
    )
}

/// The ports a federation of processes is given: below the kernel's ephemeral range
/// (`net.ipv4.ip_local_port_range` starts at 32768), so no socket bound to port 0 — by another
/// test running at the same time, say — can take one in the moment between its reservation here
/// and its service binding it (or while a killed service is down before its restart), and above
/// the ports `docker-compose.yml` publishes.
const PORTS: std::ops::Range<u16> = 21_000..29_000;

/// The ports a federation is being given: each one's listener (kept until every port is
/// chosen, so no two services are given the same one) and its claim (kept for the
/// federation's life).
#[derive(Default)]
struct Ports {
    listeners: Vec<std::net::TcpListener>,
    claims: Vec<std::fs::File>,
}

impl Ports {
    /// Lets the listeners go (just before the services bind their ports); the claims stay.
    fn release(self) -> Vec<std::fs::File> {
        self.claims
    }
}

/// Claims `port` for this federation across test processes: an advisory lock on
/// `<tmp>/fedflow-test-ports/<port>`. A bind check alone would hand another test the port of a
/// service that is down for a restart (its federation then restarts it on a port another
/// federation's service holds). The lock goes with its file or its process, so a killed test
/// leaves nothing claimed. None: claimed by someone else.
fn claim(port: u16) -> Option<std::fs::File> {
    let dir = std::env::temp_dir().join("fedflow-test-ports");
    std::fs::create_dir_all(&dir).expect("the test port claims' directory");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join(port.to_string()))
        .expect("a test port's claim file");
    file.try_lock().ok().map(|()| file)
}

/// Reserves a port of [`PORTS`] that no other federation (of this or another test process)
/// holds or has claimed; federations started at once (in other test processes) each start at a
/// different pseudo-random place.
fn free_port(held: &mut Ports) -> String {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);
    let span = u32::from(PORTS.end - PORTS.start);
    if NEXT.load(Ordering::Relaxed) == u32::MAX {
        // A random start per test process (the hasher's keys are random).
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u32(std::process::id());
        let _ = NEXT.compare_exchange(
            u32::MAX,
            (hasher.finish() % u64::from(span)) as u32,
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
    }
    for _ in 0..span {
        let offset = NEXT.fetch_add(1, Ordering::Relaxed) % span;
        let port = PORTS.start + offset as u16;
        let Some(claimed) = claim(port) else {
            continue;
        };
        if let Ok(listener) = std::net::TcpListener::bind(("127.0.0.1", port)) {
            let addr = listener.local_addr().expect("local address").to_string();
            held.listeners.push(listener);
            held.claims.push(claimed);
            return addr;
        }
    }
    panic!("no free port in 127.0.0.1:{PORTS:?}");
}

fn spawn(
    network: Option<&Network>,
    party: &str,
    program: &Path,
    config: &Path,
    log: &Path,
    rust_log: &str,
    env: &[(&str, &str)],
) -> Child {
    let log_file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .expect("open a log file");
    let err_file = log_file.try_clone().expect("clone the log file");
    match network {
        Some(network) => network.command(party, program),
        None => Command::new(program),
    }
    .arg("--config")
    .arg(config)
    .env("RUST_LOG", rust_log)
    .envs(env.iter().copied())
    .stdin(Stdio::null())
    .stdout(Stdio::from(log_file))
    .stderr(Stdio::from(err_file))
    .spawn()
    .unwrap_or_else(|e| panic!("start {}: {e}", program.display()))
}

impl ProcessFederation {
    pub async fn start(party_ids: &[&str]) -> ProcessFederation {
        Self::start_with(party_ids, ProcessOptions::default()).await
    }

    pub async fn start_with(party_ids: &[&str], options: ProcessOptions) -> ProcessFederation {
        let dir = TempDir::new("fedflow-proc");
        let mut held = Ports::default();
        let parties: Vec<ProcParty> = party_ids
            .iter()
            .map(|id| ProcParty {
                party_id: (*id).to_owned(),
                scheduler: free_port(&mut held),
                job_controller: free_port(&mut held),
                task_controller: free_port(&mut held),
                gateway: free_port(&mut held),
                federation: match &options.network {
                    // The port is surely free in the party's own namespace.
                    Some(network) => {
                        let port = free_port(&mut held);
                        let port = port.rsplit_once(':').expect("host:port").1;
                        format!("{}:{port}", network.address(id))
                    }
                    None => free_port(&mut held),
                },
                osx: free_port(&mut held),
                metrics: if options.observe {
                    SERVICES
                        .iter()
                        .map(|s| (*s, free_port(&mut held)))
                        .collect()
                } else {
                    BTreeMap::new()
                },
                board: options.observe.then(|| free_port(&mut held)),
            })
            .collect();
        // Released just before the services bind them; claimed while the federation lives.
        let claims = held.release();
        let pki = |party: &str| fedflow_tls::pki::Layout::new(dir.path().join("pki").join(party));
        if !options.insecure {
            for party in &parties {
                pki(&party.party_id)
                    .init(
                        &party.party_id,
                        &["localhost".to_owned()],
                        fedflow_tls::pki::Validity::days(30),
                        fedflow_tls::pki::Validity::days(30),
                    )
                    .expect("make a party's PKI");
            }
        }
        let routes = |from: &str| -> String {
            parties
                .iter()
                .map(|p| {
                    let address = match &options.network {
                        Some(network) => network.route(from, &p.party_id, &p.federation),
                        None => p.federation.clone(),
                    };
                    if options.insecure {
                        format!("\"{}\" = \"{address}\"\n", p.party_id)
                    } else {
                        format!(
                            "\"{}\" = {{ address = \"{address}\", ca = \"{}\" }}\n",
                            p.party_id,
                            pki(&p.party_id).ca_cert().display()
                        )
                    }
                })
                .collect()
        };
        let mut children = Vec::new();
        let mut launches = Vec::new();
        if let Some(template) = &options.database_url_template {
            std::fs::write(dir.path().join(crate::invariants::DATABASES), template)
                .expect("write the databases' URL template");
        }
        for party in &parties {
            let pdir = dir.path().join(&party.party_id);
            match options.party_dirs.get(&party.party_id) {
                Some(elsewhere) => {
                    std::os::unix::fs::symlink(elsewhere, &pdir).expect("link the party directory")
                }
                None => std::fs::create_dir_all(&pdir).expect("party directory"),
            }
            let db = |service: &str| match &options.database_url_template {
                Some(template) => {
                    crate::invariants::database_url(template, &party.party_id, service)
                }
                None => format!("sqlite://{}/{service}.db?mode=rwc", pdir.display()),
            };
            let configs = [
                (
                    "fedflow-party-gateway",
                    format!(
                        "party_id = \"{id}\"\n[grpc]\nlisten = \"{listen}\"\n[transfer]\nlisten = \"{osx}\"\ndata_dir = \"{data}\"\n[federation]\nlisten = \"{federation}\"\n{tls}[local]\nscheduler = \"{s}\"\njob_controller = \"{j}\"\ntask_controller = \"{t}\"\n[routes]\n{routes}",
                        id = party.party_id,
                        listen = party.gateway,
                        osx = party.osx,
                        data = pdir.display(),
                        federation = party.federation,
                        tls = if options.insecure {
                            "mode = \"insecure\"\n".to_owned()
                        } else {
                            format!(
                                "mode = \"mtls\"\ncert = \"{}\"\nkey = \"{}\"\nreload_interval_ms = 500\n",
                                pki(&party.party_id).cert().display(),
                                pki(&party.party_id).key().display()
                            )
                        },
                        s = party.scheduler,
                        j = party.job_controller,
                        t = party.task_controller,
                        routes = routes(&party.party_id),
                    ),
                ),
                (
                    "fedflow-job-controller",
                    format!(
                        "party_id = \"{id}\"\ntask_controller = \"{t}\"\n[grpc]\nlisten = \"{listen}\"\n[database]\nurl = \"{db}\"\n[resources]\ncores = {cores}\n",
                        id = party.party_id,
                        t = party.task_controller,
                        listen = party.job_controller,
                        db = db("job-controller"),
                        cores = options.cores,
                    ),
                ),
                (
                    "fedflow-task-controller",
                    format!(
                        "party_id = \"{id}\"\ngateway = \"{g}\"\ndata_plane = \"{osx}\"\ndata_dir = \"{data}\"\n[grpc]\nlisten = \"{listen}\"\n[database]\nurl = \"{db}\"\n[worker]\nbin = \"{worker}\"\nengine = \"{engine}\"\n",
                        id = party.party_id,
                        g = party.gateway,
                        osx = party.osx,
                        data = pdir.display(),
                        listen = party.task_controller,
                        db = db("task-controller"),
                        worker = options.program(&party.party_id, "fedflow-worker").display(),
                        engine = options.engine,
                    ),
                ),
                (
                    "fedflow-scheduler",
                    // The listen address comes from the environment, as a deployment would.
                    format!(
                        "party_id = \"{id}\"\ngateway = \"{g}\"\n[database]\nurl = \"{db}\"\n",
                        id = party.party_id,
                        g = party.gateway,
                        db = db("scheduler"),
                    ),
                ),
            ];
            for (name, text) in configs {
                let config = pdir.join(format!("{name}.toml"));
                std::fs::write(&config, text).expect("write a config file");
                let log = pdir.join(format!("{name}.log"));
                let mut env: Vec<(&str, &str)> = options
                    .env
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect();
                if name == "fedflow-scheduler" {
                    env.push(("FEDFLOW_SCHEDULER__GRPC__LISTEN", party.scheduler.as_str()));
                }
                if let Some(extra) = options.party_env.get(&party.party_id) {
                    env.extend(extra.iter().map(|(k, v)| (k.as_str(), v.as_str())));
                }
                let observed: Vec<(String, String)> = party
                    .metrics
                    .get(name)
                    .map(|addr| {
                        (
                            format!("{}__METRICS__LISTEN", env_prefix(name)),
                            addr.clone(),
                        )
                    })
                    .into_iter()
                    .chain(
                        party
                            .board
                            .as_ref()
                            .filter(|_| name == "fedflow-scheduler")
                            .map(|addr| {
                                ("FEDFLOW_SCHEDULER__BOARD__LISTEN".to_owned(), addr.clone())
                            }),
                    )
                    .collect();
                env.extend(observed.iter().map(|(k, v)| (k.as_str(), v.as_str())));
                let program = options.program(&party.party_id, name);
                let child = spawn(
                    options.network.as_deref(),
                    &party.party_id,
                    &program,
                    &config,
                    &log,
                    options.log,
                    &env,
                );
                children.push((format!("{} {name}", party.party_id), child));
                launches.push(Launch {
                    party: party.party_id.clone(),
                    program,
                    config,
                    log,
                    env: env
                        .iter()
                        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                        .collect(),
                });
            }
        }
        let federation = ProcessFederation {
            parties,
            dir,
            children,
            launches,
            log_level: options.log,
            network: options.network.clone(),
            _claims: claims,
        };
        for party in &federation.parties {
            for addr in [
                &party.gateway,
                &party.job_controller,
                &party.task_controller,
                &party.scheduler,
            ] {
                eventually(
                    &format!("party {} service at {addr} to serve", party.party_id),
                    Duration::from_secs(30),
                    || serving_on(federation.channel(&party.party_id, addr)),
                )
                .await;
            }
        }
        federation
    }

    /// A channel to `addr` of `party`'s services (inside its namespace, if it has one).
    pub fn channel(&self, party: &str, addr: &str) -> Channel {
        match &self.network {
            Some(network) => network.channel(party, addr),
            None => channel(addr),
        }
    }

    pub fn party(&self, id: &str) -> &ProcParty {
        self.parties
            .iter()
            .find(|p| p.party_id == id)
            .unwrap_or_else(|| panic!("no party {id}"))
    }

    /// A client of one party's scheduler.
    pub fn scheduler(&self, party: &str) -> sc::scheduler_client::SchedulerClient<Channel> {
        sc::scheduler_client::SchedulerClient::new(
            self.channel(party, &self.party(party).scheduler),
        )
    }

    /// Checks [`crate::invariants`] over every party's databases for `jobs`, scheduled by
    /// `initiator`, waiting up to `within`; returns each job's agreed end status.
    pub async fn check_invariants(
        &self,
        initiator: &str,
        jobs: &[String],
        within: Duration,
    ) -> BTreeMap<String, JobStatus> {
        let parties: Vec<&str> = self.parties.iter().map(|p| p.party_id.as_str()).collect();
        crate::invariants::check(&crate::invariants::Scope {
            root: self.dir.path(),
            parties: &parties,
            initiator,
            jobs,
            within,
        })
        .await
    }

    fn index(&self, party: &str, service: &str) -> usize {
        let name = format!("{party} {service}");
        self.children
            .iter()
            .position(|(n, _)| *n == name)
            .unwrap_or_else(|| panic!("no service {name}"))
    }

    /// Kills one service with SIGKILL (`service` is the binary, e.g. `fedflow-task-controller`).
    pub fn kill(&mut self, party: &str, service: &str) {
        let i = self.index(party, service);
        let child = &mut self.children[i].1;
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Starts a killed service again, with its configuration, on its address.
    pub async fn restart(&mut self, party: &str, service: &str) {
        let i = self.index(party, service);
        let launch = self.launches[i].clone();
        let env: Vec<(&str, &str)> = launch
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        self.children[i].1 = spawn(
            self.network.as_deref(),
            &launch.party,
            &launch.program,
            &launch.config,
            &launch.log,
            self.log_level,
            &env,
        );
        let p = self.party(party);
        let addr = match service {
            "fedflow-scheduler" => p.scheduler.clone(),
            "fedflow-job-controller" => p.job_controller.clone(),
            "fedflow-task-controller" => p.task_controller.clone(),
            _ => p.gateway.clone(),
        };
        eventually(
            &format!("{party} {service} to serve again at {addr}"),
            Duration::from_secs(30),
            || serving_on(self.channel(party, &addr)),
        )
        .await;
    }

    /// Sends a signal (`TERM`, `STOP`, `CONT`…) to one service process.
    pub fn signal(&self, party: &str, service: &str, name: &str) {
        crate::signal(self.pid(party, service), name);
    }

    /// Whether one service process has exited (it is reaped if so).
    pub fn exited(&mut self, party: &str, service: &str) -> bool {
        let i = self.index(party, service);
        matches!(self.children[i].1.try_wait(), Ok(Some(_)))
    }

    /// The pid of one service process.
    pub fn pid(&self, party: &str, service: &str) -> u32 {
        self.children[self.index(party, service)].1.id()
    }

    /// Every service process, for measuring (RSS, CPU).
    pub fn services(&self) -> Vec<Service<'_>> {
        self.children
            .iter()
            .map(|(name, child)| Service {
                name: name.as_str(),
                pid: child.id(),
            })
            .collect()
    }

    /// The logs of every process, for a failure message.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        for party in &self.parties {
            let pdir = self.dir.path().join(&party.party_id);
            if let Ok(entries) = std::fs::read_dir(&pdir) {
                for entry in entries.flatten() {
                    let path = entry.path();
                    if path.extension().is_some_and(|e| e == "log") {
                        let text = std::fs::read_to_string(&path).unwrap_or_default();
                        let tail: Vec<&str> = text.lines().rev().take(20).collect();
                        out.push_str(&format!("--- {}\n", path.display()));
                        for line in tail.into_iter().rev() {
                            out.push_str(line);
                            out.push('\n');
                        }
                    }
                }
            }
        }
        out
    }
}

impl Drop for ProcessFederation {
    fn drop(&mut self) {
        for (_, child) in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
