//! What a job row's status change means on this party, pure. The transition table itself is
//! `fedflow_core::status`; this module decides what a change writes (start and end times, the
//! allocation's release). The store writes exactly the
//! [`Change`] it is given, with a compare-and-set on `from`.

use fedflow_core::status::InvalidTransition;
use fedflow_core::{JobStatus, Transition};

/// One status write, decided before it is made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The status the row must still have (the compare-and-set).
    pub from: JobStatus,
    pub to: JobStatus,
    /// `Some` sets the start time (moving to `running`); `None` keeps the row's.
    pub start_ms: Option<i64>,
    /// The end time: `now` on an end status, otherwise 0 (a rerun's `waiting` clears it).
    pub end_ms: i64,
    pub update_ms: i64,
    /// Delete the job's allocation in the same transaction: a row that says it ended never
    /// still holds resources.
    pub release: bool,
}

/// The change `from -> to` at `now`: `Ok(None)` when the row is already there (a harmless
/// repeat), an error when the table forbids it.
pub fn change(
    from: JobStatus,
    to: JobStatus,
    now: i64,
) -> Result<Option<Change>, InvalidTransition> {
    match from.apply(to)? {
        Transition::AlreadyThere => Ok(None),
        Transition::Changed => Ok(Some(Change {
            from,
            to,
            start_ms: (to == JobStatus::Running).then_some(now),
            end_ms: if to.is_end() { now } else { 0 },
            update_ms: now,
            release: releases(to),
        })),
    }
}

/// The statuses a row in `from` passes through to reach `to`, each with its own
/// compare-and-set: a lost `waiting` must not block `running`, so `ready` moves through it.
pub fn steps(from: JobStatus, to: JobStatus) -> Vec<JobStatus> {
    if from == JobStatus::Ready && to == JobStatus::Running {
        vec![JobStatus::Waiting, JobStatus::Running]
    } else {
        vec![to]
    }
}

/// Whether being told `to` releases the job's allocation: every end does, also when repeated
/// (so a retry finishes what a crash interrupted).
pub fn releases(to: JobStatus) -> bool {
    to.is_end()
}

#[cfg(test)]
mod tests;
