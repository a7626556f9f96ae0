//! The task-controller's migrations, applied in order and recorded in `taskctl_migrations`.
//! A landed migration is never edited: a change of schema is a new, additive migration at the
//! end of the list.

use fedflow_store::Migration;

pub(super) const MIGRATIONS: &[Migration] = &[
    Migration {
        name: "m0001_tasks",
        statements: &[
            "CREATE TABLE taskctl_tasks (
            job_id TEXT NOT NULL,
            component TEXT NOT NULL,
            version BIGINT NOT NULL,
            role TEXT NOT NULL,
            party_id TEXT NOT NULL,
            module TEXT NOT NULL,
            parameters TEXT NOT NULL,
            need_run BIGINT NOT NULL,
            upstream TEXT NOT NULL,
            scheduler_party_id TEXT NOT NULL,
            party_status TEXT NOT NULL,
            status TEXT NOT NULL,
            reason TEXT NOT NULL DEFAULT '',
            pid BIGINT NOT NULL DEFAULT 0,
            pid_start BIGINT NOT NULL DEFAULT 0,
            token TEXT NOT NULL DEFAULT '',
            output TEXT NOT NULL DEFAULT '',
            create_ms BIGINT NOT NULL,
            start_ms BIGINT NOT NULL DEFAULT 0,
            end_ms BIGINT NOT NULL DEFAULT 0,
            update_ms BIGINT NOT NULL,
            PRIMARY KEY (job_id, component, version, role)
        )",
            "CREATE INDEX taskctl_tasks_party_status ON taskctl_tasks (party_status)",
        ],
    },
    fedflow_store::audit_migration!("m0002_audit", "taskctl"),
    fedflow_store::outbox_migration!("m0003_outbox", "taskctl"),
    Migration {
        name: "m0004_data",
        statements: &[
            // The party's uploaded tables (its data registry).
            "CREATE TABLE taskctl_tables (
            namespace TEXT NOT NULL,
            name TEXT NOT NULL,
            path TEXT NOT NULL,
            columns TEXT NOT NULL,
            row_count BIGINT NOT NULL,
            size_bytes BIGINT NOT NULL,
            id_name TEXT NOT NULL,
            label_name TEXT NOT NULL,
            meta TEXT NOT NULL,
            partitions BIGINT NOT NULL,
            extend_sid BIGINT NOT NULL,
            create_ms BIGINT NOT NULL,
            PRIMARY KEY (namespace, name)
        )",
            // Every output of this party's tasks (its artifacts registry).
            "CREATE TABLE taskctl_artifacts (
            job_id TEXT NOT NULL,
            component TEXT NOT NULL,
            version BIGINT NOT NULL,
            role TEXT NOT NULL,
            party_id TEXT NOT NULL,
            output_key TEXT NOT NULL,
            kind TEXT NOT NULL,
            type_name TEXT NOT NULL,
            path TEXT NOT NULL,
            size_bytes BIGINT NOT NULL,
            metadata TEXT NOT NULL,
            overview TEXT NOT NULL,
            create_ms BIGINT NOT NULL,
            PRIMARY KEY (job_id, component, version, role, output_key)
        )",
        ],
    },
    Migration {
        name: "m0005_task_parties",
        statements: &[
            // Every party of the task's job, by role, as JSON: its peers on the data plane.
            "ALTER TABLE taskctl_tasks ADD COLUMN parties TEXT NOT NULL DEFAULT '[]'",
        ],
    },
    // The W3C traceparent the job's tasks were created with (its scheduler's trace) when spans
    // are exported; NULL otherwise and on older rows. Read at start-up so this party's spans
    // about the job (worker launches, status reports) stay in its trace after a restart.
    Migration {
        name: "m0006_job_trace",
        statements: &["ALTER TABLE taskctl_tasks ADD COLUMN trace_parent TEXT"],
    },
];
