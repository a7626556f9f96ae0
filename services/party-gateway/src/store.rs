//! The gateway's one table: the messages pushed to this party's components, queued per
//! (session, topic) until popped (SQLite through `fedflow_store`, `synchronous = FULL`), their
//! payloads in segment files beside it ([`segments`]).
//!
//! Every write goes through one writer task that takes whatever is waiting and applies it in
//! one transaction (group commit): the batch's payloads are appended to the active segment
//! and synced, then their index rows are inserted and committed (one sync each for the whole
//! batch), and an insert is answered only after that commit, so an acknowledged push survives
//! a crash. A message's `seq` orders its topic; `(session_id, message_id)` is unique, so a
//! retried delivery is stored once. A pop does not delete its row: it sets `popped` (a
//! compare-and-set on `popped = 0`), so a late retry of a popped message is still recognised
//! and not queued again; a session's rows go when the session is dropped, a segment when no
//! unpopped message lives in it. Payloads stored in the last moments are also kept in memory
//! (`cache_bytes` at most), so their pop reads nothing back; a payload read from a segment is
//! checked against its length and CRC-32C and refused if they differ. Rows written before
//! segments existed hold their payload inline and are served from it.

mod segments;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use fedflow_store::{Db, Migration, SqlValue, StoreError, get};
use parking_lot::Mutex;
use tokio::sync::{mpsc, oneshot};

pub use fedflow_store::StoreError as Error;
use segments::{Location, ReadError, Segments};

const MIGRATIONS: &[Migration] = &[
    Migration {
        name: "m0001_messages",
        statements: &[
            "CREATE TABLE gateway_messages (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            session_id TEXT NOT NULL,
            topic TEXT NOT NULL,
            message_id TEXT NOT NULL,
            payload BLOB NOT NULL,
            size BIGINT NOT NULL,
            popped BIGINT NOT NULL DEFAULT 0,
            create_ms BIGINT NOT NULL
        )",
            "CREATE UNIQUE INDEX gateway_messages_id ON gateway_messages (session_id, message_id)",
            "CREATE INDEX gateway_messages_queue ON gateway_messages (session_id, topic, popped, seq)",
        ],
    },
    // Where a payload lives when it is not inline: `size` bytes at `segment_offset` of
    // segment `segment_id`, whose CRC-32C is `crc32c`. NULL for inline rows.
    Migration {
        name: "m0002_segments",
        statements: &[
            "ALTER TABLE gateway_messages ADD COLUMN segment_id BIGINT",
            "ALTER TABLE gateway_messages ADD COLUMN segment_offset BIGINT",
            "ALTER TABLE gateway_messages ADD COLUMN crc32c BIGINT",
        ],
    },
];

/// The most writes one transaction takes.
const MAX_BATCH: usize = 256;

/// Payloads smaller than this are copied into the cache rather than kept as slices of the
/// buffer they arrived in (which may be much larger than they are).
const COPY_BELOW: usize = 64 * 1024;

const HEAD: &str = "SELECT seq, payload, size, segment_id, segment_offset, crc32c FROM gateway_messages WHERE session_id = ? AND topic = ? AND popped = 0 ORDER BY seq LIMIT 1";

/// Where the store keeps payloads, and how much of them in memory.
#[derive(Debug, Clone)]
pub struct Options {
    /// The segment files' directory.
    pub segments_dir: PathBuf,
    /// A segment takes appends until it holds this many bytes.
    pub segment_bytes: u64,
    /// Payloads of stored, unpopped messages kept in memory for their pop, at most.
    pub cache_bytes: u64,
}

/// A message to queue.
#[derive(Debug, Clone)]
pub struct NewMessage {
    pub session_id: String,
    pub topic: String,
    pub message_id: String,
    pub payload: Bytes,
}

/// The head of a queue.
#[derive(Debug, Clone)]
pub struct Head {
    pub payload: Bytes,
}

