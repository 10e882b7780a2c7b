//! `--progress=rawjson`: each event as one line of JSON in BuildKit's `SolveStatus` shape
//! (`client/graph.go`), then one closing `{"summary": …}` line, so a program reading the
//! stream learns the outcome without parsing human text.

use std::io::{self, Write};

use cairn_solver::progress::SolveStatus;
use serde::Serialize;

use super::Renderer;
use super::model::Model;
use super::summary::Outcome;

pub struct RawJsonRenderer<W: Write> {
    out: W,
}

impl<W: Write> RawJsonRenderer<W> {
    pub fn new(out: W) -> RawJsonRenderer<W> {
        RawJsonRenderer { out }
    }

    pub fn into_inner(self) -> W {
        self.out
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Summary<'a> {
    steps: usize,
    run: usize,
    cached: usize,
    failed: usize,
    cancelled: usize,
    bytes_pulled: u64,
    bytes_pushed: u64,
    wall_seconds: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<ErrorSummary<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ErrorSummary<'a> {
    step: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    vertex: Option<&'a str>,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    exit_code: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    file: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    line: Option<u32>,
}

fn to_io(e: serde_json::Error) -> io::Error {
    io::Error::other(e)
}

impl<W: Write> Renderer for RawJsonRenderer<W> {
    fn event(&mut self, _model: &Model, status: &SolveStatus) -> io::Result<()> {
        serde_json::to_writer(&mut self.out, status).map_err(to_io)?;
        self.out.write_all(b"\n")?;
        self.out.flush()
    }

    fn finish(&mut self, model: &Model, outcome: &Outcome) -> io::Result<()> {
        let t = model.totals();
        let summary = Summary {
            steps: t.steps,
            run: t.run,
            cached: t.cached,
            failed: t.failed,
            cancelled: t.cancelled,
            bytes_pulled: t.bytes_pulled,
            bytes_pushed: outcome.bytes_pushed.unwrap_or(t.bytes_pushed),
            wall_seconds: (outcome.wall.as_secs_f64() * 1000.0).round() / 1000.0,
            error: outcome.failure.as_ref().map(|f| ErrorSummary {
                step: &f.step,
                vertex: f.vertex.as_ref().map(|d| d.as_str()),
                message: &f.message,
                exit_code: f.exit_code,
                file: f.source.as_ref().map(|s| s.file.as_str()),
                line: f.source.as_ref().map(|s| *s.highlight.start()),
            }),
        };
        serde_json::to_writer(&mut self.out, &serde_json::json!({ "summary": summary }))
            .map_err(to_io)?;
        self.out.write_all(b"\n")?;
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::progress::fixtures::*;
    use crate::progress::summary::FailureInfo;
    use std::time::Duration;

    fn render(events: &[SolveStatus], failed: bool) -> String {
        let mut model = Model::new();
        let mut r = RawJsonRenderer::new(Vec::new());
        for ev in events {
            model.apply(ev);
            r.event(&model, ev).unwrap();
        }
        let failure = if failed {
            FailureInfo::from_model(&model)
        } else {
            None
        };
        r.finish(
            &model,
            &Outcome {
                wall: Duration::from_millis(3_400),
                failure,
                bytes_pushed: None,
            },
        )
        .unwrap();
        String::from_utf8(r.into_inner()).unwrap()
    }

    #[test]
    fn one_object_per_line() {
        let out = render(&successful_build(), false);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), successful_build().len() + 1);
        for l in &lines {
            let _: serde_json::Value = serde_json::from_str(l).unwrap();
        }
        insta::assert_snapshot!(out);
    }

    #[test]
    fn failure_summary_names_the_step() {
        let out = render(&failed_build(), true);
        let last: serde_json::Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
        insta::assert_json_snapshot!(last);
    }
}
