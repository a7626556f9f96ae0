//! The store's contract, one test per behaviour, on SQLite and (when
//! `FEDFLOW_TEST_POSTGRES_URL` is set) PostgreSQL.

use std::collections::BTreeSet;
use std::sync::Arc;

use fedflow_core::JobStatus;

use super::*;
use crate::domain::job;
use crate::domain::ledger::Refusal;

async fn stores(name: &str) -> Vec<Arc<Store>> {
    let open = |url: String| async move { Store::connect(&url, 8).await.map(Arc::new) };
    fedflow_store::contract_stores(name, open).await
}

fn job(job_id: &str) -> PartyJob {
    PartyJob {
        job_id: job_id.into(),
        role: "host".into(),
        party_id: "10000".into(),
        status: JobStatus::Ready,
        reason: String::new(),
        scheduler_party_id: "9999".into(),
        dsl: "{}".into(),
        conf: "{}".into(),
        participants: Some(["9999", "10000"].map(String::from).into()),
        cores: 1,
        memory_mb: 0,
        create_ms: 1,
        start_ms: 0,
        end_ms: 0,
    }
}

fn capacity(cores: u32) -> Capacity {
    Capacity {
        cores,
        memory_mb: 0,
    }
}

const ONE_CORE: Amount = Amount {
    cores: 1,
    memory_mb: 0,
};

