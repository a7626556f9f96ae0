//! Mapping `taskctl_tasks` rows to [`Task`]s: every column read by name, statuses parsed, and
//! a value the code could not have written reported as [`Error::Corrupt`] rather than guessed.

use fedflow_core::TaskStatus;
use fedflow_core::ids::Participant;
use fedflow_store::{Row, get};

use super::Error;
use crate::domain::{Task, TaskKey};

pub(super) fn task_from_row(row: &Row) -> Result<Task, Error> {
    let status = |column: &str| -> Result<TaskStatus, Error> {
        get::<String>(row, column)?
            .parse()
            .map_err(|e: fedflow_core::status::UnknownStatus| Error::Corrupt(e.to_string()))
    };
    let upstream: String = get(row, "upstream")?;
    let parties: Vec<(String, String)> = serde_json::from_str(&get::<String>(row, "parties")?)
        .map_err(|e| Error::Corrupt(e.to_string()))?;
    Ok(Task {
        key: TaskKey {
            job_id: get(row, "job_id")?,
            component: get(row, "component")?,
            version: i32::try_from(get::<i64>(row, "version")?)
                .map_err(|e| Error::Corrupt(e.to_string()))?,
            role: get(row, "role")?,
            party_id: get(row, "party_id")?,
        },
        module: get(row, "module")?,
        parameters: get(row, "parameters")?,
        need_run: get::<i64>(row, "need_run")? != 0,
        upstream: serde_json::from_str(&upstream).map_err(|e| Error::Corrupt(e.to_string()))?,
        scheduler_party_id: get(row, "scheduler_party_id")?,
        parties: parties
            .into_iter()
            .map(|(role, party_id)| Participant { role, party_id })
            .collect(),
        party_status: status("party_status")?,
        status: status("status")?,
        reason: get(row, "reason")?,
        pid: u32::try_from(get::<i64>(row, "pid")?).unwrap_or(0),
        pid_start: u64::try_from(get::<i64>(row, "pid_start")?).unwrap_or(0),
        token: get(row, "token")?,
        output: get(row, "output")?,
        start_ms: get(row, "start_ms")?,
        end_ms: get(row, "end_ms")?,
    })
}
