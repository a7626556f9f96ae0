//! The store's contract, one test per behaviour, each on SQLite and (when
//! `FEDFLOW_TEST_POSTGRES_URL` is set, and always in CI) PostgreSQL.

use fedflow_core::ids::Participant;
use fedflow_core::{JobStatus, TaskStatus};

use fedflow_core::ids::{PartyId, Role};
use fedflow_store::Db;

use super::schema::{MIGRATIONS, MIGRATIONS_TABLE};
use super::{Cursor, Job, JobFilter, Store, Task, TaskParty};

async fn stores(name: &str) -> Vec<Store> {
    let open = |url: String| async move { Store::connect(&url, 8).await };
    fedflow_store::contract_stores(name, open).await
}

fn job(job_id: &str, request_id: Option<&str>) -> Job {
    Job {
        job_id: job_id.into(),
        status: JobStatus::Ready,
        dsl: "{}".into(),
        conf: "{}".into(),
        initiator: Participant {
            role: "guest".into(),
            party_id: "9999".into(),
        },
        priority: 3,
        reason: String::new(),
        pending_reason: String::new(),
        cancel_requested: false,
        progress: 0,
        request_id: request_id.map(str::to_owned),
        create_ms: 1,
        start_ms: 0,
        end_ms: 0,
        queued_ms: 1,
    }
}

fn task(job_id: &str, version: i32) -> Task {
    Task {
        job_id: job_id.into(),
        component: "a".into(),
        version,
        module: "Sum".into(),
        status: TaskStatus::Waiting,
        reason: String::new(),
        retries_left: 2,
        not_before_ms: 0,
        start_ms: 0,
        end_ms: 0,
    }
}

fn party(job_id: &str, version: i32) -> TaskParty {
    TaskParty {
        job_id: job_id.into(),
        component: "a".into(),
        version,
        who: Participant {
            role: "host".into(),
            party_id: "10000".into(),
        },
        status: TaskStatus::Waiting,
        reason: String::new(),
        update_ms: 1,
    }
}

async fn read(store: &Store, job_id: &str) -> Job {
    store.job(job_id).await.expect("read").expect("the row")
}

