//! Running the real `cairn` binary the way a user does, against a private state root.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The `cairn` binary built beside the test binary (`target/<profile>/cairn`). Cargo
/// builds it for any test run of the workspace, because the `cairn` package has tests
/// that need it.
pub fn cairn_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    // target/<profile>/deps/<test> -> target/<profile>/cairn
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test binary inside target/<profile>/deps");
    let bin = dir.join("cairn");
    assert!(
        bin.exists(),
        "{} is missing: build it with `cargo build -p cairn` (a workspace test run does)",
        bin.display()
    );
    bin
}

/// A `cairn` invocation on the state root `root`, plain progress, no inherited config.
pub fn cairn(root: &Path) -> Command {
    let mut c = Command::new(cairn_bin());
    c.arg("--root").arg(root);
    c.env_remove("CAIRN_ROOT")
        .env_remove("CAIRN_CONFIG")
        .env_remove("SOURCE_DATE_EPOCH");
    c
}

/// Runs `cmd`, returning its output; panics with both streams if it did not exit 0.
pub fn run_ok(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("cairn runs");
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}
