//! The progress model: plain data built from the solver's [`SolveStatus`] events. Every
//! renderer reads it and none writes it, so the display modes cannot disagree about what
//! happened (STYLE point 14, after BuildKit's `progressui` trace).

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, SystemTime};

use cairn_llb::Digest;
use cairn_solver::progress::{SolveStatus, VertexEvent, VertexLog, VertexStatus};

/// How many of a step's last output lines are kept (for the tty view and the failure block).
pub const LOG_TAIL: usize = 20;

/// One line of a step's output, with the seconds since the step started (BuildKit's
/// `#N 0.123 text` prefix).
#[derive(Debug, Clone, PartialEq)]
pub struct LogLine {
    pub elapsed: f64,
    pub text: String,
}

/// A sub-task of a step (a blob download, an extraction).
#[derive(Debug, Clone, PartialEq)]
pub struct StatusState {
    pub id: String,
    pub current: i64,
    pub total: i64,
    pub timestamp: SystemTime,
    pub started: Option<SystemTime>,
    pub completed: Option<SystemTime>,
}

/// What a step's byte counts mean for the summary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transfer {
    Pull,
    Push,
    Other,
}

impl StatusState {
    /// Classifies by BuildKit's conventions: a status whose id is a blob digest is a
    /// transfer of that blob, a push when its step is a push, else a pull. Extraction and
    /// other statuses move no bytes over the network.
    pub fn transfer(&self, vertex_name: &str) -> Transfer {
        if !self.id.starts_with("sha256:") {
            return Transfer::Other;
        }
        if vertex_name.to_ascii_lowercase().contains("push") {
            Transfer::Push
        } else {
            Transfer::Pull
        }
    }
}

/// The state of one step, as last reported.
#[derive(Debug, Clone)]
pub struct VertexState {
    /// 1-based, in order of first appearance: BuildKit's `#N`.
    pub index: usize,
    pub digest: Digest,
    pub name: String,
    pub started: Option<SystemTime>,
    pub completed: Option<SystemTime>,
    pub cached: bool,
    /// Non-empty when the step failed.
    pub error: Option<String>,
    pub statuses: Vec<StatusState>,
    /// The last [`LOG_TAIL`] complete lines.
    pub logs: VecDeque<LogLine>,
    /// An output line not yet ended by a newline.
    pub partial: Option<LogLine>,
    pub warnings: Vec<String>,
}

impl VertexState {
    pub fn is_running(&self) -> bool {
        self.started.is_some() && self.completed.is_none()
    }

    /// Seconds from start to completion (or to `now` while running).
    pub fn duration(&self, now: SystemTime) -> Option<Duration> {
        let start = self.started?;
        let end = self.completed.unwrap_or(now);
        Some(end.duration_since(start).unwrap_or_default())
    }

    /// The last `n` lines of output, the unterminated one included.
    pub fn tail(&self, n: usize) -> Vec<&LogLine> {
        let mut all: Vec<&LogLine> = self.logs.iter().chain(self.partial.as_ref()).collect();
        let skip = all.len().saturating_sub(n);
        all.drain(..skip);
        all
    }

    fn seconds_since_start(&self, t: SystemTime) -> f64 {
        self.started
            .and_then(|s| t.duration_since(s).ok())
            .map_or(0.0, |d| d.as_secs_f64())
    }
}

/// Step counts and transferred bytes for the summary line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    pub steps: usize,
    pub run: usize,
    pub cached: usize,
    pub failed: usize,
    /// Stopped because another step failed or the user pressed Ctrl-C.
    pub cancelled: usize,
    pub bytes_pulled: u64,
    pub bytes_pushed: u64,
}

/// Everything known about a build's progress.
#[derive(Debug, Clone, Default)]
pub struct Model {
    vertices: Vec<VertexState>,
    by_digest: HashMap<Digest, usize>,
    first_event: Option<SystemTime>,
    last_event: Option<SystemTime>,
}