/// Compare-and-set `from -> to` at time 10, as the domain decides it.
async fn cas(store: &Store, job_id: &str, from: JobStatus, to: JobStatus) -> bool {
    let change = job::change(from, to, 10)
        .expect("a legal transition")
        .expect("a change");
    store
        .cas_status(job_id, "host", &change, "", &[])
        .await
        .expect("cas")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_rows_are_created_once() {
    for store in stores("jobctl_rows_once").await {
        assert!(store.insert_job(&job("j1")).await.expect("insert"));
        assert!(
            !store.insert_job(&job("j1")).await.expect("repeat"),
            "idempotent"
        );
        assert_eq!(store.jobs("j1").await.expect("rows").len(), 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_rows_read_back_as_written_and_absent_ones_are_none() {
    for store in stores("jobctl_rows_read").await {
        store.insert_job(&job("j1")).await.expect("insert");
        let row = store.job("j1", "host").await.expect("read").expect("row");
        assert_eq!(row, job("j1"));
        assert!(store.job("nope", "host").await.expect("read").is_none());
        assert!(store.jobs("nope").await.expect("rows").is_empty());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_row_without_kept_participants_reads_back_as_none() {
    for store in stores("jobctl_rows_no_participants").await {
        let mut row = job("j1");
        row.participants = None;
        store.insert_job(&row).await.expect("insert");
        let read = store.job("j1", "host").await.expect("read").expect("row");
        assert_eq!(read.participants, None);
        let mut empty = job("j2");
        empty.participants = Some(BTreeSet::new());
        store.insert_job(&empty).await.expect("insert");
        let read = store.job("j2", "host").await.expect("read").expect("row");
        assert_eq!(read.participants, Some(BTreeSet::new()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_moves_only_by_compare_and_set() {
    for store in stores("jobctl_rows_cas").await {
        store.insert_job(&job("j1")).await.expect("insert");
        assert!(
            !cas(&store, "j1", JobStatus::Waiting, JobStatus::Running).await,
            "stale from"
        );
        assert!(cas(&store, "j1", JobStatus::Ready, JobStatus::Waiting).await);
        assert!(cas(&store, "j1", JobStatus::Waiting, JobStatus::Running).await);
        assert!(
            !cas(&store, "j1", JobStatus::Waiting, JobStatus::Running).await,
            "lost race"
        );
        let row = store.job("j1", "host").await.expect("read").expect("row");
        assert_eq!(row.status, JobStatus::Running);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_end_status_releases_the_allocation_and_stamps_the_times() {
    for store in stores("jobctl_rows_end").await {
        store.insert_job(&job("j1")).await.expect("insert");
        assert!(cas(&store, "j1", JobStatus::Ready, JobStatus::Waiting).await);
        assert!(cas(&store, "j1", JobStatus::Waiting, JobStatus::Running).await);
        store
            .apply("j1", "host", ONE_CORE, capacity(4), 10)
            .await
            .expect("apply");
        assert!(cas(&store, "j1", JobStatus::Running, JobStatus::Success).await);
        assert!(
            store.allocations().await.expect("ledger").is_empty(),
            "ending the row released its allocation"
        );
        let row = store.job("j1", "host").await.expect("read").expect("row");
        assert_eq!(row.status, JobStatus::Success);
        assert_eq!((row.start_ms, row.end_ms), (10, 10));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_apply_for_an_ended_job_is_refused() {
    for store in stores("jobctl_rows_late").await {
        store.insert_job(&job("j1")).await.expect("insert");
        assert!(cas(&store, "j1", JobStatus::Ready, JobStatus::Waiting).await);
        assert!(cas(&store, "j1", JobStatus::Waiting, JobStatus::Success).await);
        match store
            .apply("j1", "host", ONE_CORE, capacity(4), 11)
            .await
            .expect("apply")
        {
            Grant::Refused(why) => assert_eq!(why.to_string(), "the job has ended (success)"),
            Grant::Granted => panic!("a late apply reserved for an ended job"),
        }
        assert!(store.allocations().await.expect("ledger").is_empty());
        let unknown = store
            .apply("nope", "host", ONE_CORE, capacity(4), 11)
            .await
            .expect("apply");
        assert_eq!(unknown, Grant::Refused(Refusal::NoSuchJob));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ledger_never_grants_more_than_capacity_even_concurrently() {
    for store in stores("jobctl_ledger").await {
        for i in 0..20 {
            store
                .insert_job(&job(&format!("job{i}")))
                .await
                .expect("insert");
        }
        let applies = (0..20).map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .apply(&format!("job{i}"), "host", ONE_CORE, capacity(5), 1)
                    .await
                    .expect("apply")
            })
        });
        let mut granted = 0;
        for apply in applies {
            if matches!(apply.await.expect("task"), Grant::Granted) {
                granted += 1;
            }
        }
        assert_eq!(granted, 5, "exactly the capacity is granted");
        let allocations = store.allocations().await.expect("ledger");
        assert_eq!(allocations.iter().map(|a| a.cores).sum::<u32>(), 5);
    }
}

/// Fills a ledger of 5 cores with jobs `held0..held4`; `late` is created but holds nothing.
async fn full_ledger(store: &Store) {
    for i in 0..5 {
        let job_id = format!("held{i}");
        store.insert_job(&job(&job_id)).await.expect("insert");
        let grant = store
            .apply(&job_id, "host", ONE_CORE, capacity(5), 1)
            .await
            .expect("apply");
        assert_eq!(grant, Grant::Granted);
    }
    store.insert_job(&job("late")).await.expect("insert");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_apply_by_a_holder_is_granted_without_taking_more() {
    for store in stores("jobctl_ledger_repeat").await {
        full_ledger(&store).await;
        let grant = store
            .apply("held0", "host", ONE_CORE, capacity(5), 2)
            .await
            .expect("apply");
        assert_eq!(grant, Grant::Granted);
        let allocations = store.allocations().await.expect("ledger");
        assert_eq!(allocations.iter().map(|a| a.cores).sum::<u32>(), 5);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_ledger_refuses_naming_the_cores_short() {
    for store in stores("jobctl_ledger_full").await {
        full_ledger(&store).await;
        match store
            .apply("late", "host", ONE_CORE, capacity(5), 2)
            .await
            .expect("apply")
        {
            Grant::Refused(why) => assert_eq!(why.to_string(), "cores: requested 1, free 0 of 5"),
            Grant::Granted => panic!("over capacity"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_is_idempotent_and_frees_room_for_the_next_ask() {
    for store in stores("jobctl_ledger_release").await {
        full_ledger(&store).await;
        assert!(store.release("held0", "host").await.expect("release"));
        assert!(
            !store.release("held0", "host").await.expect("release"),
            "idempotent"
        );
        let grant = store
            .apply("late", "host", ONE_CORE, capacity(5), 3)
            .await
            .expect("apply");
        assert_eq!(grant, Grant::Granted);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_lists_every_allocation_with_its_jobs_status() {
    for store in stores("jobctl_ledger_held").await {
        full_ledger(&store).await;
        assert!(cas(&store, "held1", JobStatus::Ready, JobStatus::Canceled).await);
        // An allocation whose job row is not here (e.g. written by hand, or a lost row).
        store
            .db
            .exec(
                "INSERT INTO jobctl_allocations (job_id, role, cores, memory_mb, create_ms)
                 VALUES ('ghost', 'host', 1, 0, 0)",
                vec![],
            )
            .await
            .expect("insert");
        let held = store.held().await.expect("held");
        let status = |job_id: &str| {
            held.iter()
                .find(|(a, _)| a.job_id == job_id)
                .map(|(_, status)| *status)
        };
        assert_eq!(held.len(), 5, "held1's end released it: {held:?}");
        assert_eq!(status("ghost"), Some(None));
        assert_eq!(status("held0"), Some(Some(JobStatus::Ready)));
        assert_eq!(status("held1"), None);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jobs_first_traceparent_is_kept_and_listed_newest_first() {
    let first = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    let later = "00-1af7651916cd43dd8448eb211c80319c-c7ad6b7169203331-01";
    for store in stores("jobctl_trace_parent").await {
        assert!(store.insert_job(&job("j1")).await.expect("insert"));
        assert!(store.insert_job(&job("j2")).await.expect("insert"));
        assert_eq!(store.trace_parents(10).await.expect("list"), vec![]);
        store.set_trace_parent("j1", first).await.expect("set");
        store.set_trace_parent("j1", later).await.expect("set");
        assert_eq!(
            store.trace_parents(10).await.expect("list"),
            vec![("j1".to_owned(), first.to_owned())],
            "the first one stays; a job without one is not listed"
        );
    }
}
