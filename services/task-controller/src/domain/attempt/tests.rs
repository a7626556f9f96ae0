//! Table tests of the attempt lifecycle: every status a row can be in, against every event.

use fedflow_core::TaskStatus::{self, *};

use super::*;

fn key() -> TaskKey {
    TaskKey {
        job_id: "j1".into(),
        component: "train".into(),
        version: 1,
        role: "guest".into(),
        party_id: "9999".into(),
    }
}

fn row(party_status: TaskStatus) -> Task {
    let mut task = Task::new(
        key(),
        "Sleep".into(),
        "{}".into(),
        true,
        Vec::new(),
        "9999".into(),
    );
    task.party_status = party_status;
    task.token = "t1".into();
    task
}

fn end(from: TaskStatus, to: TaskStatus, reason: &str) -> Move {
    Move::new(from, to, reason)
}

#[test]
fn a_start_claims_only_a_waiting_row_and_passes_one_with_nothing_to_run() {
    for status in TaskStatus::ALL {
        let expected = if status == Waiting {
            Start::Claim
        } else {
            Start::Answer(status)
        };
        assert_eq!(start(&row(status)), expected, "{status}");
    }
    let mut idle = row(Waiting);
    idle.need_run = false;
    assert_eq!(
        start(&idle),
        Start::Pass(end(Waiting, Pass, "need_run is false"))
    );
    idle.party_status = Pass;
    assert_eq!(start(&idle), Start::Answer(Pass), "a repeated start");
}

#[test]
fn the_claim_is_waiting_to_running_and_legal() {
    assert_eq!(CLAIM.0.apply(CLAIM.1), Ok(Transition::Changed));
    assert_eq!(CLAIM, (Waiting, Running));
}

#[test]
fn a_launch_failure_fails_the_attempt_with_the_error() {
    assert_eq!(
        not_launched("no such file"),
        end(Running, Failed, "could not start worker: no such file")
    );
    assert_eq!(launched(true), Launched::Watch);
    assert_eq!(launched(false), Launched::Stop);
}

#[test]
fn only_the_current_non_empty_token_authenticates() {
    let task = row(Running);
    for (token, ok) in [("t1", true), ("t2", false), ("", false)] {
        assert_eq!(holds_token(&task, token), ok, "{token:?}");
    }
    let mut unclaimed = row(Waiting);
    unclaimed.token.clear();
    assert!(!holds_token(&unclaimed, ""));
}

#[test]
fn a_worker_report_ends_only_a_running_attempt() {
    for from in TaskStatus::ALL {
        for to in TaskStatus::ALL {
            let got = report(&row(from), to, "why", "");
            let expected = if to == Running {
                Report::Beat
            } else if from == to {
                Report::Unchanged
            } else if from == Running && from.can_move_to(to) {
                Report::End(end(Running, to, "why"))
            } else {
                Report::Refuse(format!(
                    "task {} is {from}, a worker cannot move it to {to}",
                    key()
                ))
            };
            assert_eq!(got, expected, "{from} -> {to}");
        }
    }
}

#[test]
fn a_report_keeps_its_output_only_when_it_has_one() {
    let Report::End(with) = report(&row(Running), Success, "", "{\"value\":1}") else {
        panic!("a success ends the attempt");
    };
    assert_eq!(with.output.as_deref(), Some("{\"value\":1}"));
    let Report::End(without) = report(&row(Running), Success, "", "") else {
        panic!("a success ends the attempt");
    };
    assert_eq!(without.output, None);
}

#[test]
fn a_heartbeat_keeps_only_an_authentic_running_attempt_alive() {
    for status in TaskStatus::ALL {
        let task = row(status);
        let expected = if status == Running {
            Beat::Alive
        } else {
            Beat::Stop
        };
        assert_eq!(beat(Some(&task), true), expected, "{status}");
        assert_eq!(beat(Some(&task), false), Beat::Stop, "{status} stale token");
    }
    assert_eq!(beat(None, true), Beat::Stop);
}

#[test]
fn an_exit_fails_only_the_current_running_attempt_and_says_how_it_ended() {
    let cases = [
        (
            Exit::Code(2),
            "worker lost: exited with code 2 without reporting a result",
        ),
        (Exit::Signal(9), "worker lost: killed by signal 9"),
        (Exit::Unknown, "worker lost"),
        (Exit::Error("gone".into()), "worker lost: gone"),
    ];
    for (exit, reason) in cases {
        assert_eq!(
            exited(&row(Running), "t1", &exit),
            Some(end(Running, Failed, reason)),
            "{exit:?}"
        );
        assert_eq!(exited(&row(Running), "t0", &exit), None, "an older attempt");
        for status in TaskStatus::ALL.into_iter().filter(|s| *s != Running) {
            assert_eq!(exited(&row(status), "t1", &exit), None, "{status}");
        }
    }
}

#[test]
fn a_stop_ends_the_unended_rows_it_covers_and_kills_running_workers() {
    let all = Which {
        role: "guest".into(),
        component: None,
        version: None,
    };
    for from in TaskStatus::ALL {
        let got = stop(&row(from), &all, Canceled, "stopped");
        let expected = (!from.is_end()).then(|| Move {
            kill: from == Running,
            ..end(from, Canceled, "stopped")
        });
        assert_eq!(got, expected, "{from}");
    }
    let cases = [
        (
            Which {
                role: "host".into(),
                ..all.clone()
            },
            false,
        ),
        (
            Which {
                component: Some("train".into()),
                ..all.clone()
            },
            true,
        ),
        (
            Which {
                component: Some("eval".into()),
                ..all.clone()
            },
            false,
        ),
        (
            Which {
                version: Some(1),
                ..all.clone()
            },
            true,
        ),
        (
            Which {
                version: Some(0),
                ..all.clone()
            },
            false,
        ),
    ];
    for (which, covered) in cases {
        assert_eq!(
            stop(&row(Running), &which, Failed, "x").is_some(),
            covered,
            "{which:?}"
        );
    }
}

#[test]
fn a_stop_status_is_an_interrupt() {
    for status in TaskStatus::ALL {
        assert_eq!(
            check_stop_status(status).is_ok(),
            matches!(status, Canceled | Failed | Timeout),
            "{status}"
        );
    }
}

#[test]
fn a_write_stamps_the_start_on_running_and_the_end_on_an_end_status() {
    for to in TaskStatus::ALL {
        let expected = Stamps {
            start_ms: (to == Running).then_some(7),
            end_ms: if to.is_end() { 7 } else { 0 },
        };
        assert_eq!(stamps(to, 7), expected, "{to}");
        assert_eq!(end(Waiting, to, "").stamps(7), expected, "{to}");
    }
}

#[test]
fn only_a_running_row_without_a_worker_is_recovered() {
    let mut unrecorded = row(Running);
    unrecorded.pid = 0;
    assert_eq!(recover(&unrecorded, || Some(42)), Recovery::Adopt(42));
    assert_eq!(recover(&unrecorded, || None::<u32>), Recovery::Relaunch);
    let mut recorded = row(Running);
    recorded.pid = 17;
    assert_eq!(
        recover(&recorded, || -> Option<u32> {
            panic!("no search for a recorded worker")
        }),
        Recovery::Recorded
    );
    for status in TaskStatus::ALL.into_iter().filter(|s| *s != Running) {
        assert_eq!(
            recover(&row(status), || Some(1)),
            Recovery::Recorded,
            "{status}"
        );
    }
}
