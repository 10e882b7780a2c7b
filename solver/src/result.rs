//! What an op produces. The engine never looks inside: the cache fills it with refs,
//! tests with strings or paths.

use std::any::Any;
use std::fmt::Debug;
use std::sync::Arc;

/// One output of an op, as the engine passes it between vertices.
///
/// Implementations must be cheap to share (the engine clones the `Arc` into every
/// consumer) and must release what they hold when the last clone drops.
pub trait SolverResult: Any + Send + Sync + Debug {
    /// A stable identifier the result store can load the result back by.
    fn id(&self) -> String;
}

/// A shared handle on one result.
pub type ResultRef = Arc<dyn SolverResult>;

/// Looks at the concrete type behind a result.
pub fn downcast<T: SolverResult>(r: &ResultRef) -> Option<&T> {
    let any: &dyn Any = r.as_ref();
    any.downcast_ref::<T>()
}
