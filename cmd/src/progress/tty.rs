//! `--progress=tty`: live bars drawn with indicatif. A header counts finished steps; each
//! running step has a line with its elapsed time, byte bars for downloads and extraction
//! under it, and its last output lines; a finished step collapses to one line
//! (`=> [2/5] RUN make  3.2s`, `=> CACHED [3/5] COPY . .`). When the build ends, the
//! failure block and the summary are written below the bars.

use std::collections::HashMap;
use std::io::{self, Write};
use std::time::{Instant, SystemTime};

use cairn_llb::Digest;
use cairn_solver::progress::SolveStatus;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::Renderer;
use super::format::{bytes_i64, log_elapsed, secs};
use super::model::{Model, VertexState, is_cancellation};
use super::summary::{Outcome, ending};

/// Output lines shown under a running step.
const LOG_LINES: usize = 3;

const HEADER: &str = "{msg}";
const STEP: &str = " => {wide_msg} {prefix:>6}";
const BYTES: &str = " => => {msg} [{bar:20}] {prefix}";
const SUBTASK: &str = " => => {wide_msg}";
const LOG: &str = "    {wide_msg:.dim}";

fn style(template: &str) -> ProgressStyle {
    // The templates are constants checked by a test; the fallback only keeps a bad edit
    // from panicking at run time.
    ProgressStyle::with_template(template)
        .unwrap_or_else(|_| ProgressStyle::default_spinner())
        .progress_chars("=> ")
}

/// `sha256:5cc84ad355aa` for a blob digest (its full form is in `--progress=plain`),
/// keeping a byte bar on one line; other ids as they are.
fn short_id(id: &str) -> String {
    let (prefix, digest) = match id.strip_prefix("extracting ") {
        Some(rest) => ("extracting ", rest),
        None => ("", id),
    };
    match digest.strip_prefix("sha256:") {
        Some(hex) if hex.len() > 12 && hex.is_char_boundary(12) => {
            format!("{prefix}sha256:{}", &hex[..12])
        }
        _ => id.to_owned(),
    }
}

struct StepBars {
    step: ProgressBar,
    statuses: Vec<(String, ProgressBar)>,
    logs: Vec<ProgressBar>,
    done: bool,
}

impl StepBars {
    fn last(&self) -> &ProgressBar {
        self.logs
            .last()
            .or_else(|| self.statuses.last().map(|(_, b)| b))
            .unwrap_or(&self.step)
    }
}

pub struct TtyRenderer<W: Write> {
    multi: MultiProgress,
    header: ProgressBar,
    steps: HashMap<Digest, StepBars>,
    start: Instant,
    out: W,
}

impl<W: Write> TtyRenderer<W> {
    /// `target`: where bars are drawn (stderr in use, an in-memory terminal in tests);
    /// `out`: where the closing text goes once the bars are finished.
    pub fn new(target: ProgressDrawTarget, out: W) -> TtyRenderer<W> {
        let multi = MultiProgress::with_draw_target(target);
        crate::log_writer::set_active_bars(Some(multi.clone()));
        let header = multi.add(ProgressBar::new_spinner().with_style(style(HEADER)));
        header.set_message("[+] Building 0.0s (0/0)");
        TtyRenderer {
            multi,
            header,
            steps: HashMap::new(),
            start: Instant::now(),
            out,
        }
    }

    fn header_text(&self, model: &Model, state: &str) -> String {
        let shown = model
            .vertices()
            .iter()
            .filter(|v| v.started.is_some() || v.completed.is_some());
        let (mut done, mut total) = (0, 0);
        for v in shown {
            total += 1;
            if v.completed.is_some() {
                done += 1;
            }
        }
        let state = if state.is_empty() {
            String::new()
        } else {
            format!(" {state}")
        };
        format!(
            "[+] Building {} ({done}/{total}){state}",
            secs(self.start.elapsed())
        )
    }

    fn ensure_step(&mut self, v: &VertexState) -> Option<&mut StepBars> {
        if v.started.is_none() && v.completed.is_none() {
            return None;
        }
        if !self.steps.contains_key(&v.digest) {
            let bar = self
                .multi
                .add(ProgressBar::new_spinner().with_style(style(STEP)));
            bar.set_message(v.name.clone());
            self.steps.insert(
                v.digest.clone(),
                StepBars {
                    step: bar,
                    statuses: Vec::new(),
                    logs: Vec::new(),
                    done: false,
                },
            );
        }
        self.steps.get_mut(&v.digest)
    }

