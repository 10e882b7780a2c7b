//! The vertex graph a solve runs: the LLB loader (or a test) adds vertices inputs-first,
//! so the graph is acyclic by construction and indices are a topological order.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use cairn_llb::Digest;
use petgraph::graph::{DiGraph, NodeIndex};
use serde::{Deserialize, Serialize};

use crate::op::Op;

/// A vertex in a [`VertexGraph`].
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VertexId(NodeIndex<u32>);

impl VertexId {
    /// Dense index, `0..graph.len()`.
    pub fn index(self) -> usize {
        self.0.index()
    }

    /// The id of the vertex at dense index `i` (ids are dense: see [`VertexId::index`]).
    pub(crate) fn from_index(i: usize) -> VertexId {
        VertexId(NodeIndex::new(i))
    }
}

impl fmt::Debug for VertexId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "v{}", self.0.index())
    }
}

/// One output of one vertex: what an input refers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Edge {
    pub vertex: VertexId,
    pub output: u32,
}

/// BuildKit's `pb.ProgressGroup`: steps shown together in the progress UI.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProgressGroup {
    pub id: String,
    pub name: String,
    pub weak: bool,
}

/// The input the loader fills for each op of a definition.
#[derive(Clone)]
pub struct Vertex {
    /// The digest of the op's raw definition bytes.
    pub digest: Digest,
    pub op: Arc<dyn Op>,
    pub inputs: Vec<Edge>,
    /// What the user sees, e.g. `[stage-2 3/5] RUN make`.
    pub name: String,
    /// Run even when a cached result exists (`--no-cache-filter`, `llb.IgnoreCache`).
    pub ignore_cache: bool,
    pub progress_group: Option<ProgressGroup>,
}

impl fmt::Debug for Vertex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Vertex")
            .field("digest", &self.digest)
            .field("name", &self.name)
            .field("inputs", &self.inputs)
            .field("ignore_cache", &self.ignore_cache)
            .finish_non_exhaustive()
    }
}

/// Why a vertex cannot be added.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GraphError {
    #[error("vertex {digest} ({name}) refers to input {input:?}, which is not in the graph yet")]
    UnknownInput {
        digest: Digest,
        name: String,
        input: VertexId,
    },
}

/// A DAG of vertices, deduplicated by digest.
#[derive(Default)]
pub struct VertexGraph {
    graph: DiGraph<Vertex, u32, u32>,
    by_digest: HashMap<Digest, VertexId>,
}

impl VertexGraph {
    pub fn new() -> VertexGraph {
        VertexGraph::default()
    }

    /// Adds `v`, whose inputs must already be in the graph. A vertex with a digest that
    /// is already present is not added twice: the existing id is returned.
    pub fn add(&mut self, v: Vertex) -> Result<VertexId, GraphError> {
        if let Some(id) = self.by_digest.get(&v.digest) {
            return Ok(*id);
        }
        for e in &v.inputs {
            if self.graph.node_weight(e.vertex.0).is_none() {
                return Err(GraphError::UnknownInput {
                    digest: v.digest.clone(),
                    name: v.name.clone(),
                    input: e.vertex,
                });
            }
        }
        let digest = v.digest.clone();
        let inputs: Vec<Edge> = v.inputs.clone();
        let id = VertexId(self.graph.add_node(v));
        for (slot, e) in inputs.iter().enumerate() {
            self.graph
                .add_edge(e.vertex.0, id.0, u32::try_from(slot).unwrap_or(u32::MAX));
        }
        self.by_digest.insert(digest, id);
        Ok(id)
    }

    pub fn vertex(&self, id: VertexId) -> Option<&Vertex> {
        self.graph.node_weight(id.0)
    }

    pub fn by_digest(&self, d: &Digest) -> Option<VertexId> {
        self.by_digest.get(d).copied()
    }

    pub fn len(&self) -> usize {
        self.graph.node_count()
    }

    pub fn is_empty(&self) -> bool {
        self.graph.node_count() == 0
    }

    /// The petgraph view, for DOT dumps and graph algorithms. Edges point from an input
    /// to its consumer and carry the input slot.
    pub fn petgraph(&self) -> &DiGraph<Vertex, u32, u32> {
        &self.graph
    }
}

impl fmt::Debug for VertexGraph {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VertexGraph")
            .field("vertices", &self.graph.node_count())
            .finish()
    }
}
