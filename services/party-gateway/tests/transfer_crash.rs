//! The data plane against real crashes and a receiver that never pops: party B's gateway runs
//! as the real binary (`fedflow-party-gateway`, which cargo builds for these tests) and is
//! killed with SIGKILL; party A's runs in this process. Both parties' task-controller and
//! job-controller are fakes in this process (`support/parties.rs`).

#[path = "support/parties.rs"]
mod parties;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use fedflow_party_gateway::config::TransferConfig;
use parties::*;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

const OK: &str = "E0000000000";
const TIMED_OUT: &str = "E0000000601";

fn free_addr() -> std::net::SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr")
}

/// Party B's gateway as a process, on fixed ports so a restart serves the same addresses.
struct Receiver {
    dir: PathBuf,
    config: PathBuf,
    ports: Ports,
    child: Option<Child>,
    starts: u32,
}

impl Receiver {
    fn new(
        dir: &Path,
        fakes: std::net::SocketAddr,
        a_federation: std::net::SocketAddr,
        extra: &str,
    ) -> Receiver {
        let ports = Ports {
            internal: free_addr(),
            federation: free_addr(),
            osx: free_addr(),
        };
        let own = pki(dir, B);
        let a_ca = pki(dir, A).ca_cert();
        let text = format!(
            "party_id = \"{B}\"\n[grpc]\nlisten = \"{}\"\ndrain_timeout_ms = 1000\n[federation]\nlisten = \"{}\"\nmode = \"mtls\"\ncert = \"{}\"\nkey = \"{}\"\n[local]\nscheduler = \"{fakes}\"\njob_controller = \"{fakes}\"\ntask_controller = \"{fakes}\"\n[routes]\n\"{A}\" = {{ address = \"{a_federation}\", ca = \"{}\" }}\n[transfer]\nlisten = \"{}\"\ndata_dir = \"{}\"\n{extra}\n",
            ports.internal,
            ports.federation,
            own.cert().display(),
            own.key().display(),
            a_ca.display(),
            ports.osx,
            dir.join(B).display(),
        );
        let config = dir.join("party-gateway-b.toml");
        std::fs::write(&config, text).expect("write B's config");
        Receiver {
            dir: dir.to_owned(),
            config,
            ports,
            child: None,
            starts: 0,
        }
    }

    async fn start(&mut self) {
        self.starts += 1;
        let log = std::fs::File::create(self.dir.join(format!("gateway-b-{}.log", self.starts)))
            .expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_fedflow-party-gateway"))
            .arg("--config")
            .arg(&self.config)
            .env("RUST_LOG", "info")
            .stdout(Stdio::from(log.try_clone().expect("log")))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("start B's gateway");
        self.child = Some(child);
        let osx = Osx::new(self.ports.osx, B);
        eventually(
            "B's gateway to serve its transfer port",
            Duration::from_secs(30),
            || {
                let osx = osx.clone();
                async move {
                    match osx.peek(SESSION, "probe").await {
                        Ok(_) => Ok(()),
                        Err(s) => Err(format!("{s:?}")),
                    }
                }
            },
        )
        .await;
    }

