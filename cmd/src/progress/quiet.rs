//! `--progress=quiet`: nothing while the build runs. The command prints its result (an
//! image digest, a path) on stdout itself; on failure this prints the failure block and
//! the summary, since an error without its context is what users complain about most.

use std::io::{self, Write};

use cairn_solver::progress::SolveStatus;

use super::Renderer;
use super::model::Model;
use super::summary::{Outcome, ending};

pub struct QuietRenderer<W: Write> {
    out: W,
}

impl<W: Write> QuietRenderer<W> {
    pub fn new(out: W) -> QuietRenderer<W> {
        QuietRenderer { out }
    }

    pub fn into_inner(self) -> W {
        self.out
    }
}

impl<W: Write> Renderer for QuietRenderer<W> {
    fn event(&mut self, _model: &Model, _status: &SolveStatus) -> io::Result<()> {
        Ok(())
    }

    fn finish(&mut self, model: &Model, outcome: &Outcome) -> io::Result<()> {
        if outcome.failure.is_some() {
            self.out.write_all(ending(model, outcome).as_bytes())?;
        }
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::progress::fixtures::*;
    use crate::progress::summary::FailureInfo;

    #[test]
    fn silent_unless_failed() {
        for (events, failed) in [(successful_build(), false), (failed_build(), true)] {
            let mut model = Model::new();
            let mut r = QuietRenderer::new(Vec::new());
            for ev in &events {
                model.apply(ev);
                r.event(&model, ev).unwrap();
            }
            let failure = FailureInfo::from_model(&model);
            assert_eq!(failure.is_some(), failed);
            r.finish(
                &model,
                &Outcome {
                    failure,
                    ..Outcome::default()
                },
            )
            .unwrap();
            let out = String::from_utf8(r.into_inner()).unwrap();
            if failed {
                assert!(
                    out.contains(" > [2/3] RUN false:\n0.123 checking things\n"),
                    "{out}"
                );
                assert!(
                    out.ends_with("1 failed, 1 cancelled), 0B pulled, 0B pushed\n"),
                    "{out}"
                );
            } else {
                assert_eq!(out, "");
            }
        }
    }
}
