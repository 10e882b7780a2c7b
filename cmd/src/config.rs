//! The config file, in the `buildkitd.toml` shape users already know:
//!
//! ```toml
//! [registry."docker.io"]
//! mirrors = ["127.0.0.1:5000"]
//! [registry."127.0.0.1:5000"]
//! http = true
//! [worker]
//! runtime = "runc"          # or "crun", or an absolute path
//! snapshotter = "auto"      # or "overlay", "copy"
//! max-parallelism = 4
//! [gc]
//! enabled = true
//! keep-storage = "10GB"
//! keep-duration = "48h"
//! ```
//!
//! Every table denies unknown keys: a misspelt `mirors` silently ignored is a build that
//! pulls from the internet when the user asked it not to. The error names the key, the
//! file and line, and the closest known key.

use std::collections::BTreeMap;
use std::fmt;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};

use crate::root::ConfigPath;
use crate::units::{parse_duration, parse_size};

/// The whole file; every section is optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Config {
    /// Per-host settings, keyed by host (`docker.io`, `127.0.0.1:5000`).
    #[serde(default)]
    pub registry: BTreeMap<String, RegistryConfig>,
    #[serde(default)]
    pub worker: WorkerConfig,
    #[serde(default)]
    pub gc: GcConfig,
}

/// `[registry."HOST"]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RegistryConfig {
    /// Hosts tried before HOST itself, in order.
    #[serde(default)]
    pub mirrors: Vec<String>,
    /// Plain HTTP to this host.
    #[serde(default)]
    pub http: bool,
    /// HTTPS without certificate verification.
    #[serde(default)]
    pub insecure: bool,
}

/// `[worker]`: how steps run and where their files live.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct WorkerConfig {
    #[serde(default)]
    pub runtime: Runtime,
    #[serde(default)]
    pub snapshotter: SnapshotterChoice,
    /// Bound on steps running at once (default: the number of CPUs).
    #[serde(default)]
    pub max_parallelism: Option<NonZeroUsize>,
}

/// The OCI runtime binary.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Runtime {
    /// `runc` from `$PATH` (crun 1.8 refuses the hybrid cgroup layout some hosts have).
    #[default]
    Runc,
    Crun,
    /// An absolute path to a runc-compatible binary.
    Path(PathBuf),
}

impl<'de> Deserialize<'de> for Runtime {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Runtime, D::Error> {
        let s = String::deserialize(d)?;
        match s.as_str() {
            "runc" => Ok(Runtime::Runc),
            "crun" => Ok(Runtime::Crun),
            p if Path::new(p).is_absolute() => Ok(Runtime::Path(PathBuf::from(p))),
            other => Err(de::Error::custom(format!(
                "runtime {other:?} is not \"runc\", \"crun\" or an absolute path{}",
                crate::suggest::hint(other, &["runc", "crun"])
            ))),
        }
    }
}

/// Which snapshotter stores file systems; `auto` probes the host for overlayfs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SnapshotterChoice {
    #[default]
    Auto,
    Overlay,
    Copy,
}

/// `[gc]`: when cached results are removed.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct GcConfig {
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Bytes of cache kept (`"10GB"`, or a plain number of bytes).
    #[serde(default, deserialize_with = "size")]
    pub keep_storage: Option<u64>,
    /// Records unused for longer than this are removed first (`"48h"`).
    #[serde(default, deserialize_with = "duration")]
    pub keep_duration: Option<Duration>,
}

impl Default for GcConfig {
    fn default() -> GcConfig {
        GcConfig {
            enabled: true,
            keep_storage: None,
            keep_duration: None,
        }
    }
}

fn yes() -> bool {
    true
}

fn size<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    struct SizeVisitor;
    impl Visitor<'_> for SizeVisitor {
        type Value = u64;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a size such as \"10GB\" or a number of bytes")
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<u64, E> {
            u64::try_from(v).map_err(|_| E::custom(format!("size {v} is negative")))
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<u64, E> {
            Ok(v)
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<u64, E> {
            parse_size(v).map_err(E::custom)
        }
    }
    d.deserialize_any(SizeVisitor).map(Some)
}

fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    let s = String::deserialize(d)?;
    parse_duration(&s).map(Some).map_err(de::Error::custom)
}

/// A config file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading config file {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}:{line}:{column}: unknown key {key:?}{hint} (known keys here: {})", path.display(), known.join(", "))]
    UnknownKey {
        path: PathBuf,
        line: usize,
        column: usize,
        key: String,
        hint: String,
        known: Vec<String>,
    },
    #[error("{}:{line}:{column}: unknown value {value:?}{hint} (expected one of: {})", path.display(), known.join(", "))]
    UnknownValue {
        path: PathBuf,
        line: usize,
        column: usize,
        value: String,
        hint: String,
        known: Vec<String>,
    },
    #[error("{}{}: {message}", path.display(), location.as_ref().map(|(l, c)| format!(":{l}:{c}")).unwrap_or_default())]
    Invalid {
        path: PathBuf,
        location: Option<(usize, usize)>,
        message: String,
    },
}

impl Config {
    /// Reads the config. A default path that does not exist means "no config"; a file
    /// the user named (flag or `$CAIRN_CONFIG`) must exist.
    pub fn load(path: &ConfigPath) -> Result<Config, ConfigError> {
        match std::fs::read_to_string(&path.path) {
            Ok(text) => Config::parse(&text, &path.path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !path.explicit => {
                Ok(Config::default())
            }
            Err(source) => Err(ConfigError::Read {
                path: path.path.clone(),
                source,
            }),
        }
    }

    /// Parses config text; `path` is only used in error messages.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        toml::from_str(text).map_err(|e| classify(&e, text, path))
    }

    /// The settings for one registry host, if the file has a section for it.
    pub fn registry(&self, host: &str) -> Option<&RegistryConfig> {
        self.registry.get(host)
    }
}

/// Turns toml's error into one that names the key and its line. serde reports unknown
/// fields and variants as "unknown field `x`, expected one of `a`, `b`"; the backquoted
/// words are the only structured data it gives.
fn classify(e: &toml::de::Error, text: &str, path: &Path) -> ConfigError {
    let (line, column) = match e.span() {
        Some(span) => line_col(text, span.start),
        None => (0, 0),
    };
    let msg = e.message();
    let quoted: Vec<String> = msg
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect();
    let path = path.to_path_buf();
    let (first, rest) = match quoted.split_first() {
        Some((f, r)) => (f.clone(), r.to_vec()),
        None => (String::new(), Vec::new()),
    };
    let refs: Vec<&str> = rest.iter().map(String::as_str).collect();
    let hint = crate::suggest::hint(&first, &refs);
    if msg.starts_with("unknown field") {
        ConfigError::UnknownKey {
            path,
            line,
            column,
            key: first,
            hint,
            known: rest,
        }
    } else if msg.starts_with("unknown variant") {
        ConfigError::UnknownValue {
            path,
            line,
            column,
            value: first,
            hint,
            known: rest,
        }
    } else {
        ConfigError::Invalid {
            path,
            location: e.span().map(|_| (line, column)),
            message: msg.trim_end().to_owned(),
        }
    }
}

