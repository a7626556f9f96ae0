//! The README's promise to a newcomer: exactly two setup commands (run the sample job, run the
//! tests), and CI runs the second one.

fn setup_commands() -> Vec<String> {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"))
        .expect("README.md at the repository root");
    let section = readme
        .split("\n## ")
        .find(|s| s.starts_with("Setup"))
        .expect("a \"## Setup\" section");
    let mut commands = Vec::new();
    let mut in_code = false;
    for line in section.lines() {
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
            continue;
        }
        let line = line.trim();
        if in_code && !line.is_empty() && !line.starts_with('#') {
            commands.push(line.to_owned());
        }
    }
    commands
}

#[test]
fn the_readme_has_exactly_two_setup_commands_and_ci_runs_the_second() {
    let commands = setup_commands();
    assert_eq!(commands.len(), 2, "setup commands: {commands:?}");
    assert!(
        commands[0].contains("demo"),
        "first runs the sample job: {commands:?}"
    );
    assert!(
        commands[1].contains("test"),
        "second runs the tests: {commands:?}"
    );
    let ci = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../.ci/run"))
        .expect(".ci/run");
    assert!(
        ci.lines().any(|l| l.trim() == commands[1]),
        ".ci/run must run {:?}",
        commands[1]
    );
    for command in &commands {
        let script = command
            .trim_start_matches("./")
            .split_whitespace()
            .next()
            .unwrap_or("");
        let path = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/..")).join(script);
        assert!(path.exists(), "{} exists", path.display());
    }
}

#[test]
fn the_readme_has_one_fate_command_and_ci_runs_it() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"))
        .expect("README.md at the repository root");
    let section = readme
        .split("\n## ")
        .find(|s| s.starts_with("FATE 2.x"))
        .expect("a \"## FATE 2.x\" section");
    let first_block = section
        .split("```sh")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .expect("a command block");
    let commands: Vec<&str> = first_block
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    assert_eq!(commands, ["./scripts/fate-demo.sh"], "{commands:?}");
    let ci = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../.ci/run"))
        .expect(".ci/run");
    assert!(
        ci.lines()
            .any(|l| l.trim().starts_with("./scripts/fate-demo.sh")),
        ".ci/run must run the FATE command"
    );
}
