//! The job-controller's tables, as migrations recorded in `jobctl_migrations`. Additive only:
//! a landed migration's SQL is never edited; a change is a new migration at the end.

use fedflow_store::Migration;

/// The audit table: every status transition, with its cause and request id.
pub const AUDIT: &str = "jobctl_audit";

/// The outbox: commands committed with the change that calls for them, until delivered.
pub const OUTBOX: &str = "jobctl_outbox";

pub const MIGRATIONS: &[Migration] = &[
    Migration {
        name: "m0001_jobs_and_allocations",
        statements: &[
            "CREATE TABLE jobctl_jobs (
            job_id TEXT NOT NULL,
            role TEXT NOT NULL,
            party_id TEXT NOT NULL,
            status TEXT NOT NULL,
            reason TEXT NOT NULL DEFAULT '',
            scheduler_party_id TEXT NOT NULL,
            dsl TEXT NOT NULL,
            conf TEXT NOT NULL,
            cores BIGINT NOT NULL,
            memory_mb BIGINT NOT NULL,
            create_ms BIGINT NOT NULL,
            start_ms BIGINT NOT NULL DEFAULT 0,
            end_ms BIGINT NOT NULL DEFAULT 0,
            update_ms BIGINT NOT NULL,
            PRIMARY KEY (job_id, role)
        )",
            "CREATE INDEX jobctl_jobs_status ON jobctl_jobs (status)",
            "CREATE TABLE jobctl_allocations (
            job_id TEXT NOT NULL,
            role TEXT NOT NULL,
            cores BIGINT NOT NULL,
            memory_mb BIGINT NOT NULL,
            create_ms BIGINT NOT NULL,
            PRIMARY KEY (job_id, role)
        )",
        ],
    },
    fedflow_store::audit_migration!("m0002_audit", "jobctl"),
    fedflow_store::outbox_migration!("m0003_outbox", "jobctl"),
    // The participants' party ids (a JSON array), parsed from the conf once at creation; ''
    // on rows created before.
    Migration {
        name: "m0004_job_participants",
        statements: &["ALTER TABLE jobctl_jobs ADD COLUMN participants TEXT NOT NULL DEFAULT ''"],
    },
    // The W3C traceparent the job was created with (its scheduler's trace) when spans are
    // exported; NULL otherwise and on older rows. Read at start-up so this party's spans about
    // the job stay in its trace after a restart.
    Migration {
        name: "m0005_job_trace",
        statements: &["ALTER TABLE jobctl_jobs ADD COLUMN trace_parent TEXT"],
    },
];
