//! The party's data registry (`taskctl_tables`: one row per uploaded table, naming its file)
//! and artifacts registry (`taskctl_artifacts`: one row per output of a task attempt). A
//! table's row is written in one transaction after its file is in place, so a registered
//! table always has its file; artifacts are written in the transaction that records the
//! attempt's success, so a success never lacks its outputs. Metadata is kept as the component
//! or the uploader wrote it (JSON text, verbatim).

use fedflow_store::{Command, Row, get};

use super::{AUDIT, Error, OUTBOX, Store, TaskKey, party_status_update};
use crate::domain::attempt::Move;

/// One registered table.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    pub namespace: String,
    pub name: String,
    /// The file holding it, under the data directory.
    pub path: String,
    pub columns: Vec<String>,
    pub row_count: u64,
    pub size_bytes: u64,
    pub id_name: String,
    /// Empty when the table has no label.
    pub label_name: String,
    /// FATE's upload `meta`, verbatim.
    pub meta: String,
    pub partitions: i32,
    pub extend_sid: bool,
    pub create_ms: i64,
}

/// One output of a task attempt on this party.
#[derive(Debug, Clone, PartialEq)]
pub struct Artifact {
    pub key: TaskKey,
    pub output_key: String,
    /// `data`, `model` or `metric`.
    pub kind: String,
    pub type_name: String,
    pub path: String,
    pub size_bytes: u64,
    /// As the component wrote it (FATE's schema survives unchanged).
    pub metadata: String,
    /// What other parties may know of it (row count, ...).
    pub overview: String,
    pub create_ms: i64,
}

/// What registering a table did.
#[derive(Debug, Clone, PartialEq)]
pub enum Registered {
    New,
    /// It replaced this table (whose file the caller removes).
    Replaced(Table),
    /// A table of that name exists and was not to be replaced: nothing was written.
    Exists,
}

fn table_from_row(row: &Row) -> Result<Table, Error> {
    let columns: String = get(row, "columns")?;
    Ok(Table {
        namespace: get(row, "namespace")?,
        name: get(row, "name")?,
        path: get(row, "path")?,
        columns: serde_json::from_str(&columns).map_err(|e| Error::Corrupt(e.to_string()))?,
        row_count: u64::try_from(get::<i64>(row, "row_count")?).unwrap_or(0),
        size_bytes: u64::try_from(get::<i64>(row, "size_bytes")?).unwrap_or(0),
        id_name: get(row, "id_name")?,
        label_name: get(row, "label_name")?,
        meta: get(row, "meta")?,
        partitions: i32::try_from(get::<i64>(row, "partitions")?).unwrap_or(0),
        extend_sid: get::<i64>(row, "extend_sid")? != 0,
        create_ms: get(row, "create_ms")?,
    })
}

fn artifact_from_row(row: &Row) -> Result<Artifact, Error> {
    Ok(Artifact {
        key: TaskKey {
            job_id: get(row, "job_id")?,
            component: get(row, "component")?,
            version: i32::try_from(get::<i64>(row, "version")?)
                .map_err(|e| Error::Corrupt(e.to_string()))?,
            role: get(row, "role")?,
            party_id: get(row, "party_id")?,
        },
        output_key: get(row, "output_key")?,
        kind: get(row, "kind")?,
        type_name: get(row, "type_name")?,
        path: get(row, "path")?,
        size_bytes: u64::try_from(get::<i64>(row, "size_bytes")?).unwrap_or(0),
        metadata: get(row, "metadata")?,
        overview: get(row, "overview")?,
        create_ms: get(row, "create_ms")?,
    })
}