    /// SIGKILL, and wait for the process to be gone.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().expect("SIGKILL B's gateway");
            child.wait().expect("reap B's gateway");
        }
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Party A's gateway in this process, routed to B's federation port.
async fn sender(
    dir: &Path,
    fakes: std::net::SocketAddr,
    listeners: fedflow_party_gateway::Listeners,
    ports: &Ports,
    b_federation: std::net::SocketAddr,
    shutdown: CancellationToken,
) {
    let config = config(
        dir,
        A,
        ports,
        fakes,
        &[(B, b_federation)],
        TransferConfig {
            deliver_timeout_ms: 60_000,
            ..Default::default()
        },
    );
    tokio::spawn(async move {
        if let Err(e) = fedflow_party_gateway::run(config, listeners, shutdown).await {
            panic!("party A's gateway stopped: {e}");
        }
    });
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_killed_three_times_loses_duplicates_and_reorders_nothing() {
    const TOPICS: usize = 10;
    const PER_TOPIC: usize = 100;
    let dir = TempDir::new();
    pki(dir.path(), A);
    pki(dir.path(), B);
    let fa = Fakes::with_job(&[A, B]);
    let fb = Fakes::with_job(&[A, B]);
    let (fa_addr, fb_addr) = (fa.serve().await, fb.serve().await);
    let (la, a_ports) = bind().await;
    let mut b = Receiver::new(dir.path(), fb_addr, a_ports.federation, "");
    let shutdown = CancellationToken::new();
    sender(
        dir.path(),
        fa_addr,
        la,
        &a_ports,
        b.ports.federation,
        shutdown.clone(),
    )
    .await;
    b.start().await;

    let acked = Arc::new(AtomicUsize::new(0));
    let started = std::time::Instant::now();
    let mut pushers = Vec::new();
    for t in 0..TOPICS {
        let (a, acked) = (Osx::new(a_ports.osx, A), acked.clone());
        pushers.push(tokio::spawn(async move {
            let topic = format!("topic-{t}");
            let mut retries = 0;
            for i in 0..PER_TOPIC {
                // As pyfate: try again on UNAVAILABLE (A itself retries its delivery with one
                // message id while B is down, so a push normally succeeds the first time).
                loop {
                    match a
                        .push(
                            SESSION,
                            B,
                            &topic,
                            message("m", format!("{t}/{i}").as_bytes()),
                        )
                        .await
                    {
                        Ok(out) if out.code == OK => break,
                        Ok(out) => panic!("push answered {out:?}"),
                        Err(s) if s.code() == tonic::Code::Unavailable && retries < 20 => {
                            retries += 1
                        }
                        Err(s) => panic!("push {t}/{i} refused: {s:?}"),
                    }
                }
                acked.fetch_add(1, Ordering::SeqCst);
            }
            retries
        }));
    }
    for kill_at in [250, 500, 750] {
        let seen = acked.clone();
        eventually(
            &format!("{kill_at} pushes acknowledged"),
            Duration::from_secs(120),
            || {
                let n = seen.load(Ordering::SeqCst);
                async move {
                    if n >= kill_at {
                        Ok(())
                    } else {
                        Err(format!("{n} acknowledged"))
                    }
                }
            },
        )
        .await;
        b.kill();
        b.start().await;
    }
    let mut client_retries = 0;
    for pusher in pushers {
        client_retries += pusher.await.expect("a pusher panicked");
    }
    assert_eq!(acked.load(Ordering::SeqCst), TOPICS * PER_TOPIC);
    let pushed_in = started.elapsed();
    let popper = Osx::new(b.ports.osx, B);
    for t in 0..TOPICS {
        let topic = format!("topic-{t}");
        for i in 0..PER_TOPIC {
            let out = popper.pop(SESSION, &topic, 5_000).await.expect("pop on B");
            assert_eq!(out.code, OK, "{topic}: message {i} missing: {out:?}");
            let body = String::from_utf8(body_of(&out.payload)).expect("utf-8");
            assert_eq!(
                body,
                format!("{t}/{i}"),
                "{topic}: out of order or duplicated"
            );
        }
        let extra = popper.pop(SESSION, &topic, 50).await.expect("pop on B");
        assert_eq!(
            extra.code, TIMED_OUT,
            "{topic}: a duplicate was queued: {extra:?}"
        );
    }
    let logs: String = (1..=b.starts)
        .map(|n| {
            std::fs::read_to_string(dir.path().join(format!("gateway-b-{n}.log")))
                .unwrap_or_default()
        })
        .collect();
    let repeats = logs.matches("message already stored").count();
    eprintln!(
        "1000 messages over 10 topics pushed in {pushed_in:?} with B killed 3 times; repeated deliveries recognised by B: {repeats}; client-side retries: {client_retries}"
    );
    shutdown.cancel();
}

/// The payload segments in B's data directory.
fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir.join(B).join("segments")) else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect()
}

