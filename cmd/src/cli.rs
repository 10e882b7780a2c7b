//! Flags and subcommands (clap derive), following `buildctl` and `docker buildx` names.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::dump_llb::DumpLlbArgs;

#[derive(Debug, Parser)]
#[command(
    name = "cairn",
    version,
    about = "Build container images from Dockerfiles or LLB, without a daemon"
)]
pub struct Cli {
    /// State directory (default: $CAIRN_ROOT, else /var/lib/cairn for root, else $XDG_DATA_HOME/cairn).
    #[arg(long, global = true, value_name = "DIR")]
    pub root: Option<PathBuf>,
    /// Configuration file (default: $CAIRN_CONFIG, else <root>/cairn.toml).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Verbose logs on stderr.
    #[arg(long, global = true)]
    pub debug: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Tools for looking inside builds.
    #[command(subcommand)]
    Debug(DebugCommand),
}

#[derive(Debug, Subcommand)]
pub enum DebugCommand {
    /// Print an LLB definition as JSON lines (like `buildctl debug dump-llb`) or Graphviz.
    DumpLlb(DumpLlbArgs),
}

pub fn run(cli: Cli) -> anyhow::Result<()> {
    if cli.debug {
        init_logging();
    }
    match cli.command {
        Command::Debug(DebugCommand::DumpLlb(args)) => crate::dump_llb::run(&args),
    }
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("debug"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
