//! The store's contract, on SQLite and (when `FEDFLOW_TEST_POSTGRES_URL` is set) PostgreSQL:
//! one test per behaviour the app relies on.

use std::sync::Arc;

use super::*;

async fn stores(name: &str) -> Vec<Arc<Store>> {
    let open = |url: String| async move { Store::connect(&url, 8).await.map(Arc::new) };
    fedflow_store::contract_stores(name, open).await
}

fn key(component: &str, version: i32) -> TaskKey {
    TaskKey {
        job_id: "j1".into(),
        component: component.into(),
        version,
        role: "guest".into(),
        party_id: "9999".into(),
    }
}

fn task(component: &str, version: i32) -> Task {
    Task::new(
        key(component, version),
        "Sleep".into(),
        "{}".into(),
        true,
        vec!["a".into()],
        "9999".into(),
    )
}

fn change(from: TaskStatus, to: TaskStatus, output: Option<&str>) -> Move {
    Move {
        from,
        to,
        reason: "x".into(),
        output: output.map(str::to_owned),
        kill: false,
    }
}

/// A store with `b` v0 inserted and claimed with `token`.
async fn claimed(name: &str, token: &str) -> Vec<Arc<Store>> {
    let stores = stores(name).await;
    for store in &stores {
        store
            .insert_tasks(&[task("b", 0)], 1)
            .await
            .expect("insert");
        assert!(
            store
                .claim_start(&key("b", 0), token, 5)
                .await
                .expect("claim")
        );
    }
    stores
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_rows_are_created_once_per_version() {
    for store in stores("taskctl_rows").await {
        let rows = [task("b", 0), task("c", 0)];
        assert_eq!(store.insert_tasks(&rows, 1).await.expect("insert"), 2);
        assert_eq!(store.insert_tasks(&rows, 2).await.expect("repeat"), 0);
        assert_eq!(store.insert_tasks(&[task("b", 1)], 3).await.expect("v1"), 1);
        let all = store.job_tasks("j1").await.expect("list");
        assert_eq!(all.len(), 3);
        assert_eq!(all[0].upstream, ["a"]);
        assert!(store.task(&key("b", 7)).await.expect("read").is_none());
        assert_eq!(
            store
                .job_scheduler("j1")
                .await
                .expect("scheduler")
                .as_deref(),
            Some("9999")
        );
        assert_eq!(store.job_scheduler("j2").await.expect("scheduler"), None);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_of_many_concurrent_starts_claims_a_task() {
    for store in stores("taskctl_claim").await {
        store
            .insert_tasks(&[task("b", 0)], 1)
            .await
            .expect("insert");
        let claims = (0..10).map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .claim_start(&key("b", 0), &format!("token{i}"), 5)
                    .await
                    .expect("claim")
                    .then_some(format!("token{i}"))
            })
        });
        let mut winners = Vec::new();
        for claim in claims {
            winners.extend(claim.await.expect("task"));
        }
        assert_eq!(winners.len(), 1, "exactly one claim wins: {winners:?}");
        let row = store.task(&key("b", 0)).await.expect("read").expect("row");
        assert_eq!(row.party_status, TaskStatus::Running);
        assert_eq!(
            row.token, winners[0],
            "the winner's token is the one stored"
        );
        assert_eq!(row.start_ms, 5, "the claim stamps the start");
        let running = store.running().await.expect("running");
        assert_eq!(running.len(), 1, "the claimed row is running");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_party_status_write_is_a_compare_and_set_that_records_output_and_end() {
    for store in claimed("taskctl_party_cas", "t").await {
        let k = key("b", 0);
        assert!(
            !store
                .cas_party_status(
                    &k,
                    &change(TaskStatus::Waiting, TaskStatus::Failed, None),
                    &[],
                    6
                )
                .await
                .expect("cas"),
            "stale from"
        );
        assert!(
            store
                .cas_party_status(
                    &k,
                    &change(
                        TaskStatus::Running,
                        TaskStatus::Success,
                        Some("{\"value\":1}")
                    ),
                    &[],
                    7
                )
                .await
                .expect("cas")
        );
        let row = store.task(&k).await.expect("read").expect("row");
        assert_eq!(row.output, "{\"value\":1}");
        assert_eq!(row.end_ms, 7);
        assert_eq!(row.start_ms, 5, "an end keeps the start");
        assert_eq!(row.reason, "x");
        assert!(store.running().await.expect("running").is_empty());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_federated_status_write_is_a_compare_and_set() {
    for store in claimed("taskctl_cas", "t").await {
        let k = key("b", 0);
        assert!(
            store
                .cas_status(&k, TaskStatus::Waiting, TaskStatus::Success, 8)
                .await
                .expect("cas")
        );
        assert!(
            !store
                .cas_status(&k, TaskStatus::Waiting, TaskStatus::Success, 8)
                .await
                .expect("cas")
        );
        let row = store.task(&k).await.expect("read").expect("row");
        assert_eq!(row.status, TaskStatus::Success);
        assert_eq!(
            row.party_status,
            TaskStatus::Running,
            "the party status is apart"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_is_recorded_once_and_only_for_the_current_attempt() {
    for store in claimed("taskctl_worker", "t").await {
        let k = key("b", 0);
        assert!(
            !store
                .set_worker(&k, 42, 9, "other")
                .await
                .expect("stale token")
        );
        assert!(store.set_worker(&k, 42, 9, "t").await.expect("record"));
        assert!(!store.set_worker(&k, 43, 9, "t").await.expect("again"));
        let row = store.task(&k).await.expect("read").expect("row");
        assert_eq!((row.pid, row.pid_start), (42, 9));
        store
            .cas_party_status(
                &k,
                &change(TaskStatus::Running, TaskStatus::Canceled, None),
                &[],
                9,
            )
            .await
            .expect("stop");
        let mut fresh = task("c", 0);
        fresh.key = key("c", 0);
        store.insert_tasks(&[fresh], 10).await.expect("insert");
        assert!(
            !store
                .set_worker(&key("c", 0), 44, 1, "")
                .await
                .expect("unclaimed"),
            "a waiting row has no attempt to record"
        );
    }
}

fn table(name: &str, path: &str) -> Table {
    Table {
        namespace: "experiment".into(),
        name: name.into(),
        path: path.into(),
        columns: vec!["id".into(), "y".into()],
        row_count: 2,
        size_bytes: 10,
        id_name: "id".into(),
        label_name: "y".into(),
        meta: r#"{"label_name":"y","delimiter":","}"#.into(),
        partitions: 4,
        extend_sid: false,
        create_ms: 7,
    }
}

#[tokio::test]
async fn a_table_is_registered_once_replaced_only_when_asked_and_deleted() {
    for store in stores("tables").await {
        let first = table("t", "/d/1.csv");
        assert_eq!(
            store.register_table(&first, false).await.expect("register"),
            Registered::New
        );
        let second = table("t", "/d/2.csv");
        assert_eq!(
            store
                .register_table(&second, false)
                .await
                .expect("register"),
            Registered::Exists
        );
        assert_eq!(
            store.table("experiment", "t").await.expect("read"),
            Some(first.clone())
        );
        assert_eq!(
            store.register_table(&second, true).await.expect("replace"),
            Registered::Replaced(first)
        );
        assert_eq!(
            store.tables(None).await.expect("list"),
            vec![second.clone()]
        );
        assert!(store.tables(Some("other")).await.expect("list").is_empty());
        assert_eq!(
            store.delete_table("experiment", "t").await.expect("delete"),
            Some(second)
        );
        assert_eq!(
            store.delete_table("experiment", "t").await.expect("delete"),
            None
        );
        assert!(store.tables(None).await.expect("list").is_empty());
    }
}

#[tokio::test]
async fn artifacts_are_registered_with_the_success_or_not_at_all() {
    for store in claimed("artifacts", "tok").await {
        let artifact = Artifact {
            key: key("b", 0),
            output_key: "output_data".into(),
            kind: "data".into(),
            type_name: "dataframe".into(),
            path: "/d/out.csv".into(),
            size_bytes: 3,
            metadata: r#"{"schema":{"header":["id"],"z":[1,2]}}"#.into(),
            overview: r#"{"row_count":2}"#.into(),
            create_ms: 0,
        };
        let success = change(TaskStatus::Running, TaskStatus::Success, Some("{}"));
        // A lost compare-and-set registers nothing.
        let stale = change(TaskStatus::Waiting, TaskStatus::Success, None);
        assert!(
            !store
                .cas_party_status_registering(
                    &key("b", 0),
                    &stale,
                    &[],
                    std::slice::from_ref(&artifact),
                    9
                )
                .await
                .expect("cas")
        );
        assert!(store.artifacts("j1", None).await.expect("list").is_empty());
        assert!(
            store
                .cas_party_status_registering(
                    &key("b", 0),
                    &success,
                    &[],
                    std::slice::from_ref(&artifact),
                    9
                )
                .await
                .expect("cas")
        );
        let row = store.task(&key("b", 0)).await.expect("read").expect("row");
        assert_eq!(row.party_status, TaskStatus::Success);
        let listed = store.artifacts("j1", Some("b")).await.expect("list");
        assert_eq!(
            listed,
            vec![Artifact {
                create_ms: 9,
                ..artifact
            }]
        );
        // The metadata comes back byte for byte.
        assert_eq!(
            listed[0].metadata,
            r#"{"schema":{"header":["id"],"z":[1,2]}}"#
        );
        assert!(
            store
                .artifacts("j1", Some("a"))
                .await
                .expect("list")
                .is_empty()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jobs_first_traceparent_is_kept_on_its_tasks_and_listed_once() {
    let first = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    let later = "00-1af7651916cd43dd8448eb211c80319c-c7ad6b7169203331-01";
    for store in stores("taskctl_trace_parent").await {
        store
            .insert_tasks(&[task("a", 0), task("b", 0)], 1)
            .await
            .expect("insert");
        assert_eq!(store.trace_parents(10).await.expect("list"), vec![]);
        store.set_trace_parent("j1", first).await.expect("set");
        store.set_trace_parent("j1", later).await.expect("set");
        assert_eq!(
            store.trace_parents(10).await.expect("list"),
            vec![("j1".to_owned(), first.to_owned())],
            "one row per job, the first traceparent"
        );
    }
}
