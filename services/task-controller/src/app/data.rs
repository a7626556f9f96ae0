//! The party's data registry: uploads (chunks appended to `data_dir/uploads/<id>.part`, then
//! checked whole, moved under `data_dir/tables/<namespace>/<name>/` and registered in one
//! transaction), listing, reading and deleting tables. A refused upload leaves nothing: no
//! row, no file. A crash between the move and the registration can leave an unregistered
//! file under `tables/`, never a row without its file; at start-up, before serving,
//! `uploads/` is emptied and such files are removed ([`App::sweep_data`]).

use std::io::Write;
use std::path::{Path, PathBuf};

use fedflow_rpc::now_ms;
use serde_json::{Map, Value};

use super::{App, Error};
use crate::domain::table::{self, TableMeta};
use crate::store::{Registered, Table};

/// The most one upload may hold (FATE-Flow's `upload_max_bytes` is 100 MiB).
pub const MAX_UPLOAD_BYTES: u64 = 1 << 30;

/// FATE-Flow's upload conf, without `file` (the client streams its content).
#[derive(Debug, Clone)]
pub struct UploadSpec {
    pub namespace: String,
    pub name: String,
    pub head: bool,
    pub partitions: i32,
    pub extend_sid: bool,
    pub drop: bool,
    /// FATE's `meta`, kept verbatim.
    pub meta: Map<String, Value>,
    /// The client's file name, for messages.
    pub file: String,
    /// The file's size as the client found it; `None`: not checked.
    pub file_size: Option<u64>,
}

/// A checked namespace or name (it names a directory).
pub fn table_part(field: &str, value: &str) -> Result<(), Error> {
    if fedflow_core::modules::table_part(value) {
        Ok(())
    } else {
        Err(Error::InvalidArgument(format!(
            "{field}: {value:?} is not 1 to 64 letters, digits, '_', '.' or '-' (not starting with '.')"
        )))
    }
}

fn upload_id_ok(id: &str) -> Result<(), Error> {
    if (8..=64).contains(&id.len()) && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        Ok(())
    } else {
        Err(Error::InvalidArgument(format!(
            "upload_id: {id:?} is not 8 to 64 letters, digits or '-'"
        )))
    }
}

fn io(what: &str, path: &Path, e: std::io::Error) -> Error {
    Error::Internal(format!("{what} {}: {e}", path.display()))
}

impl App {
    pub(crate) fn data_dir(&self) -> &Path {
        &self.inner.data_dir
    }

    fn upload_path(&self, upload_id: &str) -> Result<PathBuf, Error> {
        upload_id_ok(upload_id)?;
        Ok(self
            .data_dir()
            .join("uploads")
            .join(format!("{upload_id}.part")))
    }

