//! Runs the built `cairn` binary: `debug dump-llb` against BuildKit's testdata.

use std::io::Write;
use std::process::{Command, Stdio};

fn testdata(file: &str) -> String {
    format!(
        "{}/../../shared/testdata/llb/{file}",
        env!("CARGO_MANIFEST_DIR")
    )
}

fn cairn() -> Command {
    Command::new(env!("CARGO_BIN_EXE_cairn"))
}

#[test]
fn dump_llb_prints_what_buildctl_prints() {
    for name in ["a", "b", "pull", "diffmerge"] {
        let out = cairn()
            .args(["debug", "dump-llb", &testdata(&format!("{name}.pb"))])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let want = std::fs::read_to_string(testdata(&format!("{name}.json"))).unwrap();
        assert_eq!(String::from_utf8(out.stdout).unwrap(), want, "{name}");
    }
}

#[test]
fn dump_llb_reads_stdin_and_draws_dot() {
    let bytes = std::fs::read(testdata("pull.pb")).unwrap();
    let mut child = cairn()
        .args(["debug", "dump-llb", "--dot", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&bytes).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let dot = String::from_utf8(out.stdout).unwrap();
    assert!(dot.starts_with("digraph {\n"), "{dot}");
    assert!(dot.contains("shape=\"ellipse\""), "{dot}");
    assert!(dot.contains(" -> "), "{dot}");
}

#[test]
fn bad_input_exits_1_with_a_message_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("junk.pb");
    std::fs::write(&path, [0x0a, 0x05, 0x01]).unwrap(); // truncated field
    let out = cairn()
        .args(["debug", "dump-llb"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("junk.pb") && err.contains("pb.Definition"),
        "{err}"
    );

    let missing = cairn()
        .args(["debug", "dump-llb", "/nonexistent/x.pb"])
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(1));
}

#[test]
fn usage_errors_exit_2() {
    let out = cairn()
        .args(["debug", "dump-llb", "--no-such-flag"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = cairn().args(["no-such-command"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}
