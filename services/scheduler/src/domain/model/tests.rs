//! Table tests of what a status change writes besides the status; the job list's page tokens.

use fedflow_core::{JobStatus, TaskStatus};

use fedflow_core::ids::JobId;

use super::{Cursor, JobTransition, JobUpdate, TaskTransition, TaskUpdate};

const NOW: i64 = 1_000;

/// What each target status writes, whatever it came from, with and without a reason.
#[test]
fn every_job_status_change_writes_what_its_target_status_implies() {
    use JobStatus::*;
    // (to, pending_reason, start_ms, end_ms, progress, queued_ms)
    #[allow(clippy::type_complexity)]
    let table: [(
        JobStatus,
        Option<&str>,
        Option<i64>,
        i64,
        Option<i32>,
        Option<i64>,
    ); 7] = [
        (Ready, Some(""), None, 0, None, None),
        (Waiting, None, None, 0, None, Some(NOW)),
        (Running, Some(""), Some(NOW), 0, None, None),
        (Success, Some(""), None, NOW, Some(100), None),
        (Failed, Some(""), None, NOW, None, None),
        (Canceled, Some(""), None, NOW, None, None),
        (Timeout, Some(""), None, NOW, None, None),
    ];
    assert_eq!(
        table.len(),
        JobStatus::ALL.len(),
        "every status is in the table"
    );
    for (to, pending_reason, start_ms, end_ms, progress, queued_ms) in table {
        for from in JobStatus::ALL {
            for (reason, kept) in [("", None), ("why", Some("why".to_owned()))] {
                let got = JobTransition::new(from, to).effects(reason, NOW);
                let want = JobUpdate {
                    reason: kept,
                    pending_reason: pending_reason.map(str::to_owned),
                    start_ms,
                    end_ms,
                    progress,
                    queued_ms,
                };
                assert_eq!(got, want, "{from} -> {to} with reason {reason:?}");
            }
        }
    }
}

#[test]
fn only_a_success_sets_progress_and_only_waiting_keeps_the_pending_reason() {
    for to in JobStatus::ALL {
        let update = JobTransition::new(JobStatus::Running, to).effects("", NOW);
        assert_eq!(update.progress.is_some(), to == JobStatus::Success, "{to}");
        assert_eq!(
            update.pending_reason.is_none(),
            to == JobStatus::Waiting,
            "{to}"
        );
        assert_eq!(update.queued_ms.is_some(), to == JobStatus::Waiting, "{to}");
    }
}

#[test]
fn every_task_status_change_sets_start_on_running_and_end_on_an_end_status() {
    use TaskStatus::*;
    let table = [
        (Waiting, None, 0),
        (Running, Some(NOW), 0),
        (Success, None, NOW),
        (Failed, None, NOW),
        (Canceled, None, NOW),
        (Timeout, None, NOW),
        (Pass, None, NOW),
    ];
    assert_eq!(
        table.len(),
        TaskStatus::ALL.len(),
        "every status is in the table"
    );
    for (to, start_ms, end_ms) in table {
        for from in TaskStatus::ALL {
            assert_eq!(
                TaskTransition::new(from, to).effects(NOW),
                TaskUpdate { start_ms, end_ms },
                "{from} -> {to}"
            );
        }
    }
}

#[test]
fn a_page_token_gives_back_its_cursor_and_nothing_else_is_one() {
    let cursor = Cursor {
        create_ms: 1_764_605_255_000,
        job_id: JobId::try_from("202612011607350000001234".to_owned()).expect("an id"),
    };
    let token = cursor.to_token();
    assert!(token.bytes().all(|b| b.is_ascii_hexdigit()), "{token}");
    assert_eq!(Cursor::from_token(&token), Ok(cursor));
    let hex = |s: &str| s.bytes().map(|b| format!("{b:02x}")).collect::<String>();
    for bad in [
        "zz".to_owned(),
        "abc".to_owned(),
        hex("12"),
        hex("x:j1"),
        hex("12:"),
        hex("12:a/b"),
        hex("-1:j1").repeat(20),
        "é".repeat(2),
    ] {
        assert!(Cursor::from_token(&bad).is_err(), "{bad}");
    }
    // A negative time is a cursor like any other (it matches nothing newer than the epoch).
    assert!(Cursor::from_token(&hex("-1:j1")).is_ok());
}