/// 1-based line and column of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("cairn.toml"))
    }

    #[test]
    fn full_file_parses() {
        let c = parse(
            r#"
[registry."docker.io"]
mirrors = ["127.0.0.1:5000", "mirror.example"]
[registry."127.0.0.1:5000"]
http = true
[registry."self.signed"]
insecure = true
[worker]
runtime = "/usr/local/bin/runc"
snapshotter = "overlay"
max-parallelism = 3
[gc]
enabled = false
keep-storage = "10GB"
keep-duration = "48h"
"#,
        )
        .unwrap();
        assert_eq!(
            c.registry("docker.io").unwrap().mirrors,
            ["127.0.0.1:5000", "mirror.example"]
        );
        assert!(c.registry("127.0.0.1:5000").unwrap().http);
        assert!(c.registry("self.signed").unwrap().insecure);
        assert!(c.registry("quay.io").is_none());
        assert_eq!(
            c.worker.runtime,
            Runtime::Path("/usr/local/bin/runc".into())
        );
        assert_eq!(c.worker.snapshotter, SnapshotterChoice::Overlay);
        assert_eq!(c.worker.max_parallelism.map(NonZeroUsize::get), Some(3));
        assert!(!c.gc.enabled);
        assert_eq!(c.gc.keep_storage, Some(10_000_000_000));
        assert_eq!(c.gc.keep_duration, Some(Duration::from_secs(48 * 3600)));
    }

    #[test]
    fn empty_file_is_defaults() {
        let c = parse("").unwrap();
        assert_eq!(c, Config::default());
        assert_eq!(c.worker.runtime, Runtime::Runc);
        assert_eq!(c.worker.snapshotter, SnapshotterChoice::Auto);
        assert!(c.gc.enabled);
        assert_eq!(
            parse("[gc]\nkeep-storage = 1024\n")
                .unwrap()
                .gc
                .keep_storage,
            Some(1024)
        );
        assert_eq!(
            parse("[worker]\nruntime = \"crun\"\n")
                .unwrap()
                .worker
                .runtime,
            Runtime::Crun
        );
    }

    #[test]
    fn unknown_key_names_file_line_and_suggestion() {
        let err = parse("[registry.\"docker.io\"]\nmirors = [\"x\"]\n").unwrap_err();
        match &err {
            ConfigError::UnknownKey {
                line, key, hint, ..
            } => {
                assert_eq!((*line, key.as_str()), (2, "mirors"));
                assert_eq!(hint, "; did you mean \"mirrors\"?");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            err.to_string(),
            "cairn.toml:2:1: unknown key \"mirors\"; did you mean \"mirrors\"? (known keys here: mirrors, http, insecure)"
        );
        let err = parse("\n\n[worker]\nmax_parallelism = 2\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with(
                "cairn.toml:4:1: unknown key \"max_parallelism\"; did you mean \"max-parallelism\"?"
            ),
            "{err}"
        );
        let err = parse("[gcc]\n").unwrap_err().to_string();
        assert!(
            err.contains("unknown key \"gcc\"; did you mean \"gc\"?"),
            "{err}"
        );
    }

    #[test]
    fn bad_values_say_what_was_expected() {
        let err = parse("[worker]\nsnapshotter = \"overlayfs\"\n").unwrap_err();
        assert!(
            matches!(&err, ConfigError::UnknownValue { line: 2, .. }),
            "{err:?}"
        );
        assert!(
            err.to_string()
                .contains("expected one of: auto, overlay, copy"),
            "{err}"
        );
        let err = parse("[gc]\nkeep-storage = \"10XB\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("cairn.toml:2:") && err.contains("\"10XB\" is not a size"),
            "{err}"
        );
        let err = parse("[gc]\nkeep-duration = \"2 days\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("is not a duration"), "{err}");
        let err = parse("[worker]\nruntime = \"runcc\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("did you mean \"runc\""), "{err}");
        let err = parse("[worker]\nmax-parallelism = 0\n")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("cairn.toml:2:"), "{err}");
        let err = parse("[worker\n").unwrap_err().to_string();
        assert!(err.starts_with("cairn.toml:1:"), "{err}");
    }

    #[test]
    fn load_distinguishes_default_and_named_files() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("cairn.toml");
        let c = Config::load(&ConfigPath {
            path: missing.clone(),
            explicit: false,
        })
        .unwrap();
        assert_eq!(c, Config::default());
        let err = Config::load(&ConfigPath {
            path: missing.clone(),
            explicit: true,
        })
        .unwrap_err();
        assert!(matches!(err, ConfigError::Read { .. }));
        assert!(err.to_string().contains("cairn.toml"));
        std::fs::write(&missing, "[gc]\nkeep-storage = \"1GB\"\n").unwrap();
        let c = Config::load(&ConfigPath {
            path: missing,
            explicit: false,
        })
        .unwrap();
        assert_eq!(c.gc.keep_storage, Some(1_000_000_000));
    }
}
