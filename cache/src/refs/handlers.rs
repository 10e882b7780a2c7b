//! Descriptor handlers: what a lazy blob needs to become local. The image source that
//! created a lazy ref attaches one per layer digest; whoever needs the files later passes
//! them back (the solver finds them among a vertex's ancestors).

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use cairn_llb::Digest;

use crate::content::ContentProvider;

/// What a layer's unlazy is doing, as every waiter sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LayerPhase {
    /// Waiting for another process that holds this layer's lock.
    Waiting,
    Downloading,
    Extracting,
    Done,
}

/// Progress of one layer of an unlazy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerProgress {
    pub digest: Digest,
    pub phase: LayerPhase,
    /// Bytes of the blob present (downloaded or resumed).
    pub done: u64,
    pub total: u64,
}

/// Receives progress; called from any task, so it must not block.
pub type ProgressSink = Arc<dyn Fn(LayerProgress) + Send + Sync>;

/// Where one blob comes from and who hears about it.
#[derive(Clone)]
pub struct DescHandler {
    pub provider: Arc<dyn ContentProvider>,
    pub progress: Option<ProgressSink>,
    /// The image the blob belongs to (`registry/repository[:tag]`), recorded as the blob's
    /// source so a later push can mount it across repositories.
    pub image_ref: String,
}

impl fmt::Debug for DescHandler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DescHandler")
            .field("provider", &self.provider)
            .field("image_ref", &self.image_ref)
            .finish_non_exhaustive()
    }
}

/// Handlers keyed by blob digest.
#[derive(Debug, Clone, Default)]
pub struct DescHandlers {
    by_digest: HashMap<Digest, DescHandler>,
}

impl DescHandlers {
    pub fn new() -> DescHandlers {
        DescHandlers::default()
    }

    pub fn insert(&mut self, digest: Digest, handler: DescHandler) {
        self.by_digest.insert(digest, handler);
    }

    pub fn get(&self, digest: &Digest) -> Option<&DescHandler> {
        self.by_digest.get(digest)
    }

    /// Adds every handler of `other` this set lacks (nearer handlers win).
    pub fn merge_missing(&mut self, other: &DescHandlers) {
        for (d, h) in &other.by_digest {
            self.by_digest.entry(d.clone()).or_insert_with(|| h.clone());
        }
    }

    pub fn is_empty(&self) -> bool {
        self.by_digest.is_empty()
    }

    pub fn len(&self) -> usize {
        self.by_digest.len()
    }

    pub(crate) fn report(&self, progress: LayerProgress) {
        if let Some(sink) = self.get(&progress.digest).and_then(|h| h.progress.as_ref()) {
            sink(progress);
        }
    }
}

impl FromIterator<(Digest, DescHandler)> for DescHandlers {
    fn from_iter<I: IntoIterator<Item = (Digest, DescHandler)>>(iter: I) -> Self {
        DescHandlers {
            by_digest: iter.into_iter().collect(),
        }
    }
}
