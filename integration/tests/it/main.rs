//! cairn's end-to-end tests: one binary, one module per topic, all against real parts
//! (see `cairn_integration` for the sandbox they start).

mod deps;
mod registry;
mod lazy_pull;
mod export;
mod pull_bench;
