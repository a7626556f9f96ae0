//! Database plumbing for fedflow's services, on sea-orm: one [`Db`] per service store,
//! chosen by URL (`sqlite://path?mode=rwc` embedded, `postgres://…` in production).
//!
//! Services write plain, portable SQL with `?` placeholders ([`Db`] numbers them for
//! PostgreSQL) so the same statements and the same compare-and-set semantics run on both.
//! SQLite runs in WAL with a busy timeout, and [`Db::begin`] starts write transactions
//! `IMMEDIATE` so concurrent writers queue instead of failing with `database is locked`.

use std::time::Duration;

use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{
    ConnectOptions, ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr,
    QueryResult, SqliteTransactionMode, Statement, TransactionOptions, TransactionTrait, Value,
};
use sea_orm_migration::{MigrationName, MigrationTrait, MigratorTraitSelf, SchemaManager};

pub use sea_orm::{DbErr as Error, QueryResult as Row, Value as SqlValue};

pub mod audit;
pub mod outbox;
mod testing;
pub use audit::{Transition, with_request};
pub use outbox::{Command, Outbox, OutboxGauges};
pub use testing::{
    contract_backends, contract_stores, create_postgres_database, postgres_url_with_database,
    unique_test_name,
};

/// Milliseconds since the Unix epoch.
pub(crate) use fedflow_core::clock::now_ms;

/// A service's database.
#[derive(Clone, Debug)]
pub struct Db {
    conn: DatabaseConnection,
    backend: DbBackend,
    /// Statements sent to the database (each query and execute, and each transaction's begin
    /// and commit), for the services' metrics: what a job costs in round trips to the store.
    statements: Counter,
}

/// The counter of statements a [`Db`] (and its clones) sent.
pub use fedflow_telemetry::metrics::Counter;

/// The SQLite URL of a file, created if missing.
pub fn sqlite_url(path: &std::path::Path) -> String {
    format!("sqlite://{}?mode=rwc", path.display())
}

impl Db {
    /// Connects by URL and applies `migrations` (recorded in `migration_table`).
    ///
    /// Migrations run on a connection of their own, closed before the serving pool opens: a
    /// connection that read the schema before a migration altered a table would otherwise
    /// prepare `SELECT *` against the old columns and fail when SQLite recompiles the
    /// statement (PostgreSQL refuses such a cached plan likewise).
    pub async fn connect(
        url: &str,
        max_connections: u32,
        migration_table: &'static str,
        migrations: &'static [Migration],
    ) -> Result<Db, DbErr> {
        Self::connect_with(
            url,
            max_connections,
            migration_table,
            migrations,
            SqliteSynchronous::Normal,
        )
        .await
    }

    /// As [`Db::connect`], but on SQLite every commit is synced to disk before it returns
    /// (`synchronous = FULL`), so it survives a power loss as well as a crash of the process
    /// (`NORMAL` in WAL mode survives the process, not the machine). For stores whose commits
    /// acknowledge data to someone else; batch writes in one transaction to share the sync.
    pub async fn connect_durable(
        url: &str,
        max_connections: u32,
        migration_table: &'static str,
        migrations: &'static [Migration],
    ) -> Result<Db, DbErr> {
        Self::connect_with(
            url,
            max_connections,
            migration_table,
            migrations,
            SqliteSynchronous::Full,
        )
        .await
    }

    async fn connect_with(
        url: &str,
        max_connections: u32,
        migration_table: &'static str,
        migrations: &'static [Migration],
        synchronous: SqliteSynchronous,
    ) -> Result<Db, DbErr> {
        let migrating = sea_orm::Database::connect(Self::options(url, 1, synchronous)).await?;
        let backend = migrating.get_database_backend();
        let migrator = Migrator {
            table: migration_table,
            migrations,
        };
        migrator.up(&migrating, None).await?;
        migrating.close().await?;
        let conn =
            sea_orm::Database::connect(Self::options(url, max_connections, synchronous)).await?;
        tracing::debug!(backend = ?backend, "database ready");
        Ok(Db {
            conn,
            backend,
            statements: Counter::default(),
        })
    }

