//! Host tools the end-to-end tests need, and what happens when one is missing: under
//! `CI=true` the test fails (a skipped real-parts test is a test that cannot fail);
//! elsewhere the helper returns a [`Skip`] the test prints before returning.

use std::path::{Path, PathBuf};

/// Why a test did not run: printed as `skip: <reason>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skip(pub String);

impl std::fmt::Display for Skip {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "skip: {}", self.0)
    }
}

/// Unwraps a `Result<T, Skip>`, or prints the reason and returns from the test.
#[macro_export]
macro_rules! skip_unless {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(skip) => {
                eprintln!("{skip}");
                return;
            }
        }
    };
}

/// Whether this run is CI, where missing tools are failures.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Finds `name` on `PATH` (plus the sbin directories, where `runc` lives), naming the
/// Debian package that provides it when it is missing.
pub fn require_tool(name: &str, apt_package: &str) -> Result<PathBuf, Skip> {
    if let Some(p) = find_on_path(name) {
        return Ok(p);
    }
    let reason = format!("`{name}` is not installed (apt-get install {apt_package})");
    if in_ci() {
        panic!("CI=true and a required tool is missing: {reason}");
    }
    Err(Skip(reason))
}

fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let extra = ["/usr/local/sbin", "/usr/sbin", "/sbin", "/usr/bin", "/bin"];
    std::env::split_paths(&path)
        .chain(extra.iter().map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    p.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_sh_and_names_the_package_of_missing_tools() {
        assert!(require_tool("sh", "dash").is_ok());
        if !in_ci() {
            let skip = require_tool("cairn-no-such-tool", "cairn-pkg").unwrap_err();
            assert!(
                skip.to_string().contains("apt-get install cairn-pkg"),
                "{skip}"
            );
        }
    }
}