impl Model {
    pub fn new() -> Model {
        Model::default()
    }

    /// Absorbs one event.
    pub fn apply(&mut self, status: &SolveStatus) {
        for v in &status.vertexes {
            self.apply_vertex(v);
        }
        for s in &status.statuses {
            self.apply_status(s);
        }
        for l in &status.logs {
            self.apply_log(l);
        }
        for w in &status.warnings {
            let short = String::from_utf8_lossy(&w.short).into_owned();
            self.vertex_mut(&w.vertex).warnings.push(short);
        }
    }

    /// Steps in `#N` order.
    pub fn vertices(&self) -> &[VertexState] {
        &self.vertices
    }

    pub fn vertex(&self, digest: &Digest) -> Option<&VertexState> {
        self.by_digest
            .get(digest)
            .and_then(|i| self.vertices.get(*i))
    }

    /// The time between the first and the last timestamp seen.
    pub fn span(&self) -> Duration {
        match (self.first_event, self.last_event) {
            (Some(a), Some(b)) => b.duration_since(a).unwrap_or_default(),
            _ => Duration::ZERO,
        }
    }

    /// Counts for the summary. Steps that never started (skipped after a failure) are not
    /// counted as run.
    pub fn totals(&self) -> Totals {
        let mut t = Totals::default();
        for v in &self.vertices {
            if v.started.is_none() && v.completed.is_none() {
                continue;
            }
            t.steps += 1;
            if v.error.as_deref().is_some_and(is_cancellation) {
                t.cancelled += 1;
            } else if v.error.is_some() {
                t.failed += 1;
            } else if v.cached {
                t.cached += 1;
            } else if v.completed.is_some() {
                t.run += 1;
            }
            for s in &v.statuses {
                let bytes = u64::try_from(s.current).unwrap_or(0);
                match s.transfer(&v.name) {
                    Transfer::Pull => t.bytes_pulled += bytes,
                    Transfer::Push => t.bytes_pushed += bytes,
                    Transfer::Other => {}
                }
            }
        }
        t
    }

    /// The first failed step, by completion time.
    pub fn first_failure(&self) -> Option<&VertexState> {
        self.vertices
            .iter()
            .filter(|v| v.error.as_deref().is_some_and(|e| !is_cancellation(e)))
            .min_by_key(|v| v.completed)
    }

    fn seen(&mut self, t: SystemTime) {
        self.first_event = Some(self.first_event.map_or(t, |f| f.min(t)));
        self.last_event = Some(self.last_event.map_or(t, |l| l.max(t)));
    }

    fn vertex_mut(&mut self, digest: &Digest) -> &mut VertexState {
        let next = self.vertices.len();
        let i = *self.by_digest.entry(digest.clone()).or_insert(next);
        if i == next {
            self.vertices.push(VertexState {
                index: next + 1,
                digest: digest.clone(),
                name: String::new(),
                started: None,
                completed: None,
                cached: false,
                error: None,
                statuses: Vec::new(),
                logs: VecDeque::new(),
                partial: None,
                warnings: Vec::new(),
            });
        }
        &mut self.vertices[i]
    }

    fn apply_vertex(&mut self, ev: &VertexEvent) {
        for t in [ev.started, ev.completed].into_iter().flatten() {
            self.seen(t.0);
        }
        let v = self.vertex_mut(&ev.digest);
        // Each event carries the vertex's whole state; keep what an older event knew only
        // where the newer one is silent.
        if !ev.name.is_empty() {
            v.name = ev.name.clone();
        }
        v.started = ev.started.map(|t| t.0).or(v.started);
        v.completed = ev.completed.map(|t| t.0);
        v.cached = ev.cached;
        v.error = (!ev.error.is_empty()).then(|| ev.error.clone());
    }

