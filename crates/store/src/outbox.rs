//! The outbox: commands to other services and parties, committed in the same transaction as
//! the state change that calls for them, and delivered by a sender that makes one attempt
//! per delivery and schedules the next with the shared backoff (`fedflow_rpc::retry::outbox`)
//! until the receiver answers. A crash between the commit and
//! the send loses nothing: the command is in the table and the restarted sender delivers it.
//! Nothing is dropped silently: a command that keeps failing stays in the table with its
//! attempts and last error, is logged as it ages, and is retried (at most every 30 s).
//!
//! Commands are keyed by their request id, so enqueueing the same command twice stores it
//! once; receivers are idempotent, so delivering it twice (a crash after the send, before
//! the delete) changes nothing.
//!
//! Each service creates its `<prefix>_outbox` table with [`crate::outbox_migration!`].
//!
//! With [`Outbox::report_to`], the sender also keeps two gauges, the table's depth and the age
//! of its oldest command, measured with one `COUNT`/`MIN` query at most once a second.

use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use fedflow_telemetry::metrics::{FloatGauge, Gauge, Metrics};

use sea_orm::DbErr;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::{Db, Row, Tx, get};

/// One command: a unary call of `service`/`method` at `dest`, with an encoded request; made
/// from a typed party call (`fedflow_rpc::calls::Call::command`).
pub use fedflow_rpc::calls::Command;

/// A command not yet acknowledged.
#[derive(Debug, Clone)]
pub struct Pending {
    pub command: Command,
    pub attempts: u32,
    pub last_error: String,
    pub create_ms: i64,
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

fn unhex(text: &str) -> Result<Vec<u8>, DbErr> {
    (0..text.len())
        .step_by(2)
        .map(|i| {
            text.get(i..i + 2)
                .and_then(|pair| u8::from_str_radix(pair, 16).ok())
                .ok_or_else(|| DbErr::Custom(format!("outbox payload is not hex at {i}")))
        })
        .collect()
}

impl Tx {
    /// Adds `command` to the outbox `table` in this transaction (once per request id).
    pub async fn enqueue(
        &self,
        table: &'static str,
        command: &Command,
        now: i64,
    ) -> Result<(), DbErr> {
        self.exec(
            &format!(
                "INSERT INTO {table} (request_id, dest, service, method, job_id, payload, next_ms, create_ms)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (request_id) DO NOTHING"
            ),
            vec![
                command.request_id.clone().into(),
                command.dest.clone().into(),
                command.service.clone().into(),
                command.method.clone().into(),
                command.job_id.clone().into(),
                hex(&command.payload).into(),
                now.into(),
                now.into(),
            ],
        )
        .await?;
        Ok(())
    }
}

fn pending_from_row(row: &Row) -> Result<Pending, DbErr> {
    Ok(Pending {
        command: Command {
            dest: get(row, "dest")?,
            service: get(row, "service")?,
            method: get(row, "method")?,
            job_id: get(row, "job_id")?,
            request_id: get(row, "request_id")?,
            payload: unhex(&get::<String>(row, "payload")?)?,
        },
        attempts: u32::try_from(get::<i64>(row, "attempts")?).unwrap_or(u32::MAX),
        last_error: get(row, "last_error")?,
        create_ms: get(row, "create_ms")?,
    })
}

impl Db {
    /// Every command of `table` not yet acknowledged, oldest first.
    pub async fn pending(&self, table: &'static str) -> Result<Vec<Pending>, DbErr> {
        self.query(&format!("SELECT * FROM {table} ORDER BY create_ms"), vec![])
            .await?
            .iter()
            .map(pending_from_row)
            .collect()
    }

    async fn due(&self, table: &'static str, now: i64, limit: u32) -> Result<Vec<Pending>, DbErr> {
        self.query(
            &format!("SELECT * FROM {table} WHERE next_ms <= ? ORDER BY next_ms LIMIT {limit}"),
            vec![now.into()],
        )
        .await?
        .iter()
        .map(pending_from_row)
        .collect()
    }
}

/// Backoff after `attempts` failed deliveries: 200 ms doubling to 30 s, with ±50 % jitter
/// (the shared schedule, `fedflow_rpc::retry::outbox`).
fn backoff(attempts: u32) -> Duration {
    fedflow_rpc::retry::outbox().nth(attempts)
}

/// The sender of one outbox table.
#[derive(Clone)]
pub struct Outbox {
    db: Db,
    table: &'static str,
    wake: Arc<Notify>,
    gauges: Arc<OnceLock<OutboxGauges>>,
}

/// The gauges of one outbox: `<prefix>_outbox_depth` (commands not yet acknowledged) and
/// `<prefix>_outbox_oldest_age_seconds` (how long the oldest has waited; 0 when empty).
#[derive(Clone, Debug)]
pub struct OutboxGauges {
    depth: Gauge,
    oldest_age_seconds: FloatGauge,
}

impl OutboxGauges {
    /// Registers the two gauges as `<prefix>_outbox_…` (e.g. `fedflow_scheduler`).
    pub fn register(registry: &Metrics, prefix: &str) -> OutboxGauges {
        let gauges = OutboxGauges {
            depth: Gauge::default(),
            oldest_age_seconds: FloatGauge::default(),
        };
        registry.register(
            &format!("{prefix}_outbox_depth"),
            "Commands in the outbox not yet acknowledged by their receivers.",
            gauges.depth.clone(),
        );
        registry.register(
            &format!("{prefix}_outbox_oldest_age_seconds"),
            "How long the oldest command in the outbox has waited (0 when it is empty).",
            gauges.oldest_age_seconds.clone(),
        );
        gauges
    }
}

impl Outbox {
    pub fn new(db: Db, table: &'static str) -> Self {
        Outbox {
            db,
            table,
            wake: Arc::new(Notify::new()),
            gauges: Arc::default(),
        }
    }

