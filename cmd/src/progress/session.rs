//! One build's progress display from start to summary, in the shape a command needs:
//! start it, hand its sender to the solve (`SolveOptions::progress`), and finish it with
//! the outcome once the solve returns.

use std::io;
use std::time::Instant;

use cairn_solver::progress::SolveStatus;
use tokio::sync::mpsc::{UnboundedSender, unbounded_channel};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::summary::{FailureInfo, Outcome};
use super::{Model, Renderer, drive_until};

type Boxed = Box<dyn Renderer + Send>;

pub struct ProgressSession {
    tx: UnboundedSender<SolveStatus>,
    stop: CancellationToken,
    task: JoinHandle<(Model, Boxed)>,
    start: Instant,
}

impl ProgressSession {
    /// Starts drawing with `renderer` on the current tokio runtime.
    pub fn start(renderer: Boxed) -> ProgressSession {
        let (tx, rx) = unbounded_channel();
        let stop = CancellationToken::new();
        let s = stop.clone();
        let task = tokio::spawn(async move {
            let mut renderer = renderer;
            let model = drive_until(rx, renderer.as_mut(), s).await;
            (model, renderer)
        });
        ProgressSession {
            tx,
            stop,
            task,
            start: Instant::now(),
        }
    }

    /// Where the solve sends its events.
    pub fn sender(&self) -> UnboundedSender<SolveStatus> {
        self.tx.clone()
    }

    /// Stops drawing and prints the ending. `describe_failure` builds the failure block
    /// from the final model (e.g. [`FailureInfo::from_model`] plus the Dockerfile excerpt);
    /// returning `None` means the build succeeded. Returns the model, for the caller's own
    /// result line.
    pub async fn finish(
        self,
        describe_failure: impl FnOnce(&Model) -> Option<FailureInfo>,
        bytes_pushed: Option<u64>,
    ) -> io::Result<Model> {
        drop(self.tx);
        self.stop.cancel();
        let (model, mut renderer) = self
            .task
            .await
            .map_err(|e| io::Error::other(format!("progress display task failed: {e}")))?;
        let outcome = Outcome {
            wall: self.start.elapsed(),
            failure: describe_failure(&model),
            bytes_pushed,
        };
        renderer.finish(&model, &outcome)?;
        Ok(model)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::progress::fixtures::failed_build;
    use crate::progress::{PlainRenderer, SharedBuffer};

    #[tokio::test]
    async fn finishes_even_while_a_sender_lives_on() {
        let buf = SharedBuffer::default();
        let session = ProgressSession::start(Box::new(PlainRenderer::new(buf.clone())));
        let tx = session.sender();
        for ev in failed_build() {
            tx.send(ev).unwrap();
        }
        // `tx` stays alive, as a shared op's writer may.
        let model = session.finish(FailureInfo::from_model, None).await.unwrap();
        assert_eq!(model.vertices().len(), 4);
        let out = buf.contents();
        assert!(
            out.contains("#3 ERROR: process \"/bin/sh -c false\""),
            "{out}"
        );
        assert!(out.contains(" > [2/3] RUN false:\n"), "{out}");
        assert!(
            out.trim_end()
                .lines()
                .last()
                .unwrap()
                .starts_with("Build failed after "),
            "{out}"
        );
        drop(tx);
    }
}
