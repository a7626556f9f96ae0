//! The scheduler's tables, as migrations. A landed migration's SQL is never edited: a change
//! is a new migration, additive, that both SQLite and PostgreSQL accept.
//!
//! `scheduler_jobs.end_synced` (m0001) is dead. It marked a job whose end every party had
//! acknowledged until the outbox took that over (an end's `UpdateJobStatus` commands are
//! committed with it and delivered until answered); nothing reads or writes it since, so old
//! rows may hold 1. It stays, as landed; a later migration may drop it.

use fedflow_store::Migration;

/// The audit table: every status transition, with its cause and request id.
pub const AUDIT: &str = "scheduler_audit";

/// The outbox: commands committed with the change that calls for them, until delivered.
pub const OUTBOX: &str = "scheduler_outbox";

/// The table that records which migrations have run.
pub const MIGRATIONS_TABLE: &str = "scheduler_migrations";

pub const MIGRATIONS: &[Migration] = &[
    Migration {
        name: "m0001_jobs_tasks",
        statements: &[
            "CREATE TABLE scheduler_jobs (
            job_id TEXT NOT NULL PRIMARY KEY,
            status TEXT NOT NULL,
            dsl TEXT NOT NULL,
            conf TEXT NOT NULL,
            initiator_role TEXT NOT NULL,
            initiator_party TEXT NOT NULL,
            priority BIGINT NOT NULL,
            reason TEXT NOT NULL DEFAULT '',
            pending_reason TEXT NOT NULL DEFAULT '',
            cancel_requested BIGINT NOT NULL DEFAULT 0,
            progress BIGINT NOT NULL DEFAULT 0,
            request_id TEXT UNIQUE,
            create_ms BIGINT NOT NULL,
            start_ms BIGINT NOT NULL DEFAULT 0,
            end_ms BIGINT NOT NULL DEFAULT 0,
            queued_ms BIGINT NOT NULL DEFAULT 0,
            end_synced BIGINT NOT NULL DEFAULT 0,
            update_ms BIGINT NOT NULL
        )",
            "CREATE INDEX scheduler_jobs_queue ON scheduler_jobs (status, priority, create_ms)",
            "CREATE TABLE scheduler_tasks (
            job_id TEXT NOT NULL,
            component TEXT NOT NULL,
            version BIGINT NOT NULL,
            module TEXT NOT NULL,
            status TEXT NOT NULL,
            reason TEXT NOT NULL DEFAULT '',
            retries_left BIGINT NOT NULL DEFAULT 0,
            not_before_ms BIGINT NOT NULL DEFAULT 0,
            start_ms BIGINT NOT NULL DEFAULT 0,
            end_ms BIGINT NOT NULL DEFAULT 0,
            update_ms BIGINT NOT NULL,
            PRIMARY KEY (job_id, component, version)
        )",
            "CREATE TABLE scheduler_task_parties (
            job_id TEXT NOT NULL,
            component TEXT NOT NULL,
            version BIGINT NOT NULL,
            role TEXT NOT NULL,
            party_id TEXT NOT NULL,
            status TEXT NOT NULL,
            reason TEXT NOT NULL DEFAULT '',
            update_ms BIGINT NOT NULL,
            PRIMARY KEY (job_id, component, version, role, party_id)
        )",
        ],
    },
    fedflow_store::audit_migration!("m0002_audit", "scheduler"),
    fedflow_store::outbox_migration!("m0003_outbox", "scheduler"),
    // The job list's filters and pages: keyset order (create_ms, job_id) with and without a
    // status, and a job's participants as rows (in the conf's JSON only until now), written
    // with the job. Besides each (role, party) a job has one row per party with role '*' and
    // one per role with party '*' (neither is a valid role or party id), so every participant
    // filter is one exact key whose index is already in list order. Existing jobs are filled
    // from their party-task rows: every task version has one per participant
    // (`domain::versions::new_version_rows`), and a job has at least one component.
    Migration {
        name: "m0004_job_list",
        statements: &[
            "CREATE INDEX scheduler_jobs_created ON scheduler_jobs (create_ms, job_id)",
            "CREATE INDEX scheduler_jobs_status_created ON scheduler_jobs (status, create_ms, job_id)",
            "CREATE TABLE scheduler_job_parties (
            job_id TEXT NOT NULL,
            role TEXT NOT NULL,
            party_id TEXT NOT NULL,
            create_ms BIGINT NOT NULL,
            PRIMARY KEY (job_id, role, party_id)
        )",
            "CREATE INDEX scheduler_job_parties_list ON scheduler_job_parties
            (role, party_id, create_ms, job_id)",
            "INSERT INTO scheduler_job_parties (job_id, role, party_id, create_ms)
            SELECT DISTINCT p.job_id, p.role, p.party_id, j.create_ms
            FROM scheduler_task_parties p JOIN scheduler_jobs j ON j.job_id = p.job_id",
            "INSERT INTO scheduler_job_parties (job_id, role, party_id, create_ms)
            SELECT DISTINCT p.job_id, '*', p.party_id, j.create_ms
            FROM scheduler_task_parties p JOIN scheduler_jobs j ON j.job_id = p.job_id",
            "INSERT INTO scheduler_job_parties (job_id, role, party_id, create_ms)
            SELECT DISTINCT p.job_id, p.role, '*', j.create_ms
            FROM scheduler_task_parties p JOIN scheduler_jobs j ON j.job_id = p.job_id",
        ],
    },
    // The W3C traceparent of the job's root span (made at submit when spans are exported;
    // NULL otherwise and for older jobs): every later span about the job joins that trace.
    Migration {
        name: "m0005_job_trace",
        statements: &["ALTER TABLE scheduler_jobs ADD COLUMN trace_parent TEXT"],
    },
];