    fn options(url: &str, max_connections: u32, synchronous: SqliteSynchronous) -> ConnectOptions {
        let mut options = ConnectOptions::new(url.to_owned());
        options
            .max_connections(max_connections.max(1))
            .min_connections(1)
            .connect_timeout(Duration::from_secs(10))
            .sqlx_logging(false)
            .map_sqlx_sqlite_opts(move |o| {
                o.journal_mode(SqliteJournalMode::Wal)
                    .synchronous(synchronous)
                    .busy_timeout(Duration::from_secs(30))
                    .foreign_keys(true)
            })
            .map_sqlx_sqlite_pool_opts(|o| {
                // A file needs no ping before each use; a connection the driver still counts
                // in a transaction when it comes back to the pool is closed instead.
                no_reaping(o)
                    .test_before_acquire(false)
                    .after_release(|conn, _| Box::pin(ended_transaction(conn)))
            })
            .map_sqlx_postgres_pool_opts(no_reaping);
        options
    }

    /// Connects to a database a service already created, without migrating it (for readers
    /// such as tests and tools).
    pub async fn open_existing(url: &str) -> Result<Db, DbErr> {
        let mut options = ConnectOptions::new(url.to_owned());
        options
            .max_connections(1)
            .sqlx_logging(false)
            .map_sqlx_sqlite_opts(|o| o.busy_timeout(Duration::from_secs(30)))
            .map_sqlx_sqlite_pool_opts(no_reaping)
            .map_sqlx_postgres_pool_opts(no_reaping);
        let conn = sea_orm::Database::connect(options).await?;
        let backend = conn.get_database_backend();
        Ok(Db {
            conn,
            backend,
            statements: Counter::default(),
        })
    }

    pub fn backend(&self) -> DbBackend {
        self.backend
    }

    /// The statements this database (and every clone of it) sent so far, as a counter to
    /// register in a service's metrics.
    pub fn statements(&self) -> Counter {
        self.statements.clone()
    }

    /// Registers [`Db::statements`] as `<prefix>_store_statements_total` (e.g.
    /// `fedflow_scheduler`).
    pub fn register_statements(
        &self,
        registry: &fedflow_telemetry::metrics::Metrics,
        prefix: &str,
    ) {
        registry.register(
            &format!("{prefix}_store_statements"),
            "Statements sent to the service's store (queries, executes, begins and commits).",
            self.statements(),
        );
    }

    /// Runs a statement; returns the number of rows it changed.
    pub async fn exec(&self, sql: &str, values: Vec<Value>) -> Result<u64, DbErr> {
        self.statements.inc();
        let result = self.conn.execute_raw(self.stmt(sql, values)).await?;
        Ok(result.rows_affected())
    }

    pub async fn query(&self, sql: &str, values: Vec<Value>) -> Result<Vec<QueryResult>, DbErr> {
        self.statements.inc();
        self.conn.query_all_raw(self.stmt(sql, values)).await
    }

    pub async fn query_one(
        &self,
        sql: &str,
        values: Vec<Value>,
    ) -> Result<Option<QueryResult>, DbErr> {
        self.statements.inc();
        self.conn.query_one_raw(self.stmt(sql, values)).await
    }

    /// The rows `sql` selects, each read by `read` (a store's row mapping).
    pub async fn fetch<T, E: From<DbErr>>(
        &self,
        sql: &str,
        values: Vec<Value>,
        read: impl Fn(&QueryResult) -> Result<T, E>,
    ) -> Result<Vec<T>, E> {
        self.query(sql, values).await?.iter().map(read).collect()
    }

    /// The row `sql` selects, if any, read by `read` (a store's row mapping).
    pub async fn fetch_one<T, E: From<DbErr>>(
        &self,
        sql: &str,
        values: Vec<Value>,
        read: impl Fn(&QueryResult) -> Result<T, E>,
    ) -> Result<Option<T>, E> {
        self.query_one(sql, values)
            .await?
            .as_ref()
            .map(read)
            .transpose()
    }

    /// Starts a write transaction (IMMEDIATE on SQLite).
    pub async fn begin(&self) -> Result<Tx, DbErr> {
        let options = TransactionOptions {
            sqlite_transaction_mode: (self.backend == DbBackend::Sqlite)
                .then_some(SqliteTransactionMode::Immediate),
            ..Default::default()
        };
        self.statements.inc();
        let tx = self.conn.begin_with_options(options).await?;
        Ok(Tx {
            tx,
            backend: self.backend,
            statements: self.statements.clone(),
        })
    }

