//! The task-controller's use cases: creating task rows ([`tasks`]), starting and stopping
//! attempts ([`attempts`]), taking workers' reports and heartbeats and watching for workers
//! that die or hang ([`workers`]), and self-fencing ([`fencing`]). Each reads rows, asks
//! [`crate::domain`] what follows, writes it with a compare-and-set and then performs the
//! effects (the report to the scheduler goes through the outbox, in the same transaction).
//! The compare-and-set `waiting -> running` guards a start: a repeated `StartTask` finds the
//! row running and never launches a second worker.

mod artifacts;
mod attempts;
mod data;
mod fencing;
mod sessions;
mod tasks;
mod workers;

use std::sync::Arc;
use std::time::{Duration, Instant};

use fedflow_core::TaskStatus;
use fedflow_core::access::{self, Caller, JobParties, KnownJobs, Need};
use fedflow_core::ids;
use fedflow_rpc::error::{Code, ServiceError};
use fedflow_rpc::now_ms;
use parking_lot::Mutex;

pub use artifacts::{ReadArtifact, ReadLog, uri};
pub use attempts::StopTasks;
pub use data::UploadSpec;
pub use tasks::{CreateTasks, NewTask};
pub use workers::WorkerReport;

use crate::domain::attempt::Move;
use crate::domain::fencing::Contacts;
use crate::domain::heartbeat::Heartbeats;
use crate::engine::Engine;
use crate::remote::Reporter;
use crate::remote::sessions::SessionEnds;
use crate::store::{self, Store, Task, TaskKey};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    AlreadyExists(String),
    #[error("{0}")]
    FailedPrecondition(String),
    #[error("{0}")]
    Internal(String),
    #[error("{0}")]
    PermissionDenied(String),
    #[error("store: {0}")]
    Store(#[from] store::Error),
    #[error(transparent)]
    Denied(#[from] access::Denied),
}

impl ServiceError for Error {
    fn code(&self) -> Code {
        match self {
            Error::InvalidArgument(_) => Code::InvalidArgument,
            Error::NotFound(_) => Code::NotFound,
            Error::AlreadyExists(_) => Code::AlreadyExists,
            Error::FailedPrecondition(_) => Code::FailedPrecondition,
            Error::Internal(_) => Code::Internal,
            Error::PermissionDenied(_) => Code::PermissionDenied,
            Error::Denied(e) => e.code(),
            Error::Store(e) if e.is_unavailable() => Code::Unavailable,
            Error::Store(_) => Code::Internal,
        }
    }
}

/// A request field that did not convert (see `grpc::convert`).
impl From<ids::FieldError> for Error {
    fn from(e: ids::FieldError) -> Error {
        Error::InvalidArgument(e.to_string())
    }
}

/// Timing knobs.
#[derive(Debug, Clone)]
pub struct Timing {
    pub heartbeat_interval: Duration,
    /// A running worker silent for this long is killed and its task failed.
    pub heartbeat_timeout: Duration,
    pub kill_grace: Duration,
    /// Self-fencing after this long without reaching a job's scheduler; `None` = never.
    pub fence_after: Option<Duration>,
    pub fence_probe_interval: Duration,
}

/// What this party keeps locally: its data directory and its registered components.
pub struct Local {
    /// Task directories, uploads and tables live under it.
    pub data_dir: std::path::PathBuf,
    /// External components by module name (the task-controller's `components`).
    pub components: std::collections::BTreeMap<String, crate::config::ComponentConfig>,
    /// The gateway's data-plane port as workers reach it; empty: components get none.
    pub data_plane: String,
    /// Tells the gateway when a session's attempt ended.
    pub session_ends: SessionEnds,
    /// This party's FATE provider, if it has one.
    pub fate: Option<fedflow_core::task_file::FateRuntime>,
    /// Its pyfate version (the catalog is pyfate 2.2.0's).
    pub fate_version: String,
    /// Where attempts are counted.
    pub metrics: crate::metrics::Metrics,
}

#[derive(Clone)]
pub struct App {
    inner: Arc<Inner>,
}

struct Inner {
    party_id: String,
    store: Store,
    engine: Arc<dyn Engine>,
    reporter: Reporter,
    /// Where workers dial back.
    advertise: String,
    timing: Timing,
    /// Last heartbeat per running attempt (kept in memory: a restart gives every worker a
    /// fresh grace period).
    heartbeats: Mutex<Heartbeats>,
    /// When each scheduler party last answered a probe (or when probing began).
    contacts: Mutex<Contacts>,
    outbox: fedflow_store::Outbox,
    /// Each job's scheduler party, once read for another party's call (it never changes).
    known: KnownJobs,
    /// Where task directories, uploads and tables live.
    data_dir: std::path::PathBuf,
    /// The external components this party's operator registered, by module name.
    components: std::collections::BTreeMap<String, crate::config::ComponentConfig>,
    /// One upload file operation at a time.
    uploads: tokio::sync::Mutex<()>,
    /// The gateway's data-plane port as workers reach it; empty: none.
    data_plane: String,
    /// Tells the gateway when a session's attempt ended.
    session_ends: SessionEnds,
    fate: Option<fedflow_core::task_file::FateRuntime>,
    fate_version: String,
    metrics: crate::metrics::Metrics,
}

impl App {
    pub fn new(
        party_id: String,
        store: Store,
        engine: Arc<dyn Engine>,
        reporter: Reporter,
        advertise: String,
        timing: Timing,
        local: Local,
    ) -> Self {
        let Local {
            data_dir,
            components,
            data_plane,
            session_ends,
            fate,
            fate_version,
            metrics,
        } = local;
        let outbox = store.outbox();
        App {
            inner: Arc::new(Inner {
                party_id,
                store,
                engine,
                reporter,
                advertise,
                timing,
                heartbeats: Mutex::new(Heartbeats::default()),
                contacts: Mutex::new(Contacts::default()),
                outbox,
                known: KnownJobs::default(),
                data_dir,
                components,
                uploads: tokio::sync::Mutex::new(()),
                data_plane,
                session_ends,
                fate,
                fate_version,
                metrics,
            }),
        }
    }

    /// The outbox sender (for its gauges).
    pub fn outbox(&self) -> &fedflow_store::Outbox {
        &self.inner.outbox
    }

    pub fn party_id(&self) -> &str {
        &self.inner.party_id
    }

    /// Only the job's scheduler party (and this party's own services) may drive or read the
    /// job's tasks here; another party is refused whether or not the job is here.
    pub async fn authorize(&self, caller: &Caller, job_id: &str) -> Result<(), Error> {
        if *caller == Caller::Local {
            return Ok(());
        }
        let job = self.parties(job_id).await?;
        Ok(caller.may(job_id, job.as_deref(), Need::Scheduler)?)
    }

    /// Creating tasks: the scheduler party they name must be the caller, and the job's own
    /// when the job is here already.
    pub async fn authorize_create(
        &self,
        caller: &Caller,
        job_id: &str,
        scheduler_party_id: &str,
    ) -> Result<(), Error> {
        caller.claims(scheduler_party_id, "scheduler_party_id")?;
        match self.parties(job_id).await? {
            Some(job) => Ok(caller.may(job_id, Some(&job), Need::Scheduler)?),
            None => Ok(()),
        }
    }

    /// The job's scheduler party, once read; `None` when no task of the job is here.
    async fn parties(&self, job_id: &str) -> Result<Option<Arc<JobParties>>, Error> {
        if let Some(known) = self.inner.known.get(job_id) {
            return Ok(Some(known));
        }
        ids::job_id(job_id).map_err(|e| Error::InvalidArgument(e.to_string()))?;
        let scheduler = self.inner.store.job_scheduler(job_id).await?;
        Ok(scheduler.map(|scheduler| {
            self.inner.known.insert(
                job_id,
                JobParties {
                    scheduler,
                    participants: None,
                },
            )
        }))
    }

    /// A module this party runs for `role`: built in, or registered by its operator.
    fn check_module(&self, module: &str, role: &str) -> Result<(), Error> {
        if fedflow_core::modules::is_known(module) {
            return Ok(());
        }
        if let Some(component) = fedflow_core::fate::component_of(module) {
            return self.check_fate(component, role);
        }
        match self.inner.components.get(module) {
            Some(c) if c.roles.is_empty() || c.roles.iter().any(|r| r == role) => Ok(()),
            Some(_) => Err(Error::InvalidArgument(format!(
                "unknown module {module:?} for role {role}: party {} registers it for other roles",
                self.inner.party_id
            ))),
            None => Err(Error::InvalidArgument(format!(
                "unknown module {module:?}: not built in, and party {} registers no such component",
                self.inner.party_id
            ))),
        }
    }

    /// A FATE component this party can run for `role`: it has a FATE provider, and the
    /// provider's catalog has the component for the role.
    fn check_fate(&self, component: &str, role: &str) -> Result<(), Error> {
        let party = &self.inner.party_id;
        if self.inner.fate.is_none() {
            return Err(Error::InvalidArgument(format!(
                "FATE component {component:?}: party {party} has no FATE provider \
                 (the task-controller's [fate] python)"
            )));
        }
        let catalog = fedflow_core::fate::builtin();
        if self.inner.fate_version != catalog.version {
            return Err(Error::InvalidArgument(format!(
                "FATE component {component:?}: party {party}'s provider is pyfate {}, and \
                 fedflow knows the components of pyfate {} only",
                self.inner.fate_version, catalog.version
            )));
        }
        match catalog.components.get(component) {
            None => Err(Error::InvalidArgument(format!(
                "FATE component {component:?}: party {party}'s provider fate {} has no such component",
                catalog.version
            ))),
            Some(def) if !def.roles.iter().any(|r| r == role) => {
                Err(Error::InvalidArgument(format!(
                    "FATE component {component:?}: party {party}'s provider fate {} does not serve role {role}",
                    catalog.version
                )))
            }
            Some(_) => Ok(()),
        }
    }

    /// This party's FATE runtime, for a `fate:` module.
    fn fate_runtime(&self, module: &str) -> Option<fedflow_core::task_file::FateRuntime> {
        fedflow_core::fate::component_of(module)?;
        self.inner.fate.clone()
    }

    /// The executable registered for an external `module`.
    fn program(&self, module: &str) -> Option<fedflow_core::task_file::Program> {
        if fedflow_core::modules::is_known(module)
            || fedflow_core::fate::component_of(module).is_some()
        {
            return None;
        }
        self.inner
            .components
            .get(module)
            .map(|c| fedflow_core::task_file::Program {
                args: c.args.clone(),
                command: c.command.display().to_string(),
                env: c.env.clone(),
            })
    }

    /// Rows here are this party's only: a request naming another party is refused.
    fn check_party(&self, party_id: &str) -> Result<(), Error> {
        if party_id != self.inner.party_id {
            return Err(Error::InvalidArgument(format!(
                "party_id {party_id:?} is not this party ({})",
                self.inner.party_id
            )));
        }
        Ok(())
    }

    async fn row(&self, key: &TaskKey) -> Result<Task, Error> {
        self.inner
            .store
            .task(key)
            .await?
            .ok_or_else(|| Error::NotFound(format!("task {key} is not on this party")))
    }

    /// Applies a domain [`Move`] to `task`: the compare-and-set of its party status, with the
    /// report of the new status to the job's scheduler committed to the outbox in the same
    /// transaction; then, if it moved, the effects (the beats forgotten, the outbox woken and,
    /// when the move says so, the worker killed). Returns whether it moved.
    async fn apply(&self, task: &Task, change: &Move) -> Result<bool, Error> {
        self.apply_registering(task, change, &[]).await
    }

    /// [`App::apply`], registering `artifacts` (the attempt's outputs) in the same transaction.
    async fn apply_registering(
        &self,
        task: &Task,
        change: &Move,
        artifacts: &[store::Artifact],
    ) -> Result<bool, Error> {
        let report = Reporter::report_command(
            &task.scheduler_party_id,
            &task.key,
            change.to,
            &change.reason,
        );
        let commands = std::slice::from_ref(&report);
        let moved = if artifacts.is_empty() {
            self.inner
                .store
                .cas_party_status(&task.key, change, commands, now_ms())
                .await?
        } else {
            self.inner
                .store
                .cas_party_status_registering(&task.key, change, commands, artifacts, now_ms())
                .await?
        };
        if moved {
            self.inner.heartbeats.lock().forget(&task.key);
            tracing::debug!(
                task = %task.key,
                from = %change.from,
                to = %change.to,
                reason = %change.reason,
                "task status"
            );
            self.inner.outbox.wake();
            if change.kill {
                self.kill_worker(task).await;
            }
            if change.to.is_end() && change.from == TaskStatus::Running {
                self.inner.metrics.ended(
                    &task.key,
                    &task.module,
                    &change.to.to_string(),
                    task.start_ms,
                );
                self.attempt_ended(&task.key);
            }
        }
        Ok(moved)
    }

    /// Records a sign of life of `key`'s attempt.
    fn touch(&self, key: &TaskKey) {
        self.inner.heartbeats.lock().touch(key, Instant::now());
    }

    /// Delivers the outbox's status reports until `shutdown`.
    pub async fn run_outbox(&self, shutdown: tokio_util::sync::CancellationToken) {
        self.inner
            .outbox
            .run(shutdown, |command| {
                let reporter = self.inner.reporter.clone();
                async move { reporter.deliver(command).await }
            })
            .await;
    }
}

/// A running copy of `task` for the attempt holding `token` (as the claim left the row).
fn claimed(task: &Task, token: &str) -> Task {
    let mut running = task.clone();
    running.party_status = TaskStatus::Running;
    running.token = token.to_owned();
    running
}