/// Moves `job_id` along `path` (each step from the one before), failing on a refused step.
async fn walk(store: &Store, job_id: &str, path: &[(JobStatus, JobStatus, &str, i64)]) {
    for (from, to, reason, now) in path {
        assert!(
            store
                .cas_job_status(job_id, *from, *to, reason, &[], *now)
                .await
                .expect("cas"),
            "{from} -> {to}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_id_stores_one_job_and_a_repeat_stores_nothing() {
    for store in stores("scheduler_request_ids").await {
        store
            .insert_job(
                &job("j1", Some("r1")),
                &[],
                &[task("j1", 0)],
                &[party("j1", 0)],
            )
            .await
            .expect("insert");
        let duplicate = store
            .insert_job(
                &job("j2", Some("r1")),
                &[],
                &[task("j2", 0)],
                &[party("j2", 0)],
            )
            .await
            .expect_err("the request id is taken");
        assert!(duplicate.is_unique_violation(), "{duplicate}");
        assert!(
            store.job("j2").await.expect("read").is_none(),
            "nothing of j2 stored"
        );
        assert!(store.tasks("j2").await.expect("tasks").is_empty());
        assert_eq!(
            store
                .job_by_request("r1")
                .await
                .expect("read")
                .map(|j| j.job_id),
            Some("j1".to_owned())
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_without_a_request_id_never_collide() {
    for store in stores("scheduler_no_request_id").await {
        for job_id in ["j1", "j2"] {
            store
                .insert_job(&job(job_id, None), &[], &[task(job_id, 0)], &[])
                .await
                .expect("no request id twice is fine");
        }
        assert_eq!(
            store
                .list_jobs(&JobFilter::default(), None, 10)
                .await
                .expect("list")
                .len(),
            2
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jobs_traceparent_is_kept_with_it_and_absent_until_set() {
    let traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    for store in stores("scheduler_trace_parent").await {
        store
            .insert_job(&job("j1", None), &[], &[task("j1", 0)], &[])
            .await
            .expect("insert");
        assert_eq!(store.trace_parent("j1").await.expect("read"), None);
        store
            .set_trace_parent("j1", traceparent)
            .await
            .expect("set");
        assert_eq!(
            store.trace_parent("j1").await.expect("read").as_deref(),
            Some(traceparent)
        );
        assert_eq!(store.trace_parent("j2").await.expect("read"), None);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_status_moves_only_from_the_status_read_before() {
    for store in stores("scheduler_job_cas").await {
        store
            .insert_job(&job("j1", None), &[], &[task("j1", 0)], &[])
            .await
            .expect("insert");
        walk(
            &store,
            "j1",
            &[(JobStatus::Ready, JobStatus::Waiting, "", 5)],
        )
        .await;
        assert!(
            !store
                .cas_job_status("j1", JobStatus::Ready, JobStatus::Waiting, "", &[], 6)
                .await
                .expect("cas"),
            "a stale compare-and-set changes nothing"
        );
        let waiting = read(&store, "j1").await;
        assert_eq!((waiting.status, waiting.queued_ms), (JobStatus::Waiting, 5));
        assert_eq!(
            store
                .job_ids_in(JobStatus::Waiting, 10)
                .await
                .expect("queue"),
            ["j1"]
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_jobs_are_queued_by_priority_then_age() {
    for store in stores("scheduler_queue_order").await {
        for (job_id, priority, create_ms) in [("old", 1, 1), ("urgent", 9, 3), ("young", 1, 2)] {
            let mut j = job(job_id, None);
            (j.priority, j.create_ms) = (priority, create_ms);
            store.insert_job(&j, &[], &[], &[]).await.expect("insert");
            walk(
                &store,
                job_id,
                &[(JobStatus::Ready, JobStatus::Waiting, "", 5)],
            )
            .await;
        }
        assert_eq!(
            store
                .job_ids_in(JobStatus::Waiting, 10)
                .await
                .expect("queue"),
            ["urgent", "old", "young"]
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_status_change_writes_its_times_progress_and_reasons() {
    for store in stores("scheduler_job_effects").await {
        store
            .insert_job(&job("j1", None), &[], &[], &[])
            .await
            .expect("insert");
        walk(
            &store,
            "j1",
            &[(JobStatus::Ready, JobStatus::Waiting, "", 5)],
        )
        .await;
        store
            .set_pending_reason("j1", "no cores")
            .await
            .expect("pending");
        assert_eq!(read(&store, "j1").await.pending_reason, "no cores");
        walk(
            &store,
            "j1",
            &[(JobStatus::Waiting, JobStatus::Running, "", 7)],
        )
        .await;
        let running = read(&store, "j1").await;
        assert_eq!(
            (
                running.start_ms,
                running.end_ms,
                running.queued_ms,
                running.pending_reason.as_str()
            ),
            (7, 0, 5, ""),
            "running: started, the queue clock kept, the pending reason cleared"
        );
        store.raise_progress("j1", 40).await.expect("progress");
        store.raise_progress("j1", 30).await.expect("progress");
        assert_eq!(read(&store, "j1").await.progress, 40, "progress only rises");
        walk(
            &store,
            "j1",
            &[(JobStatus::Running, JobStatus::Success, "done", 9)],
        )
        .await;
        let ended = read(&store, "j1").await;
        assert_eq!(
            (
                ended.status,
                ended.start_ms,
                ended.end_ms,
                ended.progress,
                ended.reason.as_str()
            ),
            (JobStatus::Success, 7, 9, 100, "done")
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_is_recorded_once_and_its_reason_survives_the_cancel() {
    for store in stores("scheduler_cancel").await {
        store
            .insert_job(&job("j1", None), &[], &[task("j1", 0)], &[])
            .await
            .expect("insert");
        walk(
            &store,
            "j1",
            &[(JobStatus::Ready, JobStatus::Waiting, "", 5)],
        )
        .await;
        assert!(store.request_cancel("j1", "stop", 7).await.expect("cancel"));
        assert!(
            !store.request_cancel("j1", "stop", 8).await.expect("cancel"),
            "once"
        );
        walk(
            &store,
            "j1",
            &[(JobStatus::Waiting, JobStatus::Canceled, "", 9)],
        )
        .await;
        let ended = read(&store, "j1").await;
        assert_eq!(
            (
                ended.status,
                ended.end_ms,
                ended.reason.as_str(),
                ended.cancel_requested
            ),
            (JobStatus::Canceled, 9, "stop", true)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rerun_stores_new_versions_and_requeues_the_ended_job_at_once() {
    for store in stores("scheduler_rerun").await {
        store
            .insert_job(&job("j1", None), &[], &[task("j1", 0)], &[party("j1", 0)])
            .await
            .expect("insert");
        store.request_cancel("j1", "stop", 7).await.expect("cancel");
        walk(
            &store,
            "j1",
            &[
                (JobStatus::Ready, JobStatus::Waiting, "", 5),
                (JobStatus::Waiting, JobStatus::Canceled, "", 9),
            ],
        )
        .await;
        assert!(
            store
                .insert_rerun(
                    "j1",
                    JobStatus::Canceled,
                    &[task("j1", 1)],
                    &[party("j1", 1)],
                    10
                )
                .await
                .expect("rerun")
        );
        let rerun = read(&store, "j1").await;
        assert_eq!(
            (
                rerun.status,
                rerun.end_ms,
                rerun.cancel_requested,
                rerun.reason.as_str(),
                rerun.queued_ms
            ),
            (JobStatus::Waiting, 0, false, "", 10)
        );
        assert_eq!(store.tasks("j1").await.expect("tasks").len(), 2);
        assert_eq!(store.task_parties("j1").await.expect("parties").len(), 2);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_rerun_stores_nothing() {
    for store in stores("scheduler_stale_rerun").await {
        store
            .insert_job(&job("j1", None), &[], &[task("j1", 0)], &[])
            .await
            .expect("insert");
        assert!(
            !store
                .insert_rerun("j1", JobStatus::Canceled, &[task("j1", 1)], &[], 11)
                .await
                .expect("stale")
        );
        assert_eq!(store.tasks("j1").await.expect("tasks").len(), 1);
        assert_eq!(read(&store, "j1").await.status, JobStatus::Ready);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_status_moves_only_from_the_status_read_before() {
    for store in stores("scheduler_task_cas").await {
        store
            .insert_job(&job("j1", None), &[], &[task("j1", 0)], &[party("j1", 0)])
            .await
            .expect("insert");
        let t = task("j1", 0);
        assert!(
            store
                .cas_task_status(&t, TaskStatus::Running, "", &[], 3)
                .await
                .expect("cas")
        );
        assert!(
            !store
                .cas_task_status(&t, TaskStatus::Running, "", &[], 3)
                .await
                .expect("stale")
        );
        let running = Task {
            status: TaskStatus::Running,
            ..task("j1", 0)
        };
        assert!(
            store
                .cas_task_status(&running, TaskStatus::Failed, "boom", &[], 5)
                .await
                .expect("cas")
        );
        let stored = &store.tasks("j1").await.expect("tasks")[0];
        assert_eq!(
            (
                stored.status,
                stored.start_ms,
                stored.end_ms,
                stored.reason.as_str()
            ),
            (TaskStatus::Failed, 3, 5, "boom")
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_party_status_moves_only_from_the_status_read_before() {
    for store in stores("scheduler_party_cas").await {
        store
            .insert_job(&job("j1", None), &[], &[task("j1", 0)], &[party("j1", 0)])
            .await
            .expect("insert");
        let p = party("j1", 0);
        assert!(
            store
                .cas_party_status(&p, TaskStatus::Failed, "boom", 4)
                .await
                .expect("cas")
        );
        assert!(
            !store
                .cas_party_status(&p, TaskStatus::Success, "", 5)
                .await
                .expect("stale")
        );
        let row = store
            .task_party("j1", "a", 0, &p.who)
            .await
            .expect("read")
            .expect("row");
        assert_eq!(
            (row.status, row.reason.as_str(), row.update_ms),
            (TaskStatus::Failed, "boom", 4)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_adds_a_version_beside_the_failed_one() {
    for store in stores("scheduler_retry").await {
        store
            .insert_job(&job("j1", None), &[], &[task("j1", 0)], &[party("j1", 0)])
            .await
            .expect("insert");
        store
            .insert_retry(&task("j1", 1), &[party("j1", 1)], 6)
            .await
            .expect("retry");
        let tasks = store.tasks("j1").await.expect("tasks");
        assert_eq!(tasks.iter().map(|t| t.version).collect::<Vec<_>>(), [0, 1]);
        assert_eq!(tasks[1].retries_left, 2);
        assert_eq!(store.task_parties("j1").await.expect("parties").len(), 2);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_request_that_changed_a_job_is_found_in_its_audit_trail() {
    for store in stores("scheduler_changed_by").await {
        store
            .insert_job(&job("j1", None), &[], &[task("j1", 0)], &[])
            .await
            .expect("insert");
        let (store, moved) = fedflow_store::with_request("rq-1", async move {
            let moved = store
                .cas_job_status("j1", JobStatus::Ready, JobStatus::Waiting, "", &[], 5)
                .await;
            (store, moved)
        })
        .await;
        assert!(moved.expect("cas"));
        assert!(store.job_changed_by("j1", "rq-1").await.expect("audit"));
        assert!(!store.job_changed_by("j1", "rq-2").await.expect("audit"));
    }
}

fn who(role: &str, party_id: &str) -> Participant {
    Participant {
        role: role.into(),
        party_id: party_id.into(),
    }
}

/// Every page of `filter`, `limit` at a time, as job ids.
async fn all_pages(store: &Store, filter: &JobFilter, limit: u32) -> Vec<String> {
    let mut seen = Vec::new();
    let mut after: Option<Cursor> = None;
    loop {
        let page = store
            .list_jobs(filter, after.as_ref(), limit)
            .await
            .expect("list");
        if page.is_empty() {
            return seen;
        }
        after = page.last().and_then(Cursor::of);
        seen.extend(page.into_iter().map(|j| j.job_id));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_job_list_filters_and_pages_by_create_time_then_job_id() {
    for store in stores("scheduler_job_list").await {
        // 12 jobs, two per millisecond (the job id breaks the tie); every third runs, the
        // even ones have host 10000, the odd ones host 10001; j_07 has an `_` in its id.
        let ids: Vec<String> = (0..12).map(|i| format!("j{i:02}")).collect();
        for (i, job_id) in ids.iter().enumerate() {
            let mut row = job(job_id, None);
            row.create_ms = 100 + (i as i64) / 2;
            if job_id == "j07" {
                row.job_id = "j_7".into();
            }
            let host = if i % 2 == 0 { "10000" } else { "10001" };
            store
                .insert_job(&row, &[who("guest", "9999"), who("host", host)], &[], &[])
                .await
                .expect("insert");
            if i % 3 == 0 {
                walk(
                    &store,
                    &row.job_id,
                    &[
                        (JobStatus::Ready, JobStatus::Waiting, "", 1),
                        (JobStatus::Waiting, JobStatus::Running, "", 2),
                    ],
                )
                .await;
            }
        }
        let mut newest_first: Vec<String> = ids
            .iter()
            .map(|id| {
                if id == "j07" {
                    "j_7".to_owned()
                } else {
                    id.clone()
                }
            })
            .collect();
        newest_first.reverse();
        // Ties on create_ms: j11 before j10, both at ms 105.
        let everything = JobFilter::default();
        assert_eq!(all_pages(&store, &everything, 5).await, newest_first);
        assert_eq!(all_pages(&store, &everything, 1).await, newest_first);

        let running = JobFilter {
            statuses: vec![JobStatus::Running],
            ..JobFilter::default()
        };
        assert_eq!(
            all_pages(&store, &running, 2).await,
            ["j09", "j06", "j03", "j00"]
        );
        let running_or_ready = JobFilter {
            statuses: vec![JobStatus::Running, JobStatus::Ready],
            ..JobFilter::default()
        };
        assert_eq!(all_pages(&store, &running_or_ready, 3).await, newest_first);

        let host_10001 = JobFilter {
            role: Some(Role::Host),
            party_id: Some(PartyId::try_from("10001".to_owned()).expect("id")),
            ..JobFilter::default()
        };
        assert_eq!(
            all_pages(&store, &host_10001, 4).await,
            ["j11", "j09", "j_7", "j05", "j03", "j01"]
        );
        let guest_10001 = JobFilter {
            role: Some(Role::Guest),
            ..host_10001.clone()
        };
        assert!(all_pages(&store, &guest_10001, 4).await.is_empty());
        let any_role_10001 = JobFilter {
            role: None,
            ..host_10001.clone()
        };
        assert_eq!(all_pages(&store, &any_role_10001, 4).await.len(), 6);
        let arbiters = JobFilter {
            role: Some(Role::Arbiter),
            ..JobFilter::default()
        };
        assert!(all_pages(&store, &arbiters, 4).await.is_empty());

        let window = JobFilter {
            submitted_after_ms: 101,
            submitted_before_ms: 103,
            ..JobFilter::default()
        };
        assert_eq!(
            all_pages(&store, &window, 10).await,
            ["j05", "j04", "j03", "j02"]
        );

        // `_` matches itself only, not any character; case is ignored.
        let underscore = JobFilter {
            text: "_".into(),
            ..JobFilter::default()
        };
        assert_eq!(all_pages(&store, &underscore, 10).await, ["j_7"]);
        let upper = JobFilter {
            text: "J1".into(),
            ..JobFilter::default()
        };
        assert_eq!(all_pages(&store, &upper, 10).await, ["j11", "j10"]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_job_list_migration_fills_the_participants_of_existing_jobs() {
    for url in fedflow_store::contract_backends("scheduler_job_list_fill").await {
        let before = &MIGRATIONS[..3];
        let old = Db::connect(&url, 1, MIGRATIONS_TABLE, before)
            .await
            .expect("the store before m0004");
        old.exec(
            "INSERT INTO scheduler_jobs (job_id, status, dsl, conf, initiator_role,
                initiator_party, priority, create_ms, update_ms)
             VALUES ('old', 'ready', '{}', '{}', 'guest', '9999', 0, 5, 5)",
            vec![],
        )
        .await
        .expect("an old job");
        for (component, role, party) in [
            ("a", "guest", "9999"),
            ("a", "host", "10000"),
            ("a", "arbiter", "10000"),
            ("b", "guest", "9999"),
            ("b", "host", "10000"),
            ("b", "arbiter", "10000"),
        ] {
            old.exec(
                "INSERT INTO scheduler_task_parties (job_id, component, version, role,
                    party_id, status, update_ms)
                 VALUES ('old', ?, 0, ?, ?, 'waiting', 5)",
                vec![component.into(), role.into(), party.into()],
            )
            .await
            .expect("its party-task rows");
        }
        old.close().await.expect("close");
        let store = Store::connect(&url, 4).await.expect("migrated");
        let host = JobFilter {
            role: Some(Role::Host),
            party_id: Some(PartyId::try_from("10000".to_owned()).expect("id")),
            ..JobFilter::default()
        };
        assert_eq!(all_pages(&store, &host, 10).await, ["old"]);
        let guest = JobFilter {
            role: Some(Role::Guest),
            ..JobFilter::default()
        };
        assert_eq!(all_pages(&store, &guest, 10).await, ["old"]);
        // Host and arbiter: the party's jobs hold it once.
        let any_role = JobFilter { role: None, ..host };
        assert_eq!(all_pages(&store, &any_role, 10).await, ["old"]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_party_in_two_roles_is_listed_once_per_job() {
    for store in stores("scheduler_job_list_roles").await {
        let participants = [
            who("guest", "9999"),
            who("host", "10000"),
            who("arbiter", "10000"),
            who("host", "10001"),
        ];
        for (i, job_id) in ["j1", "j2", "j3"].iter().enumerate() {
            let mut row = job(job_id, None);
            row.create_ms = 10 + i as i64;
            store
                .insert_job(&row, &participants, &[], &[])
                .await
                .expect("insert");
        }
        let party = JobFilter {
            party_id: Some(PartyId::try_from("10000".to_owned()).expect("id")),
            ..JobFilter::default()
        };
        assert_eq!(all_pages(&store, &party, 1).await, ["j3", "j2", "j1"]);
        let hosts = JobFilter {
            role: Some(Role::Host),
            ..JobFilter::default()
        };
        assert_eq!(all_pages(&store, &hosts, 2).await, ["j3", "j2", "j1"]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn party_statuses_set_together_each_move_only_from_the_status_read_before() {
    for store in stores("scheduler_party_cas_batch").await {
        let mut guest = party("j1", 0);
        guest.who = Participant {
            role: "guest".into(),
            party_id: "9999".into(),
        };
        let host = party("j1", 0);
        store
            .insert_job(
                &job("j1", None),
                &[],
                &[task("j1", 0)],
                &[host.clone(), guest.clone()],
            )
            .await
            .expect("insert");
        // The host's row moves on first: the batch read it before, so its change is stale.
        assert!(
            store
                .cas_party_status(&host, TaskStatus::Failed, "boom", 2)
                .await
                .expect("cas")
        );
        let changed = store
            .cas_party_statuses(
                &[(&host, TaskStatus::Running), (&guest, TaskStatus::Running)],
                3,
            )
            .await
            .expect("batch");
        assert_eq!(changed, vec![false, true]);
        let status = |who: Participant| {
            let store = &store;
            async move {
                let row = store
                    .task_party("j1", "a", 0, &who)
                    .await
                    .expect("read")
                    .expect("row");
                (row.status, row.update_ms)
            }
        };
        assert_eq!(status(host.who.clone()).await, (TaskStatus::Failed, 2));
        assert_eq!(status(guest.who.clone()).await, (TaskStatus::Running, 3));
        assert_eq!(
            store.cas_party_statuses(&[], 4).await.expect("nothing"),
            Vec::<bool>::new()
        );
    }
}
