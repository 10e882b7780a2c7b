//! Definition files to LLB: the Dockerfile parser (with source positions), the shell-word
//! expander, the converter from stages to LLB states, `.dockerignore`, and the image config
//! that travels to the exporter.
//!
//! Must not know how LLB is executed: it only emits definitions.
//!
//! The layers, each usable on its own:
//! - [`parser::parse`]: text to [`parser::Dockerfile`] nodes (directives, continuations,
//!   heredocs, JSON vs shell form, ranges);
//! - [`instructions::parse_dockerfile`]: nodes to typed [`instructions::Stage`]s with
//!   checked flags;
//! - [`shell::Lex`]: Docker's word expansion;
//! - [`convert::convert`]: a Dockerfile to an LLB [`cairn_llb::Definition`] plus the
//!   [`convert::Image`] config, looking base images up through a [`convert::ImageResolver`];
//! - [`dockerignore`]: ignore files and Docker's matcher.
//!
//! Every failure is an [`Error`] carrying its [`Range`]; [`Error::render`] prints it with
//! the offending line and a caret.

pub mod convert;
pub mod dockerignore;
pub mod error;
pub mod instructions;
pub mod parser;
pub mod position;
pub mod shell;
pub mod suggest;

pub use error::{Error, ErrorKind};
pub use position::{Position, Range};
