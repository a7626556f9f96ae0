//! Overload and abuse (S25, S26) against real service processes: idle TCP connections, an
//! oversized header, hundreds of `WatchJob` streams and one that is never read. Nothing
//! crashes, the servers keep answering, and their file descriptors and resident memory, read
//! from /proc, stay below the bounds stated here.

use std::time::Duration;

use fedflow_proto::common::v1::JobStatus;
use fedflow_proto::scheduler::v1 as sc;
use fedflow_tests::process::ProcessFederation;
use fedflow_tests::*;
use serde_json::json;
use tokio::io::AsyncReadExt;
use tokio_stream::StreamExt;

/// Open file descriptors of a process.
fn fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or_else(|e| panic!("/proc/{pid}/fd: {e}"))
}

/// Resident memory of a process, KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("/proc/{pid}/status: {e}"));
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

fn alive(fed: &mut ProcessFederation, party: &str, service: &str) {
    assert!(
        !fed.exited(party, service),
        "{party} {service} died\n{}",
        fed.logs()
    );
}

/// 1 000 idle TCP connections (nothing sent, not even the HTTP/2 preface), to the scheduler,
/// to the gateway's internal port and to its federation port (TLS, no handshake): while they
/// are open the servers answer health checks, and within 30 s they have closed them all: their
/// descriptor counts are back within 32 of what they were, and never went above the
/// connection cap.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn idle_connections_are_closed_and_do_not_pin_file_descriptors() {
    const IDLE: usize = 1_000;
    let mut fed = ProcessFederation::start(&["9999", "10000"]).await;
    let party = fed.party("9999");
    let (scheduler_addr, gateway_addr) = (party.scheduler.clone(), party.gateway.clone());
    let targets = [
        ("fedflow-scheduler", scheduler_addr.clone()),
        ("fedflow-party-gateway", gateway_addr.clone()),
        ("fedflow-party-gateway", party.federation.clone()),
    ];
    for (service, addr) in targets {
        let pid = fed.pid("9999", service);
        let before = fds(pid);
        let mut idle = Vec::with_capacity(IDLE);
        for _ in 0..IDLE {
            idle.push(
                tokio::net::TcpStream::connect(&addr)
                    .await
                    .unwrap_or_else(|e| panic!("connect to {addr}: {e}")),
            );
        }
        let peak = eventually(
            &format!("{service} at {addr} to hold the idle connections"),
            Duration::from_secs(10),
            || async move {
                let now = fds(pid);
                (now >= before + IDLE / 2)
                    .then_some(now)
                    .ok_or(format!("{now} descriptors, {before} before"))
            },
        )
        .await;
        // Legitimate traffic goes on meanwhile.
        let health_addr = if service == "fedflow-scheduler" {
            scheduler_addr.clone()
        } else {
            gateway_addr.clone()
        };
        serving(&health_addr).await.unwrap_or_else(|e| {
            panic!("{service} answers while {IDLE} idle connections are open: {e}")
        });
        assert!(
            peak <= before + fedflow_rpc::server::connections::MAX_CONNECTIONS + 32,
            "{service}: {peak} descriptors"
        );
        let after = eventually(
            &format!("{service} at {addr} to close the idle connections"),
            Duration::from_secs(30),
            || async move {
                let now = fds(pid);
                (now <= before + 32)
                    .then_some(now)
                    .ok_or(format!("{now} descriptors, {before} before"))
            },
        )
        .await;
        // The server closed them: past what it sent first (its HTTP/2 settings), each client
        // socket reads end-of-file (or a reset).
        for stream in idle.iter_mut().take(10) {
            let mut buf = [0u8; 256];
            let closed = tokio::time::timeout(Duration::from_secs(5), async {
                loop {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(_) => {}
                    }
                }
            })
            .await;
            assert!(closed.is_ok(), "the server closed the connection");
        }
        eprintln!(
            "{service} at {addr}: {before} descriptors, {peak} with {IDLE} idle connections, {after} after they were closed"
        );
        alive(&mut fed, "9999", service);
    }
    // And the federation still runs jobs.
    let mut scheduler = fed.scheduler("9999");
    let (job_id, job) = run_to_success(
        &mut scheduler,
        &json!({"components": {"nap": {"module": "Sleep"}}}),
        &two_party_conf(),
        Duration::from_secs(60),
    )
    .await;
    assert_eq!(job_status(job.status), JobStatus::Success, "{job_id}");
}