enum Write {
    /// Answers false when the message id was stored before.
    Insert(NewMessage, oneshot::Sender<Result<bool, Error>>),
    /// Takes the head of (session, topic), if any.
    Pop(String, String, oneshot::Sender<Result<Option<Head>, Error>>),
    /// Deletes every row of a session; answers the bytes still queued.
    Drop(String, oneshot::Sender<Result<u64, Error>>),
}

/// The message store; cheap to clone.
#[derive(Clone)]
pub struct Store {
    db: Db,
    writes: mpsc::Sender<Write>,
    segments_dir: Arc<PathBuf>,
    cache: Arc<Mutex<Cache>>,
    /// Transactions the writer committed (each one sync to disk).
    commits: Arc<AtomicU64>,
}

impl Store {
    /// Opens (creating) the database at `url` and the segments beside it, deletes the
    /// segments no unpopped message lives in, and starts the writer task, which ends when the
    /// last clone of the store is dropped.
    pub async fn open(url: &str, options: Options) -> Result<Store, Error> {
        // One connection: every statement is serialised anyway, and each commit is a sync.
        let db = Db::connect_durable(url, 1, "gateway_migrations", MIGRATIONS).await?;
        let live = db
            .fetch(
                "SELECT segment_id, COUNT(*) AS n FROM gateway_messages WHERE popped = 0 AND segment_id IS NOT NULL GROUP BY segment_id",
                vec![],
                |row| {
                    let segment: i64 = get(row, "segment_id")?;
                    let n: i64 = get(row, "n")?;
                    Ok::<_, Error>((non_negative(segment, "segment_id")?, non_negative(n, "n")?))
                },
            )
            .await?
            .into_iter()
            .collect();
        let segments =
            Segments::open(&options.segments_dir, options.segment_bytes, live).map_err(|e| {
                io_error(format!(
                    "segments in {}: {e}",
                    options.segments_dir.display()
                ))
            })?;
        let (writes, queue) = mpsc::channel(4 * MAX_BATCH);
        let commits = Arc::new(AtomicU64::new(0));
        let cache = Arc::new(Mutex::new(Cache::new(options.cache_bytes)));
        tokio::spawn(writer(
            db.clone(),
            queue,
            commits.clone(),
            segments,
            cache.clone(),
        ));
        Ok(Store {
            db,
            writes,
            segments_dir: Arc::new(options.segments_dir),
            cache,
            commits,
        })
    }

    /// Transactions committed since the store opened.
    pub fn commits(&self) -> u64 {
        self.commits.load(Ordering::Relaxed)
    }

    /// Queues `message` once it is durable; false when its id was stored before.
    pub async fn insert(&self, message: NewMessage) -> Result<bool, Error> {
        self.ask(|tx| Write::Insert(message, tx)).await
    }

    /// Takes the oldest unpopped message of (session, topic), durably.
    pub async fn pop(&self, session_id: &str, topic: &str) -> Result<Option<Head>, Error> {
        let (session_id, topic) = (session_id.to_owned(), topic.to_owned());
        self.ask(|tx| Write::Pop(session_id, topic, tx)).await
    }

    /// Deletes the session's rows; the bytes that were still queued.
    pub async fn drop_session(&self, session_id: &str) -> Result<u64, Error> {
        let session_id = session_id.to_owned();
        self.ask(|tx| Write::Drop(session_id, tx)).await
    }

    /// The oldest unpopped message of (session, topic), left in place.
    pub async fn peek(&self, session_id: &str, topic: &str) -> Result<Option<Head>, Error> {
        loop {
            let Some(row) = self
                .db
                .query_one(HEAD, vec![session_id.into(), topic.into()])
                .await?
            else {
                return Ok(None);
            };
            let row = read_row(&row)?;
            match fetch(&self.segments_dir, &self.cache, &row, None).await {
                Ok(payload) => {
                    return Ok(Some(Head { payload }));
                }
                // Popped (and its segment drained) since the row was read: look again.
                Err(ReadError::Gone(_)) => continue,
                Err(e) => return Err(unreadable(row.seq, &e)),
            }
        }
    }

