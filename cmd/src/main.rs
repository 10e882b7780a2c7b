//! The `cairn` command line: parses flags, runs one subcommand, and maps failures to exit
//! codes (1: the command failed, e.g. bad input; 2: bad usage, reported by clap).

mod cli;
mod dump_llb;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    match cli::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(1)
        }
    }
}
