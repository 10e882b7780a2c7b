//! DiffOp: the changes that turn the lower input into the upper one, as a ref that merges
//! onto any base (deletions included). When the upper input is the lower one plus layers,
//! the result is those layers, reused as they are: nothing is computed or downloaded and
//! an export pushes their existing blobs. Otherwise both inputs' files are needed, and a
//! lazy input is pulled through the descriptor handlers of this vertex's ancestors.

use std::sync::Arc;

use cairn_llb::definition::LoadedOp;
use cairn_llb::pb::{self, OpKind};
use futures::FutureExt;
use futures::future::BoxFuture;

use super::Inner;
use super::handlers::handlers_from;
use super::result::{result, worker_ref};
use crate::error::OpError;
use crate::op::{CacheMap, ExecCtx, Op, OpCtx};
use crate::result::ResultRef;

pub(crate) struct DiffOp {
    inner: Arc<Inner>,
    digest: cairn_llb::Digest,
    /// Op input index of each side; `None` is scratch.
    lower: Option<usize>,
    upper: Option<usize>,
}

impl DiffOp {
    pub(crate) fn new(inner: Arc<Inner>, op: &LoadedOp) -> Result<DiffOp, OpError> {
        let Some(OpKind::Diff(d)) = &op.op().op else {
            return Err(OpError::failed("diff op is not a diff"));
        };
        let inputs = op.op().inputs.len();
        let side = |name: &str, input: Option<i64>| -> Result<Option<usize>, OpError> {
            match input.unwrap_or(pb::EMPTY_INPUT) {
                pb::EMPTY_INPUT => Ok(None),
                i => usize::try_from(i)
                    .ok()
                    .filter(|k| *k < inputs)
                    .map(Some)
                    .ok_or_else(|| {
                        OpError::failed(format!(
                            "diff {}: {name} input index {i} out of range (op has {inputs} inputs)",
                            op.digest()
                        ))
                    }),
            }
        };
        Ok(DiffOp {
            inner,
            digest: op.digest().clone(),
            lower: side("lower", d.lower.as_ref().map(|l| l.input))?,
            upper: side("upper", d.upper.as_ref().map(|u| u.input))?,
        })
    }
}

impl Op for DiffOp {
    fn cache_map<'a>(&'a self, _ctx: &'a OpCtx) -> BoxFuture<'a, Result<CacheMap, OpError>> {
        futures::future::ready(Ok(CacheMap::of_digest(self.digest.clone()))).boxed()
    }

    fn exec<'a>(
        &'a self,
        ctx: &'a ExecCtx,
        inputs: Vec<ResultRef>,
    ) -> BoxFuture<'a, Result<Vec<ResultRef>, OpError>> {
        async move {
            let side = |i: Option<usize>, what| match i {
                Some(i) => worker_ref(&inputs[i], what),
                None => Ok(None),
            };
            let lower = side(self.lower, "diff lower input")?;
            let upper = side(self.upper, "diff upper input")?;
            let handlers = handlers_from(&ctx.cache_opts, &ctx.progress);
            let diff = self
                .inner
                .cache
                .diff(lower.as_ref(), upper.as_ref(), &handlers, &ctx.name)
                .await?;
            Ok(vec![result(diff)])
        }
        .boxed()
    }
}