    /// Bytes queued (not popped) per session, for the quotas after a restart.
    pub async fn usage(&self) -> Result<Vec<(String, u64)>, Error> {
        self.db
            .fetch(
                "SELECT session_id, SUM(size) AS bytes FROM gateway_messages WHERE popped = 0 GROUP BY session_id",
                vec![],
                |row| {
                    let bytes: i64 = get(row, "bytes")?;
                    Ok::<_, Error>((get(row, "session_id")?, u64::try_from(bytes).unwrap_or(0)))
                },
            )
            .await
    }

    /// Every session with rows here (for the sweep).
    pub async fn sessions(&self) -> Result<Vec<String>, Error> {
        self.db
            .fetch(
                "SELECT DISTINCT session_id FROM gateway_messages",
                vec![],
                |row| Ok::<_, Error>(get(row, "session_id")?),
            )
            .await
    }

    async fn ask<T>(
        &self,
        write: impl FnOnce(oneshot::Sender<Result<T, Error>>) -> Write,
    ) -> Result<T, Error> {
        let (tx, rx) = oneshot::channel();
        let gone = || StoreError::Corrupt("the store's writer has stopped".into());
        self.writes.send(write(tx)).await.map_err(|_| gone())?;
        rx.await.map_err(|_| gone())?
    }
}

/// Payloads of stored, unpopped messages by `seq`, up to a byte budget; what does not fit is
/// read back from its segment when popped.
struct Cache {
    entries: HashMap<i64, (String, Bytes)>,
    bytes: u64,
    limit: u64,
}

impl Cache {
    fn new(limit: u64) -> Cache {
        Cache {
            entries: HashMap::new(),
            bytes: 0,
            limit,
        }
    }

    fn put(&mut self, seq: i64, session_id: &str, payload: &Bytes) {
        let len = payload.len() as u64;
        if self.bytes + len > self.limit {
            return;
        }
        let payload = if payload.len() < COPY_BELOW {
            Bytes::copy_from_slice(payload)
        } else {
            payload.clone()
        };
        self.bytes += len;
        self.entries.insert(seq, (session_id.to_owned(), payload));
    }

    fn get(&self, seq: i64) -> Option<Bytes> {
        self.entries.get(&seq).map(|(_, payload)| payload.clone())
    }

    fn take(&mut self, seq: i64) {
        if let Some((_, payload)) = self.entries.remove(&seq) {
            self.bytes -= payload.len() as u64;
        }
    }

    fn forget_session(&mut self, session_id: &str) {
        let mut freed = 0;
        self.entries.retain(|_, (session, payload)| {
            let keep = session != session_id;
            if !keep {
                freed += payload.len() as u64;
            }
            keep
        });
        self.bytes -= freed;
    }
}

/// Where a row's payload is.
enum Stored {
    Inline(Bytes),
    At(Location),
}

struct Queued {
    seq: i64,
    stored: Stored,
}

fn read_row(row: &fedflow_store::Row) -> Result<Queued, Error> {
    let seq: i64 = get(row, "seq")?;
    let segment: Option<i64> = get(row, "segment_id")?;
    let stored = match segment {
        None => {
            let payload: Vec<u8> = get(row, "payload")?;
            Stored::Inline(Bytes::from(payload))
        }
        Some(segment) => {
            let offset: Option<i64> = get(row, "segment_offset")?;
            let crc: Option<i64> = get(row, "crc32c")?;
            let size: i64 = get(row, "size")?;
            let (Some(offset), Some(crc)) = (offset, crc) else {
                return Err(StoreError::Corrupt(format!(
                    "message {seq} names segment {segment} but no offset or CRC"
                )));
            };
            Stored::At(Location {
                segment: non_negative(segment, "segment_id")?,
                offset: non_negative(offset, "segment_offset")?,
                len: non_negative(size, "size")?,
                crc: u32::try_from(crc).map_err(|_| {
                    StoreError::Corrupt(format!("message {seq}: crc32c {crc} is not a CRC-32C"))
                })?,
            })
        }
    };
    Ok(Queued { seq, stored })
}

