//! The `cairn` command line: flags and their typed values, the state root and config
//! file, the progress display, and the mapping of failures to exit codes.
//!
//! It knows the other crates only through their public APIs (DESIGN.md: `cmd → frontend,
//! solver`); it never reaches into the cache or snapshot layers. Everything a user types
//! is validated here, before any work starts, with a message that says what was expected.
//!
//! Key types: [`cli::Cli`] (the parsed command line), [`args::BuildArgs`] and
//! [`args::SolveArgs`], [`config::Config`], [`root::StateRoot`], [`progress::Model`] and
//! its renderers, and [`exit::classify`] for exit codes.

pub mod args;
pub mod build;
pub mod cache_io;
pub mod cli;
pub mod config;
pub mod du;
pub mod dump_llb;
pub mod exit;
pub mod log_writer;
pub mod progress;
pub mod root;
pub mod settings;
pub mod signal;
pub mod suggest;
pub mod units;