fn big(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl Store {
    /// Registers `table` in one transaction; with `replace`, in place of one of the same name.
    pub async fn register_table(&self, table: &Table, replace: bool) -> Result<Registered, Error> {
        let tx = self.db.begin().await?;
        let old = tx
            .query_one(
                "SELECT * FROM taskctl_tables WHERE namespace = ? AND name = ?",
                vec![table.namespace.clone().into(), table.name.clone().into()],
            )
            .await?
            .as_ref()
            .map(table_from_row)
            .transpose()?;
        if old.is_some() && !replace {
            return Ok(Registered::Exists);
        }
        if old.is_some() {
            tx.exec(
                "DELETE FROM taskctl_tables WHERE namespace = ? AND name = ?",
                vec![table.namespace.clone().into(), table.name.clone().into()],
            )
            .await?;
        }
        let columns =
            serde_json::to_string(&table.columns).map_err(|e| Error::Corrupt(e.to_string()))?;
        let n = tx
            .exec(
                "INSERT INTO taskctl_tables (namespace, name, path, columns, row_count,
                    size_bytes, id_name, label_name, meta, partitions, extend_sid, create_ms)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                 ON CONFLICT (namespace, name) DO NOTHING",
                vec![
                    table.namespace.clone().into(),
                    table.name.clone().into(),
                    table.path.clone().into(),
                    columns.into(),
                    big(table.row_count).into(),
                    big(table.size_bytes).into(),
                    table.id_name.clone().into(),
                    table.label_name.clone().into(),
                    table.meta.clone().into(),
                    i64::from(table.partitions).into(),
                    i64::from(table.extend_sid).into(),
                    table.create_ms.into(),
                ],
            )
            .await?;
        if n == 0 {
            // A concurrent upload of the same name won.
            return Ok(Registered::Exists);
        }
        tx.commit().await?;
        Ok(match old {
            Some(old) => Registered::Replaced(old),
            None => Registered::New,
        })
    }

    pub async fn table(&self, namespace: &str, name: &str) -> Result<Option<Table>, Error> {
        self.db
            .fetch_one(
                "SELECT * FROM taskctl_tables WHERE namespace = ? AND name = ?",
                vec![namespace.into(), name.into()],
                table_from_row,
            )
            .await
    }

    /// Every table (of `namespace` when given), by namespace and name.
    pub async fn tables(&self, namespace: Option<&str>) -> Result<Vec<Table>, Error> {
        match namespace {
            Some(ns) => {
                self.db
                    .fetch(
                        "SELECT * FROM taskctl_tables WHERE namespace = ? ORDER BY name",
                        vec![ns.into()],
                        table_from_row,
                    )
                    .await
            }
            None => {
                self.db
                    .fetch(
                        "SELECT * FROM taskctl_tables ORDER BY namespace, name",
                        vec![],
                        table_from_row,
                    )
                    .await
            }
        }
    }

    /// Unregisters a table; the row it removed, if any (the caller removes its file).
    pub async fn delete_table(&self, namespace: &str, name: &str) -> Result<Option<Table>, Error> {
        let tx = self.db.begin().await?;
        let old = tx
            .query_one(
                "SELECT * FROM taskctl_tables WHERE namespace = ? AND name = ?",
                vec![namespace.into(), name.into()],
            )
            .await?
            .as_ref()
            .map(table_from_row)
            .transpose()?;
        tx.exec(
            "DELETE FROM taskctl_tables WHERE namespace = ? AND name = ?",
            vec![namespace.into(), name.into()],
        )
        .await?;
        tx.commit().await?;
        Ok(old)
    }

    /// [`Store::cas_party_status`] that also registers the attempt's `artifacts`, all in one
    /// transaction: either the status moved and every artifact is registered, or nothing.
    pub async fn cas_party_status_registering(
        &self,
        key: &TaskKey,
        change: &Move,
        commands: &[Command],
        artifacts: &[Artifact],
        now: i64,
    ) -> Result<bool, Error> {
        let (sql, values, transition) = party_status_update(key, change, now);
        let tx = self.db.begin().await?;
        if tx.exec(sql, values).await? != 1 {
            return Ok(false);
        }
        tx.record(AUDIT, &transition).await?;
        for command in commands {
            tx.enqueue(OUTBOX, command, now).await?;
        }
        for a in artifacts {
            tx.exec(
                "INSERT INTO taskctl_artifacts (job_id, component, version, role, party_id,
                    output_key, kind, type_name, path, size_bytes, metadata, overview, create_ms)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                 ON CONFLICT (job_id, component, version, role, output_key) DO NOTHING",
                vec![
                    a.key.job_id.clone().into(),
                    a.key.component.clone().into(),
                    i64::from(a.key.version).into(),
                    a.key.role.clone().into(),
                    a.key.party_id.clone().into(),
                    a.output_key.clone().into(),
                    a.kind.clone().into(),
                    a.type_name.clone().into(),
                    a.path.clone().into(),
                    big(a.size_bytes).into(),
                    a.metadata.clone().into(),
                    a.overview.clone().into(),
                    now.into(),
                ],
            )
            .await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    /// A job's artifacts on this party (of one component when given), oldest version first.
    pub async fn artifacts(
        &self,
        job_id: &str,
        component: Option<&str>,
    ) -> Result<Vec<Artifact>, Error> {
        let order = "ORDER BY component, version, role, output_key";
        match component {
            Some(c) => self
                .db
                .fetch(
                    &format!(
                        "SELECT * FROM taskctl_artifacts WHERE job_id = ? AND component = ? {order}"
                    ),
                    vec![job_id.into(), c.into()],
                    artifact_from_row,
                )
                .await,
            None => {
                self.db
                    .fetch(
                        &format!("SELECT * FROM taskctl_artifacts WHERE job_id = ? {order}"),
                        vec![job_id.into()],
                        artifact_from_row,
                    )
                    .await
            }
        }
    }
}