fn non_negative(value: i64, column: &str) -> Result<u64, Error> {
    u64::try_from(value).map_err(|_| StoreError::Corrupt(format!("{column} is {value}, below 0")))
}

/// A row's payload: inline, fresh from this batch, cached, or read back from its segment.
async fn fetch(
    dir: &Arc<PathBuf>,
    cache: &Mutex<Cache>,
    row: &Queued,
    fresh: Option<&HashMap<i64, Bytes>>,
) -> Result<Bytes, ReadError> {
    let at = match &row.stored {
        Stored::Inline(payload) => return Ok(payload.clone()),
        Stored::At(at) => *at,
    };
    if let Some(payload) = fresh.and_then(|f| f.get(&row.seq)) {
        return Ok(payload.clone());
    }
    let cached = cache.lock().get(row.seq);
    if let Some(payload) = cached {
        return Ok(payload);
    }
    let dir = dir.clone();
    tokio::task::spawn_blocking(move || segments::read(&dir, at))
        .await
        .map_err(|e| ReadError::Io {
            segment: at.segment,
            error: std::io::Error::other(e.to_string()),
        })?
}

fn unreadable(seq: i64, e: &ReadError) -> Error {
    StoreError::Corrupt(format!("message {seq} cannot be served: {e}"))
}

fn io_error(message: String) -> Error {
    StoreError::Db(fedflow_store::Error::Custom(message))
}

/// The writer: waits for a write, takes every write already waiting (up to [`MAX_BATCH`]),
/// appends the batch's payloads to the active segment and syncs it, applies the batch in one
/// transaction and answers each write after the commit.
async fn writer(
    db: Db,
    mut queue: mpsc::Receiver<Write>,
    commits: Arc<AtomicU64>,
    mut segments: Segments,
    cache: Arc<Mutex<Cache>>,
) {
    let dir = Arc::new(segments.dir().to_owned());
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while queue.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let writes = std::mem::take(&mut batch);
        let payloads: Vec<Bytes> = writes
            .iter()
            .filter_map(|w| match w {
                Write::Insert(m, _) => Some(m.payload.clone()),
                _ => None,
            })
            .collect();
        let locations = if payloads.is_empty() {
            Ok(Vec::new())
        } else {
            let appended = tokio::task::spawn_blocking(move || {
                let result = segments.append(&payloads);
                (segments, result)
            })
            .await;
            match appended {
                Ok((back, result)) => {
                    segments = back;
                    result
                }
                Err(e) => {
                    let e = SharedError::io(format!("the segment writer failed: {e}"));
                    tracing::error!(error = %e, "message store writer stopped");
                    for write in writes {
                        answer(write, Err(e.clone()));
                    }
                    return;
                }
            }
        };
        let locations = match locations {
            Ok(locations) => locations,
            Err(e) => {
                let full = e.kind() == std::io::ErrorKind::StorageFull;
                let message = format!(
                    "cannot write payloads to a segment in {}: {e}",
                    dir.display()
                );
                let e = if full {
                    SharedError {
                        failure: Failure::Unavailable { disk_full: true },
                        message,
                    }
                } else {
                    SharedError::io(message)
                };
                tracing::warn!(error = %e, writes = writes.len(), "message store write failed");
                for write in writes {
                    answer(write, Err(e.clone()));
                }
                continue;
            }
        };
        match apply(&db, &dir, &cache, &writes, &locations).await {
            Ok(outcomes) => {
                commits.fetch_add(1, Ordering::Relaxed);
                {
                    let mut cache = cache.lock();
                    for (write, outcome) in writes.iter().zip(&outcomes) {
                        match (write, outcome) {
                            (Write::Insert(m, _), Outcome::Inserted(Some((seq, at)))) => {
                                segments.added(at.segment);
                                cache.put(*seq, &m.session_id, &m.payload);
                            }
                            (_, Outcome::Popped(Ok(Some(popped)))) => {
                                cache.take(popped.seq);
                                if let Some(segment) = popped.segment {
                                    segments.removed(segment, 1);
                                }
                            }
                            (Write::Drop(session_id, _), Outcome::Dropped(_, drained)) => {
                                cache.forget_session(session_id);
                                for (segment, n) in drained {
                                    segments.removed(*segment, *n);
                                }
                            }
                            _ => {}
                        }
                    }
                }
                for (write, outcome) in writes.into_iter().zip(outcomes) {
                    answer(write, Ok(outcome));
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, writes = writes.len(), "message store write failed");
                for write in writes {
                    answer(write, Err(e.clone()));
                }
            }
        }
    }
}