fn two_party_conf() -> serde_json::Value {
    json!({
        "dsl_version": 2,
        "initiator": {"role": "guest", "party_id": 9999},
        "role": {"guest": [9999], "host": [10000]},
        "job_parameters": {"common": {"task_cores": 1}},
        "component_parameters": {"common": {"nap": {"seconds": 0}}}
    })
}

/// A call with a 16 KiB header and one with a 1 MiB header, to the scheduler and to the
/// gateway: refused (an error status, never an answer), and the servers carry on.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn oversized_metadata_is_refused_and_the_servers_carry_on() {
    let mut fed = ProcessFederation::start(&["9999", "10000"]).await;
    let party = fed.party("9999");
    let (scheduler_addr, gateway_addr) = (party.scheduler.clone(), party.gateway.clone());
    let rss_before = rss_kib(fed.pid("9999", "fedflow-scheduler"));
    for size in [16 << 10, 64 << 10, 1 << 20] {
        let value: tonic::metadata::MetadataValue<_> =
            "x".repeat(size).parse().expect("a header value");
        let mut request = tonic::Request::new(sc::ListJobsRequest::default());
        request.metadata_mut().insert("x-padding", value.clone());
        let refused = sc::scheduler_client::SchedulerClient::new(channel(&scheduler_addr))
            .list_jobs(request)
            .await
            .expect_err("a call with an oversized header is refused");
        eprintln!(
            "scheduler, {size} B header: {:?} {}",
            refused.code(),
            refused.message()
        );
        let mut request = tonic::Request::new(tonic_health::pb::HealthCheckRequest::default());
        request.metadata_mut().insert("x-padding", value);
        let refused = tonic_health::pb::health_client::HealthClient::new(channel(&gateway_addr))
            .check(request)
            .await
            .expect_err("a call with an oversized header is refused");
        eprintln!(
            "gateway, {size} B header: {:?} {}",
            refused.code(),
            refused.message()
        );
        serving(&scheduler_addr)
            .await
            .expect("the scheduler answers");
        serving(&gateway_addr).await.expect("the gateway answers");
    }
    alive(&mut fed, "9999", "fedflow-scheduler");
    alive(&mut fed, "9999", "fedflow-party-gateway");
    let rss_after = rss_kib(fed.pid("9999", "fedflow-scheduler"));
    assert!(
        rss_after < rss_before + 32 * 1024,
        "scheduler RSS {rss_before} KiB before, {rss_after} KiB after"
    );
    let mut scheduler = fed.scheduler("9999");
    run_to_success(
        &mut scheduler,
        &json!({"components": {"nap": {"module": "Sleep"}}}),
        &two_party_conf(),
        Duration::from_secs(60),
    )
    .await;
}

/// 500 `WatchJob` streams of every job at once (over 5 connections), and one more that is
/// never read while 40 jobs run: the scheduler's resident memory grows by less than 64 MiB,
/// it answers, the jobs succeed, and a stream that is read sees them.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_and_unread_watch_streams_keep_the_scheduler_bounded() {
    const STREAMS: usize = 500;
    let mut fed = ProcessFederation::start(&["9999", "10000"]).await;
    let addr = fed.party("9999").scheduler.clone();
    let pid = fed.pid("9999", "fedflow-scheduler");
    let rss_before = rss_kib(pid);
    let fds_before = fds(pid);
    let channels: Vec<_> = (0..5).map(|_| channel(&addr)).collect();
    let mut streams = Vec::with_capacity(STREAMS);
    for i in 0..STREAMS {
        let mut client = sc::scheduler_client::SchedulerClient::new(channels[i % 5].clone());
        let stream = client
            .watch_job(sc::WatchJobRequest {
                job_id: String::new(),
            })
            .await
            .unwrap_or_else(|s| panic!("stream {i}: {s:?}"))
            .into_inner();
        streams.push(stream);
    }
    // One more, on its own connection, that is never read.
    let mut unread_client = sc::scheduler_client::SchedulerClient::new(channel(&addr));
    let _unread = unread_client
        .watch_job(sc::WatchJobRequest {
            job_id: String::new(),
        })
        .await
        .expect("a stream")
        .into_inner();
    serving(&addr).await.expect("the scheduler answers");
    let mut scheduler = fed.scheduler("9999");
    let dsl = json!({"components": {"nap": {"module": "Sleep"}}});
    let jobs = submit_many(&mut scheduler, &dsl, &two_party_conf(), 40).await;
    // One stream is read: it sees the jobs' events.
    let seen = tokio::time::timeout(Duration::from_secs(60), async {
        let mut n = 0usize;
        while let Some(event) = streams[0].next().await {
            event.expect("an event");
            n += 1;
            if n >= jobs.len() {
                break;
            }
        }
        n
    })
    .await
    .expect("events on a read stream");
    assert!(seen >= jobs.len());
    each_succeeds(&fed, &mut scheduler, &jobs).await;
    let rss_peak = rss_kib(pid);
    let fds_peak = fds(pid);
    eprintln!(
        "scheduler with {STREAMS} + 1 unread WatchJob streams: RSS {rss_before} KiB -> {rss_peak} KiB, descriptors {fds_before} -> {fds_peak}"
    );
    assert!(
        rss_peak < rss_before + 64 * 1024,
        "RSS {rss_before} KiB before, {rss_peak} KiB with {STREAMS} streams"
    );
    assert!(fds_peak <= fds_before + 32, "{fds_before} -> {fds_peak}");
    alive(&mut fed, "9999", "fedflow-scheduler");
    drop(streams);
    serving(&addr).await.expect("the scheduler answers");
}

