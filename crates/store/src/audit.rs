//! The audit trail: every status transition a service makes, with its cause and the request
//! that caused it, recorded in the same transaction as the change itself.
//!
//! A service's handlers run the work of a mutating call inside [`with_request`] (or serve
//! through `fedflow_rpc::server::RequestIdLayer`), so every transition that call makes names
//! its request id; transitions a service makes on its own
//! (a timer, the repair pass) carry an empty one. Each service creates its `<prefix>_audit`
//! table with [`crate::audit_migration!`].

use sea_orm::{DbErr, Value};

use crate::{Db, Row, get};

/// The request scope lives with the gRPC plumbing, which opens it for every served call
/// that names its request id; the audit trail reads it.
pub use fedflow_rpc::request::{current_request, with_request};

/// One status transition: of which kind of row (`job`, `task`, `worker`…), which one, from
/// what to what, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    pub time_ms: i64,
    pub entity: String,
    pub key: String,
    pub from: String,
    pub to: String,
    pub cause: String,
    pub request_id: String,
}

impl Transition {
    pub fn new(entity: &str, key: String, from: &str, to: &str, cause: &str, now: i64) -> Self {
        Transition {
            time_ms: now,
            entity: entity.to_owned(),
            key,
            from: from.to_owned(),
            to: to.to_owned(),
            cause: cause.to_owned(),
            request_id: current_request(),
        }
    }
}

impl Db {
    /// Runs a compare-and-set `UPDATE` and, when it changed a row, records `transition` in
    /// `table` in the same transaction. Returns the rows changed.
    pub async fn exec_audited(
        &self,
        table: &'static str,
        sql: &str,
        values: Vec<Value>,
        transition: Transition,
    ) -> Result<u64, DbErr> {
        self.exec_audited_sending(table, sql, values, transition, None)
            .await
    }

    /// [`Db::exec_audited`], and when it changed a row, also enqueues `commands` in the outbox
    /// table, in the same transaction.
    pub async fn exec_audited_sending(
        &self,
        table: &'static str,
        sql: &str,
        values: Vec<Value>,
        transition: Transition,
        commands: Option<(&'static str, &[crate::Command])>,
    ) -> Result<u64, DbErr> {
        let tx = self.begin().await?;
        let n = tx.exec(sql, values).await?;
        if n > 0 {
            crate::record(&tx, table, &transition).await?;
            if let Some((outbox, commands)) = commands {
                for command in commands {
                    tx.enqueue(outbox, command, transition.time_ms).await?;
                }
            }
        }
        tx.commit().await?;
        Ok(n)
    }

    /// The transitions recorded in `table`, oldest first (for a key when `key` is given).
    pub async fn transitions(
        &self,
        table: &'static str,
        key: Option<&str>,
    ) -> Result<Vec<Transition>, DbErr> {
        let rows = match key {
            Some(key) => {
                self.query(
                    &format!("SELECT * FROM {table} WHERE entity_key = ? ORDER BY time_ms"),
                    vec![key.into()],
                )
                .await?
            }
            None => {
                self.query(&format!("SELECT * FROM {table} ORDER BY time_ms"), vec![])
                    .await?
            }
        };
        rows.iter().map(transition_from_row).collect()
    }
}

fn transition_from_row(row: &Row) -> Result<Transition, DbErr> {
    Ok(Transition {
        time_ms: get(row, "time_ms")?,
        entity: get(row, "entity")?,
        key: get(row, "entity_key")?,
        from: get(row, "from_status")?,
        to: get(row, "to_status")?,
        cause: get(row, "cause")?,
        request_id: get(row, "request_id")?,
    })
}
