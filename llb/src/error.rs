//! Why a definition was rejected. Every variant names the op (its digest, or its index in
//! `def` when the bytes could not be decoded) and the field at fault.

use crate::Digest;

/// A definition that cannot be decoded or does not form a valid build graph.
#[derive(Debug, thiserror::Error)]
pub enum LlbError {
    #[error("definition is not a valid pb.Definition")]
    BadDefinition(#[source] prost::DecodeError),

    #[error("def[{index}] is not a valid pb.Op")]
    BadOp {
        index: usize,
        #[source]
        source: prost::DecodeError,
    },

    #[error("definition has {count} op(s); at least 2 are needed (an op and the output marker)")]
    TooFewOps { count: usize },

    #[error("the output marker (last op, {digest}) has no inputs, so the build has no result")]
    TerminalWithoutInputs { digest: Digest },

    #[error("op {digest}: inputs[{input}].digest {value:?} is not a sha256 digest")]
    BadInputDigest {
        digest: Digest,
        input: usize,
        value: String,
    },

    #[error("op {digest}: inputs[{input}] names {target}, which is not an op of this definition")]
    UnknownInput {
        digest: Digest,
        input: usize,
        target: Digest,
    },

    #[error("op {digest}: inputs[{input}].index is {index}; output indices cannot be negative")]
    NegativeInputIndex {
        digest: Digest,
        input: usize,
        index: i64,
    },

    #[error(
        "op {digest}: inputs[{input}] asks for output {index} of {target}, which has {outputs} output(s)"
    )]
    InputOutputOutOfRange {
        digest: Digest,
        input: usize,
        index: i64,
        target: Digest,
        outputs: u64,
    },

    #[error(
        "op {digest} (def[{index}]) has no op kind; only the last op may be a bare output marker"
    )]
    MissingOpKind { digest: Digest, index: usize },

    #[error(
        "op {digest} (def[{index}]) has an op kind this version of cairn does not know (unknown protobuf fields)"
    )]
    UnknownOpKind { digest: Digest, index: usize },

    #[error("op {digest}: {field} is {value}, out of range ({valid})")]
    IndexOutOfRange {
        digest: Digest,
        field: String,
        value: i64,
        valid: String,
    },

    #[error("op {digest}: {field}: {reason}")]
    InvalidField {
        digest: Digest,
        field: String,
        reason: String,
    },

    #[error("ops form a cycle through {digest}")]
    Cycle { digest: Digest },
}

impl LlbError {
    /// The digest of the op at fault, when the error is about one op.
    pub fn digest(&self) -> Option<&Digest> {
        match self {
            LlbError::BadDefinition(_) | LlbError::BadOp { .. } | LlbError::TooFewOps { .. } => {
                None
            }
            LlbError::TerminalWithoutInputs { digest }
            | LlbError::BadInputDigest { digest, .. }
            | LlbError::UnknownInput { digest, .. }
            | LlbError::NegativeInputIndex { digest, .. }
            | LlbError::InputOutputOutOfRange { digest, .. }
            | LlbError::MissingOpKind { digest, .. }
            | LlbError::UnknownOpKind { digest, .. }
            | LlbError::IndexOutOfRange { digest, .. }
            | LlbError::InvalidField { digest, .. }
            | LlbError::Cycle { digest } => Some(digest),
        }
    }
}
