//! The data plane between two parties' gateways, started in this process through `run` on
//! 127.0.0.1:0 with mutual TLS between them: pushes through party A's transfer port, pops on
//! party B's, refusals, limits. Each party's task-controller and job-controller are fakes
//! (`support/parties.rs`) whose tables the tests edit.

#[path = "support/parties.rs"]
mod parties;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use fedflow_party_gateway::config::TransferConfig;
use fedflow_proto::gateway::v1 as gw;
use parties::*;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

const OK: &str = "E0000000000";
const TIMED_OUT: &str = "E0000000601";

#[allow(dead_code)]
struct Pair {
    dir: TempDir,
    a: Ports,
    b: Ports,
    fa: Fakes,
    fb: Fakes,
    shutdown: CancellationToken,
}

impl Drop for Pair {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

async fn bind() -> (fedflow_party_gateway::Listeners, Ports) {
    let l = || async { TcpListener::bind("127.0.0.1:0").await.expect("bind") };
    let listeners = fedflow_party_gateway::Listeners {
        internal: l().await,
        federation: l().await,
        transfer: l().await,
    };
    let ports = Ports {
        internal: listeners.internal.local_addr().expect("addr"),
        federation: listeners.federation.local_addr().expect("addr"),
        osx: listeners.transfer.local_addr().expect("addr"),
    };
    (listeners, ports)
}

/// Party A's and party B's gateways, each with its fakes.
async fn start(fa: Fakes, fb: Fakes, transfer: TransferConfig) -> Pair {
    let dir = TempDir::new();
    let (la, a) = bind().await;
    let (lb, b) = bind().await;
    let shutdown = CancellationToken::new();
    for (party, listeners, ports, fakes, peer) in [
        (A, la, &a, &fa, (B, b.federation)),
        (B, lb, &b, &fb, (A, a.federation)),
    ] {
        let fakes_addr = fakes.serve().await;
        let config = config(
            dir.path(),
            party,
            ports,
            fakes_addr,
            &[peer],
            transfer.clone(),
        );
        let stop = shutdown.clone();
        tokio::spawn(async move {
            if let Err(e) = fedflow_party_gateway::run(config, listeners, stop).await {
                panic!("party {party}'s gateway stopped: {e}");
            }
        });
    }
    Pair {
        dir,
        a,
        b,
        fa,
        fb,
        shutdown,
    }
}

fn both() -> (Fakes, Fakes) {
    (Fakes::with_job(&[A, B]), Fakes::with_job(&[A, B]))
}

/// A pop on B that finds nothing within a short wait.
async fn assert_nothing_queued(b: &Osx, topic: &str, what: &str) {
    let out = b.pop(SESSION, topic, 100).await.expect("pop on B");
    assert_eq!(
        out.code, TIMED_OUT,
        "{what}: something was queued on {topic}: {out:?}"
    );
}

#[tokio::test]
async fn pushes_through_party_a_are_popped_on_party_b_in_order_per_topic() {
    let (fa, fb) = both();
    let pair = start(fa, fb, TransferConfig::default()).await;
    let a = Osx::new(pair.a.osx, A);
    let b = Osx::new(pair.b.osx, B);
    let topics = ["s-guest-9999-host-10000-w", "s-guest-9999-host-10000-g-0"];
    for i in 0..5 {
        for topic in topics {
            let out = a
                .push(
                    SESSION,
                    B,
                    topic,
                    message("w", format!("{topic}/{i}").as_bytes()),
                )
                .await
                .expect("push through A");
            assert_eq!(out.code, OK, "{out:?}");
        }
    }
    // Peek shows the head and leaves it.
    let peeked = b.peek(SESSION, topics[1]).await.expect("peek on B");
    assert_eq!(peeked.code, OK);
    assert_eq!(
        body_of(&peeked.payload),
        format!("{}/0", topics[1]).as_bytes()
    );
    for topic in topics.iter().rev() {
        for i in 0..5 {
            let out = b.pop(SESSION, topic, 5_000).await.expect("pop on B");
            assert_eq!(out.code, OK, "{out:?}");
            assert_eq!(
                body_of(&out.payload),
                format!("{topic}/{i}").as_bytes(),
                "FIFO per topic"
            );
        }
    }
    // Empty now: the pop waits its timeout and says so.
    let started = Instant::now();
    let out = b.pop(SESSION, topics[0], 300).await.expect("pop on B");
    assert_eq!(out.code, TIMED_OUT, "{out:?}");
    assert!(out.payload.is_empty());
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "returned before its timeout"
    );
    let empty = b.peek(SESSION, topics[0]).await.expect("peek");
    assert_eq!(empty.code, "E0000000404");
    // A pop that comes first creates the queue and is answered by the later push.
    let waiting = {
        let b = b.clone();
        tokio::spawn(async move { b.pop(SESSION, "late", 20_000).await })
    };
    let out = a
        .push(SESSION, B, "late", message("late", b"x"))
        .await
        .expect("push");
    assert_eq!(out.code, OK);
    let popped = waiting.await.expect("join").expect("pop");
    assert_eq!(popped.code, OK);
    assert_eq!(body_of(&popped.payload), b"x");
    // Pushes for its own party stay on A; release drops them.
    a.push(SESSION, A, "own", message("o", b"1"))
        .await
        .expect("push to A");
    assert_eq!(a.peek(SESSION, "own").await.expect("peek").code, OK);
    a.release(SESSION).await.expect("release");
    assert_eq!(
        a.peek(SESSION, "own").await.expect("peek").code,
        "E0000000404"
    );
}

