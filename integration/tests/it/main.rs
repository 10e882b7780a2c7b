//! cairn's end-to-end tests: one binary, one module per topic, all against real parts
//! (see `cairn_integration` for the sandbox they start).

mod build;
mod build_cli;
mod build_diff;
mod build_exec;
mod build_frontend;
mod cache_bench;
mod deps;
mod export;
mod lazy_pull;
mod peer_bench;
mod pull_bench;
mod registry;
mod remote_cache;
