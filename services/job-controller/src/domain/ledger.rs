//! The resource ledger's rules, pure. What is free is always capacity − Σ allocations; an ask is
//! admitted all or nothing, a job that already holds its allocation is granted it again, and a
//! job that is not here or has ended is refused. The store reads the books and writes the
//! allocation in one locking transaction and calls [`admit`] in between, so two asks never both
//! take the last cores; the comparison itself lives here, where a table can test it.

use std::fmt;

use fedflow_core::JobStatus;

/// What this party gives to jobs at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capacity {
    pub cores: u32,
    /// 0: memory is not managed (any ask fits).
    pub memory_mb: u32,
}

/// An amount of resources: what a job asks for, or what is free.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Amount {
    pub cores: u32,
    pub memory_mb: u32,
}

/// The sum of every allocation. Wide and signed: it is read from a `SUM`, and the configured
/// capacity may have shrunk below what is held since the grants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Used {
    pub cores: i64,
    pub memory_mb: i64,
}

/// What the ledger says about an asking job, read in the transaction that would reserve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Books {
    /// The job row's status here; `None` when the job is not on this party.
    pub job: Option<JobStatus>,
    /// The job already holds an allocation.
    pub held: bool,
    pub used: Used,
}

/// What to do with an ask.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// Write the allocation: there is room.
    Reserve,
    /// The job holds its allocation already: grant it again, write nothing.
    AlreadyHeld,
    Refuse(Refusal),
}

/// The answer to an ask, as the scheduler sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Grant {
    Granted,
    Refused(Refusal),
}

impl From<Admission> for Grant {
    fn from(admission: Admission) -> Self {
        match admission {
            Admission::Reserve | Admission::AlreadyHeld => Grant::Granted,
            Admission::Refuse(refusal) => Grant::Refused(refusal),
        }
    }
}

/// Why an ask was refused; its text names what is short ("cores: requested 8, free 4 of 16").
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    NoSuchJob,
    /// A late (duplicated or delayed) ask for a job that has ended must not reserve again.
    Ended(JobStatus),
    Cores {
        requested: u32,
        free: i64,
        capacity: u32,
    },
    Memory {
        requested: u32,
        free: i64,
        capacity: u32,
    },
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::NoSuchJob => f.write_str("no such job on this party"),
            Refusal::Ended(status) => write!(f, "the job has ended ({status})"),
            Refusal::Cores {
                requested,
                free,
                capacity,
            } => write!(
                f,
                "cores: requested {requested}, free {} of {capacity}",
                free.max(&0)
            ),
            Refusal::Memory {
                requested,
                free,
                capacity,
            } => write!(
                f,
                "memory: requested {requested} MB, free {} of {capacity} MB",
                free.max(&0)
            ),
        }
    }
}

/// Decides an ask of `ask` against `books`: the job must be here and not ended; a holder is
/// granted again; otherwise the cores, then the memory (when managed), must fit in what is free.
pub fn admit(books: &Books, capacity: Capacity, ask: Amount) -> Admission {
    match books.job {
        None => return Admission::Refuse(Refusal::NoSuchJob),
        Some(status) if status.is_end() => return Admission::Refuse(Refusal::Ended(status)),
        Some(_) => {}
    }
    if books.held {
        return Admission::AlreadyHeld;
    }
    let free_cores = i64::from(capacity.cores) - books.used.cores;
    if i64::from(ask.cores) > free_cores {
        return Admission::Refuse(Refusal::Cores {
            requested: ask.cores,
            free: free_cores,
            capacity: capacity.cores,
        });
    }
    if capacity.memory_mb > 0 {
        let free_memory = i64::from(capacity.memory_mb) - books.used.memory_mb;
        if i64::from(ask.memory_mb) > free_memory {
            return Admission::Refuse(Refusal::Memory {
                requested: ask.memory_mb,
                free: free_memory,
                capacity: capacity.memory_mb,
            });
        }
    }
    Admission::Reserve
}

/// What is free, never below zero (for display: [`admit`] decides on the exact difference).
pub fn free(capacity: Capacity, used: Used) -> Amount {
    let left = |cap: u32, used: i64| u32::try_from((i64::from(cap) - used).max(0)).unwrap_or(0);
    Amount {
        cores: left(capacity.cores, used.cores),
        memory_mb: left(capacity.memory_mb, used.memory_mb),
    }
}

/// What a job could never get here, however empty the ledger: checked when the job is created
/// so that it fails at once instead of waiting for ever.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NeverFits {
    Cores,
    Memory,
}

/// `Some` when `need` exceeds the whole capacity.
pub fn never_fits(capacity: Capacity, need: Amount) -> Option<NeverFits> {
    if need.cores > capacity.cores {
        Some(NeverFits::Cores)
    } else if capacity.memory_mb > 0 && need.memory_mb > capacity.memory_mb {
        Some(NeverFits::Memory)
    } else {
        None
    }
}

/// Whether an allocation granted at `granted_ms` should not exist: its job is not here or has
/// ended, or has still not started running at `stale_before` (its scheduler stopped between
/// asking and starting). A running job's allocation is never stray.
pub fn is_stray(job: Option<JobStatus>, granted_ms: i64, stale_before: i64) -> bool {
    match job {
        None => true,
        Some(status) if status.is_end() => true,
        Some(JobStatus::Ready | JobStatus::Waiting) => granted_ms < stale_before,
        Some(_) => false,
    }
}

#[cfg(test)]
mod tests;