    fn stmt(&self, sql: &str, values: Vec<Value>) -> Statement {
        statement(self.backend, sql, values)
    }

    /// Closes the pool (so a restarted service can reopen the file at once).
    pub async fn close(self) -> Result<(), DbErr> {
        self.conn.close().await
    }
}

/// A pool whose connections are never closed for being idle or old (a SQLite file has no
/// server that drops them; a PostgreSQL connection the server dropped fails its ping before
/// use and is replaced), so that the pool runs no reaping task. That task
/// (sqlx 0.9) loops over `0..num_idle`, a count that a connection released on one thread while
/// another takes it can read as `usize::MAX` for a moment (the queue is pushed before the count
/// is raised): the loop then spins on its runtime thread for good, starving the tasks queued
/// behind it. Seen in a test process on a loaded machine; services run on one thread.
fn no_reaping<D: sea_orm::sqlx::Database>(
    options: sea_orm::sqlx::pool::PoolOptions<D>,
) -> sea_orm::sqlx::pool::PoolOptions<D> {
    options.idle_timeout(None).max_lifetime(None)
}

/// Whether a SQLite connection coming back to the pool is out of every transaction, after the
/// rollback its dropped transaction queued (run by the ping, which follows it). SQLite may
/// roll a transaction back by itself when a statement or its COMMIT fails (a full disk, an I/O
/// error) without the driver knowing: the driver's own ROLLBACK then fails, and it goes on
/// counting the connection as in a transaction, so that it would begin the next ones on it as
/// SAVEPOINTs in no transaction, and one of those rolled back (`ROLLBACK TO` leaves it open)
/// would hold the write lock for good. Such a connection is closed (false), never reused.
async fn ended_transaction(
    conn: &mut sea_orm::sqlx::SqliteConnection,
) -> Result<bool, sea_orm::sqlx::Error> {
    use sea_orm::sqlx::{Connection, Database, Sqlite};
    use sqlx_core::transaction::TransactionManager;
    type Manager = <Sqlite as Database>::TransactionManager;
    if Manager::get_transaction_depth(conn) == 0 {
        return Ok(true);
    }
    conn.ping().await?;
    let depth = Manager::get_transaction_depth(conn);
    if depth > 0 {
        tracing::warn!(
            depth,
            "a store connection came back still counted in a transaction: closed"
        );
    }
    Ok(depth == 0)
}

/// A write transaction; dropped without [`Tx::commit`] it rolls back.
pub struct Tx {
    tx: DatabaseTransaction,
    backend: DbBackend,
    statements: Counter,
}

impl Tx {
    pub async fn exec(&self, sql: &str, values: Vec<Value>) -> Result<u64, DbErr> {
        self.statements.inc();
        let result = self
            .tx
            .execute_raw(statement(self.backend, sql, values))
            .await;
        Ok(self.kept_open(result).await?.rows_affected())
    }

    pub async fn query(&self, sql: &str, values: Vec<Value>) -> Result<Vec<QueryResult>, DbErr> {
        self.statements.inc();
        let result = self
            .tx
            .query_all_raw(statement(self.backend, sql, values))
            .await;
        self.kept_open(result).await
    }

    pub async fn query_one(
        &self,
        sql: &str,
        values: Vec<Value>,
    ) -> Result<Option<QueryResult>, DbErr> {
        self.statements.inc();
        let result = self
            .tx
            .query_one_raw(statement(self.backend, sql, values))
            .await;
        self.kept_open(result).await
    }

    /// SQLite may roll a whole transaction back by itself when a statement fails (a full disk,
    /// an I/O error) without the driver knowing (see [`ended_transaction`]). So after a
    /// failure an empty transaction is begun: when SQLite kept the transaction this `BEGIN`
    /// fails and changes nothing; when it rolled it back, this is what the driver's ROLLBACK
    /// ends, and later statements of this transaction cannot run outside one.
    async fn kept_open<T>(&self, result: Result<T, DbErr>) -> Result<T, DbErr> {
        if result.is_err() && self.backend == DbBackend::Sqlite {
            let _ = self.tx.execute_unprepared("BEGIN").await;
        }
        result
    }

    /// Commits. On SQLite, a COMMIT that fails leaves the connection to
    /// [`ended_transaction`] when it comes back to the pool.
    pub async fn commit(self) -> Result<(), DbErr> {
        self.statements.inc();
        self.tx.commit().await
    }

