//! Build progress: a plain-data [`Model`] fed by the solver's [`SolveStatus`] events, and
//! one [`Renderer`] per `--progress` mode reading it. [`drive`] connects a solve's event
//! channel to a renderer; the command then calls [`Renderer::finish`] with the
//! [`Outcome`], which prints the failure block and summary line.

pub(crate) mod format;
pub mod model;
pub mod plain;
pub mod quiet;
pub mod rawjson;
mod session;
pub mod summary;
pub mod tty;

#[cfg(test)]
pub(crate) mod fixtures;

use std::io::{self, Write};
use std::time::Duration;

use cairn_solver::progress::SolveStatus;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio_util::sync::CancellationToken;

pub use model::{Model, Totals, VertexState};
pub use plain::PlainRenderer;
pub use quiet::QuietRenderer;
pub use rawjson::RawJsonRenderer;
pub use session::ProgressSession;
pub use summary::{FailureInfo, Outcome, SourceExcerpt};
pub use tty::TtyRenderer;

use crate::args::RenderMode;

/// One `--progress` mode. Renderers only read the model; they never change it.
pub trait Renderer {
    /// Shows one event; `model` has already absorbed it.
    fn event(&mut self, model: &Model, status: &SolveStatus) -> io::Result<()>;

    /// Called about ten times a second, so time-based displays move without events.
    fn tick(&mut self, _model: &Model) -> io::Result<()> {
        Ok(())
    }

    /// Shows the end of the build: failure block (if any) and summary.
    fn finish(&mut self, model: &Model, outcome: &Outcome) -> io::Result<()>;
}

/// The renderer for `mode`, drawing on stderr (stdout may carry `-o dest=-` output).
pub fn stderr_renderer(mode: RenderMode) -> Box<dyn Renderer + Send> {
    match mode {
        RenderMode::Tty => Box::new(TtyRenderer::new(
            indicatif::ProgressDrawTarget::stderr(),
            io::stderr(),
        )),
        RenderMode::Plain => Box::new(PlainRenderer::new(io::stderr())),
        RenderMode::Rawjson => Box::new(RawJsonRenderer::new(io::stderr())),
        RenderMode::Quiet => Box::new(QuietRenderer::new(io::stderr())),
    }
}

/// Feeds every event from `events` into the model and the renderer until the sender side
/// closes (the solve finished), ticking in between. Returns the final model for the
/// summary. A renderer that cannot write (stderr closed) stops being called, but the
/// events are still drained so the solve never blocks on progress.
pub async fn drive<R: Renderer + ?Sized>(
    events: UnboundedReceiver<SolveStatus>,
    renderer: &mut R,
) -> Model {
    drive_until(events, renderer, CancellationToken::new()).await
}

/// [`drive`], also stopping when `stop` fires: a progress writer of work shared with
/// another build may keep a sender alive after this build's solve has returned. Events
/// already queued when `stop` fires are still shown.
pub async fn drive_until<R: Renderer + ?Sized>(
    mut events: UnboundedReceiver<SolveStatus>,
    renderer: &mut R,
    stop: CancellationToken,
) -> Model {
    let mut model = Model::new();
    let mut ticker = tokio::time::interval(Duration::from_millis(100));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut broken = false;
    loop {
        tokio::select! {
            ev = events.recv() => {
                let Some(ev) = ev else { break };
                model.apply(&ev);
                if !broken && let Err(e) = renderer.event(&model, &ev) {
                    tracing::warn!("progress output stopped: {e}");
                    broken = true;
                }
            }
            () = stop.cancelled() => {
                events.close();
                while let Ok(ev) = events.try_recv() {
                    model.apply(&ev);
                    if !broken && renderer.event(&model, &ev).is_err() {
                        broken = true;
                    }
                }
                break;
            }
            _ = ticker.tick() => {
                if !broken && let Err(e) = renderer.tick(&model) {
                    tracing::warn!("progress output stopped: {e}");
                    broken = true;
                }
            }
        }
    }
    model
}

/// A writer shared between a renderer and the test that inspects what it wrote.
#[derive(Clone, Default)]
pub struct SharedBuffer(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl SharedBuffer {
    pub fn contents(&self) -> String {
        let buf = self.0.lock().unwrap_or_else(|p| p.into_inner());
        String::from_utf8_lossy(&buf).into_owned()
    }
}

impl Write for SharedBuffer {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::progress::fixtures::successful_build;

    #[tokio::test]
    async fn drive_renders_every_event_until_the_channel_closes() {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let buf = SharedBuffer::default();
        let mut r = PlainRenderer::new(buf.clone());
        let events = successful_build();
        let n = events.len();
        let producer = tokio::spawn(async move {
            for ev in events {
                tx.send(ev).unwrap();
                tokio::task::yield_now().await;
            }
        });
        let model = drive(rx, &mut r).await;
        producer.await.unwrap();
        assert_eq!(model.vertices().len(), 5);
        let out = buf.contents();
        assert!(out.contains("#5 DONE 2.0s\n"), "{out}");
        assert!(n > 10);
        r.finish(&model, &Outcome::default()).unwrap();
        assert!(buf.contents().ends_with("0B pushed\n"));
    }
}
