//! A decoded definition that keeps, for every op, the bytes it arrived as, their digest,
//! and the decoded op. Digests are always over the received bytes, never a re-encoding:
//! a newer client may send fields this version drops on decode.

use std::collections::BTreeMap;

use prost::Message;

use crate::error::LlbError;
use crate::graph::Graph;
use crate::pb;
use crate::{Digest, pb::OpMetadata};

/// One op: its bytes as received (or as marshalled by the builder), their sha256, and
/// the decoded message.
#[derive(Clone, Debug, PartialEq)]
pub struct LoadedOp {
    raw: Vec<u8>,
    digest: Digest,
    op: pb::Op,
}

impl LoadedOp {
    /// Decodes `raw`, the `index`-th entry of `Definition.def`.
    pub fn decode(index: usize, raw: Vec<u8>) -> Result<LoadedOp, LlbError> {
        let op =
            pb::Op::decode(raw.as_slice()).map_err(|source| LlbError::BadOp { index, source })?;
        let digest = Digest::of_bytes(&raw);
        Ok(LoadedOp { raw, digest, op })
    }

    /// Marshals `op` deterministically (as Go's `Deterministic: true` marshaller does) and
    /// digests the result.
    pub fn from_op(op: pb::Op) -> LoadedOp {
        let raw = op.encode_to_vec();
        let digest = Digest::of_bytes(&raw);
        LoadedOp { raw, digest, op }
    }

    pub fn raw(&self) -> &[u8] {
        &self.raw
    }

    pub fn digest(&self) -> &Digest {
        &self.digest
    }

    pub fn op(&self) -> &pb::Op {
        &self.op
    }

    /// Whether re-encoding the decoded op gives back the received bytes. False when the
    /// sender used fields unknown here or a non-canonical encoding; the digest stays that
    /// of the received bytes either way.
    pub fn is_canonical(&self) -> bool {
        self.op.encode_to_vec() == self.raw
    }
}

/// A decoded `pb.Definition`: the ops in `def` order plus metadata and source maps.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Definition {
    ops: Vec<LoadedOp>,
    metadata: BTreeMap<String, OpMetadata>,
    source: Option<pb::Source>,
}

impl Definition {
    /// Decodes a marshalled `pb.Definition` and every op in it. Only checks that the bytes
    /// decode; [`Definition::validate`] checks the graph.
    pub fn decode(bytes: &[u8]) -> Result<Definition, LlbError> {
        let def = pb::Definition::decode(bytes).map_err(LlbError::BadDefinition)?;
        Definition::from_pb(def)
    }

    /// Decodes the ops of an already decoded wire definition.
    pub fn from_pb(def: pb::Definition) -> Result<Definition, LlbError> {
        let ops = def
            .def
            .into_iter()
            .enumerate()
            .map(|(i, raw)| LoadedOp::decode(i, raw))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Definition {
            ops,
            metadata: def.metadata,
            source: def.source,
        })
    }

    /// Assembles a definition from ops already in `def` order.
    pub fn from_parts(
        ops: Vec<LoadedOp>,
        metadata: BTreeMap<String, OpMetadata>,
        source: Option<pb::Source>,
    ) -> Definition {
        Definition {
            ops,
            metadata,
            source,
        }
    }

    /// The wire form, with every op's bytes exactly as held.
    pub fn to_pb(&self) -> pb::Definition {
        pb::Definition {
            def: self.ops.iter().map(|op| op.raw.clone()).collect(),
            metadata: self.metadata.clone(),
            source: self.source.clone(),
        }
    }

    /// The marshalled `pb.Definition` (what `buildctl build` and `cairn solve` read).
    pub fn to_bytes(&self) -> Vec<u8> {
        self.to_pb().encode_to_vec()
    }

    /// Ops in `def` order; the last is the output marker.
    pub fn ops(&self) -> &[LoadedOp] {
        &self.ops
    }

    /// The metadata entry of the op with this digest.
    pub fn metadata(&self, digest: &Digest) -> Option<&OpMetadata> {
        self.metadata.get(digest.as_str())
    }

    /// All metadata, keyed by digest string as sent.
    pub fn metadata_map(&self) -> &BTreeMap<String, OpMetadata> {
        &self.metadata
    }

    pub fn source(&self) -> Option<&pb::Source> {
        self.source.as_ref()
    }

    /// Checks the graph (see [`Graph`]) and indexes it for the solver.
    pub fn validate(self) -> Result<Graph, LlbError> {
        Graph::new(self)
    }
}