    /// Removes what unfinished uploads left, and table files no row names (a commit cut off
    /// between its move and its registration). At start-up only: nothing is uploading yet.
    pub async fn sweep_data(&self) -> Result<(), Error> {
        let dir = self.data_dir().join("uploads");
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for entry in entries.flatten() {
                let _ = std::fs::remove_file(entry.path());
            }
        }
        let registered: std::collections::BTreeSet<PathBuf> = self
            .inner
            .store
            .tables(None)
            .await?
            .into_iter()
            .map(|t| PathBuf::from(t.path))
            .collect();
        let tables = self.data_dir().join("tables");
        for namespace in read_dirs(&tables) {
            for name in read_dirs(&namespace) {
                for file in std::fs::read_dir(&name).into_iter().flatten().flatten() {
                    let path = file.path();
                    if !registered.contains(&path) {
                        tracing::warn!(path = %path.display(), "removing an unregistered table file");
                        let _ = std::fs::remove_file(&path);
                    }
                }
                let _ = std::fs::remove_dir(&name);
            }
            let _ = std::fs::remove_dir(&namespace);
        }
        Ok(())
    }

    /// Appends `data` at `offset`; a chunk already held is accepted without writing again.
    pub async fn upload_chunk(
        &self,
        upload_id: &str,
        offset: u64,
        data: &[u8],
    ) -> Result<u64, Error> {
        let path = self.upload_path(upload_id)?;
        let _one_writer = self.inner.uploads.lock().await;
        let dir = path.parent().expect("uploads/ has a parent");
        std::fs::create_dir_all(dir).map_err(|e| io("create", dir, e))?;
        let held = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        let end = offset.saturating_add(data.len() as u64);
        if end > MAX_UPLOAD_BYTES {
            return Err(Error::InvalidArgument(format!(
                "the upload exceeds {MAX_UPLOAD_BYTES} bytes"
            )));
        }
        if offset > held {
            return Err(Error::FailedPrecondition(format!(
                "chunk at byte {offset}, but upload {upload_id} holds {held} bytes"
            )));
        }
        if end <= held {
            return Ok(held);
        }
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| io("open", &path, e))?;
        let skip = usize::try_from(held - offset).unwrap_or(data.len());
        file.write_all(&data[skip..])
            .map_err(|e| io("write", &path, e))?;
        Ok(end)
    }

    pub async fn abort_upload(&self, upload_id: &str) -> Result<(), Error> {
        let path = self.upload_path(upload_id)?;
        let _one_writer = self.inner.uploads.lock().await;
        let _ = std::fs::remove_file(path);
        Ok(())
    }

    /// Checks the uploaded bytes against `spec` and registers the table; on any refusal the
    /// upload's file is gone and nothing is registered.
    pub async fn commit_upload(
        &self,
        upload_id: &str,
        spec: UploadSpec,
        size: u64,
    ) -> Result<Table, Error> {
        let part = self.upload_path(upload_id)?;
        let result = self.commit(upload_id, &part, spec, size).await;
        if result.is_err() {
            let _one_writer = self.inner.uploads.lock().await;
            let _ = std::fs::remove_file(&part);
        }
        result
    }

    async fn commit(
        &self,
        upload_id: &str,
        part: &Path,
        spec: UploadSpec,
        size: u64,
    ) -> Result<Table, Error> {
        table_part("namespace", &spec.namespace)?;
        table_part("name", &spec.name)?;
        if !spec.head {
            return Err(Error::InvalidArgument(
                "head: only files whose first line is the header are supported (head: 1)".into(),
            ));
        }
        if !(0..=1024).contains(&spec.partitions) {
            return Err(Error::InvalidArgument(format!(
                "partitions: {} is not between 1 and 1024",
                spec.partitions
            )));
        }
        let meta = TableMeta::from_json(&spec.meta).map_err(Error::InvalidArgument)?;
        let held = std::fs::metadata(part)
            .map(|m| m.len())
            .map_err(|_| Error::NotFound(format!("no upload {upload_id} on this party")))?;
        if held != size {
            return Err(Error::InvalidArgument(format!(
                "upload {upload_id} holds {held} bytes, the client sent {size}"
            )));
        }
        if let Some(expected) = spec.file_size
            && expected != held
        {
            return Err(Error::InvalidArgument(format!(
                "{}: {held} bytes arrived of the file's {expected}: the upload was cut short",
                spec.file
            )));
        }
        let file = std::fs::File::open(part).map_err(|e| io("open", part, e))?;
        let shape =
            tokio::task::spawn_blocking(move || table::check(std::io::BufReader::new(file), &meta))
                .await
                .map_err(|e| Error::Internal(format!("table check: {e}")))?
                .map_err(|why| Error::InvalidArgument(format!("{}: {why}", spec.file)))?;
        let dir = self
            .data_dir()
            .join("tables")
            .join(&spec.namespace)
            .join(&spec.name);
        std::fs::create_dir_all(&dir).map_err(|e| io("create", &dir, e))?;
        let path = dir.join(format!("{upload_id}.csv"));
        std::fs::rename(part, &path).map_err(|e| io("move", part, e))?;
        let table = Table {
            namespace: spec.namespace.clone(),
            name: spec.name.clone(),
            path: path.display().to_string(),
            columns: shape.columns,
            row_count: shape.row_count,
            size_bytes: size,
            id_name: shape.id_name,
            label_name: shape.label_name.unwrap_or_default(),
            meta: Value::Object(spec.meta).to_string(),
            partitions: spec.partitions.max(1),
            extend_sid: spec.extend_sid,
            create_ms: now_ms(),
        };
        let registered = self.inner.store.register_table(&table, spec.drop).await;
        match registered {
            Ok(Registered::New) => {}
            Ok(Registered::Replaced(old)) => remove_table_file(&old),
            Ok(Registered::Exists) => {
                remove_table_file(&table);
                return Err(Error::AlreadyExists(format!(
                    "table {}/{} exists on this party (set \"drop\": 1 to replace it)",
                    spec.namespace, spec.name
                )));
            }
            Err(e) => {
                remove_table_file(&table);
                return Err(e.into());
            }
        }
        tracing::info!(namespace = %table.namespace, name = %table.name, rows = table.row_count, "table registered");
        Ok(table)
    }

    pub async fn tables(&self, namespace: Option<&str>) -> Result<Vec<Table>, Error> {
        if let Some(ns) = namespace {
            table_part("namespace", ns)?;
        }
        Ok(self.inner.store.tables(namespace).await?)
    }

    pub async fn table(&self, namespace: &str, name: &str) -> Result<Table, Error> {
        table_part("namespace", namespace)?;
        table_part("name", name)?;
        self.inner
            .store
            .table(namespace, name)
            .await?
            .ok_or_else(|| {
                Error::NotFound(format!(
                    "no table {namespace}/{name} on party {}",
                    self.party_id()
                ))
            })
    }

    /// Unregisters a table, then removes its file.
    pub async fn delete_table(&self, namespace: &str, name: &str) -> Result<(), Error> {
        self.table(namespace, name).await?;
        if let Some(old) = self.inner.store.delete_table(namespace, name).await? {
            remove_table_file(&old);
        }
        Ok(())
    }
}

/// The directories directly under `dir`.
fn read_dirs(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect()
}

/// Removes a table's file and the directories it leaves empty.
fn remove_table_file(table: &Table) {
    let path = Path::new(&table.path);
    let _ = std::fs::remove_file(path);
    let mut dir = path.parent();
    for _ in 0..2 {
        match dir {
            Some(d) if std::fs::remove_dir(d).is_ok() => dir = d.parent(),
            _ => break,
        }
    }
}
