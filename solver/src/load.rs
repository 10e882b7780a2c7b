//! Loading a validated LLB graph into a [`VertexGraph`]: the seam between the build
//! language and the engine. Each LLB op becomes a vertex with the digest of its raw
//! bytes, its display name, `ignore_cache` and progress group from its metadata, and an
//! [`Op`] made by the caller (who knows the cache, the snapshotter and the executor).

use std::sync::Arc;

use cairn_llb::definition::LoadedOp;
use cairn_llb::{Digest, Graph};

use crate::error::OpError;
use crate::graph::{Edge, GraphError, ProgressGroup, Vertex, VertexGraph};
use crate::op::Op;

/// Why an LLB graph could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The op factory refused an op (an op kind this build cannot run).
    #[error("cannot run op {digest} ({name})")]
    Op {
        digest: Digest,
        name: String,
        #[source]
        source: OpError,
    },
    /// An input refers to an op that is not before it in topological order, or to an
    /// output index beyond what the engine addresses.
    #[error("op {digest} has input {input} ({input_digest}, output {index}) that cannot be loaded")]
    Input {
        digest: Digest,
        input: usize,
        input_digest: Digest,
        index: u64,
    },
    #[error(transparent)]
    Graph(#[from] GraphError),
}

/// Builds the vertex graph of `graph` and returns it with the edge to solve.
/// `make_op` is called once per distinct op, inputs before consumers.
pub fn load_llb<F>(graph: &Graph, mut make_op: F) -> Result<(VertexGraph, Edge), LoadError>
where
    F: FnMut(&LoadedOp) -> Result<Arc<dyn Op>, OpError>,
{
    let mut vg = VertexGraph::new();
    for op in graph.topological() {
        let digest = op.digest().clone();
        let name = graph
            .vertex_name(&digest)
            .map_or_else(|| digest.to_string(), str::to_owned);
        let mut inputs = Vec::new();
        for (i, e) in graph.inputs(&digest).unwrap_or_default().iter().enumerate() {
            let bad = || LoadError::Input {
                digest: digest.clone(),
                input: i,
                input_digest: e.digest.clone(),
                index: e.index,
            };
            let vertex = vg.by_digest(&e.digest).ok_or_else(bad)?;
            let output = u32::try_from(e.index).map_err(|_| bad())?;
            inputs.push(Edge { vertex, output });
        }
        let meta = graph.metadata(&digest);
        let made = make_op(op).map_err(|source| LoadError::Op {
            digest: digest.clone(),
            name: name.clone(),
            source,
        })?;
        vg.add(Vertex {
            digest,
            op: made,
            inputs,
            name,
            ignore_cache: meta.is_some_and(|m| m.ignore_cache),
            progress_group: meta
                .and_then(|m| m.progress_group.as_ref())
                .map(|p| ProgressGroup {
                    id: p.id.clone(),
                    name: p.name.clone(),
                    weak: p.weak,
                }),
        })?;
    }
    let target = graph.target();
    let vertex = vg
        .by_digest(&target.digest)
        .ok_or_else(|| LoadError::Input {
            digest: graph.terminal().digest().clone(),
            input: 0,
            input_digest: target.digest.clone(),
            index: target.index,
        })?;
    let output = u32::try_from(target.index).map_err(|_| LoadError::Input {
        digest: graph.terminal().digest().clone(),
        input: 0,
        input_digest: target.digest.clone(),
        index: target.index,
    })?;
    Ok((vg, Edge { vertex, output }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::op::{CacheMap, ExecCtx, OpCtx};
    use crate::result::ResultRef;
    use futures::FutureExt;
    use futures::future::BoxFuture;

    /// Stands in for the real op implementations: the loader never runs ops.
    struct Inert;

    impl Op for Inert {
        fn cache_map<'a>(&'a self, _ctx: &'a OpCtx) -> BoxFuture<'a, Result<CacheMap, OpError>> {
            async { Ok(CacheMap::default()) }.boxed()
        }
        fn exec<'a>(
            &'a self,
            _ctx: &'a ExecCtx,
            _inputs: Vec<ResultRef>,
        ) -> BoxFuture<'a, Result<Vec<ResultRef>, OpError>> {
            async { Err(OpError::failed("inert")) }.boxed()
        }
    }

    fn testdata(name: &str) -> Graph {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/testdata/llb/");
        let bytes = std::fs::read(format!("{path}{name}.pb")).expect("BuildKit-made testdata");
        cairn_llb::Definition::decode(&bytes)
            .expect("decodes")
            .validate()
            .expect("valid")
    }

    #[test]
    fn buildkit_definitions_load_with_names_inputs_and_metadata() {
        let g = testdata("a");
        let (vg, target) = load_llb(&g, |_| Ok(Arc::new(Inert))).expect("loads");
        assert_eq!(vg.len(), g.len());
        let t = vg.vertex(target.vertex).expect("target");
        assert_eq!(t.name, "[3/3] COPY file.txt /file.txt");
        assert_eq!(t.inputs.len(), 2);
        let names: Vec<&str> = t
            .inputs
            .iter()
            .filter_map(|e| vg.vertex(e.vertex))
            .map(|v| v.name.as_str())
            .collect();
        assert_eq!(
            names,
            ["[2/3] RUN echo hi > /hi", "[internal] load build context"]
        );

        let g = testdata("diffmerge");
        let (vg, target) = load_llb(&g, |_| Ok(Arc::new(Inert))).expect("loads");
        let t = vg.vertex(target.vertex).expect("target");
        assert!(
            t.ignore_cache,
            "the last exec of diffmerge ignores the cache"
        );
    }

    #[test]
    fn a_refused_op_is_named() {
        let g = testdata("a");
        let err = load_llb(&g, |op| match op.op().op {
            Some(cairn_llb::pb::OpKind::Exec(_)) => Err(OpError::failed("no runtime")),
            _ => Ok(Arc::new(Inert)),
        })
        .expect_err("exec refused");
        assert!(err.to_string().contains("[2/3] RUN echo hi > /hi"), "{err}");
    }
}
