//! Where a container's stdout and stderr go: every chunk to a caller's sink as it
//! arrives (so progress shows it live), and the last lines into a bounded tail that a
//! failure message can quote.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncRead, AsyncReadExt};

use crate::progress::Stream;

/// Receives output chunks as they are read; called from the executor's reader tasks, so
/// it must be cheap and must not block (a [`crate::ProgressWriter`] fits, so does a channel).
pub type OutputSink = Arc<dyn Fn(Stream, &[u8]) + Send + Sync>;

/// A sink that drops everything (the tail is still kept for errors).
pub fn discard_output() -> OutputSink {
    Arc::new(|_, _| {})
}

/// A sink forwarding chunks into an unbounded channel; chunks are dropped once the
/// receiver is gone.
pub fn channel_output(tx: tokio::sync::mpsc::UnboundedSender<(Stream, Vec<u8>)>) -> OutputSink {
    Arc::new(move |s, b| {
        let _closed = tx.send((s, b.to_vec()));
    })
}

/// Longest line kept in the tail; longer lines are cut, so a binary blob on stdout
/// cannot grow the error message without bound.
const MAX_LINE: usize = 4096;

/// The last `max` complete lines of both streams in arrival order.
#[derive(Debug)]
pub(crate) struct Tail {
    max: usize,
    lines: VecDeque<String>,
    partial: [Vec<u8>; 2],
}

impl Tail {
    pub(crate) fn new(max: usize) -> Tail {
        Tail {
            max,
            lines: VecDeque::new(),
            partial: [Vec::new(), Vec::new()],
        }
    }

    fn idx(s: Stream) -> usize {
        match s {
            Stream::Stdout => 0,
            Stream::Stderr => 1,
        }
    }

    fn push_line(&mut self, bytes: &[u8]) {
        if self.max == 0 {
            return;
        }
        let cut = &bytes[..bytes.len().min(MAX_LINE)];
        let line = String::from_utf8_lossy(cut)
            .trim_end_matches('\r')
            .to_owned();
        if self.lines.len() == self.max {
            self.lines.pop_front();
        }
        self.lines.push_back(line);
    }

    pub(crate) fn push(&mut self, s: Stream, mut data: &[u8]) {
        let i = Self::idx(s);
        while let Some(nl) = data.iter().position(|b| *b == b'\n') {
            let mut line = std::mem::take(&mut self.partial[i]);
            line.extend_from_slice(&data[..nl]);
            self.push_line(&line);
            data = &data[nl + 1..];
        }
        let room = MAX_LINE.saturating_sub(self.partial[i].len());
        self.partial[i].extend_from_slice(&data[..data.len().min(room)]);
    }

    /// The tail including unterminated last lines.
    pub(crate) fn finish(&mut self) -> Vec<String> {
        for i in 0..2 {
            let p = std::mem::take(&mut self.partial[i]);
            if !p.is_empty() {
                self.push_line(&p);
            }
        }
        self.lines.iter().cloned().collect()
    }
}

/// Copies one pipe into the sink and the tail until end of file.
pub(crate) async fn pump(
    mut r: impl AsyncRead + Unpin,
    stream: Stream,
    sink: OutputSink,
    tail: Arc<Mutex<Tail>>,
) -> std::io::Result<()> {
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        let n = r.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        let chunk = &buf[..n];
        sink(stream, chunk);
        if let Ok(mut t) = tail.lock() {
            t.push(stream, chunk);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_keeps_last_lines_across_chunks_and_streams() {
        let mut t = Tail::new(3);
        t.push(Stream::Stdout, b"one\ntw");
        t.push(Stream::Stderr, b"err1\n");
        t.push(Stream::Stdout, b"o\nthree\nfour");
        assert_eq!(t.finish(), vec!["two", "three", "four"]);
        let mut t = Tail::new(5);
        t.push(Stream::Stdout, b"a\r\nb");
        t.push(Stream::Stderr, b"c");
        assert_eq!(t.finish(), vec!["a", "b", "c"]);
    }

    #[test]
    fn long_lines_are_cut() {
        let mut t = Tail::new(2);
        t.push(Stream::Stdout, &vec![b'x'; MAX_LINE * 3]);
        t.push(Stream::Stdout, b"\n");
        assert_eq!(t.finish()[0].len(), MAX_LINE);
    }

    #[tokio::test]
    async fn pump_feeds_sink_and_tail() {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let tail = Arc::new(Mutex::new(Tail::new(10)));
        pump(
            &b"hello\nworld\n"[..],
            Stream::Stderr,
            channel_output(tx),
            tail.clone(),
        )
        .await
        .unwrap();
        let (s, b) = rx.recv().await.unwrap();
        assert_eq!(s, Stream::Stderr);
        assert_eq!(b, b"hello\nworld\n");
        assert_eq!(tail.lock().unwrap().finish(), vec!["hello", "world"]);
    }
}
