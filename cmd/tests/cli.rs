//! Runs the built `cairn` binary: help text, usage errors (exit 2), Ctrl-C (exit 130),
//! and logs that stay off stdout.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

fn cairn() -> Command {
    Command::new(env!("CARGO_BIN_EXE_cairn"))
}

fn testdata(file: &str) -> String {
    format!(
        "{}/../../shared/testdata/llb/{file}",
        env!("CARGO_MANIFEST_DIR")
    )
}

#[test]
fn help_reads_well() {
    let out = cairn().arg("--help").output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let help = String::from_utf8(out.stdout).unwrap();
    for want in [
        "Build container images from Dockerfiles or LLB, without a daemon",
        "--root <DIR>",
        "$CAIRN_ROOT",
        "--config <FILE>",
        "$CAIRN_CONFIG",
        "--debug",
        "debug",
    ] {
        assert!(help.contains(want), "missing {want:?}:\n{help}");
    }
}

#[test]
fn bad_flags_exit_2_and_say_what_was_expected() {
    let out = cairn().args(["--root"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("a value is required for '--root <DIR>'"),
        "{err}"
    );

    let out = cairn()
        .args(["debug", "dump-llb", "--dott", "x.pb"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("unexpected argument '--dott'") && err.contains("--dot"),
        "{err}"
    );
}

#[test]
fn debug_logs_go_to_stderr_only() {
    let out = cairn()
        .args(["--debug", "debug", "dump-llb", &testdata("a.pb")])
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let want = std::fs::read_to_string(testdata("a.json")).unwrap();
    assert_eq!(String::from_utf8(out.stdout).unwrap(), want);
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("Ctrl-C handler installed"), "{err}");

    // Without --debug or RUST_LOG, nothing but warnings: stderr is empty on success.
    let out = cairn()
        .args(["debug", "dump-llb", &testdata("a.pb")])
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8(out.stderr).unwrap(), "");
}

#[test]
fn ctrl_c_cancels_and_exits_130() {
    // `dump-llb -` waits for stdin, which this test holds open: a command that runs until
    // interrupted.
    let mut child = cairn()
        .args(["--debug", "debug", "dump-llb", "-"])
        .env_remove("RUST_LOG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdin = child.stdin.take();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    let mut line = String::new();
    // Signal only once the handler is in place, else SIGINT's default action kills it.
    while stderr.read_line(&mut line).unwrap() > 0 {
        seen.push_str(&line);
        if line.contains("Ctrl-C handler installed") {
            break;
        }
        line.clear();
    }
    assert!(seen.contains("Ctrl-C handler installed"), "{seen}");
    let kill = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let status = child.wait().unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
    drop(stdin);
    assert_eq!(status.code(), Some(130), "stderr: {seen}{rest}");
    assert!(rest.contains("interrupted"), "{rest}");
}
