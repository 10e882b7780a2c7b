//! `--progress auto|tty|plain|rawjson|quiet`.

/// What the user asked for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum ProgressMode {
    /// tty when stderr is a terminal, plain otherwise.
    #[default]
    Auto,
    /// Live bars, one line per running step; finished steps collapse.
    Tty,
    /// BuildKit's `#N` lines; every line of step output, for logs and CI.
    Plain,
    /// One JSON object per progress event (BuildKit's SolveStatus), for programs.
    Rawjson,
    /// Only the result and errors.
    Quiet,
}

/// The renderer actually used, once `auto` is decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RenderMode {
    Tty,
    Plain,
    Rawjson,
    Quiet,
}

impl ProgressMode {
    /// Decides `auto`: bars only make sense when a person watches a terminal.
    pub fn resolve(self, stderr_is_terminal: bool) -> RenderMode {
        match self {
            ProgressMode::Auto if stderr_is_terminal => RenderMode::Tty,
            ProgressMode::Auto => RenderMode::Plain,
            ProgressMode::Tty => RenderMode::Tty,
            ProgressMode::Plain => RenderMode::Plain,
            ProgressMode::Rawjson => RenderMode::Rawjson,
            ProgressMode::Quiet => RenderMode::Quiet,
        }
    }

    /// [`ProgressMode::resolve`] against this process's stderr.
    pub fn resolve_for_stderr(self) -> RenderMode {
        use std::io::IsTerminal;
        self.resolve(std::io::stderr().is_terminal())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_depends_on_the_terminal() {
        assert_eq!(ProgressMode::Auto.resolve(true), RenderMode::Tty);
        assert_eq!(ProgressMode::Auto.resolve(false), RenderMode::Plain);
        assert_eq!(ProgressMode::Tty.resolve(false), RenderMode::Tty);
        assert_eq!(ProgressMode::Plain.resolve(true), RenderMode::Plain);
        assert_eq!(ProgressMode::Rawjson.resolve(true), RenderMode::Rawjson);
        assert_eq!(ProgressMode::Quiet.resolve(true), RenderMode::Quiet);
    }
}
