//! Definition files to LLB: the Dockerfile parser (with source positions), the shell-word
//! expander, the converter from stages to LLB states, `.dockerignore`, and the image config
//! that travels to the exporter.
//!
//! Must not know how LLB is executed: it only emits definitions.