/// A large body that says which message it is all along its length.
fn large_body(t: usize, i: usize) -> Vec<u8> {
    let tag = format!("{t}/{i};");
    tag.bytes().cycle().take(256 * 1024).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_killed_with_payload_segments_on_disk_serves_each_message_once_in_order() {
    const TOPICS: usize = 2;
    const PER_TOPIC: usize = 20;
    const POPPED_BEFORE: usize = 5;
    let dir = TempDir::new();
    pki(dir.path(), A);
    pki(dir.path(), B);
    let fa = Fakes::with_job(&[A, B]);
    let fb = Fakes::with_job(&[A, B]);
    let (fa_addr, fb_addr) = (fa.serve().await, fb.serve().await);
    let (la, a_ports) = bind().await;
    // Segments of 2 MiB: the 40 messages of 256 KiB span several, and some are drained.
    let mut b = Receiver::new(
        dir.path(),
        fb_addr,
        a_ports.federation,
        "segment_bytes = 2097152\n",
    );
    let shutdown = CancellationToken::new();
    sender(
        dir.path(),
        fa_addr,
        la,
        &a_ports,
        b.ports.federation,
        shutdown.clone(),
    )
    .await;
    b.start().await;

    let mut pushers = Vec::new();
    for t in 0..TOPICS {
        let a = Osx::new(a_ports.osx, A);
        pushers.push(tokio::spawn(async move {
            for i in 0..PER_TOPIC {
                let out = a
                    .push(
                        SESSION,
                        B,
                        &format!("large-{t}"),
                        message("m", &large_body(t, i)),
                    )
                    .await
                    .unwrap_or_else(|s| panic!("push {t}/{i} refused: {s:?}"));
                assert_eq!(out.code, OK, "push {t}/{i}: {out:?}");
            }
        }));
    }
    for pusher in pushers {
        pusher.await.expect("a pusher panicked");
    }
    let popper = Osx::new(b.ports.osx, B);
    let pop_in_order = |range: std::ops::Range<usize>| {
        let popper = popper.clone();
        async move {
            for t in 0..TOPICS {
                let topic = format!("large-{t}");
                for i in range.clone() {
                    let out = popper.pop(SESSION, &topic, 5_000).await.expect("pop on B");
                    assert_eq!(out.code, OK, "{topic}: message {i} missing: {out:?}");
                    assert!(
                        body_of(&out.payload) == large_body(t, i),
                        "{topic}: message {i} out of order, duplicated or damaged"
                    );
                }
            }
        }
    };
    pop_in_order(0..POPPED_BEFORE).await;
    let before = segment_files(dir.path());
    assert!(
        before.len() >= 2,
        "40 messages of 256 KiB in segments of 2 MiB, yet the segments are {before:?}"
    );

    b.kill();
    b.start().await;
    pop_in_order(POPPED_BEFORE..PER_TOPIC).await;
    for t in 0..TOPICS {
        let extra = popper
            .pop(SESSION, &format!("large-{t}"), 50)
            .await
            .expect("pop on B");
        assert_eq!(extra.code, TIMED_OUT, "large-{t}: a duplicate: {extra:?}");
    }
    eventually(
        "every segment deleted once all its messages were popped",
        Duration::from_secs(30),
        || {
            let left = segment_files(dir.path());
            async move {
                if left.is_empty() {
                    Ok(())
                } else {
                    Err(format!("left: {left:?}"))
                }
            }
        },
    )
    .await;
    eprintln!(
        "{} segments on disk when B was killed; {} messages of 256 KiB popped once each, in order",
        before.len(),
        TOPICS * PER_TOPIC
    );
    shutdown.cancel();
}

/// VmRSS of a process, in bytes.
fn rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS");
    kb * 1024
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_never_pops_keeps_the_gateway_within_its_quota() {
    const QUOTA: u64 = 16 << 20;
    const OVERHEAD: u64 = 16 << 20;
    let dir = TempDir::new();
    pki(dir.path(), A);
    pki(dir.path(), B);
    let sessions: Vec<String> = (0..4).map(|i| format!("{JOB}_lr_{i}")).collect();
    let (fa, fb) = (Fakes::with_job(&[A, B]), Fakes::with_job(&[A, B]));
    for fakes in [&fa, &fb] {
        fakes.world.lock().running.extend(sessions.iter().cloned());
    }
    let (fa_addr, fb_addr) = (fa.serve().await, fb.serve().await);
    let (la, a_ports) = bind().await;
    let mut b = Receiver::new(
        dir.path(),
        fb_addr,
        a_ports.federation,
        &format!(
            "session_quota_bytes = {}\ngateway_quota_bytes = {QUOTA}\nbackpressure_ms = 50\n",
            8 << 20
        ),
    );
    let shutdown = CancellationToken::new();
    sender(
        dir.path(),
        fa_addr,
        la,
        &a_ports,
        b.ports.federation,
        shutdown.clone(),
    )
    .await;
    b.start().await;
    let baseline = rss(b.pid());
    let a = Osx::new(a_ports.osx, A);
    let (mut accepted, mut refused, mut peak) = (0u64, 0u64, baseline);
    // 4 sessions x 24 pushes of 1 MiB = 96 MiB offered, 6 times the gateway's quota.
    for round in 0..24 {
        let mut pushes = Vec::new();
        for session in &sessions {
            let (a, session) = (a.clone(), session.clone());
            pushes.push(tokio::spawn(async move {
                a.push(&session, B, "t", vec![round as u8; 1 << 20]).await
            }));
        }
        for push in pushes {
            match push.await.expect("join") {
                Ok(_) => accepted += 1,
                Err(s) => {
                    assert_eq!(s.code(), tonic::Code::Unavailable, "{s:?}");
                    assert!(s.message().contains("quota_bytes"), "{s:?}");
                    refused += 1;
                }
            }
        }
        peak = peak.max(rss(b.pid()));
    }
    eprintln!(
        "receiver never pops: {accepted} MiB accepted, {refused} pushes refused; RSS baseline {} MiB, peak {} MiB",
        baseline >> 20,
        peak >> 20
    );
    assert!(
        accepted <= QUOTA >> 20,
        "more accepted than the quota: {accepted} MiB"
    );
    assert!(
        accepted >= 8,
        "the quota was never used: {accepted} MiB accepted"
    );
    assert!(refused > 0, "nothing was refused");
    assert!(
        peak <= baseline + QUOTA + OVERHEAD,
        "RSS grew from {} to {} MiB, more than the quota plus {} MiB",
        baseline >> 20,
        peak >> 20,
        OVERHEAD >> 20
    );
    shutdown.cancel();
}
