//! Where `tracing` output goes: stderr, never stdout (which may carry `-o dest=-` bytes).
//! While tty bars are drawn, each log line is written with the bars suspended, so a log
//! line never tears the redrawn block (what `tracing-indicatif` does, in a few lines).

use std::io::{self, Write};
use std::sync::Mutex;

use indicatif::MultiProgress;

/// The bars currently on screen, if any.
static ACTIVE_BARS: Mutex<Option<MultiProgress>> = Mutex::new(None);

/// Registers (or with `None`, unregisters) the bars log lines must step around.
pub fn set_active_bars(bars: Option<MultiProgress>) {
    *ACTIVE_BARS.lock().unwrap_or_else(|p| p.into_inner()) = bars;
}

/// A `tracing_subscriber` writer: one value per log event.
#[derive(Debug, Default, Clone, Copy)]
pub struct LogWriter;

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogWriter {
    type Writer = LineBuffer;
    fn make_writer(&'a self) -> LineBuffer {
        LineBuffer(Vec::new())
    }
}

/// Collects one event's text and writes it out whole when dropped.
pub struct LineBuffer(Vec<u8>);

impl Write for LineBuffer {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.0.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for LineBuffer {
    fn drop(&mut self) {
        let text = std::mem::take(&mut self.0);
        let bars = ACTIVE_BARS
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        // A log line that cannot be written has nowhere else to go.
        let write = || {
            let _ = io::stderr().lock().write_all(&text);
        };
        match bars {
            Some(bars) => bars.suspend(write),
            None => write(),
        }
    }
}
