//! The build language of cairn: LLB, wire-compatible with BuildKit.
//!
//! Op types for every LLB op, the protobuf encoding of BuildKit's `pb.Definition`
//! (decoded bytes are kept next to their digest, never re-encoded to digest), validation
//! of untrusted definitions, a builder API in the spirit of BuildKit's `llb.State`, and
//! JSON/DOT dumps.
//!
//! Must not know about files, caches or processes: it describes work, it never does any.
//!
//! The key types, in the order data flows through them:
//! - [`pb`]: the wire messages (`pb::Op`, `pb::ExecOp`, … `pb::Definition`);
//! - [`Definition`]: a decoded definition, each op kept as [`LoadedOp`]
//!   (received bytes, their [`Digest`], the decoded `pb::Op`);
//! - [`Graph`]: a validated definition the solver loads (ops by digest, topological
//!   order, the target [`Edge`], BuildKit-style vertex names); failures are [`LlbError`];
//! - [`builder`]: `image`, `local`, `scratch`, `State::run`, `State::file`, `merge`,
//!   `diff`, then `State::marshal` → [`Definition`];
//! - [`dump`]: `buildctl debug dump-llb`-shaped JSON lines and Graphviz.

pub mod builder;
pub mod definition;
pub mod digest;
pub mod dump;
pub mod error;
pub mod go;
pub mod graph;
pub mod pb;

pub use definition::{Definition, LoadedOp};
pub use digest::{Digest, DigestError, Hasher};
pub use error::LlbError;
pub use graph::{Edge, Graph};
