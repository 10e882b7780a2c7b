//! Test support for cairn's end-to-end tests: real parts, started and torn down per test.
//!
//! A `docker-registry` on a free loopback port, busybox and multi-layer images built from
//! Debian's `busybox-static` as real OCI blobs, and helpers to push them.
