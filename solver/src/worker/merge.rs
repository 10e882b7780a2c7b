//! MergeOp: the inputs' files stacked in order, later inputs winning. Nothing is copied
//! here: the cache records the merge and materialises it on first use, and an export
//! reuses every input's layer blobs as they are (why `COPY --link` pushes no base layer).

use std::sync::Arc;

use cairn_llb::definition::LoadedOp;
use cairn_llb::pb::OpKind;
use futures::FutureExt;
use futures::future::BoxFuture;

use super::Inner;
use super::result::{result, worker_ref};
use crate::error::OpError;
use crate::op::{CacheMap, ExecCtx, Op, OpCtx};
use crate::result::ResultRef;

pub(crate) struct MergeOp {
    inner: Arc<Inner>,
    digest: cairn_llb::Digest,
    /// Op input index of each merge input, in merge order.
    order: Vec<usize>,
}

impl MergeOp {
    pub(crate) fn new(inner: Arc<Inner>, op: &LoadedOp) -> Result<MergeOp, OpError> {
        let Some(OpKind::Merge(m)) = &op.op().op else {
            return Err(OpError::failed("merge op is not a merge"));
        };
        let inputs = op.op().inputs.len();
        let order = m
            .inputs
            .iter()
            .map(|i| {
                usize::try_from(i.input)
                    .ok()
                    .filter(|k| *k < inputs)
                    .ok_or_else(|| {
                        OpError::failed(format!(
                            "merge {}: input index {} out of range (op has {inputs} inputs)",
                            op.digest(),
                            i.input
                        ))
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(MergeOp {
            inner,
            digest: op.digest().clone(),
            order,
        })
    }
}

impl Op for MergeOp {
    fn cache_map<'a>(&'a self, _ctx: &'a OpCtx) -> BoxFuture<'a, Result<CacheMap, OpError>> {
        futures::future::ready(Ok(CacheMap::of_digest(self.digest.clone()))).boxed()
    }

    fn exec<'a>(
        &'a self,
        ctx: &'a ExecCtx,
        inputs: Vec<ResultRef>,
    ) -> BoxFuture<'a, Result<Vec<ResultRef>, OpError>> {
        async move {
            let mut refs = Vec::with_capacity(self.order.len());
            for &i in &self.order {
                // An empty input adds nothing to a merge.
                if let Some(r) = worker_ref(&inputs[i], "merge input")? {
                    refs.push(r);
                }
            }
            if refs.is_empty() {
                return Ok(vec![result(None)]);
            }
            let merged = self
                .inner
                .cache
                .merge(&refs, &ctx.name)
                .map_err(OpError::from)?;
            Ok(vec![result(Some(merged))])
        }
        .boxed()
    }
}
