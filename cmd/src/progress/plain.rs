//! `--progress=plain`: BuildKit's line format, which people and scripts grep:
//!
//! ```text
//! #1 [internal] load build definition from Dockerfile
//! #1 DONE 0.0s
//!
//! #3 [2/2] RUN make
//! #3 0.123 some output
//! #3 ERROR: process "/bin/sh -c make" did not complete successfully: exit code: 2
//! ```
//!
//! Each block starts with `#N name` when output switches to another step (a step left
//! unfinished is marked `#N ...`), output lines carry the seconds since the step started,
//! and the block ends with `DONE`, `CACHED`, `ERROR: …` or `CANCELED`. Unlike BuildKit's
//! time-sliced printer, blocks switch strictly in event order, so the same events always
//! give the same text.

use std::collections::{HashMap, HashSet};
use std::io::{self, Write};
use std::time::{Duration, SystemTime};

use cairn_llb::Digest;
use cairn_solver::progress::{SolveStatus, VertexLog, VertexStatus};

use super::Renderer;
use super::format::{bytes_i64, log_elapsed, secs};
use super::model::{Model, is_cancellation};
use super::summary::{Outcome, ending};

/// A status line is repeated only after this much progress or time, as BuildKit does, so
/// a download does not print a line per chunk.
const MIN_PROGRESS_DELTA: f64 = 0.05;
const MIN_TIME_DELTA: Duration = Duration::from_secs(5);

pub struct PlainRenderer<W: Write> {
    out: W,
    current: Option<Digest>,
    not_first: bool,
    closed: HashSet<Digest>,
    /// Output not yet ended by a newline: `(seconds since start, text)`.
    partial: HashMap<Digest, (f64, String)>,
    /// Steps whose unterminated line was printed when output switched away; the newline
    /// that later ends it must not print an empty line.
    flushed: HashSet<Digest>,
    last_status: HashMap<(Digest, String), (i64, SystemTime)>,
}

impl<W: Write> PlainRenderer<W> {
    pub fn new(out: W) -> PlainRenderer<W> {
        PlainRenderer {
            out,
            current: None,
            not_first: false,
            closed: HashSet::new(),
            partial: HashMap::new(),
            flushed: HashSet::new(),
            last_status: HashMap::new(),
        }
    }

    pub fn into_inner(self) -> W {
        self.out
    }

    fn switch_to(&mut self, model: &Model, d: &Digest) -> io::Result<()> {
        if self.current.as_ref() == Some(d) {
            return Ok(());
        }
        if let Some(old) = self.current.take() {
            self.flush_partial(model, &old)?;
            if let Some(v) = model.vertex(&old) {
                writeln!(self.out, "#{} ...", v.index)?;
            }
        }
        if self.not_first {
            writeln!(self.out)?;
        }
        self.not_first = true;
        if let Some(v) = model.vertex(d) {
            writeln!(self.out, "#{} {}", v.index, v.name)?;
        }
        self.current = Some(d.clone());
        Ok(())
    }

    fn flush_partial(&mut self, model: &Model, d: &Digest) -> io::Result<()> {
        if let (Some((elapsed, text)), Some(v)) = (self.partial.remove(d), model.vertex(d)) {
            writeln!(self.out, "#{} {} {}", v.index, log_elapsed(elapsed), text)?;
            self.flushed.insert(d.clone());
        }
        Ok(())
    }

    fn vertex(&mut self, model: &Model, d: &Digest) -> io::Result<()> {
        let Some(v) = model.vertex(d) else {
            return Ok(());
        };
        if v.started.is_none() && v.completed.is_none() {
            return Ok(());
        }
        if v.completed.is_none() {
            self.closed.remove(d);
            return self.switch_to(model, d);
        }
        if !self.closed.insert(d.clone()) {
            return Ok(());
        }
        self.switch_to(model, d)?;
        self.flush_partial(model, d)?;
        let n = v.index;
        match (&v.error, v.cached) {
            (Some(e), _) if is_cancellation(e) => writeln!(self.out, "#{n} CANCELED")?,
            (Some(e), _) => writeln!(self.out, "#{n} ERROR: {e}")?,
            (None, true) => writeln!(self.out, "#{n} CACHED")?,
            (None, false) => match v.duration(SystemTime::UNIX_EPOCH) {
                Some(d) => writeln!(self.out, "#{n} DONE {}", secs(d))?,
                None => writeln!(self.out, "#{n} DONE")?,
            },
        }
        self.current = None;
        Ok(())
    }