/// A popped message.
struct Popped {
    seq: i64,
    segment: Option<u64>,
    payload: Bytes,
}

/// What one write produced, answered once the transaction committed.
enum Outcome {
    /// The new row's seq and where its payload is; `None`: the id was stored before.
    Inserted(Option<(i64, Location)>),
    /// `Err`: the head's payload cannot be served (it stays queued).
    Popped(Result<Option<Popped>, String>),
    /// The bytes that were queued, and the unpopped messages dropped per segment.
    Dropped(u64, Vec<(u64, u64)>),
}

async fn apply(
    db: &Db,
    dir: &Arc<PathBuf>,
    cache: &Mutex<Cache>,
    writes: &[Write],
    locations: &[Location],
) -> Result<Vec<Outcome>, SharedError> {
    let tx = db.begin().await?;
    let mut outcomes = Vec::with_capacity(writes.len());
    let mut locations = locations.iter();
    // Payloads inserted by this batch, for a pop in the same batch.
    let mut fresh = HashMap::new();
    for write in writes {
        outcomes.push(match write {
            Write::Insert(m, _) => {
                let at = *locations.next().ok_or_else(|| {
                    SharedError::corrupt("a stored message has no segment location".into())
                })?;
                let row = tx
                    .query_one(
                        "INSERT INTO gateway_messages (session_id, topic, message_id, payload, size, create_ms, segment_id, segment_offset, crc32c) VALUES (?, ?, ?, X'', ?, ?, ?, ?, ?) ON CONFLICT (session_id, message_id) DO NOTHING RETURNING seq",
                        vec![
                            m.session_id.as_str().into(),
                            m.topic.as_str().into(),
                            m.message_id.as_str().into(),
                            signed(at.len).into(),
                            fedflow_core::clock::now_ms().into(),
                            signed(at.segment).into(),
                            signed(at.offset).into(),
                            SqlValue::from(i64::from(at.crc)),
                        ],
                    )
                    .await?;
                match row {
                    Some(row) => {
                        let seq: i64 = get(&row, "seq")?;
                        fresh.insert(seq, m.payload.clone());
                        Outcome::Inserted(Some((seq, at)))
                    }
                    None => Outcome::Inserted(None),
                }
            }
            Write::Pop(session_id, topic, _) => {
                let row = tx
                    .query_one(HEAD, vec![session_id.as_str().into(), topic.as_str().into()])
                    .await?;
                match row.map(|row| read_row(&row)).transpose()? {
                    None => Outcome::Popped(Ok(None)),
                    Some(row) => match fetch(dir, cache, &row, Some(&fresh)).await {
                        Err(e) => {
                            let e = unreadable(row.seq, &e).to_string();
                            tracing::error!(seq = row.seq, session = %session_id, topic = %topic, error = %e, "a queued message cannot be served");
                            Outcome::Popped(Err(e))
                        }
                        Ok(payload) => {
                            let taken = tx
                                .exec(
                                    "UPDATE gateway_messages SET popped = 1, payload = X'' WHERE seq = ? AND popped = 0",
                                    vec![row.seq.into()],
                                )
                                .await?;
                            if taken != 1 {
                                return Err(SharedError::corrupt(format!(
                                    "message {} of the head of a queue was popped under the writer",
                                    row.seq
                                )));
                            }
                            let segment = match row.stored {
                                Stored::At(at) => Some(at.segment),
                                Stored::Inline(_) => None,
                            };
                            Outcome::Popped(Ok(Some(Popped {
                                seq: row.seq,
                                segment,
                                payload,
                            })))
                        }
                    },
                }
            }
            Write::Drop(session_id, _) => {
                let groups = tx
                    .query(
                        "SELECT segment_id, COUNT(*) AS n, COALESCE(SUM(size), 0) AS bytes FROM gateway_messages WHERE session_id = ? AND popped = 0 GROUP BY segment_id",
                        vec![session_id.as_str().into()],
                    )
                    .await?;
                let (mut bytes, mut drained) = (0u64, Vec::new());
                for group in &groups {
                    let segment: Option<i64> = get(group, "segment_id")?;
                    let n: i64 = get(group, "n")?;
                    let size: i64 = get(group, "bytes")?;
                    bytes += u64::try_from(size).unwrap_or(0);
                    if let Some(segment) = segment {
                        drained.push((non_negative(segment, "segment_id")?, non_negative(n, "n")?));
                    }
                }
                tx.exec(
                    "DELETE FROM gateway_messages WHERE session_id = ?",
                    vec![session_id.as_str().into()],
                )
                .await?;
                Outcome::Dropped(bytes, drained)
            }
        });
    }
    tx.commit().await?;
    Ok(outcomes)
}