async fn each_succeeds(
    fed: &ProcessFederation,
    scheduler: &mut sc::scheduler_client::SchedulerClient<tonic::transport::Channel>,
    jobs: &[String],
) {
    for job_id in jobs {
        let job = wait_ended(scheduler, job_id, Duration::from_secs(120)).await;
        assert_eq!(
            job_status(job.status),
            JobStatus::Success,
            "{job:?}\n{}",
            fed.logs()
        );
    }
}

/// S25: ten times more submissions than the scheduler's queue admits (5 waiting jobs, while
/// the one job that fits the host's cores runs): the excess is refused `RESOURCE_EXHAUSTED`
/// with a `retry-after-ms` hint, the admitted jobs all finish, and a submission after the
/// queue drained is admitted again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn submissions_beyond_the_queue_are_refused_with_a_retry_hint() {
    const QUEUE: usize = 5;
    let fed = ProcessFederation::start_with(
        &["9999", "10000"],
        fedflow_tests::process::ProcessOptions {
            cores: 2,
            env: vec![(
                "FEDFLOW_SCHEDULER__SCHEDULING__MAX_WAITING_JOBS".to_owned(),
                QUEUE.to_string(),
            )],
            ..Default::default()
        },
    )
    .await;
    let mut scheduler = fed.scheduler("9999");
    let release = fed.dir.path().join("release");
    let dsl = json!({"components": {"nap": {"module": "Sleep"}}});
    let conf = json!({
        "dsl_version": 2,
        "initiator": {"role": "guest", "party_id": 9999},
        "role": {"guest": [9999], "host": [10000]},
        "job_parameters": {"common": {"task_cores": 2}},
        "component_parameters": {"common": {"nap": {"until_file": release.display().to_string()}}}
    });
    let mut admitted = Vec::new();
    let mut refused = 0usize;
    for _ in 0..10 * QUEUE + 1 {
        match submit(&mut scheduler, &dsl, &conf).await {
            Ok(job_id) => admitted.push(job_id),
            Err(status) => {
                assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");
                assert!(status.message().contains("max_waiting_jobs"), "{status:?}");
                let hint: u64 = status
                    .metadata()
                    .get("retry-after-ms")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse().ok())
                    .unwrap_or_else(|| panic!("a retry-after-ms hint: {status:?}"));
                assert!(hint > 0, "{status:?}");
                refused += 1;
            }
        }
    }
    eprintln!(
        "{} submissions: {} admitted, {refused} refused RESOURCE_EXHAUSTED",
        10 * QUEUE + 1,
        admitted.len()
    );
    // The queue's jobs and the one or two that got past it into running.
    assert!(
        (QUEUE..=QUEUE + 2).contains(&admitted.len()),
        "{} admitted",
        admitted.len()
    );
    assert_eq!(refused + admitted.len(), 10 * QUEUE + 1);
    std::fs::write(&release, b"").expect("write the release file");
    each_succeeds(&fed, &mut scheduler, &admitted).await;
    // Drained: admitted again.
    admitted.push(
        submit(&mut scheduler, &dsl, &conf)
            .await
            .expect("admitted once the queue drained"),
    );
    each_succeeds(&fed, &mut scheduler, &admitted).await;
    fed.check_invariants("9999", &admitted, Duration::from_secs(60))
        .await;
}
