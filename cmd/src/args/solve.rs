//! `cairn solve [flags] DEFINITION|-`: run a marshalled LLB `pb.Definition`, as
//! `buildctl build` does with a definition on stdin.

use std::path::PathBuf;

use super::OutputArg;
use super::build::CommonSolveFlags;

/// Solve an LLB definition (a marshalled pb.Definition, as BuildKit clients produce).
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
#[command(after_help = "Example:\n  go run ./mkllb | cairn solve -o type=tar,dest=out.tar -")]
pub struct SolveArgs {
    /// Where the result goes (the same SPECs as `cairn build -o`).
    #[arg(short = 'o', long = "output", value_name = "SPEC", value_parser = OutputArg::parse)]
    pub outputs: Vec<OutputArg>,

    #[command(flatten)]
    pub common: CommonSolveFlags,

    /// The definition file; `-` reads stdin.
    #[arg(value_name = "DEFINITION")]
    pub definition: PathBuf,
}

impl SolveArgs {
    /// Whether the definition comes from stdin.
    pub fn reads_stdin(&self) -> bool {
        self.definition.as_os_str() == "-"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::ProgressMode;
    use clap::FromArgMatches;

    fn solve(args: &[&str]) -> Result<SolveArgs, clap::Error> {
        let mut full = vec!["solve"];
        full.extend_from_slice(args);
        let m = crate::args::build::tests::parse(&full)?;
        let (_, sub) = m.subcommand().expect("solve subcommand");
        SolveArgs::from_arg_matches(sub)
    }

    #[test]
    fn parses_definition_and_flags() {
        let a = solve(&[
            "-o",
            "type=tar,dest=-",
            "--progress",
            "rawjson",
            "--no-cache",
            "-",
        ])
        .unwrap();
        assert!(a.reads_stdin());
        assert_eq!(a.outputs[0].as_str(), "type=tar,dest=-");
        assert_eq!(a.common.progress, ProgressMode::Rawjson);
        assert!(a.common.no_cache);
        assert!(!solve(&["def.pb"]).unwrap().reads_stdin());
        assert_eq!(solve(&[]).unwrap_err().exit_code(), 2);
        assert_eq!(solve(&["--progress", "x", "-"]).unwrap_err().exit_code(), 2);
    }
}
