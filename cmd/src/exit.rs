//! Exit codes and how failures map to them. Scripts and CI tell a broken build (1) from a
//! mistyped command (2) from a user interrupt (130, the shell's 128 + SIGINT), so the
//! classification lives in one place and every command returns `anyhow::Error` into it.

use std::io::Write;
use std::process::ExitCode;

/// The process's exit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Success,
    /// The command ran and failed: a step failed, an input was bad, an output could not
    /// be written.
    Failure,
    /// The command line or config was wrong; nothing was attempted.
    Usage,
    /// Ctrl-C: the work was cancelled and cleaned up.
    Interrupted,
}

impl Exit {
    pub fn code(self) -> u8 {
        match self {
            Exit::Success => 0,
            Exit::Failure => 1,
            Exit::Usage => 2,
            Exit::Interrupted => 130,
        }
    }
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> ExitCode {
        ExitCode::from(e.code())
    }
}

/// The command stopped because the user interrupted it.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("interrupted")]
pub struct Interrupted;

/// A usage mistake found after clap's parse (a config file with an unknown key, flags
/// that contradict each other): reported like clap's own errors, with exit code 2.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct UsageError(pub anyhow::Error);

impl UsageError {
    pub fn new(e: impl Into<anyhow::Error>) -> UsageError {
        UsageError(e.into())
    }
}

/// Decides the exit status of a failed command by what is in its error chain.
pub fn classify(err: &anyhow::Error) -> Exit {
    for cause in err.chain() {
        if cause.is::<Interrupted>() {
            return Exit::Interrupted;
        }
        if cause.is::<UsageError>() {
            return Exit::Usage;
        }
    }
    Exit::Failure
}

/// Prints a failed command's error (the whole `{:#}` chain on one line, as `error: a: b:
/// c`) and returns its exit status. An interrupt prints a short line, not a chain.
pub fn report(err: &anyhow::Error, out: &mut dyn Write) -> Exit {
    let exit = classify(err);
    // Nothing more can be done if stderr itself is gone.
    let _ = match exit {
        Exit::Interrupted => writeln!(out, "interrupted"),
        _ => writeln!(out, "error: {}", chain_text(err)),
    };
    exit
}

/// `a: b: c`, leaving out a cause whose text the message before it already contains
/// (errors that quote their source, like a failed step quoting its process's exit).
fn chain_text(err: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

/// The outcome of a command run under [`crate::signal`]'s cancellation: a cancelled token
/// wins over whatever the command returned while it wound down.
pub fn outcome(result: anyhow::Result<()>, interrupted: bool, stderr: &mut dyn Write) -> Exit {
    match result {
        _ if interrupted => report(&anyhow::Error::new(Interrupted), stderr),
        Ok(()) => Exit::Success,
        Err(e) => report(&e, stderr),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn a_cause_quoted_by_its_error_is_not_repeated() {
        let e = anyhow::anyhow!("[2/2] RUN x: exit code: 1").context("failed to solve");
        let mut out = Vec::new();
        report(&e, &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "error: failed to solve: [2/2] RUN x: exit code: 1\n"
        );
    }

    #[test]
    fn classifies_by_the_chain() {
        let failed: anyhow::Error = anyhow::anyhow!("exit code: 1").context("[2/3] RUN make");
        assert_eq!(classify(&failed), Exit::Failure);
        let usage = anyhow::Error::new(UsageError::new(anyhow::anyhow!("unknown key")))
            .context("loading config");
        assert_eq!(classify(&usage), Exit::Usage);
        let int = Err::<(), _>(Interrupted).context("solving").unwrap_err();
        assert_eq!(classify(&int), Exit::Interrupted);
        assert_eq!(
            [Exit::Success, Exit::Failure, Exit::Usage, Exit::Interrupted].map(Exit::code),
            [0, 1, 2, 130]
        );
    }

    #[test]
    fn report_prints_the_chain_on_one_line() {
        let mut out = Vec::new();
        let e = anyhow::anyhow!("exit code: 1").context("[2/3] RUN make");
        assert_eq!(report(&e, &mut out), Exit::Failure);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "error: [2/3] RUN make: exit code: 1\n"
        );
        let mut out = Vec::new();
        assert_eq!(
            outcome(Err(anyhow::anyhow!("cancelled")), true, &mut out),
            Exit::Interrupted
        );
        assert_eq!(String::from_utf8(out).unwrap(), "interrupted\n");
        assert_eq!(outcome(Ok(()), false, &mut Vec::new()), Exit::Success);
    }
}
