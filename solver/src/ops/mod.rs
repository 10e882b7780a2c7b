//! Op implementations.

pub mod file;
