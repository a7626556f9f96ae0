//! The layering check (`scripts/check-layering.sh`, run by `.ci/run`) catches what it
//! promises. On a copy of this repository's files, one planted violation of each rule makes
//! it fail with a line naming the planted file and the rule, and the same code planted where
//! the allowlist permits it adds nothing. The repository itself passes.

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .expect("the repository root")
}

/// A copy of the repository's files as git sees them (tracked and untracked, not ignored):
/// outside any git checkout, so the script reads every file below it.
fn copy() -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("fedflow-layering-")
        .tempdir()
        .expect("a temporary directory");
    let listed = Command::new("git")
        .arg("-C")
        .arg(repo())
        .args([
            "ls-files",
            "-z",
            "--cached",
            "--others",
            "--exclude-standard",
        ])
        .output()
        .expect("run git ls-files");
    assert!(listed.status.success(), "git ls-files failed");
    for path in listed.stdout.split(|b| *b == 0).filter(|p| !p.is_empty()) {
        let path = String::from_utf8_lossy(path).into_owned();
        let from = repo().join(&path);
        if !from.is_file() {
            continue; // deleted in the working tree, or a submodule
        }
        let to = dir.path().join(&path);
        std::fs::create_dir_all(to.parent().expect("a parent")).expect("create a directory");
        std::fs::copy(&from, &to).unwrap_or_else(|e| panic!("copy {path}: {e}"));
    }
    dir
}

/// Runs the check on `root`: whether it passed, and its violation lines.
fn check(root: &Path) -> (bool, Vec<String>) {
    let out = Command::new("bash")
        .arg(root.join("scripts/check-layering.sh"))
        .arg(root)
        .output()
        .expect("run scripts/check-layering.sh");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines = stdout
        .lines()
        .filter(|l| l.contains(": rule ("))
        .map(str::to_owned)
        .collect();
    (out.status.success(), lines)
}

/// Adds `text` to `file` under `root` (creating it), as a planted violation.
fn plant(root: &Path, file: &str, text: &str) {
    let path = root.join(file);
    std::fs::create_dir_all(path.parent().expect("a parent")).expect("create a directory");
    let mut content = std::fs::read_to_string(&path).unwrap_or_default();
    content.push_str(text);
    std::fs::write(&path, content).expect("plant");
}

/// One violation per row: (rule, file, text planted there). The database library's name is
/// split in two so this file does not break rule (c) itself.
const VIOLATIONS: &[(&str, &str, &str)] = &[
    (
        "(a)",
        "crates/core/src/planted.rs",
        "use fedflow_scheduler::Config;\n",
    ),
    (
        "(a)",
        "crates/rpc/src/planted.rs",
        "pub fn f() { let _ = fedflow_standalone::Options::new; }\n",
    ),
    (
        "(a)",
        "crates/rpc/Cargo.toml",
        "fedflow-task-controller = { path = \"../../services/task-controller\" }\n",
    ),
    (
        "(b)",
        "services/scheduler/src/planted.rs",
        "use fedflow_task_controller::Config;\n",
    ),
    (
        "(b)",
        "services/job-controller/Cargo.toml",
        "fedflow-standalone.workspace = true\n",
    ),
    (
        "(c)",
        "services/scheduler/src/app/planted.rs",
        concat!("use sea", "_orm::DatabaseConnection;\n"),
    ),
    (
        "(c)",
        "crates/core/Cargo.toml",
        "sea-orm.workspace = true\n",
    ),
    (
        "(d)",
        "services/scheduler/src/app/planted.rs",
        "use fedflow_proto::scheduler::v1 as pb;\n",
    ),
    (
        "(d)",
        "services/task-controller/src/planted.rs",
        "fn f(_: tonic::Request<()>) {}\n",
    ),
    (
        "(d)",
        "crates/core/src/planted.rs",
        "use tonic::{Request, Status};\n",
    ),
];

#[test]
fn each_planted_violation_fails_the_check_naming_its_file_and_rule() {
    for (rule, file, text) in VIOLATIONS {
        let dir = copy();
        let (_, before) = check(dir.path());
        plant(dir.path(), file, text);
        let (ok, after) = check(dir.path());
        assert!(!ok, "{rule} planted in {file} passed the check");
        let new: Vec<_> = after.iter().filter(|l| !before.contains(l)).collect();
        assert!(
            new.iter()
                .any(|l| l.starts_with(&format!("{file}:")) && l.contains(&format!("rule {rule}"))),
            "{rule} planted in {file}: no line names it; new lines: {new:?}"
        );
    }
}

#[test]
fn the_same_code_where_the_allowlist_permits_it_passes() {
    let dir = copy();
    let (_, before) = check(dir.path());
    for (file, text) in [
        (
            "services/scheduler/src/store/planted.rs",
            concat!("use sea", "_orm::DatabaseConnection;\n"),
        ),
        (
            "crates/store/src/planted.rs",
            concat!("use sea", "_orm::Value;\n"),
        ),
        (
            "services/scheduler/src/grpc/planted.rs",
            "use fedflow_proto::scheduler::v1 as pb;\nfn f(_: tonic::Request<()>) {}\n",
        ),
        (
            "services/scheduler/src/planted.rs",
            "// use fedflow_proto::scheduler::v1 as pb; (a comment)\nuse fedflow_scheduler::Config;\n",
        ),
        (
            "apps/standalone/src/planted.rs",
            "use fedflow_scheduler::Config;\nuse fedflow_proto::scheduler::v1 as pb;\n",
        ),
        (
            "tests/tests/planted.rs",
            "use fedflow_task_controller::Config;\nuse fedflow_proto::scheduler::v1 as pb;\n",
        ),
    ] {
        plant(dir.path(), file, text);
    }
    let (_, after) = check(dir.path());
    let new: Vec<_> = after.iter().filter(|l| !before.contains(l)).collect();
    assert!(new.is_empty(), "allowed code was flagged: {new:?}");
}

#[test]
fn the_repository_passes_the_layering_check() {
    let (ok, lines) = check(&repo());
    assert!(
        ok,
        "scripts/check-layering.sh fails on this tree:\n{}",
        lines.join("\n")
    );
}