    fn apply_status(&mut self, s: &VertexStatus) {
        self.seen(s.timestamp.0);
        let v = self.vertex_mut(&s.vertex);
        let new = StatusState {
            id: s.id.clone(),
            current: s.current,
            total: s.total,
            timestamp: s.timestamp.0,
            started: s.started.map(|t| t.0),
            completed: s.completed.map(|t| t.0),
        };
        match v.statuses.iter_mut().find(|o| o.id == s.id) {
            Some(old) => *old = new,
            None => v.statuses.push(new),
        }
    }

    fn apply_log(&mut self, l: &VertexLog) {
        self.seen(l.timestamp.0);
        let v = self.vertex_mut(&l.vertex);
        let elapsed = v.seconds_since_start(l.timestamp.0);
        let text = String::from_utf8_lossy(&l.data);
        let mut pieces = text.split('\n').peekable();
        while let Some(piece) = pieces.next() {
            let last = pieces.peek().is_none();
            let mut line = v.partial.take().unwrap_or(LogLine {
                elapsed,
                text: String::new(),
            });
            line.text
                .push_str(piece.strip_suffix('\r').unwrap_or(piece));
            if last {
                // After the final '\n' the remainder is empty: nothing pending.
                if !line.text.is_empty() {
                    v.partial = Some(line);
                }
            } else {
                if v.logs.len() == LOG_TAIL {
                    v.logs.pop_front();
                }
                v.logs.push_back(line);
            }
        }
    }
}

/// BuildKit marks steps stopped by a sibling's failure or Ctrl-C with an error ending in
/// `context canceled`; cairn's solver says `cancelled`.
pub fn is_cancellation(error: &str) -> bool {
    error.ends_with("context canceled") || error.ends_with("cancelled")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::progress::fixtures::*;

    #[test]
    fn numbers_vertices_by_first_appearance_and_merges_state() {
        let mut m = Model::new();
        for ev in successful_build() {
            m.apply(&ev);
        }
        let names: Vec<(usize, &str)> = m
            .vertices()
            .iter()
            .map(|v| (v.index, v.name.as_str()))
            .collect();
        assert_eq!(
            names[0],
            (1, "[internal] load build definition from Dockerfile")
        );
        assert_eq!(names[2], (3, "[1/3] FROM docker.io/library/busybox:latest"));
        let t = m.totals();
        assert_eq!((t.steps, t.run, t.cached, t.failed), (5, 4, 1, 0));
        assert_eq!(t.bytes_pulled, 2_150_000);
        assert_eq!(t.bytes_pushed, 0);
        assert_eq!(m.span(), Duration::from_millis(3_200));
    }

    #[test]
    fn logs_split_into_lines_across_chunks() {
        let mut m = Model::new();
        let d = digest(9);
        m.apply(&vertex(&d, "[2/2] RUN x", Some(0), None, false, ""));
        m.apply(&log(&d, 123, "hel"));
        m.apply(&log(&d, 200, "lo\r\nwor"));
        m.apply(&log(&d, 1500, "ld\n\nlast"));
        let v = m.vertex(&d).unwrap();
        let lines: Vec<(f64, &str)> = v
            .tail(10)
            .iter()
            .map(|l| (l.elapsed, l.text.as_str()))
            .collect();
        assert_eq!(
            lines,
            [(0.123, "hello"), (0.2, "world"), (1.5, ""), (1.5, "last")]
        );
        assert_eq!(v.tail(1).len(), 1);
        for i in 0..30 {
            m.apply(&log(&d, 2000, &format!("n{i}\n")));
        }
        assert_eq!(m.vertex(&d).unwrap().logs.len(), LOG_TAIL);
    }

    #[test]
    fn failure_is_found() {
        let mut m = Model::new();
        for ev in failed_build() {
            m.apply(&ev);
        }
        let f = m.first_failure().unwrap();
        assert_eq!(f.name, "[2/3] RUN false");
        let t = m.totals();
        assert_eq!((t.steps, t.failed, t.run, t.cancelled), (4, 1, 2, 1));
    }
}