    fn status(&mut self, model: &Model, s: &VertexStatus) -> io::Result<()> {
        let key = (s.vertex.clone(), s.id.clone());
        if let Some((current, at)) = self.last_status.get(&key)
            && s.completed.is_none()
        {
            let progress = if s.total > 0 {
                (s.current - current) as f64 / s.total as f64
            } else {
                0.0
            };
            let waited = s.timestamp.0.duration_since(*at).unwrap_or_default();
            if progress < MIN_PROGRESS_DELTA && waited < MIN_TIME_DELTA {
                return Ok(());
            }
        }
        self.last_status.insert(key, (s.current, s.timestamp.0));
        self.switch_to(model, &s.vertex)?;
        let Some(v) = model.vertex(&s.vertex) else {
            return Ok(());
        };
        let mut line = format!("#{} {}", v.index, s.id);
        if s.total != 0 {
            line.push_str(&format!(
                " {} / {}",
                bytes_i64(s.current),
                bytes_i64(s.total)
            ));
        } else if s.current != 0 {
            line.push_str(&format!(" {}", bytes_i64(s.current)));
        }
        let end = s.completed.unwrap_or(s.timestamp);
        if let Some(start) = s.started {
            let d = end.0.duration_since(start.0).unwrap_or_default();
            if d.as_secs_f64() > 0.01 {
                line.push_str(&format!(" {}", secs(d)));
            }
        }
        if s.completed.is_some() {
            line.push_str(" done");
        }
        writeln!(self.out, "{line}")
    }

    fn log(&mut self, model: &Model, l: &VertexLog) -> io::Result<()> {
        self.switch_to(model, &l.vertex)?;
        let Some(v) = model.vertex(&l.vertex) else {
            return Ok(());
        };
        let elapsed = v
            .started
            .and_then(|s| l.timestamp.0.duration_since(s).ok())
            .map_or(0.0, |d| d.as_secs_f64());
        let text = String::from_utf8_lossy(&l.data);
        let mut pieces = text.split('\n').peekable();
        let mut continues_flushed = self.flushed.remove(&l.vertex);
        while let Some(piece) = pieces.next() {
            let piece = piece.strip_suffix('\r').unwrap_or(piece);
            if std::mem::take(&mut continues_flushed) && piece.is_empty() && pieces.peek().is_some()
            {
                continue;
            }
            let (at, mut line) = self
                .partial
                .remove(&l.vertex)
                .unwrap_or((elapsed, String::new()));
            line.push_str(piece);
            if pieces.peek().is_none() {
                if !line.is_empty() {
                    self.partial.insert(l.vertex.clone(), (at, line));
                }
            } else {
                writeln!(self.out, "#{} {} {}", v.index, log_elapsed(at), line)?;
            }
        }
        Ok(())
    }
}

impl<W: Write> Renderer for PlainRenderer<W> {
    fn event(&mut self, model: &Model, status: &SolveStatus) -> io::Result<()> {
        for v in &status.vertexes {
            // Output that arrived before the completion is printed before its footer.
            if v.completed.is_none() {
                self.vertex(model, &v.digest)?;
            }
        }
        for s in &status.statuses {
            self.status(model, s)?;
        }
        for l in &status.logs {
            self.log(model, l)?;
        }
        for v in &status.vertexes {
            if v.completed.is_some() {
                self.vertex(model, &v.digest)?;
            }
        }
        self.out.flush()
    }

