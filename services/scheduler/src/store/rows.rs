//! Row mapping: stored rows into the domain types of [`crate::domain::model`], and an update's values
//! into a `SET` list. A row that does not map (an unknown status, a version out of range) is
//! [`Error::Corrupt`], never a panic.

use fedflow_core::ids::Participant;
use fedflow_store::{Row, SqlValue, get};

use super::{Error, Job, Task, TaskParty};

fn parse_status<T: std::str::FromStr<Err = fedflow_core::status::UnknownStatus>>(
    row: &Row,
    column: &str,
) -> Result<T, Error> {
    get::<String>(row, column)?
        .parse()
        .map_err(|e: fedflow_core::status::UnknownStatus| Error::Corrupt(e.to_string()))
}

fn version_of(row: &Row) -> Result<i32, Error> {
    i32::try_from(get::<i64>(row, "version")?).map_err(|e| Error::Corrupt(e.to_string()))
}

pub(super) fn job_from_row(row: &Row) -> Result<Job, Error> {
    Ok(Job {
        job_id: get(row, "job_id")?,
        status: parse_status(row, "status")?,
        dsl: get(row, "dsl")?,
        conf: get(row, "conf")?,
        initiator: Participant {
            role: get(row, "initiator_role")?,
            party_id: get(row, "initiator_party")?,
        },
        priority: i32::try_from(get::<i64>(row, "priority")?).unwrap_or(0),
        reason: get(row, "reason")?,
        pending_reason: get(row, "pending_reason")?,
        cancel_requested: get::<i64>(row, "cancel_requested")? != 0,
        progress: i32::try_from(get::<i64>(row, "progress")?).unwrap_or(0),
        request_id: get(row, "request_id")?,
        create_ms: get(row, "create_ms")?,
        start_ms: get(row, "start_ms")?,
        end_ms: get(row, "end_ms")?,
        queued_ms: get(row, "queued_ms")?,
    })
}

pub(super) fn task_from_row(row: &Row) -> Result<Task, Error> {
    Ok(Task {
        job_id: get(row, "job_id")?,
        component: get(row, "component")?,
        version: version_of(row)?,
        module: get(row, "module")?,
        status: parse_status(row, "status")?,
        reason: get(row, "reason")?,
        retries_left: u32::try_from(get::<i64>(row, "retries_left")?).unwrap_or(0),
        not_before_ms: get(row, "not_before_ms")?,
        start_ms: get(row, "start_ms")?,
        end_ms: get(row, "end_ms")?,
    })
}

pub(super) fn task_party_from_row(row: &Row) -> Result<TaskParty, Error> {
    Ok(TaskParty {
        job_id: get(row, "job_id")?,
        component: get(row, "component")?,
        version: version_of(row)?,
        who: Participant {
            role: get(row, "role")?,
            party_id: get(row, "party_id")?,
        },
        status: parse_status(row, "status")?,
        reason: get(row, "reason")?,
        update_ms: get(row, "update_ms")?,
    })
}

/// The `SET` list of an `UPDATE`: fixed column names (never input) with bound values. A
/// column left out keeps its stored value.
#[derive(Default)]
pub(super) struct Assignments {
    columns: Vec<&'static str>,
    values: Vec<SqlValue>,
}

impl Assignments {
    pub(super) fn set(mut self, column: &'static str, value: impl Into<SqlValue>) -> Self {
        self.columns.push(column);
        self.values.push(value.into());
        self
    }

    pub(super) fn set_some<V: Into<SqlValue>>(
        self,
        column: &'static str,
        value: Option<V>,
    ) -> Self {
        match value {
            Some(value) => self.set(column, value),
            None => self,
        }
    }

    /// `UPDATE table SET .. WHERE filter` and its values, the filter's still to be added.
    pub(super) fn update(
        self,
        table: &'static str,
        filter: &'static str,
    ) -> (String, Vec<SqlValue>) {
        let set = self
            .columns
            .iter()
            .map(|c| format!("{c} = ?"))
            .collect::<Vec<_>>()
            .join(", ");
        (
            format!("UPDATE {table} SET {set} WHERE {filter}"),
            self.values,
        )
    }
}