/// A call that must be refused, how, and with what in the message.
struct Refused {
    what: &'static str,
    status: Result<gw::DeliverReply, tonic::Status>,
    code: tonic::Code,
    mentions: &'static str,
}

#[tokio::test]
async fn refusals_name_the_reason_and_queue_nothing() {
    // B's job table does not list A: A's pushes reach B and are refused there.
    let fa = Fakes::with_job(&[A, B]);
    let fb = Fakes::with_job(&[B, "10001"]);
    fb.world.lock().jobs.get_mut(JOB).expect("job").0 = B.into();
    let pair = start(fa, fb, TransferConfig::default()).await;
    let a = Osx::new(pair.a.osx, A);
    let b = Osx::new(pair.b.osx, B);
    let deliver = |from: &str, target: &str, message_id: &str| {
        let material = fedflow_tls::Reloadable::load(
            fedflow_tls::TlsFiles {
                cert: pki(pair.dir.path(), A).cert(),
                key: pki(pair.dir.path(), A).key(),
                trust: [(B.to_owned(), pki(pair.dir.path(), B).ca_cert())].into(),
            },
            A,
        )
        .expect("A's TLS material");
        let channel = fedflow_tls::client::channel(&pair.b.federation.to_string(), material, B)
            .expect("a channel to B");
        let request = gw::DeliverRequest {
            session_id: SESSION.into(),
            topic: "direct".into(),
            payload: message("d", b"d").into(),
            from_party_id: from.into(),
            target_party_id: target.into(),
            message_id: message_id.into(),
            trace_id: String::new(),
            trace_context: Default::default(),
        };
        async move {
            gw::transfer_client::TransferClient::new(channel)
                .deliver(request)
                .await
                .map(|r| r.into_inner())
        }
    };
    let as_reply = |r: Result<fedflow_proto::osx::TransportOutbound, tonic::Status>| {
        r.map(|out| gw::DeliverReply {
            stored: out.code == OK,
        })
    };
    let id = || uuid::Uuid::now_v7().to_string();
    let mut cases = vec![
        Refused {
            what: "a session that is not a running attempt on A",
            status: as_reply(
                a.push(
                    "202612010000000000000009_lr_0",
                    B,
                    "direct",
                    message("m", b"m"),
                )
                .await,
            ),
            code: tonic::Code::PermissionDenied,
            mentions: "not a running task attempt on party 9999",
        },
        Refused {
            what: "a malformed session id",
            status: as_reply(a.push("lr_0", B, "direct", message("m", b"m")).await),
            code: tonic::Code::InvalidArgument,
            mentions: "session id",
        },
        Refused {
            what: "a remote party that is not a participant of the job",
            status: as_reply(a.push(SESSION, B, "direct", message("m", b"m")).await),
            code: tonic::Code::PermissionDenied,
            mentions: "party 9999 is not a participant",
        },
        Refused {
            what: "a component pushing as another party",
            status: as_reply(
                Osx::new(pair.a.osx, B)
                    .push(SESSION, B, "direct", message("m", b"m"))
                    .await,
            ),
            code: tonic::Code::Unauthenticated,
            mentions: "x-ptp-from-node-id",
        },
        Refused {
            what: "x-ptp-from-node-id other than the certificate's party",
            status: deliver("10001", B, &id()).await,
            code: tonic::Code::Unauthenticated,
            mentions: "authenticated as party 9999",
        },
        Refused {
            what: "a target that is not this party",
            status: deliver(A, "10001", &id()).await,
            code: tonic::Code::PermissionDenied,
            mentions: "does not relay",
        },
    ];
    // The attempt ends on B: the task-controller says so, and tells the gateway.
    pair.fb
        .world
        .lock()
        .jobs
        .get_mut(JOB)
        .expect("job")
        .1
        .insert(A.into());
    pair.fb.world.lock().running.remove(SESSION);
    let mut internal =
        gw::transfer_client::TransferClient::connect(format!("http://{}", pair.b.internal))
            .await
            .expect("B's internal port");
    internal
        .drop_session(gw::DropSessionRequest {
            session_id: SESSION.into(),
        })
        .await
        .expect("drop the ended session");
    cases.push(Refused {
        what: "an attempt that ended on B",
        status: as_reply(a.push(SESSION, B, "direct", message("m", b"m")).await),
        code: tonic::Code::PermissionDenied,
        mentions: "not a running task attempt on party 10000",
    });
    for case in cases {
        let status = case
            .status
            .expect_err(&format!("{}: must be refused", case.what));
        assert_eq!(status.code(), case.code, "{}: {status:?}", case.what);
        assert!(
            status.message().contains(case.mentions) && status.message().starts_with("E0000000"),
            "{}: the message must carry a FATE code and say {:?}: {:?}",
            case.what,
            case.mentions,
            status.message()
        );
    }
    // Nothing was queued: with the session running again, B's queue is empty.
    pair.fb.world.lock().running.insert(SESSION.into());
    assert_nothing_queued(&b, "direct", "after every refusal").await;
}