    /// Records `transition` in the audit table `table` within this transaction.
    pub async fn record(&self, table: &'static str, transition: &Transition) -> Result<(), DbErr> {
        record(self, table, transition).await
    }

    /// Serialises this transaction with every other writer of `table` until it ends, for
    /// read-then-write decisions (a ledger). SQLite's IMMEDIATE transactions already do; on
    /// PostgreSQL this takes a SHARE ROW EXCLUSIVE lock on the table.
    pub async fn lock_for_update(&self, table: &str) -> Result<(), DbErr> {
        if self.backend == DbBackend::Postgres {
            self.statements.inc();
            self.tx
                .execute_unprepared(&format!("LOCK TABLE {table} IN SHARE ROW EXCLUSIVE MODE"))
                .await?;
        }
        Ok(())
    }
}

/// `?` placeholders become `$1, $2, …` on PostgreSQL. Statements here never contain a literal
/// `?` inside a string.
fn statement(backend: DbBackend, sql: &str, values: Vec<Value>) -> Statement {
    let sql = match backend {
        DbBackend::Postgres => {
            let mut out = String::with_capacity(sql.len() + 8);
            let mut n = 0;
            for c in sql.chars() {
                if c == '?' {
                    n += 1;
                    out.push('$');
                    out.push_str(&n.to_string());
                } else {
                    out.push(c);
                }
            }
            out
        }
        _ => sql.to_owned(),
    };
    Statement::from_sql_and_values(backend, sql, values)
}

/// The error of a service's store: the database failed, or a row holds a value the service
/// could not have written (reported, never guessed), or the store cannot be used right now
/// for a reason already put in words (one failure answered to several callers, say).
#[derive(Debug)]
pub enum StoreError {
    Db(DbErr),
    Corrupt(String),
    /// Worth trying again (see [`is_unavailable`]): the reason, and whether it is a full disk.
    Unavailable {
        reason: String,
        disk_full: bool,
    },
}

impl From<DbErr> for StoreError {
    fn from(e: DbErr) -> Self {
        StoreError::Db(e)
    }
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreError::Db(e) => std::fmt::Display::fmt(e, f),
            StoreError::Corrupt(what) => write!(f, "corrupt row: {what}"),
            StoreError::Unavailable { reason, .. } => f.write_str(reason),
        }
    }
}

impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StoreError::Db(e) => std::error::Error::source(e),
            StoreError::Corrupt(_) | StoreError::Unavailable { .. } => None,
        }
    }
}

impl StoreError {
    /// The database cannot be used right now (see [`is_unavailable`]).
    pub fn is_unavailable(&self) -> bool {
        match self {
            StoreError::Db(e) => is_unavailable(e),
            StoreError::Unavailable { .. } => true,
            StoreError::Corrupt(_) => false,
        }
    }

    /// The disk under the store is full (see [`is_disk_full`]).
    pub fn is_disk_full(&self) -> bool {
        match self {
            StoreError::Db(e) => is_disk_full(e),
            StoreError::Unavailable { disk_full, .. } => *disk_full,
            StoreError::Corrupt(_) => false,
        }
    }

    /// A duplicate insert (see [`is_unique_violation`]).
    pub fn is_unique_violation(&self) -> bool {
        matches!(self, StoreError::Db(e) if is_unique_violation(e))
    }
}

/// Reads a column, naming it in the error.
pub fn get<T: sea_orm::TryGetable>(row: &QueryResult, column: &str) -> Result<T, DbErr> {
    row.try_get::<T>("", column)
}

/// Whether `err` is a unique-key violation (a duplicate insert).
pub fn is_unique_violation(err: &DbErr) -> bool {
    matches!(
        err.sql_err(),
        Some(sea_orm::SqlErr::UniqueConstraintViolation(_))
    )
}

