//! The gateway's one table: the messages pushed to this party's components, queued per
//! (session, topic) until popped (SQLite through `fedflow_store`, `synchronous = FULL`).
//!
//! Every write goes through one writer task that takes whatever is waiting and applies it in
//! one transaction (group commit): concurrent pushes share one sync to disk, and an insert is
//! answered only after its transaction committed, so an acknowledged push survives a crash.
//! A message's `seq` orders its topic; `(session_id, message_id)` is unique, so a retried
//! delivery is stored once. A pop does not delete its row: it empties the payload and sets
//! `popped` (a compare-and-set on `popped = 0`), so a late retry of a popped message is still
//! recognised and not queued again; a session's rows go when the session is dropped.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use fedflow_store::{Db, Migration, SqlValue, StoreError, get};
use tokio::sync::{mpsc, oneshot};

pub use fedflow_store::StoreError as Error;

const MIGRATIONS: &[Migration] = &[Migration {
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
}];

/// The most writes one transaction takes.
const MAX_BATCH: usize = 256;

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
    pub seq: i64,
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
    /// Transactions the writer committed (each one sync to disk).
    commits: Arc<AtomicU64>,
}

impl Store {
    /// Opens (creating) the database at `url` and starts its writer task, which ends when the
    /// last clone of the store is dropped.
    pub async fn open(url: &str) -> Result<Store, Error> {
        // One connection: every statement is serialised anyway, and each commit is a sync.
        let db = Db::connect_durable(url, 1, "gateway_migrations", MIGRATIONS).await?;
        let (writes, queue) = mpsc::channel(4 * MAX_BATCH);
        let commits = Arc::new(AtomicU64::new(0));
        tokio::spawn(writer(db.clone(), queue, commits.clone()));
        Ok(Store {
            db,
            writes,
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
        let row = self
            .db
            .query_one(
                "SELECT seq, payload FROM gateway_messages WHERE session_id = ? AND topic = ? AND popped = 0 ORDER BY seq LIMIT 1",
                vec![session_id.into(), topic.into()],
            )
            .await?;
        row.map(|row| read_head(&row)).transpose()
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

fn read_head(row: &fedflow_store::Row) -> Result<Head, Error> {
    let payload: Vec<u8> = get(row, "payload")?;
    Ok(Head {
        seq: get(row, "seq")?,
        payload: Bytes::from(payload),
    })
}

/// The writer: waits for a write, takes every write already waiting (up to [`MAX_BATCH`]),
/// applies them in one transaction and answers each after the commit.
async fn writer(db: Db, mut queue: mpsc::Receiver<Write>, commits: Arc<AtomicU64>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while queue.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let writes = std::mem::take(&mut batch);
        match apply(&db, &writes).await {
            Ok(results) => {
                commits.fetch_add(1, Ordering::Relaxed);
                for (write, result) in writes.into_iter().zip(results) {
                    answer(write, Ok(result));
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

/// What one write produced, answered once the transaction committed.
enum Outcome {
    Inserted(bool),
    Popped(Option<Head>),
    Dropped(u64),
}

async fn apply(db: &Db, writes: &[Write]) -> Result<Vec<Outcome>, SharedError> {
    let tx = db.begin().await?;
    let mut outcomes = Vec::with_capacity(writes.len());
    for write in writes {
        outcomes.push(match write {
            Write::Insert(m, _) => {
                let inserted = tx
                    .exec(
                        "INSERT INTO gateway_messages (session_id, topic, message_id, payload, size, create_ms) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (session_id, message_id) DO NOTHING",
                        vec![
                            m.session_id.as_str().into(),
                            m.topic.as_str().into(),
                            m.message_id.as_str().into(),
                            SqlValue::from(m.payload.to_vec()),
                            i64::try_from(m.payload.len()).unwrap_or(i64::MAX).into(),
                            fedflow_core::clock::now_ms().into(),
                        ],
                    )
                    .await?;
                Outcome::Inserted(inserted == 1)
            }
            Write::Pop(session_id, topic, _) => {
                let row = tx
                    .query_one(
                        "SELECT seq, payload FROM gateway_messages WHERE session_id = ? AND topic = ? AND popped = 0 ORDER BY seq LIMIT 1",
                        vec![session_id.as_str().into(), topic.as_str().into()],
                    )
                    .await?;
                let head = row.map(|row| read_head(&row)).transpose()?;
                if let Some(head) = &head {
                    let taken = tx
                        .exec(
                            "UPDATE gateway_messages SET popped = 1, payload = X'' WHERE seq = ? AND popped = 0",
                            vec![head.seq.into()],
                        )
                        .await?;
                    if taken != 1 {
                        return Err(SharedError::corrupt(format!(
                            "message {} of the head of a queue was popped under the writer",
                            head.seq
                        )));
                    }
                }
                Outcome::Popped(head)
            }
            Write::Drop(session_id, _) => {
                let row = tx
                    .query_one(
                        "SELECT COALESCE(SUM(size), 0) AS bytes FROM gateway_messages WHERE session_id = ? AND popped = 0",
                        vec![session_id.as_str().into()],
                    )
                    .await?;
                let bytes: i64 = match row {
                    Some(row) => get(&row, "bytes")?,
                    None => 0,
                };
                tx.exec(
                    "DELETE FROM gateway_messages WHERE session_id = ?",
                    vec![session_id.as_str().into()],
                )
                .await?;
                Outcome::Dropped(u64::try_from(bytes).unwrap_or(0))
            }
        });
    }
    tx.commit().await?;
    Ok(outcomes)
}

/// A failed transaction, answered to every write of its batch.
#[derive(Debug, Clone)]
struct SharedError {
    unavailable: bool,
    message: String,
}

impl SharedError {
    fn corrupt(message: String) -> SharedError {
        SharedError {
            unavailable: false,
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
            unavailable: fedflow_store::is_unavailable(&e),
            message: e.to_string(),
        }
    }
}

impl From<StoreError> for SharedError {
    fn from(e: StoreError) -> SharedError {
        SharedError {
            unavailable: e.is_unavailable(),
            message: e.to_string(),
        }
    }
}

impl SharedError {
    fn clone_error(&self) -> StoreError {
        if self.unavailable {
            StoreError::Db(fedflow_store::Error::Custom(format!(
                "database is locked: {}",
                self.message
            )))
        } else {
            StoreError::Corrupt(self.message.clone())
        }
    }
}

fn answer(write: Write, result: Result<Outcome, SharedError>) {
    match (write, result) {
        (Write::Insert(_, tx), Ok(Outcome::Inserted(stored))) => {
            let _ = tx.send(Ok(stored));
        }
        (Write::Pop(_, _, tx), Ok(Outcome::Popped(head))) => {
            let _ = tx.send(Ok(head));
        }
        (Write::Drop(_, tx), Ok(Outcome::Dropped(bytes))) => {
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
    use super::*;

    fn message(session: &str, topic: &str, id: &str, body: &[u8]) -> NewMessage {
        NewMessage {
            session_id: session.into(),
            topic: topic.into(),
            message_id: id.into(),
            payload: Bytes::copy_from_slice(body),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_inserts_share_commits_and_a_repeated_id_is_stored_once() {
        let dir = std::env::temp_dir().join(format!("fedflow-gw-store-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("a directory");
        let url = fedflow_store::sqlite_url(&dir.join("m.db"));
        let store = Store::open(&url).await.expect("open");
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
}