    /// Keeps `gauges` up to date from now on (the first call wins).
    pub fn report_to(&self, gauges: OutboxGauges) {
        let _ = self.gauges.set(gauges);
    }

    /// Measures the table into the gauges, if any.
    async fn measure(&self) {
        let Some(gauges) = self.gauges.get() else {
            return;
        };
        let sql = format!(
            "SELECT COUNT(*) AS depth, COALESCE(MIN(create_ms), 0) AS oldest FROM {}",
            self.table
        );
        match self.db.query_one(&sql, vec![]).await {
            Ok(Some(row)) => {
                let depth: i64 = get(&row, "depth").unwrap_or(0);
                let oldest: i64 = get(&row, "oldest").unwrap_or(0);
                gauges.depth.set(depth);
                let age = if depth == 0 {
                    0.0
                } else {
                    (crate::now_ms() - oldest).max(0) as f64 / 1000.0
                };
                gauges.oldest_age_seconds.set(age);
            }
            Ok(None) => {}
            Err(e) => tracing::debug!(table = self.table, error = %e, "outbox not measured"),
        }
    }

    /// Tells the sender that commands were committed (it also looks every second).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Delivers due commands until `shutdown`: each through `deliver`, which answers `Ok` when
    /// the receiver answered (whatever it said: a refusal is final, and is logged by
    /// `deliver`) and `Err(why)` when it could not be reached; those are tried again later.
    pub async fn run<F, Fut>(&self, shutdown: CancellationToken, deliver: F)
    where
        F: Fn(Command) -> Fut,
        Fut: Future<Output = Result<(), String>>,
    {
        let mut measured: Option<Instant> = None;
        loop {
            if measured.is_none_or(|at| at.elapsed() >= Duration::from_secs(1)) {
                self.measure().await;
                measured = Some(Instant::now());
            }
            let now = crate::now_ms();
            // Without news, look again within a second (commands enqueued without a wake).
            let mut wait = Duration::from_secs(1);
            match self.db.due(self.table, now, 256).await {
                Ok(due) => {
                    let results =
                        futures::future::join_all(due.iter().map(|p| deliver(p.command.clone())))
                            .await;
                    let mut delivered = Vec::new();
                    for (pending, result) in due.iter().zip(results) {
                        match result {
                            Ok(()) => delivered.push(pending.command.request_id.clone()),
                            Err(error) => match self.postpone(pending, error).await {
                                Ok(next) => {
                                    wait = wait.min(Duration::from_millis(
                                        u64::try_from(next - now).unwrap_or(0),
                                    ));
                                }
                                Err(e) => {
                                    tracing::warn!(table = self.table, error = %e, "outbox bookkeeping failed")
                                }
                            },
                        }
                    }
                    if let Err(e) = self.remove(&delivered).await {
                        tracing::warn!(table = self.table, error = %e, "outbox bookkeeping failed");
                    }
                    if due.len() == 256 {
                        wait = Duration::ZERO;
                    }
                }
                Err(e) => tracing::warn!(table = self.table, error = %e, "outbox unreadable"),
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// Deletes delivered commands, in one statement.
    async fn remove(&self, request_ids: &[String]) -> Result<(), DbErr> {
        if request_ids.is_empty() {
            return Ok(());
        }
        let marks = vec!["?"; request_ids.len()].join(", ");
        self.db
            .exec(
                &format!("DELETE FROM {} WHERE request_id IN ({marks})", self.table),
                request_ids.iter().map(|id| id.clone().into()).collect(),
            )
            .await?;
        Ok(())
    }

    /// Delivers now, oldest first, every pending command about `job_id`, for a caller that
    /// must not go on before they arrived, each retried like a live call
    /// (`fedflow_rpc::retry::backoff`). Stops at the first that cannot be delivered (it stays
    /// in the outbox) and says why.
    pub async fn flush_job<F, Fut>(&self, job_id: &str, deliver: F) -> Result<(), String>
    where
        F: Fn(Command) -> Fut,
        Fut: Future<Output = Result<(), String>>,
    {
        let pending: Vec<Pending> = self
            .db
            .query(
                &format!(
                    "SELECT * FROM {} WHERE job_id = ? ORDER BY create_ms",
                    self.table
                ),
                vec![job_id.into()],
            )
            .await
            .map_err(|e| e.to_string())?
            .iter()
            .map(pending_from_row)
            .collect::<Result<_, _>>()
            .map_err(|e| e.to_string())?;
        for p in pending {
            // A live send: tried again at once, as a live call is (the sender may be
            // delivering the same command right now: the receiver says so, UNAVAILABLE).
            let delivered = fedflow_rpc::retry::run_if(
                fedflow_rpc::retry::backoff(),
                |_: &String| true,
                &p.command.method,
                || deliver(p.command.clone()),
            )
            .await;
            match delivered {
                Ok(()) => self
                    .remove(std::slice::from_ref(&p.command.request_id))
                    .await
                    .map_err(|e| e.to_string())?,
                Err(e) => {
                    let why = format!("{} to {}: {e}", p.command.method, p.command.dest);
                    self.postpone(&p, e).await.map_err(|e| e.to_string())?;
                    return Err(why);
                }
            }
        }
        Ok(())
    }

    /// Records a failed delivery and when to try again (epoch ms, returned).
    async fn postpone(&self, pending: &Pending, error: String) -> Result<i64, DbErr> {
        let c = &pending.command;
        let attempts = pending.attempts.saturating_add(1);
        if attempts.is_power_of_two() && attempts >= 4 {
            tracing::warn!(
                dest = %c.dest, method = %c.method, job = %c.job_id,
                request = %c.request_id, attempts, %error,
                "command still undelivered; retrying"
            );
        }
        let next = crate::now_ms() + i64::try_from(backoff(attempts).as_millis()).unwrap_or(30_000);
        self.db
            .exec(
                &format!(
                    "UPDATE {} SET attempts = ?, last_error = ?, next_ms = ? WHERE request_id = ?",
                    self.table
                ),
                vec![
                    i64::from(attempts).into(),
                    error.into(),
                    next.into(),
                    c.request_id.clone().into(),
                ],
            )
            .await?;
        Ok(next)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;
    use crate::Migration;

    const MIGRATIONS: &[Migration] = &[crate::outbox_migration!("m0001_outbox", "t")];

    fn command(id: &str) -> Command {
        Command {
            dest: "10000".into(),
            service: "fedflow.jobcontroller.v1.JobController".into(),
            method: "UpdateJobStatus".into(),
            job_id: "j1".into(),
            request_id: id.into(),
            payload: vec![0, 1, 0xfe, 0xff],
        }
    }

    /// Enqueues command "a" twice, then "b", in `tx`.
    async fn enqueue_a_a_b(tx: &Tx) {
        tx.enqueue("t_outbox", &command("a"), 1)
            .await
            .expect("enqueue");
        tx.enqueue("t_outbox", &command("a"), 1)
            .await
            .expect("again");
        tx.enqueue("t_outbox", &command("b"), 2)
            .await
            .expect("enqueue");
    }

    /// Committed commands are stored once per request id, survive failed deliveries with
    /// their attempts and last error, and leave the table once the receiver answers.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn commands_are_kept_until_delivered() {
        for url in crate::contract_backends("outbox").await {
            let db = Db::connect(&url, 2, "t_migrations", MIGRATIONS)
                .await
                .expect("connect");
            let tx = db.begin().await.expect("begin");
            enqueue_a_a_b(&tx).await;
            drop(tx);
            assert!(
                db.pending("t_outbox").await.expect("pending").is_empty(),
                "a rolled-back transaction enqueues nothing"
            );
            let tx = db.begin().await.expect("begin");
            enqueue_a_a_b(&tx).await;
            tx.commit().await.expect("commit");
            let pending = db.pending("t_outbox").await.expect("pending");
            assert_eq!(pending.len(), 2, "one row per request id");
            assert_eq!(pending[0].command, command("a"), "payload round trip");

            let outbox = Outbox::new(db.clone(), "t_outbox");
            let calls = Arc::new(AtomicU32::new(0));
            let stop = CancellationToken::new();
            let sender = {
                let (outbox, calls, stop) = (outbox.clone(), calls.clone(), stop.clone());
                tokio::spawn(async move {
                    outbox
                        .run(stop, |c| {
                            let calls = calls.clone();
                            async move {
                                // "a" is refused twice as unreachable, then delivered.
                                if c.request_id == "a" && calls.fetch_add(1, Ordering::SeqCst) < 2 {
                                    Err("UNAVAILABLE: party 10000 unreachable".to_owned())
                                } else {
                                    Ok(())
                                }
                            }
                        })
                        .await;
                })
            };
            let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
            let mut saw_retry = false;
            loop {
                let pending = db.pending("t_outbox").await.expect("pending");
                if let Some(a) = pending.iter().find(|p| p.command.request_id == "a")
                    && a.attempts > 0
                {
                    assert_eq!(a.last_error, "UNAVAILABLE: party 10000 unreachable");
                    saw_retry = true;
                }
                if pending.is_empty() {
                    break;
                }
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "still pending: {pending:?}"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            assert!(
                saw_retry,
                "the failed delivery was recorded before the retry"
            );
            assert_eq!(
                calls.load(Ordering::SeqCst),
                3,
                "two failures, one delivery"
            );
            stop.cancel();
            sender.await.expect("sender");
        }
    }
}
