//! The end of every progress display: the failure block (which step, where in the
//! Dockerfile, its exit code and last output lines) and the one-line summary (steps run
//! and cached, bytes moved, wall time). CI logs are read from the bottom; these lines are
//! what a reader needs without scrolling.

use std::fmt::Write as _;
use std::ops::RangeInclusive;
use std::time::Duration;

use cairn_llb::Digest;

use super::format::{bytes, log_elapsed, secs};
use super::model::{Model, VertexState};

/// How many output lines of the failed step the failure block repeats.
pub const FAILURE_LOG_LINES: usize = 10;

/// How a build ended, given to the renderer's `finish`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Outcome {
    /// Measured by the caller from the start of the command.
    pub wall: Duration,
    pub failure: Option<FailureInfo>,
    /// Bytes pushed, when the exporter counted them itself (overrides the count from
    /// progress statuses).
    pub bytes_pushed: Option<u64>,
}

/// What the failure block shows.
#[derive(Debug, Clone, PartialEq)]
pub struct FailureInfo {
    /// The step's name, e.g. `[2/3] RUN make`.
    pub step: String,
    /// The failed vertex, whose output tail comes from the model.
    pub vertex: Option<Digest>,
    /// The error, e.g. `process "/bin/sh -c make" did not complete successfully: exit code: 2`.
    pub message: String,
    pub exit_code: Option<i32>,
    /// Where in the definition file the step comes from.
    pub source: Option<SourceExcerpt>,
}

impl FailureInfo {
    /// The first failed step of the model, with the exit code read from its error.
    pub fn from_model(model: &Model) -> Option<FailureInfo> {
        let v = model.first_failure()?;
        let message = v.error.clone().unwrap_or_default();
        Some(FailureInfo {
            step: v.name.clone(),
            vertex: Some(v.digest.clone()),
            exit_code: exit_code_of(&message),
            message,
            source: None,
        })
    }

    pub fn with_source(mut self, source: SourceExcerpt) -> FailureInfo {
        self.source = Some(source);
        self
    }
}

/// The exit code in an exec error (`…: exit code: 2`), as the solver words it.
pub fn exit_code_of(message: &str) -> Option<i32> {
    let (_, rest) = message.rsplit_once("exit code: ")?;
    let digits: String = rest
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '-')
        .collect();
    digits.parse().ok()
}

/// Lines of the definition file around the failing instruction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceExcerpt {
    pub file: String,
    /// `(line number, text)`, 1-based.
    pub lines: Vec<(u32, String)>,
    /// The instruction's lines, marked `>>>`.
    pub highlight: RangeInclusive<u32>,
}

impl SourceExcerpt {
    /// Cuts `context` lines either side of `highlight` out of the file's text. `None` when
    /// the range is not inside the text (a stale source map must not crash the report).
    pub fn from_text(
        file: &str,
        text: &str,
        highlight: RangeInclusive<u32>,
        context: u32,
    ) -> Option<SourceExcerpt> {
        let all: Vec<&str> = text.lines().collect();
        let last = u32::try_from(all.len()).ok()?;
        if *highlight.start() == 0 || highlight.start() > highlight.end() || *highlight.end() > last
        {
            return None;
        }
        let from = highlight.start().saturating_sub(context).max(1);
        let to = highlight.end().saturating_add(context).min(last);
        let lines = (from..=to)
            .filter_map(|n| all.get(n as usize - 1).map(|l| (n, (*l).to_owned())))
            .collect();
        Some(SourceExcerpt {
            file: file.to_owned(),
            lines,
            highlight,
        })
    }
}

/// BuildKit's failure block:
///
/// ```text
/// ------
///  > [2/3] RUN false:
/// 0.123 output line
/// ------
/// Dockerfile:4
/// --------------------
///    3 |     COPY app /app
///    4 | >>> RUN false
/// --------------------
/// ERROR: failed to solve: process "/bin/sh -c false" did not complete successfully: exit code: 1
/// ```
pub fn failure_block(model: &Model, f: &FailureInfo) -> String {
    let mut out = String::new();
    let vertex: Option<&VertexState> = f.vertex.as_ref().and_then(|d| model.vertex(d));
    let tail = vertex
        .map(|v| v.tail(FAILURE_LOG_LINES))
        .unwrap_or_default();
    let _ = writeln!(out, "------");
    let _ = writeln!(out, " > {}:", f.step);
    for l in tail {
        let _ = writeln!(out, "{} {}", log_elapsed(l.elapsed), l.text);
    }
    let _ = writeln!(out, "------");
    if let Some(src) = &f.source {
        let _ = writeln!(out, "{}:{}", src.file, range_text(&src.highlight));
        let _ = writeln!(out, "--------------------");
        for (n, text) in &src.lines {
            let mark = if src.highlight.contains(n) {
                ">>>"
            } else {
                "   "
            };
            let _ = writeln!(out, "{n:>4} | {mark} {text}");
        }
        let _ = writeln!(out, "--------------------");
    }
    let _ = write!(out, "ERROR: failed to solve: {}", f.message);
    match f.exit_code {
        Some(code) if !f.message.contains("exit code") => {
            let _ = writeln!(out, " (exit code {code})");
        }
        _ => out.push('\n'),
    }
    out
}

fn range_text(r: &RangeInclusive<u32>) -> String {
    if r.start() == r.end() {
        r.start().to_string()
    } else {
        format!("{}-{}", r.start(), r.end())
    }
}