    fn update_step(&mut self, v: &VertexState, now: SystemTime) {
        let multi = self.multi.clone();
        let Some(bars) = self.ensure_step(v) else {
            return;
        };
        if bars.done {
            return;
        }
        let elapsed = v.duration(now).map(secs).unwrap_or_default();
        if v.completed.is_none() {
            bars.step.set_prefix(elapsed);
            bars.step.tick();
            return;
        }
        // Collapse: drop the sub-lines, keep one line with the outcome.
        for b in bars
            .statuses
            .drain(..)
            .map(|(_, b)| b)
            .chain(bars.logs.drain(..))
        {
            b.finish_and_clear();
            multi.remove(&b);
        }
        let msg = match (&v.error, v.cached) {
            (Some(e), _) if is_cancellation(e) => format!("CANCELED {}", v.name),
            (Some(_), _) => format!("ERROR {}", v.name),
            (None, true) => format!("CACHED {}", v.name),
            (None, false) => v.name.clone(),
        };
        bars.step.set_prefix(elapsed);
        bars.step.finish_with_message(msg);
        bars.done = true;
    }

    fn update_details(&mut self, v: &VertexState) {
        let multi = self.multi.clone();
        let Some(bars) = self.steps.get_mut(&v.digest) else {
            return;
        };
        if bars.done {
            return;
        }
        for s in &v.statuses {
            let existing = bars.statuses.iter().position(|(id, _)| *id == s.id);
            let bar = match existing {
                Some(i) => bars.statuses[i].1.clone(),
                None => {
                    let template = if s.total > 0 { BYTES } else { SUBTASK };
                    let b = multi
                        .insert_after(bars.last(), ProgressBar::new(0).with_style(style(template)));
                    bars.statuses.push((s.id.clone(), b.clone()));
                    b
                }
            };
            let mut msg = short_id(&s.id);
            if s.total > 0 {
                msg.push_str(&format!(
                    " {} / {}",
                    bytes_i64(s.current),
                    bytes_i64(s.total)
                ));
                bar.set_length(u64::try_from(s.total).unwrap_or(0));
                bar.set_position(u64::try_from(s.current).unwrap_or(0));
            }
            if let (Some(start), Some(end)) = (s.started, s.completed) {
                let d = end.duration_since(start).unwrap_or_default();
                if s.total > 0 {
                    bar.set_prefix(format!("{} done", secs(d)));
                } else {
                    msg.push_str(&format!(" {} done", secs(d)));
                }
            }
            bar.set_message(msg);
        }
        let tail = v.tail(LOG_LINES);
        while bars.logs.len() < tail.len() {
            let b = multi.insert_after(
                bars.last(),
                ProgressBar::new_spinner().with_style(style(LOG)),
            );
            bars.logs.push(b);
        }
        for (bar, line) in bars.logs.iter().zip(tail) {
            bar.set_message(format!("{} {}", log_elapsed(line.elapsed), line.text));
        }
    }
}

impl<W: Write> Drop for TtyRenderer<W> {
    fn drop(&mut self) {
        // Logs must not wait on bars that are gone (an error path skipped `finish`).
        crate::log_writer::set_active_bars(None);
    }
}

impl<W: Write> Renderer for TtyRenderer<W> {
    fn event(&mut self, model: &Model, status: &SolveStatus) -> io::Result<()> {
        let now = SystemTime::now();
        let touched = status
            .vertexes
            .iter()
            .map(|v| &v.digest)
            .chain(status.statuses.iter().map(|s| &s.vertex))
            .chain(status.logs.iter().map(|l| &l.vertex));
        for d in touched {
            if let Some(v) = model.vertex(d) {
                self.ensure_step(v);
                self.update_details(v);
                self.update_step(v, now);
            }
        }
        let text = self.header_text(model, "");
        self.header.set_message(text);
        Ok(())
    }

    fn tick(&mut self, model: &Model) -> io::Result<()> {
        let now = SystemTime::now();
        for v in model.vertices().iter().filter(|v| v.is_running()) {
            self.update_step(v, now);
        }
        let text = self.header_text(model, "");
        self.header.set_message(text);
        Ok(())
    }

