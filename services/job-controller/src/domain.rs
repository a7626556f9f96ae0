//! The job-controller's domain: what a party's job row and a ledger allocation are, and the
//! pure rules over them ([`ledger`]: admission; [`job`]: what a status change writes and asks
//! of the tasks). No I/O here: the app reads, decides with these functions, and has the store
//! write the decision.

pub mod job;
pub mod ledger;

use std::collections::BTreeSet;

use fedflow_core::JobStatus;

pub use ledger::{Amount, Capacity, Grant};

/// One job row of this party: the job as this party plays one role in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartyJob {
    pub job_id: String,
    pub role: String,
    pub party_id: String,
    pub status: JobStatus,
    /// Why the row has its status (the scheduler's words), or empty.
    pub reason: String,
    /// The party whose scheduler schedules the job: the only one that may change it.
    pub scheduler_party_id: String,
    pub dsl: String,
    pub conf: String,
    /// Every participant's party id, from the conf parsed at creation. `None` for rows stored
    /// before the ids were kept (their conf is parsed once, on first use).
    pub participants: Option<BTreeSet<String>>,
    /// What the job needs here: `task_cores x task_parallelism`, and memory likewise.
    pub cores: u32,
    pub memory_mb: u32,
    pub create_ms: i64,
    /// 0 until the row first runs.
    pub start_ms: i64,
    /// 0 unless the row has an end status.
    pub end_ms: i64,
}

impl PartyJob {
    /// What the job asks of the ledger.
    pub fn need(&self) -> Amount {
        Amount {
            cores: self.cores,
            memory_mb: self.memory_mb,
        }
    }
}

/// One row of the ledger: resources a job (in a role) holds here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allocation {
    pub job_id: String,
    pub role: String,
    pub cores: u32,
    pub memory_mb: u32,
    /// When it was granted.
    pub create_ms: i64,
}

/// The ledger as `GetResources` shows it.
#[derive(Debug, Clone)]
pub struct ResourceView {
    pub capacity: Capacity,
    pub free: Amount,
    pub allocations: Vec<Allocation>,
}

/// The answer to an apply: the grant and what the job asked for.
#[derive(Debug, Clone)]
pub struct Applied {
    pub grant: Grant,
    pub ask: Amount,
}

/// A job's rows here (one per role this party plays) and every participant's party id.
#[derive(Debug, Clone)]
pub struct JobView {
    pub jobs: Vec<PartyJob>,
    pub participants: Vec<String>,
}

/// The answer to a status update: whether it changed the row, and the status it now has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusSet {
    pub applied: bool,
    pub status: JobStatus,
}