#[tokio::test]
async fn an_oversized_message_and_a_full_session_are_refused_clearly() {
    let (fa, fb) = both();
    let transfer = TransferConfig {
        max_message_bytes: 64 << 10,
        session_quota_bytes: 200 << 10,
        gateway_quota_bytes: 1 << 20,
        backpressure_ms: 300,
        deliver_timeout_ms: 500,
        ..Default::default()
    };
    let pair = start(fa, fb, transfer).await;
    let a = Osx::new(pair.a.osx, A);
    let b = Osx::new(pair.b.osx, B);
    let big = a
        .push(SESSION, B, "t", vec![7; (64 << 10) + 1])
        .await
        .expect_err("larger than max_message_bytes");
    assert_eq!(big.code(), tonic::Code::ResourceExhausted, "{big:?}");
    assert!(
        big.message().contains("max_message_bytes = 65536"),
        "{big:?}"
    );
    for i in 0..3 {
        a.push(SESSION, B, "t", vec![i; 60 << 10])
            .await
            .expect("within the quota");
    }
    let started = Instant::now();
    let full = a
        .push(SESSION, B, "t", vec![9; 60 << 10])
        .await
        .expect_err("over the session quota");
    assert_eq!(full.code(), tonic::Code::Unavailable, "{full:?}");
    assert!(full.message().contains("session_quota_bytes"), "{full:?}");
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "refused without waiting for room"
    );
    // A pop makes room: a push waiting for it goes through.
    let waiting = {
        let a = a.clone();
        tokio::spawn(async move { a.push(SESSION, B, "t", vec![3; 60 << 10]).await })
    };
    let out = b.pop(SESSION, "t", 1_000).await.expect("pop");
    assert_eq!(out.payload.len(), 60 << 10);
    waiting
        .await
        .expect("join")
        .expect("the waiting push is accepted once there is room");
    let mut seen = HashMap::new();
    for _ in 0..3 {
        let out = b.pop(SESSION, "t", 1_000).await.expect("pop");
        *seen.entry(out.payload[0]).or_insert(0) += 1;
    }
    assert_eq!(
        seen,
        HashMap::from([(1, 1), (2, 1), (3, 1)]),
        "FIFO, nothing lost"
    );
}