    fn finish(&mut self, model: &Model, outcome: &Outcome) -> io::Result<()> {
        crate::log_writer::set_active_bars(None);
        for bars in self.steps.values().filter(|b| !b.done) {
            for b in bars.statuses.iter().map(|(_, b)| b).chain(&bars.logs) {
                b.finish_and_clear();
            }
            bars.step.abandon();
        }
        let state = if outcome.failure.is_some() {
            "FAILED"
        } else {
            "FINISHED"
        };
        self.header
            .finish_with_message(self.header_text(model, state));
        self.out.write_all(ending(model, outcome).as_bytes())?;
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::progress::fixtures::*;
    use crate::progress::summary::FailureInfo;
    use indicatif::InMemoryTerm;
    use std::time::Duration;

    #[test]
    fn blob_ids_are_shortened() {
        assert_eq!(short_id(BLOB), "sha256:5cc84ad355aa");
        assert_eq!(
            short_id(&format!("extracting {BLOB}")),
            "extracting sha256:5cc84ad355aa"
        );
        assert_eq!(short_id("sha256:abc"), "sha256:abc");
        assert_eq!(short_id("transferring context:"), "transferring context:");
    }

    #[test]
    fn templates_parse() {
        for t in [HEADER, STEP, BYTES, SUBTASK, LOG] {
            assert!(ProgressStyle::with_template(t).is_ok(), "{t}");
        }
    }

    fn run(
        events: &[SolveStatus],
        stop_after: usize,
    ) -> (InMemoryTerm, Model, TtyRenderer<Vec<u8>>) {
        let term = InMemoryTerm::new(30, 100);
        let mut r = TtyRenderer::new(
            ProgressDrawTarget::term_like(Box::new(term.clone())),
            Vec::new(),
        );
        let mut model = Model::new();
        for ev in &events[..stop_after] {
            model.apply(ev);
            r.event(&model, ev).unwrap();
        }
        r.tick(&model).unwrap();
        (term, model, r)
    }

    #[test]
    fn running_step_shows_bars_and_output_then_collapses() {
        let events = successful_build();
        // Stop while the download runs: a byte bar under the FROM step.
        // The renderer stays alive while the screen is read: dropping it clears running bars.
        let (term, _model, _r) = run(&events, 8);
        let screen = term.contents();
        assert!(
            screen.contains(" => [1/3] FROM docker.io/library/busybox:latest"),
            "{screen}"
        );
        assert!(
            screen.contains(" => => sha256:5cc84ad355aa 1.05MB / 2.15MB [=========>"),
            "{screen}"
        );
        assert!(
            screen.contains(" => [internal] load build definition from Dockerfile"),
            "{screen}"
        );

        // Stop while RUN prints: its last output lines are shown under it.
        let (term, _model, _r) = run(&events, 15);
        let screen = term.contents();
        assert!(screen.contains("    0.123 building"), "{screen}");
        assert!(screen.contains("    1.900 done"), "{screen}");
        assert!(
            !screen.contains("sha256:5cc84ad355aa"),
            "finished steps collapse: {screen}"
        );
        assert!(
            screen.contains(" => [1/3] FROM docker.io/library/busybox:latest"),
            "{screen}"
        );
        assert!(screen.contains("0.9s"), "{screen}");
        assert!(
            screen.contains(" => CACHED [2/3] COPY app /app"),
            "{screen}"
        );

        let (term, model, mut r) = run(&events, events.len());
        r.finish(
            &model,
            &Outcome {
                wall: Duration::from_millis(3_400),
                ..Outcome::default()
            },
        )
        .unwrap();
        let screen = term.contents();
        assert!(screen.contains("FINISHED"), "{screen}");
        assert!(screen.contains("(5/5)"), "{screen}");
        assert!(
            !screen.contains("building"),
            "output lines are gone once the step is done: {screen}"
        );
        let run_line = screen
            .lines()
            .find(|l| l.contains("[3/3] RUN make"))
            .unwrap();
        assert!(run_line.trim_end().ends_with("2.0s"), "{run_line:?}");
        let out = String::from_utf8(r.out.clone()).unwrap();
        assert_eq!(
            out,
            "Build finished in 3.4s: 5 steps (4 run, 1 cached), 2.15MB pulled, 0B pushed\n"
        );
    }

    #[test]
    fn failure_marks_the_step_and_prints_the_block() {
        let events = failed_build();
        let (term, model, mut r) = run(&events, events.len());
        let failure = FailureInfo::from_model(&model);
        r.finish(
            &model,
            &Outcome {
                wall: Duration::from_millis(400),
                failure,
                bytes_pushed: None,
            },
        )
        .unwrap();
        let screen = term.contents();
        assert!(screen.contains(" => ERROR [2/3] RUN false"), "{screen}");
        assert!(
            screen.contains(" => CANCELED [other 1/1] RUN sleep 10"),
            "{screen}"
        );
        assert!(screen.contains("FAILED"), "{screen}");
        let out = String::from_utf8(r.out.clone()).unwrap();
        assert!(
            out.starts_with("------\n > [2/3] RUN false:\n0.123 checking things\n"),
            "{out}"
        );
        assert!(
            out.contains("exit code: 1\nBuild failed after 0.4s"),
            "{out}"
        );
    }
}
