//! The worker's result: a cache ref, or nothing for `scratch`.

use cairn_cache::ImmutableRef;
use cairn_cache::metadata::RecordId;

use crate::error::OpError;
use crate::result::{ResultRef, SolverResult, downcast};

/// The id a scratch result is stored under (it has no record).
pub(crate) const SCRATCH_ID: &str = "scratch";

/// One output of a worker op: an immutable cache ref, or `None` for an empty file system
/// (`scratch`, a merge of nothing). Dropping the last clone releases the ref's lease.
#[derive(Debug, Clone)]
pub struct WorkerRef(pub Option<ImmutableRef>);

impl SolverResult for WorkerRef {
    fn id(&self) -> String {
        match &self.0 {
            Some(r) => r.id().to_string(),
            None => SCRATCH_ID.to_owned(),
        }
    }
}

impl WorkerRef {
    /// The stored form back to a ref (`None` id parse means the id is not ours).
    pub(crate) fn parse_id(id: &str) -> Option<Option<RecordId>> {
        if id == SCRATCH_ID {
            Some(None)
        } else {
            RecordId::parse(id).map(Some)
        }
    }
}

/// The cache ref behind an engine result; any other result type is a bug in the graph
/// wiring, reported as a failure of the op that received it.
pub(crate) fn worker_ref(r: &ResultRef, what: &str) -> Result<Option<ImmutableRef>, OpError> {
    downcast::<WorkerRef>(r)
        .map(|w| w.0.clone())
        .ok_or_else(|| OpError::failed(format!("{what} is not a cache result ({r:?})")))
}

pub(crate) fn result(r: Option<ImmutableRef>) -> ResultRef {
    std::sync::Arc::new(WorkerRef(r))
}
