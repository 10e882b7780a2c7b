//! The frontend's error: what went wrong, where in which file, and a near spelling if one
//! exists. [`Error::render`] prints it the way a compiler would: file, line and column, the
//! offending line and a caret under the offending part.

use crate::position::Range;
use crate::shell::WordError;

/// What went wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ErrorKind {
    #[error("the Dockerfile cannot be empty")]
    Empty,
    #[error("file with no instructions")]
    NoInstructions,
    #[error("invalid escape token '{0}' does not match ` or \\")]
    InvalidEscapeToken(String),
    #[error("only one {0} parser directive can be used")]
    DuplicateDirective(String),
    #[error("unterminated heredoc {0:?}")]
    UnterminatedHeredoc(String),
    #[error("{instruction} cannot accept a heredoc as {role}")]
    BadHeredoc {
        instruction: String,
        role: &'static str,
    },
    #[error("when using JSON array syntax, arrays must be comprised of strings only")]
    JsonNotStrings,
    #[error("{instruction} requires the arguments to be in JSON form")]
    JsonRequired { instruction: String },
    #[error("unknown instruction: {0}")]
    UnknownInstruction(String),
    #[error("unknown flag: --{flag}")]
    UnknownFlag { flag: String },
    #[error("duplicate flag specified: --{0}")]
    DuplicateFlag(String),
    #[error("missing a value on flag: --{0}")]
    FlagMissingValue(String),
    #[error("expecting boolean value for flag --{flag}, not: {value}")]
    FlagNotBool { flag: String, value: String },
    #[error("arg should start with -- : {0}")]
    FlagSyntax(String),
    #[error("{0}")]
    Arguments(String),
    #[error(
        "invalid name for build stage: {0:?}, name can't start with a number or contain symbols"
    )]
    InvalidStageName(String),
    #[error("no build stage in current context: {instruction} must come after FROM")]
    InstructionBeforeFrom { instruction: String },
    #[error("dockerfile contains no stages to build: a build starts with FROM")]
    NoStages,
    #[error(transparent)]
    Expansion(#[from] WordError),
    #[error("invalid value {value:?} for {what}")]
    InvalidValue { what: String, value: String },
    #[error("{0}")]
    Mount(String),
    #[error(
        "stage {name:?} is not defined: it is neither a build stage nor a resolvable image ({reason})"
    )]
    UndefinedStage { name: String, reason: String },
    #[error("invalid stage index {0}")]
    StageIndex(usize),
    #[error(
        "cannot copy from stage {from:?}, it needs to be defined before current stage {current:?}"
    )]
    StageOrder { from: String, current: String },
    #[error("target stage {0:?} could not be found")]
    TargetNotFound(String),
    #[error("circular dependency detected on stage: {0}")]
    CircularDependency(String),
    #[error(
        "variable expansion is not supported for --from, define a new stage with FROM using ARG from global scope as a workaround"
    )]
    FromExpansion,
    #[error("base name ({0}) should not be blank")]
    BlankBaseName(String),
    #[error("failed to parse image reference {reference:?}: {reason}")]
    InvalidReference { reference: String, reason: String },
    #[error("failed to resolve image {reference:?}: {reason}")]
    ImageResolve { reference: String, reason: String },
    #[error("failed to parse image config of {reference:?}: {reason}")]
    ImageConfig { reference: String, reason: String },
    #[error("{0} is not supported yet")]
    Unsupported(String),
    #[error("invalid .dockerignore pattern {pattern:?}: {reason}")]
    IgnorePattern { pattern: String, reason: String },
    #[error("reading {path}: {reason}")]
    Io {
        path: std::path::PathBuf,
        reason: String,
    },
    #[error("building LLB: {0}")]
    Llb(String),
}

/// A frontend error with its location and an optional "did you mean" suggestion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    /// What went wrong (boxed: errors travel through every parser function's `Result`).
    pub kind: Box<ErrorKind>,
    /// Where, when known.
    pub range: Option<Range>,
    /// A near spelling of the offending word.
    pub suggestion: Option<String>,
    /// The file name shown in messages (`Dockerfile` unless told otherwise).
    pub file: String,
}

impl Error {
    /// An error without a location yet.
    pub fn new(kind: ErrorKind) -> Self {
        Self {
            kind: Box::new(kind),
            range: None,
            suggestion: None,
            file: "Dockerfile".to_string(),
        }
    }

    /// Sets the location unless a more precise one was set already.
    pub fn at(mut self, range: Range) -> Self {
        if self.range.is_none() {
            self.range = Some(range);
        }
        self
    }

    /// Replaces the location.
    pub fn at_exactly(mut self, range: Range) -> Self {
        self.range = Some(range);
        self
    }

    /// Adds a suggestion.
    pub fn suggest(mut self, suggestion: Option<String>) -> Self {
        if suggestion.is_some() {
            self.suggestion = suggestion;
        }
        self
    }

    /// Names the file shown in messages.
    pub fn in_file(mut self, file: &str) -> Self {
        file.clone_into(&mut self.file);
        self
    }

    /// The message with file, line, column, the source line, a caret and the suggestion:
    ///
    /// ```text
    /// error: unknown instruction: RUNN
    ///  --> Dockerfile:2:1
    ///   |
    /// 2 | RUNN echo hi
    ///   | ^^^^
    ///   = help: did you mean RUN?
    /// ```
    pub fn render(&self, source: &str) -> String {
        let mut out = format!("error: {}\n", self.kind);
        if let Some(range) = self.range {
            let line_no = range.start.line;
            out.push_str(&format!(
                " --> {}:{}:{}\n",
                self.file, line_no, range.start.column
            ));
            if let Some(text) = source.lines().nth(line_no.saturating_sub(1)) {
                let text = text.trim_end_matches('\r');
                let gutter = " ".repeat(line_no.to_string().len());
                let start = range.start.column.max(1);
                let width = text.chars().count();
                let end = if range.end.line == line_no && range.end.column >= start {
                    range.end.column
                } else {
                    width.max(start)
                };
                let pad: String = text
                    .chars()
                    .take(start - 1)
                    .map(|c| if c == '\t' { '\t' } else { ' ' })
                    .collect();
                out.push_str(&format!(
                    "{gutter} |\n{line_no} | {text}\n{gutter} | {pad}{}\n",
                    "^".repeat(end - start + 1)
                ));
            }
        }
        if let Some(s) = &self.suggestion {
            out.push_str(&format!("  = help: did you mean {s}?\n"));
        }
        out
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(r) = self.range {
            write!(f, "{}:{}:{}: ", self.file, r.start.line, r.start.column)?;
        }
        write!(f, "{}", self.kind)?;
        if let Some(s) = &self.suggestion {
            write!(f, " (did you mean {s}?)")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.kind.source()
    }
}

impl From<ErrorKind> for Error {
    fn from(kind: ErrorKind) -> Self {
        Self::new(kind)
    }
}

impl From<WordError> for Error {
    fn from(e: WordError) -> Self {
        Self::new(ErrorKind::Expansion(e))
    }
}

/// Shorthand for results in this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