fn signed(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// Why a failed transaction failed, for every write of its batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failure {
    /// The database cannot be used right now (busy, its disk full): try again.
    Unavailable { disk_full: bool },
    /// A row or a segment holds what this store could not have written.
    Corrupt,
    /// The disk refused a write.
    Io,
}

/// A failed transaction, answered to every write of its batch.
#[derive(Debug, Clone)]
struct SharedError {
    failure: Failure,
    message: String,
}

impl SharedError {
    fn corrupt(message: String) -> SharedError {
        SharedError {
            failure: Failure::Corrupt,
            message,
        }
    }

    fn io(message: String) -> SharedError {
        SharedError {
            failure: Failure::Io,
            message,
        }
    }
}

impl std::fmt::Display for SharedError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<fedflow_store::Error> for SharedError {
    fn from(e: fedflow_store::Error) -> SharedError {
        SharedError {
            failure: if fedflow_store::is_unavailable(&e) {
                Failure::Unavailable {
                    disk_full: fedflow_store::is_disk_full(&e),
                }
            } else {
                Failure::Io
            },
            message: e.to_string(),
        }
    }
}

impl From<StoreError> for SharedError {
    fn from(e: StoreError) -> SharedError {
        let failure = match &e {
            _ if e.is_unavailable() => Failure::Unavailable {
                disk_full: e.is_disk_full(),
            },
            StoreError::Corrupt(_) => Failure::Corrupt,
            StoreError::Db(_) | StoreError::Unavailable { .. } => Failure::Io,
        };
        SharedError {
            failure,
            message: e.to_string(),
        }
    }
}

impl SharedError {
    fn clone_error(&self) -> StoreError {
        match self.failure {
            Failure::Unavailable { disk_full } => StoreError::Unavailable {
                reason: self.message.clone(),
                disk_full,
            },
            Failure::Corrupt => StoreError::Corrupt(self.message.clone()),
            Failure::Io => io_error(self.message.clone()),
        }
    }
}