/// The closing line, e.g. `Build finished in 3.2s: 5 steps (4 run, 1 cached), 2.15MB
/// pulled, 0B pushed`.
pub fn summary_line(model: &Model, outcome: &Outcome) -> String {
    let t = model.totals();
    let pushed = outcome.bytes_pushed.unwrap_or(t.bytes_pushed);
    let mut parts = vec![format!("{} run", t.run), format!("{} cached", t.cached)];
    if t.failed > 0 {
        parts.push(format!("{} failed", t.failed));
    }
    if t.cancelled > 0 {
        parts.push(format!("{} cancelled", t.cancelled));
    }
    let head = if outcome.failure.is_some() {
        format!("Build failed after {}", secs(outcome.wall))
    } else {
        format!("Build finished in {}", secs(outcome.wall))
    };
    format!(
        "{head}: {} step{} ({}), {} pulled, {} pushed",
        t.steps,
        if t.steps == 1 { "" } else { "s" },
        parts.join(", "),
        bytes(t.bytes_pulled),
        bytes(pushed)
    )
}

/// Warnings the steps reported, one per line, or nothing.
pub fn warnings(model: &Model) -> String {
    let list: Vec<(&str, &str)> = model
        .vertices()
        .iter()
        .flat_map(|v| {
            v.warnings
                .iter()
                .map(move |w| (v.name.as_str(), w.as_str()))
        })
        .collect();
    if list.is_empty() {
        return String::new();
    }
    let mut out = format!(
        "{} warning{} found:\n",
        list.len(),
        if list.len() == 1 { "" } else { "s" }
    );
    for (step, w) in list {
        let _ = writeln!(out, " - {w} ({step})");
    }
    out
}

/// Warnings, failure block (if any) and summary line: the end of the plain, tty and quiet
/// displays.
pub fn ending(model: &Model, outcome: &Outcome) -> String {
    let mut out = warnings(model);
    if let Some(f) = &outcome.failure {
        out.push_str(&failure_block(model, f));
    }
    out.push_str(&summary_line(model, outcome));
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::progress::fixtures::*;

    #[test]
    fn exit_codes_are_read_from_exec_errors() {
        assert_eq!(exit_code_of(EXEC_ERROR), Some(1));
        assert_eq!(exit_code_of("...: exit code: 137"), Some(137));
        assert_eq!(exit_code_of("no such file"), None);
    }

    #[test]
    fn excerpts_stay_inside_the_file() {
        let text = "FROM busybox\nCOPY app /app\nRUN false\nRUN echo never\n";
        let e = SourceExcerpt::from_text("Dockerfile", text, 3..=3, 1).unwrap();
        assert_eq!(e.lines.iter().map(|l| l.0).collect::<Vec<_>>(), [2, 3, 4]);
        assert!(SourceExcerpt::from_text("Dockerfile", text, 0..=0, 1).is_none());
        assert!(SourceExcerpt::from_text("Dockerfile", text, 5..=5, 1).is_none());
        #[allow(clippy::reversed_empty_ranges)]
        let reversed = 3..=2;
        assert!(SourceExcerpt::from_text("Dockerfile", text, reversed, 1).is_none());
        assert_eq!(
            SourceExcerpt::from_text("D", text, 1..=4, 9)
                .unwrap()
                .lines
                .len(),
            4
        );
    }

    #[test]
    fn failure_block_and_summary() {
        let mut m = Model::new();
        for ev in failed_build() {
            m.apply(&ev);
        }
        let text = "FROM busybox\nCOPY app /app\nRUN false\nRUN echo never\n";
        let f = FailureInfo::from_model(&m)
            .unwrap()
            .with_source(SourceExcerpt::from_text("Dockerfile", text, 3..=3, 1).unwrap());
        assert_eq!(f.exit_code, Some(1));
        let outcome = Outcome {
            wall: Duration::from_millis(1234),
            failure: Some(f),
            bytes_pushed: None,
        };
        insta::assert_snapshot!(ending(&m, &outcome), @r#"
        ------
         > [2/3] RUN false:
        0.123 checking things
        0.123 about to fail
        0.140 oops
        ------
        Dockerfile:3
        --------------------
           2 |     COPY app /app
           3 | >>> RUN false
           4 |     RUN echo never
        --------------------
        ERROR: failed to solve: process "/bin/sh -c false" did not complete successfully: exit code: 1
        Build failed after 1.2s: 4 steps (2 run, 0 cached, 1 failed, 1 cancelled), 0B pulled, 0B pushed
        "#);
    }

    #[test]
    fn warnings_are_listed_with_their_step() {
        use cairn_solver::progress::{SolveStatus, VertexWarning};
        let mut m = Model::new();
        assert_eq!(warnings(&m), "");
        let d = digest(1);
        m.apply(&vertex(
            &d,
            "[1/2] FROM busybox",
            Some(0),
            Some(5),
            false,
            "",
        ));
        m.apply(&SolveStatus {
            warnings: vec![VertexWarning {
                vertex: d.clone(),
                level: 1,
                short: b"FromAsCasing: 'as' and 'FROM' keywords' casing do not match".to_vec(),
                detail: Vec::new(),
                url: String::new(),
                source_info: None,
            }],
            ..SolveStatus::default()
        });
        assert_eq!(
            warnings(&m),
            "1 warning found:\n - FromAsCasing: 'as' and 'FROM' keywords' casing do not match ([1/2] FROM busybox)\n"
        );
        assert!(ending(&m, &Outcome::default()).starts_with("1 warning found:\n"));
    }

    #[test]
    fn exit_code_is_added_when_the_message_lacks_it() {
        let m = Model::new();
        let f = FailureInfo {
            step: "[1/1] RUN x".into(),
            vertex: None,
            message: "killed".into(),
            exit_code: Some(137),
            source: None,
        };
        assert!(
            failure_block(&m, &f).ends_with("ERROR: failed to solve: killed (exit code 137)\n")
        );
    }
}
