//! Row mapping: database rows into the domain's types, and the columns a job row writes.
//! A value the domain cannot hold (an unknown status, unreadable participants) is
//! [`Error::Corrupt`], never guessed.

use std::collections::BTreeSet;

use fedflow_core::JobStatus;
use fedflow_store::{Row, get};

use super::Error;
use crate::domain::{Allocation, PartyJob};

/// Counts are stored as BIGINT; a value outside `u32` is clamped (never written by this code).
fn to_u32(v: i64) -> u32 {
    u32::try_from(v.max(0)).unwrap_or(u32::MAX)
}

pub(super) fn status(value: &str) -> Result<JobStatus, Error> {
    value
        .parse()
        .map_err(|e: fedflow_core::status::UnknownStatus| Error::Corrupt(e.to_string()))
}

/// The participants column: a JSON array of party ids, or '' where they were not kept.
pub(super) fn participants_column(participants: Option<&BTreeSet<String>>) -> String {
    participants.map_or_else(String::new, |ids| {
        serde_json::to_string(ids).unwrap_or_default()
    })
}

fn participants(value: &str) -> Result<Option<BTreeSet<String>>, Error> {
    if value.is_empty() {
        return Ok(None);
    }
    serde_json::from_str(value)
        .map(Some)
        .map_err(|e| Error::Corrupt(format!("participants: {e}")))
}

pub(super) fn job(row: &Row) -> Result<PartyJob, Error> {
    Ok(PartyJob {
        job_id: get(row, "job_id")?,
        role: get(row, "role")?,
        party_id: get(row, "party_id")?,
        status: status(&get::<String>(row, "status")?)?,
        reason: get(row, "reason")?,
        scheduler_party_id: get(row, "scheduler_party_id")?,
        dsl: get(row, "dsl")?,
        conf: get(row, "conf")?,
        participants: participants(&get::<String>(row, "participants")?)?,
        cores: to_u32(get::<i64>(row, "cores")?),
        memory_mb: to_u32(get::<i64>(row, "memory_mb")?),
        create_ms: get(row, "create_ms")?,
        start_ms: get(row, "start_ms")?,
        end_ms: get(row, "end_ms")?,
    })
}

pub(super) fn allocation(row: &Row) -> Result<Allocation, Error> {
    Ok(Allocation {
        job_id: get(row, "job_id")?,
        role: get(row, "role")?,
        cores: to_u32(get::<i64>(row, "cores")?),
        memory_mb: to_u32(get::<i64>(row, "memory_mb")?),
        create_ms: get(row, "create_ms")?,
    })
}

/// An allocation with its job's status here (`None`: the job is not here).
pub(super) fn held(row: &Row) -> Result<(Allocation, Option<JobStatus>), Error> {
    let job = get::<Option<String>>(row, "status")?
        .map(|s| status(&s))
        .transpose()?;
    Ok((allocation(row)?, job))
}