fn answer(write: Write, result: Result<Outcome, SharedError>) {
    match (write, result) {
        (Write::Insert(_, tx), Ok(Outcome::Inserted(stored))) => {
            let _ = tx.send(Ok(stored.is_some()));
        }
        (Write::Pop(_, _, tx), Ok(Outcome::Popped(popped))) => {
            let _ = tx.send(
                popped
                    .map(|p| p.map(|p| Head { payload: p.payload }))
                    .map_err(StoreError::Corrupt),
            );
        }
        (Write::Drop(_, tx), Ok(Outcome::Dropped(bytes, _))) => {
            let _ = tx.send(Ok(bytes));
        }
        (Write::Insert(_, tx), Err(e)) => {
            let _ = tx.send(Err(e.clone_error()));
        }
        (Write::Pop(_, _, tx), Err(e)) => {
            let _ = tx.send(Err(e.clone_error()));
        }
        (Write::Drop(_, tx), Err(e)) => {
            let _ = tx.send(Err(e.clone_error()));
        }
        (write, Ok(_)) => {
            let e = SharedError::corrupt("a write got another write's outcome".into());
            answer(write, Err(e));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;
    use std::path::Path;
    use std::time::Duration;

    use super::*;

    fn message(session: &str, topic: &str, id: &str, body: &[u8]) -> NewMessage {
        NewMessage {
            session_id: session.into(),
            topic: topic.into(),
            message_id: id.into(),
            payload: Bytes::copy_from_slice(body),
        }
    }

    fn temp_dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("fedflow-gw-store-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("a directory");
        dir
    }

    async fn open(dir: &Path, segment_bytes: u64, cache_bytes: u64) -> Store {
        let url = fedflow_store::sqlite_url(&dir.join("m.db"));
        Store::open(
            &url,
            Options {
                segments_dir: dir.join("segments"),
                segment_bytes,
                cache_bytes,
            },
        )
        .await
        .expect("open")
    }

    fn segment_files(dir: &Path) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir.join("segments"))
            .expect("the segments directory")
            .map(|e| e.expect("an entry").path())
            .filter(|p| p.extension().is_some_and(|e| e == "seg"))
            .collect();
        files.sort();
        files
    }

    fn body(i: usize, len: usize) -> Vec<u8> {
        (0..len).map(|k| (i * 31 + k) as u8).collect()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_inserts_share_commits_and_a_repeated_id_is_stored_once() {
        let dir = temp_dir();
        let store = open(&dir, 64 << 20, 64 << 20).await;
        const N: usize = 200;
        let started = std::time::Instant::now();
        let inserts: Vec<_> = (0..N)
            .map(|i| {
                let store = store.clone();
                tokio::spawn(async move {
                    store
                        .insert(message(
                            "s",
                            &format!("t{}", i % 4),
                            &format!("id{i}"),
                            &[0; 1024],
                        ))
                        .await
                })
            })
            .collect();
        for insert in inserts {
            assert!(insert.await.expect("join").expect("insert"), "stored");
        }
        let commits = store.commits();
        eprintln!(
            "{N} concurrent inserts of 1 KiB: {commits} commits in {:?}",
            started.elapsed()
        );
        assert!(
            commits < N as u64 / 2,
            "{commits} commits for {N} concurrent inserts: no group commit"
        );
        // A repeated message id is recognised, popped or not.
        assert!(
            !store
                .insert(message("s", "t0", "id0", b"again"))
                .await
                .expect("insert")
        );
        let head = store.pop("s", "t0").await.expect("pop").expect("a message");
        assert_eq!(head.payload.len(), 1024);
        assert!(
            !store
                .insert(message("s", "t0", "id0", b"again"))
                .await
                .expect("insert")
        );
        assert_eq!(
            store.drop_session("s").await.expect("drop"),
            (N as u64 - 1) * 1024
        );
        assert!(store.pop("s", "t0").await.expect("pop").is_none());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn payloads_read_back_from_segments_survive_a_reopen_in_order_and_drained_segments_go() {
        let dir = temp_dir();
        // Segments of about 3 messages, nothing cached: every pop reads its segment.
        let store = open(&dir, 3 * 1000, 0).await;
        for i in 0..12 {
            let stored = store
                .insert(message("s", "t", &format!("id{i}"), &body(i, 1000)))
                .await
                .expect("insert");
            assert!(stored);
        }
        assert_eq!(segment_files(&dir).len(), 4, "{:?}", segment_files(&dir));
        for i in 0..4 {
            let head = store.pop("s", "t").await.expect("pop").expect("a message");
            assert_eq!(
                head.payload.as_ref(),
                body(i, 1000).as_slice(),
                "message {i}"
            );
        }
        let peeked = store.peek("s", "t").await.expect("peek").expect("a head");
        assert_eq!(peeked.payload.as_ref(), body(4, 1000).as_slice());
        drop(store);

        // Reopened: the first segment (all popped) is gone, the rest is served in order.
        let store = open(&dir, 3 * 1000, 64 << 20).await;
        assert_eq!(segment_files(&dir).len(), 3, "{:?}", segment_files(&dir));
        for i in 4..12 {
            let head = store.pop("s", "t").await.expect("pop").expect("a message");
            assert_eq!(
                head.payload.as_ref(),
                body(i, 1000).as_slice(),
                "message {i}"
            );
        }
        assert!(store.pop("s", "t").await.expect("pop").is_none());
        let drained = || segment_files(&dir).len();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while drained() > 0 && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(
            segment_files(&dir),
            Vec::<PathBuf>::new(),
            "every message was popped, yet segments remain"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_torn_or_corrupt_segment_is_never_served() {
        let dir = temp_dir();
        let store = open(&dir, 64 << 20, 0).await;
        for i in 0..3 {
            store
                .insert(message("s", "t", &format!("id{i}"), &body(i, 4096)))
                .await
                .expect("insert");
        }
        store
            .insert(message("s", "u", "id-u", &body(9, 4096)))
            .await
            .expect("insert");
        drop(store);
        let [segment] = segment_files(&dir).try_into().expect("one segment");

        // Bytes after the last committed payload (a crash between the segment's sync and the
        // commit) are addressed by no row: the store opens and serves what was committed.
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&segment)
            .expect("open the segment");
        file.write_all(&[0xee; 777]).expect("a torn tail");
        drop(file);
        let store = open(&dir, 64 << 20, 0).await;
        let head = store.pop("s", "t").await.expect("pop").expect("a message");
        assert_eq!(head.payload.as_ref(), body(0, 4096).as_slice());
        drop(store);

        // A byte the disk changed: the CRC refuses it, on pop and on peek, and the message
        // stays queued rather than being skipped.
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(&segment)
            .expect("open the segment");
        std::os::unix::fs::FileExt::write_all_at(&file, &[0x00], 4096 + 10).expect("flip a byte");
        drop(file);
        let store = open(&dir, 64 << 20, 0).await;
        for _ in 0..2 {
            let err = store.pop("s", "t").await.expect_err("a corrupt payload");
            assert!(err.to_string().contains("CRC-32C"), "{err}");
        }
        let err = store.peek("s", "t").await.expect_err("a corrupt payload");
        assert!(err.to_string().contains("CRC-32C"), "{err}");
        drop(store);

        // A segment cut short under a committed row: named as a torn write, not served.
        let len = std::fs::metadata(&segment).expect("metadata").len();
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(&segment)
            .expect("open the segment");
        file.set_len(len - 777 - 100).expect("truncate");
        drop(file);
        let store = open(&dir, 64 << 20, 0).await;
        let err = store.pop("s", "u").await.expect_err("a torn payload");
        assert!(err.to_string().contains("torn"), "{err}");
        assert_eq!(
            store.usage().await.expect("usage"),
            vec![("s".to_owned(), 3 * 4096)],
            "nothing was taken"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