#[tokio::test]
async fn a_push_waits_for_the_receivers_attempt_to_start() {
    let (fa, fb) = both();
    {
        let mut w = fb.world.lock();
        w.running.remove(SESSION);
        w.pending.insert(SESSION.into());
    }
    let pair = start(fa, fb, TransferConfig::default()).await;
    let a = Osx::new(pair.a.osx, A);
    let b = Osx::new(pair.b.osx, B);
    let push = {
        let a = a.clone();
        tokio::spawn(async move { a.push(SESSION, B, "early", message("e", b"early")).await })
    };
    // A's gateway keeps trying, and B's keeps asking its task-controller, which says "not yet".
    let fb = pair.fb.clone();
    eventually(
        "B's gateway asked about the session three times",
        Duration::from_secs(10),
        || {
            let asked = fb.world.lock().asked.get(SESSION).copied().unwrap_or(0);
            async move {
                if asked >= 3 {
                    Ok(())
                } else {
                    Err(format!("asked {asked} times"))
                }
            }
        },
    )
    .await;
    assert!(
        !push.is_finished(),
        "the push returned before B's attempt started"
    );
    {
        let mut w = pair.fb.world.lock();
        w.pending.remove(SESSION);
        w.running.insert(SESSION.into());
    }
    let out = push
        .await
        .expect("join")
        .expect("accepted once B's attempt runs");
    assert_eq!(out.code, OK);
    let popped = b.pop(SESSION, "early", 5_000).await.expect("pop");
    assert_eq!(body_of(&popped.payload), b"early");
}

#[tokio::test]
async fn the_sweep_drops_the_queues_of_a_session_that_ended_unannounced() {
    let (fa, fb) = both();
    let pair = start(
        fa,
        fb,
        TransferConfig {
            sweep_interval_ms: 100,
            ..Default::default()
        },
    )
    .await;
    let a = Osx::new(pair.a.osx, A);
    let b = Osx::new(pair.b.osx, B);
    for i in 0..3u8 {
        a.push(SESSION, B, "left", message("l", &[i]))
            .await
            .expect("push");
    }
    // The attempt ends on B and nobody tells the gateway.
    let asked_before = {
        let mut w = pair.fb.world.lock();
        w.running.remove(SESSION);
        w.asked.get(SESSION).copied().unwrap_or(0)
    };
    // A sweep asks, hears "closed" and drops the session's queues.
    let fb = pair.fb.clone();
    eventually(
        "a sweep to ask after the attempt ended",
        Duration::from_secs(10),
        || {
            let asked = fb.world.lock().asked.get(SESSION).copied().unwrap_or(0);
            async move {
                if asked > asked_before {
                    Ok(())
                } else {
                    Err(format!("asked {asked} times"))
                }
            }
        },
    )
    .await;
    // Running again (so peek may look): the queue is empty once that sweep's drop is done.
    pair.fb.world.lock().running.insert(SESSION.into());
    eventually(
        "the ended session's queue dropped",
        Duration::from_secs(10),
        || {
            let b = b.clone();
            async move {
                let out = b
                    .peek(SESSION, "left")
                    .await
                    .map_err(|e| format!("{e:?}"))?;
                if out.code == "E0000000404" {
                    Ok(())
                } else {
                    Err(format!("peek: {}", out.code))
                }
            }
        },
    )
    .await;
    assert_nothing_queued(&b, "left", "after the sweep").await;
}