/// Whether `err` means the database cannot be used right now rather than that the request
/// was wrong: worth trying again, and answered `UNAVAILABLE` (with the database's own words as
/// the reason). That is: locked by another writer past the busy timeout; no connection to be
/// had, or the one in use lost (the server restarting or gone: connection refused or reset,
/// terminated by an administrator, starting up or shutting down); or the disk under it full
/// (see [`is_disk_full`]), which clears by itself when space returns.
pub fn is_unavailable(err: &DbErr) -> bool {
    if matches!(err, DbErr::ConnectionAcquire(_) | DbErr::Conn(_)) || is_disk_full(err) {
        return true;
    }
    if let Some(e) = sqlx_error(err) {
        use sea_orm::sqlx::Error as E;
        match e {
            E::Io(_) | E::PoolTimedOut | E::PoolClosed | E::WorkerCrashed => return true,
            E::Database(db) => {
                // PostgreSQL's SQLSTATE: class 08 (connection exception), 57P01-57P03
                // (terminated by an administrator, crash shutdown, cannot connect now).
                if let Some(code) = db.code()
                    && (code.starts_with("08") || matches!(&*code, "57P01" | "57P02" | "57P03"))
                {
                    return true;
                }
            }
            _ => {}
        }
    }
    let message = err.to_string();
    [
        "database is locked",
        "database table is locked",
        "SQLITE_BUSY",
        "pool timed out",
        "Connection refused",
        "connection closed",
        "error communicating with database",
        "terminating connection",
        "the database system is",
    ]
    .iter()
    .any(|needle| message.contains(needle))
}

/// Whether `err` means the disk under the database (or a file the store writes beside it) is
/// full: SQLite's `SQLITE_FULL` ("database or disk is full"), PostgreSQL's `53100`
/// (`disk_full`), an `ENOSPC` from a write, or SQLite failing to grow its shared-memory
/// file. The write was rolled back; nothing stored is damaged.
pub fn is_disk_full(err: &DbErr) -> bool {
    if let Some(sea_orm::sqlx::Error::Database(db)) = sqlx_error(err)
        && let Some(code) = db.code()
    {
        // SQLite's extended result codes: SQLITE_FULL (13), SQLITE_IOERR_SHMSIZE (4874).
        if matches!(&*code, "13" | "4874" | "53100") {
            return true;
        }
    }
    let message = err.to_string();
    [
        "database or disk is full",
        "No space left on device",
        "os error 28",
        "could not extend file",
    ]
    .iter()
    .any(|needle| message.contains(needle))
}

/// The driver's error under `err`, if it came from one.
fn sqlx_error(err: &DbErr) -> Option<&sea_orm::sqlx::Error> {
    match err {
        DbErr::Conn(sea_orm::RuntimeErr::SqlxError(e))
        | DbErr::Exec(sea_orm::RuntimeErr::SqlxError(e))
        | DbErr::Query(sea_orm::RuntimeErr::SqlxError(e)) => Some(e),
        _ => None,
    }
}

/// The migration that creates the audit table `<prefix>_audit` (see [`audit`]).
#[macro_export]
macro_rules! audit_migration {
    ($name:literal, $prefix:literal) => {
        $crate::Migration {
            name: $name,
            statements: &[
                concat!(
                    "CREATE TABLE ",
                    $prefix,
                    "_audit (time_ms BIGINT NOT NULL, entity TEXT NOT NULL, ",
                    "entity_key TEXT NOT NULL, from_status TEXT NOT NULL, ",
                    "to_status TEXT NOT NULL, cause TEXT NOT NULL, request_id TEXT NOT NULL)"
                ),
                concat!(
                    "CREATE INDEX ",
                    $prefix,
                    "_audit_key ON ",
                    $prefix,
                    "_audit (entity_key, time_ms)"
                ),
            ],
        }
    };
}

/// The migration that creates the outbox table `<prefix>_outbox` (see [`outbox`]).
#[macro_export]
macro_rules! outbox_migration {
    ($name:literal, $prefix:literal) => {
        $crate::Migration {
            name: $name,
            statements: &[
                concat!(
                    "CREATE TABLE ",
                    $prefix,
                    "_outbox (request_id TEXT NOT NULL PRIMARY KEY, dest TEXT NOT NULL, ",
                    "service TEXT NOT NULL, method TEXT NOT NULL, job_id TEXT NOT NULL, ",
                    "payload TEXT NOT NULL, attempts BIGINT NOT NULL DEFAULT 0, ",
                    "next_ms BIGINT NOT NULL, last_error TEXT NOT NULL DEFAULT '', ",
                    "create_ms BIGINT NOT NULL)"
                ),
                concat!(
                    "CREATE INDEX ",
                    $prefix,
                    "_outbox_due ON ",
                    $prefix,
                    "_outbox (next_ms)"
                ),
            ],
        }
    };
}

