//! Flags and subcommands (clap derive), following `buildctl` and `docker buildx` names.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use crate::dump_llb::DumpLlbArgs;

#[derive(Debug, Parser)]
#[command(
    name = "cairn",
    version,
    about = "Build container images from Dockerfiles or LLB, without a daemon"
)]
pub struct Cli {
    /// State directory (default: $CAIRN_ROOT, else /var/lib/cairn for root, else $XDG_DATA_HOME/cairn).
    #[arg(
        long,
        global = true,
        value_name = "DIR",
        help_heading = "Global options"
    )]
    pub root: Option<PathBuf>,
    /// Configuration file (default: $CAIRN_CONFIG, else <root>/cairn.toml).
    #[arg(
        long,
        global = true,
        value_name = "FILE",
        help_heading = "Global options"
    )]
    pub config: Option<PathBuf>,
    /// Debug logs on stderr (`RUST_LOG` filters more precisely).
    #[arg(long, global = true, help_heading = "Global options")]
    pub debug: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Build a Dockerfile (like `docker buildx build`).
    Build(crate::args::BuildArgs),
    /// Solve an LLB definition from a file or stdin (like `buildctl build`).
    Solve(crate::args::SolveArgs),
    /// Show what the build cache holds.
    Du(crate::du::DuArgs),
    /// Remove cached results no build is using.
    Prune(crate::du::PruneArgs),
    /// Tools for looking inside builds.
    #[command(subcommand)]
    Debug(DebugCommand),
}

#[derive(Debug, Subcommand)]
pub enum DebugCommand {
    /// Print an LLB definition as JSON lines (like `buildctl debug dump-llb`) or Graphviz.
    DumpLlb(DumpLlbArgs),
}

/// Runs the parsed command. `cancel` fires on Ctrl-C: a command stops its work, cleans
/// up and returns (any error then counts as an interrupt, exit 130).
///
/// This is where `build`, `solve`, `du` and `prune` plug in once they are wired: add the
/// variant to [`Command`] with its args type from [`crate::args`], and an arm here.
pub async fn run(cli: Cli, cancel: CancellationToken) -> anyhow::Result<()> {
    let inputs = crate::root::Inputs::from_process(cli.root.clone(), cli.config.clone());
    let settings = || crate::settings::Settings::resolve(&inputs);
    match cli.command {
        Command::Build(args) => crate::build::build(settings()?, args, cancel).await,
        Command::Solve(args) => crate::build::solve(settings()?, args, cancel).await,
        Command::Du(args) => {
            let s = settings()?;
            crate::signal::blocking_until_cancelled(&cancel, move || crate::du::du(s, args)).await
        }
        Command::Prune(args) => {
            let s = settings()?;
            crate::signal::blocking_until_cancelled(&cancel, move || crate::du::prune(s, args))
                .await
        }
        Command::Debug(DebugCommand::DumpLlb(args)) => {
            crate::signal::blocking_until_cancelled(&cancel, move || crate::dump_llb::run(&args))
                .await
        }
    }
}

/// Logs go to stderr, never stdout, so `-o type=tar,dest=-` output stays clean. `--debug`
/// turns on debug level; `RUST_LOG` chooses precisely and wins over `--debug`; without
/// either only warnings and errors are shown.
pub fn init_logging(debug: bool) {
    let default = if debug { "debug" } else { "warn" };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    // A second init (tests) keeps the first subscriber; that is fine.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(crate::log_writer::LogWriter)
        .try_init();
}
