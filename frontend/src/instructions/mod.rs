//! Typed instructions and stages: the parser's nodes checked against each instruction's
//! arguments and flags. Variables are still unexpanded here; the converter expands the words
//! Docker expands, in the scope it expands them.

mod duration;
mod flags;
mod mount;
mod parse;

use serde::Serialize;

pub use duration::parse_go_duration;
pub use mount::{Mount, MountType, Sharing, mount_from, parse_mount};
pub use parse::{INSTRUCTIONS, Parsed, parse_dockerfile, parse_node};

use crate::position::Range;

/// `KEY=VALUE` of `ENV` and `LABEL`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyValuePair {
    pub key: String,
    pub value: String,
    /// Written in the legacy `KEY VALUE` form.
    pub no_delim: bool,
}

/// One name of an `ARG`, with its default.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ArgDef {
    pub key: String,
    pub value: Option<String>,
}

/// A heredoc body given to a `RUN` shell.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ShellInlineFile {
    pub name: String,
    pub data: String,
    pub chomp: bool,
}

/// A command line in shell or exec form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CmdLine {
    pub args: Vec<String>,
    pub files: Vec<ShellInlineFile>,
    /// Shell form: the stage's `SHELL` is put in front.
    pub prepend_shell: bool,
}

/// `RUN --network`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NetworkMode {
    Default,
    None,
    Host,
}

/// `RUN --security`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Security {
    Sandbox,
    Insecure,
}

/// `RUN`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunCommand {
    pub cmd: CmdLine,
    /// `--mount` values as written; parsed with [`parse_mount`] once variables are known.
    pub mounts: Vec<String>,
    pub network: NetworkMode,
    pub security: Security,
}

/// A heredoc used as a `COPY`/`ADD` source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SourceContent {
    /// The heredoc name, used as the file name.
    pub path: String,
    pub data: String,
    /// Whether variables in `data` are expanded.
    pub expand: bool,
}

/// Sources and destination of `COPY`/`ADD`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SourcesAndDest {
    pub dest: String,
    pub sources: Vec<String>,
    pub contents: Vec<SourceContent>,
}

/// `COPY`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CopyCommand {
    pub paths: SourcesAndDest,
    pub from: Option<String>,
    pub chown: Option<String>,
    pub chmod: Option<String>,
    pub link: bool,
    pub parents: bool,
    pub excludes: Vec<String>,
}

/// `ADD`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AddCommand {
    pub paths: SourcesAndDest,
    pub chown: Option<String>,
    pub chmod: Option<String>,
    pub link: bool,
    pub keep_git_dir: Option<bool>,
    pub checksum: Option<String>,
    pub unpack: Option<bool>,
    pub excludes: Vec<String>,
}

/// `HEALTHCHECK`, durations in nanoseconds as in the image config.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Healthcheck {
    /// `["NONE"]`, `["CMD", …]` or `["CMD-SHELL", cmd]`.
    pub test: Vec<String>,
    pub interval: i64,
    pub timeout: i64,
    pub start_period: i64,
    pub start_interval: i64,
    pub retries: i64,
}

/// Every instruction that can follow `FROM`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Instruction {
    Run(RunCommand),
    Cmd(CmdLine),
    Entrypoint(CmdLine),
    Env(Vec<KeyValuePair>),
    Label(Vec<KeyValuePair>),
    Arg(Vec<ArgDef>),
    Expose(Vec<String>),
    Workdir(String),
    User(String),
    Volume(Vec<String>),
    StopSignal(String),
    Healthcheck(Healthcheck),
    Shell(Vec<String>),
    /// The trigger instruction, as source text.
    Onbuild(String),
    Copy(CopyCommand),
    Add(AddCommand),
    Maintainer(String),
}

/// An instruction with where it came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Command {
    pub instruction: Instruction,
    /// The instruction as written, trimmed (BuildKit's `String()` of a command).
    pub code: String,
    /// The instruction name as written.
    pub name: String,
    pub range: Range,
}

/// A build stage: `FROM` and what follows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Stage {
    /// `AS name`, lower-cased.
    pub name: Option<String>,
    /// The base as written (unexpanded).
    pub base_name: String,
    pub platform: Option<String>,
    /// The `FROM` line, trimmed.
    pub source_code: String,
    pub commands: Vec<Command>,
    pub range: Range,
}

/// A Dockerfile as stages plus the `ARG`s before the first `FROM`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Stages {
    pub meta_args: Vec<(Vec<ArgDef>, Range)>,
    pub stages: Vec<Stage>,
}