/// One migration: portable DDL statements, applied once, in order, never edited once landed.
pub struct Migration {
    pub name: &'static str,
    pub statements: &'static [&'static str],
}

struct Migrator {
    table: &'static str,
    migrations: &'static [Migration],
}

struct Step(&'static Migration);

impl MigrationName for Step {
    fn name(&self) -> &str {
        self.0.name
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Step {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let conn = manager.get_connection();
        for sql in self.0.statements {
            conn.execute_unprepared(sql).await?;
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl MigratorTraitSelf for Migrator {
    fn migrations(&self) -> Vec<Box<dyn MigrationTrait>> {
        self.migrations
            .iter()
            .map(|m| Box::new(Step(m)) as Box<dyn MigrationTrait>)
            .collect()
    }

    fn migration_table_name(&self) -> sea_orm::DynIden {
        sea_orm::sea_query::Alias::new(self.table).into()
    }
}

async fn record(tx: &Tx, table: &'static str, t: &Transition) -> Result<(), DbErr> {
    tx.exec(
        &format!(
            "INSERT INTO {table} (time_ms, entity, entity_key, from_status, to_status, cause, request_id)
             VALUES (?, ?, ?, ?, ?, ?, ?)"
        ),
        vec![
            t.time_ms.into(),
            t.entity.clone().into(),
            t.key.clone().into(),
            t.from.clone().into(),
            t.to.clone().into(),
            t.cause.clone().into(),
            t.request_id.clone().into(),
        ],
    )
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE: &[Migration] = &[Migration {
        name: "m0001_blobs",
        statements: &["CREATE TABLE blobs (v BLOB NOT NULL)"],
    }];

    async fn count(db: &Db) -> i64 {
        let rows = db
            .query("SELECT COUNT(*) AS n FROM blobs", vec![])
            .await
            .expect("count");
        get(&rows[0], "n").expect("n")
    }

    /// A transaction that fails for want of space (`SQLITE_FULL`, forced with
    /// `max_page_count` on the pool's one connection) is refused as a full disk, leaves
    /// nothing behind and no lock held: once there is room again the same pool and another
    /// one both write at once.
    #[tokio::test]
    async fn a_transaction_failed_on_a_full_database_leaves_the_store_usable() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let url = sqlite_url(&dir.path().join("full.db"));
        let db = Db::connect(&url, 1, "full_migrations", TABLE)
            .await
            .expect("connect");
        let pages: i64 = get(
            &db.query("PRAGMA page_count", vec![]).await.expect("pages")[0],
            "page_count",
        )
        .expect("page_count");
        db.exec(&format!("PRAGMA max_page_count = {}", pages + 4), vec![])
            .await
            .expect("cap the database");
        for round in 0..3 {
            let tx = db.begin().await.expect("begin");
            tx.exec("INSERT INTO blobs VALUES (zeroblob(100))", vec![])
                .await
                .expect("a small row fits");
            let failed = tx
                .exec("INSERT INTO blobs VALUES (zeroblob(1000000))", vec![])
                .await
                .expect_err("a megabyte does not fit in four pages");
            assert!(is_disk_full(&failed), "round {round}: {failed}");
            assert!(is_unavailable(&failed), "round {round}: {failed}");
            drop(tx);
        }
        let within = Duration::from_secs(10);
        assert_eq!(count(&db).await, 0, "a failed transaction left rows");
        db.exec("PRAGMA max_page_count = 1073741823", vec![])
            .await
            .expect("room again");
        let tx = tokio::time::timeout(within, db.begin())
            .await
            .expect("a transaction begins at once")
            .expect("begin");
        tx.exec("INSERT INTO blobs VALUES (zeroblob(1000000))", vec![])
            .await
            .expect("the megabyte fits now");
        tokio::time::timeout(within, tx.commit())
            .await
            .expect("the commit does not wait for a lock")
            .expect("commit");
        let other = Db::connect(&url, 1, "full_migrations", TABLE)
            .await
            .expect("a second pool");
        let tx = tokio::time::timeout(within, other.begin())
            .await
            .expect("no write lock is left held")
            .expect("begin");
        tx.exec("INSERT INTO blobs VALUES (zeroblob(10))", vec![])
            .await
            .expect("insert");
        tx.commit().await.expect("commit");
        assert_eq!(count(&db).await, 2);
        assert_eq!(count(&other).await, 2);
    }
}
