//! `State::marshal`: the graph behind a state as a `Definition`, ops in the order the Go
//! client emits them (depth-first, inputs before consumers, each digest once), then the
//! output marker with BuildKit's capability metadata.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use crate::definition::{Definition, LoadedOp};
use crate::pb::{self, OpMetadata};

use super::caps;
use super::state::{State, Vertex};

/// Go client's `mergeMetadata`: flags OR, maps union (later wins), options replaced.
fn merge_metadata(into: &mut OpMetadata, from: &OpMetadata) {
    into.ignore_cache |= from.ignore_cache;
    into.description
        .extend(from.description.iter().map(|(k, v)| (k.clone(), v.clone())));
    into.caps
        .extend(from.caps.iter().map(|(k, v)| (k.clone(), *v)));
    if from.export_cache.is_some() {
        into.export_cache = from.export_cache.clone();
    }
    if from.progress_group.is_some() {
        into.progress_group = from.progress_group.clone();
    }
    if from.linux_resources.is_some() {
        into.linux_resources = from.linux_resources.clone();
    }
}

impl State {
    /// The definition that builds this state. Scratch yields a definition without ops
    /// (which, as in BuildKit, has nothing to solve).
    pub fn marshal(&self) -> Definition {
        let Some(target) = &self.output else {
            return Definition::default();
        };
        let mut ops: Vec<LoadedOp> = Vec::new();
        let mut metadata: BTreeMap<String, OpMetadata> = BTreeMap::new();
        let mut emitted: HashSet<crate::Digest> = HashSet::new();
        let mut visited: HashSet<*const Vertex> = HashSet::new();

        // Iterative post-order, so deep chains do not exhaust the stack.
        let mut stack: Vec<(Arc<Vertex>, usize)> = vec![(target.vertex.clone(), 0)];
        while let Some((vertex, next)) = stack.last_mut() {
            if let Some(input) = vertex.inputs.get(*next) {
                *next += 1;
                let child = input.vertex.clone();
                if !visited.contains(&Arc::as_ptr(&child)) {
                    stack.push((child, 0));
                }
                continue;
            }
            let vertex = vertex.clone();
            stack.pop();
            if !visited.insert(Arc::as_ptr(&vertex)) {
                continue;
            }
            let digest = vertex.op.digest().clone();
            merge_metadata(
                metadata.entry(digest.to_string()).or_default(),
                &vertex.metadata,
            );
            if emitted.insert(digest) {
                ops.push(vertex.op.clone());
            }
        }

        let terminal = LoadedOp::from_op(pb::Op {
            inputs: vec![target.to_input()],
            ..Default::default()
        });
        let mut md = metadata
            .remove(terminal.digest().as_str())
            .unwrap_or_default();
        md.caps = BTreeMap::from([
            (caps::CONSTRAINTS.to_owned(), true),
            (caps::PLATFORM.to_owned(), true),
        ]);
        for m in metadata.values() {
            if m.ignore_cache {
                md.caps.insert(caps::META_IGNORE_CACHE.to_owned(), true);
            }
            if !m.description.is_empty() {
                md.caps.insert(caps::META_DESCRIPTION.to_owned(), true);
            }
            if m.export_cache.is_some() {
                md.caps.insert(caps::META_EXPORT_CACHE.to_owned(), true);
            }
        }
        // The Go client's source-map collector records every op, with no locations
        // unless a frontend attached some; the entries are part of the bytes.
        let source = pb::Source {
            locations: ops
                .iter()
                .map(|op| (op.digest().to_string(), pb::Locations::default()))
                .collect(),
            infos: Vec::new(),
        };
        metadata.insert(terminal.digest().to_string(), md);
        ops.push(terminal);
        Definition::from_parts(ops, metadata, Some(source))
    }
}
