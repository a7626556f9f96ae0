//! The web board in a real browser: headless Chromium (Debian's packages) driven by Selenium
//! from `tests/board/board_test.py`, against a 3-party federation with its boards on. The
//! browser is set up by `scripts/setup-browser.sh` (or `FEDFLOW_BROWSER_PYTHON` names a python
//! with Selenium); the test skips, saying why, only when that set-up fails. Screenshots of
//! every page go to `target/board-screenshots/` and are kept. The token check needs no
//! browser: raw HTTP/1.1 requests to a scheduler with `api.token_file`.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use fedflow_proto::common::v1::TaskStatus;
use fedflow_tests::{
    TempDir, TestFederation, conf3, eventually, run_to_success, scheduler_tasks, submit,
    task_status, wait_ended,
};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

const PARTIES: &[&str] = &["9999", "10000", "10001"];
const WITHIN: Duration = Duration::from_secs(60);

/// The workspace's `target/` directory (this test runs from `target/<profile>/deps/`).
fn target_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(dir);
    }
    let exe = std::env::current_exe().expect("the test's own path");
    exe.ancestors()
        .find(|d| d.file_name().is_some_and(|n| n == "target"))
        .map(Path::to_path_buf)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"))
}

/// A python with Selenium, and Chromium installed; Err: why there is none.
async fn browser_python() -> Result<PathBuf, String> {
    if let Some(python) = std::env::var_os("FEDFLOW_BROWSER_PYTHON") {
        return Ok(PathBuf::from(python));
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/setup-browser.sh");
    let out = tokio::process::Command::new("bash")
        .arg(&script)
        .stderr(Stdio::inherit())
        .output()
        .await
        .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
    if !out.status.success() {
        return Err(format!("{} failed ({})", script.display(), out.status));
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    stdout
        .lines()
        .last()
        .map(|l| PathBuf::from(l.trim()))
        .filter(|p| p.exists())
        .ok_or_else(|| format!("{} printed no python: {stdout:?}", script.display()))
}

#[tokio::test(flavor = "multi_thread")]
async fn the_board_draws_the_dag_follows_statuses_live_and_plots_metrics_in_a_browser() {
    let python = match browser_python().await {
        Ok(python) => python,
        Err(why) => {
            assert!(
                std::env::var_os("FEDFLOW_REQUIRE_TOOLS").is_none(),
                "no headless browser and FEDFLOW_REQUIRE_TOOLS is set: {why}"
            );
            eprintln!("SKIPPED: no headless browser: {why}");
            return;
        }
    };
    let fed = TestFederation::start_with(PARTIES, |o| o.board = true).await;
    let board = fed
        .federation
        .party("9999")
        .and_then(|p| p.board)
        .expect("party 9999 serves a board");
    let mut scheduler = fed.scheduler("9999");

    // A finished training job: its metric is what the task page plots.
    let train = json!({"components": {"train": {"module": "Train"}}});
    let conf = conf3(
        json!({"common": {"task_cores": 1}}),
        json!({"common": {"train": {"iterations": 30}}}),
    );
    let (trained, _) = run_to_success(&mut scheduler, &train, &conf, WITHIN).await;

    // A running job whose middle task holds until the release file appears.
    let release = fed.dir.path().join("release");
    let dsl = json!({"components": {
        "prepare": {"module": "Sleep", "output": {"data": ["out"]}},
        "hold": {"module": "Sleep", "input": {"data": {"data": ["prepare.out"]}}, "output": {"data": ["out"]}},
        "finish": {"module": "Sleep", "input": {"data": {"data": ["hold.out"]}}}
    }});
    let conf = conf3(
        json!({"common": {"task_cores": 1}}),
        json!({"common": {
            "prepare": {"seconds": 0},
            "hold": {"until_file": release.display().to_string()},
            "finish": {"seconds": 0}
        }}),
    );
    let held = submit(&mut scheduler, &dsl, &conf).await.expect("accepted");
    eventually("hold to run", WITHIN, || {
        let mut scheduler = scheduler.clone();
        let held = held.clone();
        async move {
            let tasks = scheduler_tasks(&mut scheduler, &held).await;
            let hold = tasks.iter().rfind(|t| t.component == "hold");
            match hold.map(|t| task_status(t.status)) {
                Some(TaskStatus::Running) => Ok(()),
                other => Err(format!("{other:?}")),
            }
        }
    })
    .await;

    let shots = target_dir().join("board-screenshots");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("board/board_test.py");
    let mut child = tokio::process::Command::new(&python)
        .arg(&script)
        .arg(format!("http://{board}"))
        .arg(&held)
        .arg(&trained)
        .arg("3")
        .arg(&shots)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("start the browser script");
    let mut lines = BufReader::new(child.stdout.take().expect("piped")).lines();
    let mut said = Vec::new();
    let drive = async {
        while let Some(line) = lines.next_line().await.expect("the script's output") {
            eprintln!("board_test.py: {line}");
            if line == "RELEASE" {
                std::fs::write(&release, "go").expect("write the release file");
            }
            said.push(line);
        }
        child.wait().await.expect("the script ends")
    };
    let status = tokio::time::timeout(Duration::from_secs(300), drive)
        .await
        .expect("the browser script ends within 5 minutes");
    eprintln!("board screenshots: {}", shots.display());
    assert!(
        status.success() && said.last().is_some_and(|l| l == "OK"),
        "the browser script failed ({status}); it said {said:?}"
    );
    assert!(said.iter().any(|l| l == "RELEASE"), "{said:?}");
    for page in [
        "job-running",
        "job-success",
        "task-metrics",
        "jobs",
        "queue",
    ] {
        let file = shots.join(format!("{page}.png"));
        let size = std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
        assert!(
            size > 1_000,
            "screenshot {} is missing or empty",
            file.display()
        );
    }
    let job = wait_ended(&mut scheduler, &held, WITHIN).await;
    assert_eq!(
        fedflow_tests::job_status(job.status),
        fedflow_proto::common::v1::JobStatus::Success
    );
    fed.shutdown().await;
}

/// One HTTP/1.1 GET; the status code and the whole answer.
async fn get(addr: &str, path: &str, headers: &[(&str, &str)]) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connect to the board");
    let mut request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream
        .write_all(request.as_bytes())
        .await
        .expect("send the request");
    let mut answer = Vec::new();
    stream
        .read_to_end(&mut answer)
        .await
        .expect("read the answer");
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let code = answer
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (code, answer)
}

#[tokio::test]
async fn with_a_token_the_board_refuses_a_request_without_it() {
    let dir = TempDir::new("fedflow-board-token");
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "b0ard-token\n").expect("write the token");
    let board = fedflow_rpc::server::bind("127.0.0.1:0")
        .await
        .expect("bind the board");
    let addr = board.local_addr().expect("address").to_string();
    let mut config = fedflow_scheduler::Config {
        database: fedflow_config::DatabaseConfig {
            url: fedflow_store::sqlite_url(&dir.path().join("scheduler.db")),
            max_connections: 4,
        },
        gateway: "127.0.0.1:1".into(),
        ..Default::default()
    };
    config.api.token_file = token_file;
    config.board.listen = addr.clone();
    let listeners = fedflow_scheduler::Listeners {
        grpc: fedflow_rpc::server::bind("127.0.0.1:0")
            .await
            .expect("bind"),
        api: None,
        board: Some(board),
    };
    let shutdown = tokio_util::sync::CancellationToken::new();
    let server = tokio::spawn(fedflow_scheduler::run(config, listeners, shutdown.clone()));

    let authorized = [("Authorization", "Bearer b0ard-token")];
    eventually("the board to answer", WITHIN, || async {
        match get(&addr, "/jobs", &authorized).await {
            (200, _) => Ok(()),
            (code, answer) => Err(format!("{code}: {answer}")),
        }
    })
    .await;
    let (code, answer) = get(&addr, "/jobs", &[]).await;
    assert_eq!(code, 401, "{answer}");
    assert!(answer.contains("Authorization: Bearer"), "{answer}");
    assert!(answer.contains("WWW-Authenticate") || answer.contains("www-authenticate"));
    let (code, _) = get(&addr, "/queue", &[("Authorization", "Bearer guess")]).await;
    assert_eq!(code, 401);
    let (code, _) = get(&addr, "/static/board.js", &[]).await;
    assert_eq!(code, 401, "the static files ask for the token too");
    let (code, answer) = get(&addr, "/queue", &authorized).await;
    assert_eq!(code, 200, "{answer}");
    assert!(answer.contains("<h1>Queue</h1>"), "{answer}");

    // A browser logs in once with ?token=: a cookie, and the token leaves the address.
    let (code, _) = get(&addr, "/jobs?token=wrong", &[]).await;
    assert_eq!(code, 401);
    let (code, answer) = get(&addr, "/jobs?token=b0ard-token", &[]).await;
    assert_eq!(code, 303, "{answer}");
    let lower = answer.to_ascii_lowercase();
    assert!(lower.contains("location: /jobs\r\n"), "{answer}");
    let cookie = answer
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .starts_with("set-cookie:")
                .then(|| l["set-cookie:".len()..].trim().to_owned())
        })
        .expect("a cookie");
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    let pair = cookie.split(';').next().expect("name=value").to_owned();
    let (code, answer) = get(&addr, "/jobs", &[("Cookie", &pair)]).await;
    assert_eq!(code, 200, "{answer}");
    let (code, _) = get(&addr, "/jobs", &[("Cookie", "fedflow_board_token=00")]).await;
    assert_eq!(code, 401);

    shutdown.cancel();
    server
        .await
        .expect("the scheduler task")
        .expect("the scheduler stops cleanly");
}
