//! Cache options: data attached to a vertex that is not part of its key, found by
//! descendants through a depth-first walk of their ancestors (BuildKit's
//! `solver/cacheopts.go`). The image source attaches a descriptor handler per layer
//! digest; an exec that mounts the lazy layer later finds it here.

use std::any::Any;
use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::sync::Arc;

use cairn_llb::Digest;

use crate::graph::{VertexGraph, VertexId};

/// A value in a cache-options map.
pub type CacheOptValue = Arc<dyn Any + Send + Sync>;

/// String-keyed, typed-by-downcast options.
#[derive(Clone, Default)]
pub struct CacheOpts(BTreeMap<String, CacheOptValue>);

impl CacheOpts {
    pub fn new() -> CacheOpts {
        CacheOpts::default()
    }

    pub fn insert(&mut self, key: impl Into<String>, value: CacheOptValue) {
        self.0.insert(key.into(), value);
    }

    pub fn get(&self, key: &str) -> Option<&CacheOptValue> {
        self.0.get(key)
    }

    /// The value under `key`, if it has type `T`.
    pub fn get_as<T: Any + Send + Sync>(&self, key: &str) -> Option<Arc<T>> {
        self.0
            .get(key)
            .cloned()
            .and_then(|v| v.downcast::<T>().ok())
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }
}

impl fmt::Debug for CacheOpts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

/// The cache-option key under which a source attaches the descriptor handler for the
/// blob `digest`.
pub fn desc_handler_key(digest: &Digest) -> String {
    format!("desc-handler:{digest}")
}

/// Walks `start` and then its ancestors depth-first, inputs in order, and returns for
/// each of `keys` the first value found. Vertices whose options are unknown (`opts_of`
/// returns `None`, e.g. a vertex that failed) are skipped but their inputs are walked.
/// Iterative, so a 10,000-deep chain does not exhaust the stack.
pub fn walk_ancestors<'a>(
    graph: &VertexGraph,
    start: VertexId,
    keys: &[String],
    opts_of: impl Fn(VertexId) -> Option<&'a CacheOpts>,
) -> CacheOpts {
    let mut found = CacheOpts::new();
    let mut seen = HashSet::new();
    let mut stack = vec![start];
    while let Some(v) = stack.pop() {
        if !seen.insert(v) {
            continue;
        }
        if let Some(opts) = opts_of(v) {
            for k in keys {
                if found.get(k).is_none()
                    && let Some(value) = opts.get(k)
                {
                    found.insert(k.clone(), Arc::clone(value));
                }
            }
        }
        if keys.iter().all(|k| found.get(k).is_some()) {
            break;
        }
        if let Some(vertex) = graph.vertex(v) {
            // Reverse so the first input is popped (walked) first.
            for e in vertex.inputs.iter().rev() {
                stack.push(e.vertex);
            }
        }
    }
    found
}
