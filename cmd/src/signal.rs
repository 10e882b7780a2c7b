//! Ctrl-C handling: the first SIGINT (or SIGTERM) cancels the command's token so running
//! steps are stopped and their temporary state cleaned up; a second one exits at once,
//! for when cleanup itself hangs.

use tokio_util::sync::CancellationToken;

use crate::exit::Exit;

/// Starts listening for SIGINT/SIGTERM on the current runtime; returns the token that
/// the first signal cancels. Must be called inside a tokio runtime.
pub fn cancel_on_signal() -> std::io::Result<CancellationToken> {
    use tokio::signal::unix::{SignalKind, signal};
    let token = CancellationToken::new();
    let mut int = signal(SignalKind::interrupt())?;
    let mut term = signal(SignalKind::terminate())?;
    let t = token.clone();
    tokio::spawn(async move {
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
        tracing::debug!("interrupt received; cancelling");
        t.cancel();
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
        eprintln!("interrupted again; exiting without cleanup");
        std::process::exit(i32::from(Exit::Interrupted.code()));
    });
    Ok(token)
}

/// Runs blocking work (file reads, decoding) off the async threads and stops waiting for
/// it when `cancel` fires, answering [`crate::exit::Interrupted`]. The blocking work itself
/// cannot be stopped; it must not leave partial state behind.
pub async fn blocking_until_cancelled<T: Send + 'static>(
    cancel: &CancellationToken,
    work: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
) -> anyhow::Result<T> {
    let task = tokio::task::spawn_blocking(work);
    tokio::select! {
        joined = task => joined.map_err(|e| anyhow::anyhow!("the command's worker thread failed: {e}"))?,
        () = cancel.cancelled() => Err(crate::exit::Interrupted.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exit::{Exit, classify};

    #[tokio::test]
    async fn cancelled_blocking_work_reports_interrupted() {
        let token = CancellationToken::new();
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let t = token.clone();
        let waiter = tokio::spawn(async move {
            blocking_until_cancelled(&t, move || {
                let _ = rx.recv();
                Ok(())
            })
            .await
        });
        token.cancel();
        let err = waiter.await.unwrap().unwrap_err();
        assert_eq!(classify(&err), Exit::Interrupted);
        drop(tx);
        let ok = blocking_until_cancelled(&CancellationToken::new(), || Ok(7))
            .await
            .unwrap();
        assert_eq!(ok, 7);
    }
}