    fn finish(&mut self, model: &Model, outcome: &Outcome) -> io::Result<()> {
        if let Some(d) = self.current.take() {
            self.flush_partial(model, &d)?;
        }
        if self.not_first {
            writeln!(self.out)?;
        }
        self.out.write_all(ending(model, outcome).as_bytes())?;
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::progress::fixtures::*;
    use crate::progress::summary::{FailureInfo, SourceExcerpt};

    fn render(events: &[SolveStatus], outcome: impl Fn(&Model) -> Outcome) -> String {
        let mut model = Model::new();
        let mut r = PlainRenderer::new(Vec::new());
        for ev in events {
            model.apply(ev);
            r.event(&model, ev).unwrap();
        }
        r.finish(&model, &outcome(&model)).unwrap();
        String::from_utf8(r.into_inner()).unwrap()
    }

    #[test]
    fn successful_build() {
        let out = render(&super::super::fixtures::successful_build(), |_| Outcome {
            wall: Duration::from_millis(3_400),
            ..Outcome::default()
        });
        insta::assert_snapshot!(out);
    }

    #[test]
    fn failed_build_with_interleaved_output() {
        let out = render(&super::super::fixtures::failed_build(), |m| {
            let src = "FROM busybox\nCOPY app /app\nRUN false\n";
            let f = FailureInfo::from_model(m)
                .unwrap()
                .with_source(SourceExcerpt::from_text("Dockerfile", src, 3..=3, 2).unwrap());
            Outcome {
                wall: Duration::from_millis(400),
                failure: Some(f),
                bytes_pushed: None,
            }
        });
        insta::assert_snapshot!(out);
    }

    /// Events as the solver really sends them: vertex events stamped now, and logs and
    /// statuses through its `ProgressWriter`. Times vary from run to run, so they are
    /// filtered out of the snapshot.
    #[tokio::test]
    async fn live_events_from_the_solver_writer() {
        use cairn_solver::progress::{ProgressWriter, Stream, Timestamp, VertexEvent};
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let d = digest(42);
        let ev = |started: Option<Timestamp>, completed: Option<Timestamp>| SolveStatus {
            vertexes: vec![VertexEvent {
                digest: d.clone(),
                inputs: Vec::new(),
                name: "[2/2] RUN printf".into(),
                started,
                completed,
                cached: false,
                error: String::new(),
                progress_group: None,
            }],
            ..SolveStatus::default()
        };
        let started = Timestamp::now();
        tx.send(ev(Some(started), None)).unwrap();
        let writer = ProgressWriter::discard();
        writer.subscribe(tx.clone(), d.clone());
        writer.log(Stream::Stdout, b"one\ntw");
        writer.log(Stream::Stderr, b"o\n");
        writer.status(
            "extracting sha256:abc",
            10,
            10,
            Some(started),
            Some(started),
        );
        tx.send(ev(Some(started), Some(Timestamp::now()))).unwrap();
        drop(tx);
        drop(writer);
        let mut events = Vec::new();
        while let Some(e) = rx.recv().await {
            events.push(e);
        }
        let out = render(&events, |_| Outcome {
            wall: Duration::from_millis(250),
            ..Outcome::default()
        });
        insta::with_settings!({filters => vec![(r"\b\d+\.\d+s\b", "[TIME]"), (r"#1 \d+\.\d+ ", "#1 [T] ")]}, {
            insta::assert_snapshot!(out, @r"
            #1 [2/2] RUN printf
            #1 [T] one
            #1 [T] two
            #1 extracting sha256:abc 10B / 10B done
            #1 DONE [TIME]

            Build finished in [TIME]: 1 step (1 run, 0 cached), 0B pulled, 0B pushed
            ");
        });
    }

    #[test]
    fn events_for_unknown_or_unstarted_vertices_print_nothing() {
        let d = digest(7);
        let out = render(&[vertex(&d, "[1/1] queued", None, None, false, "")], |_| {
            Outcome::default()
        });
        assert_eq!(
            out,
            "Build finished in 0.0s: 0 steps (0 run, 0 cached), 0B pulled, 0B pushed\n"
        );
    }
}
