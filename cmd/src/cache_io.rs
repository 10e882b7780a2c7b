//! `--cache-from` and `--cache-to` around a solve: imports are read before it (a cache
//! that cannot be read is a warning, and the build goes on without it), exports written
//! after it. Each shows as a step of the progress display, as in BuildKit.

use std::sync::Arc;

use anyhow::{Context, anyhow};
use cairn_llb::Digest;
use cairn_solver::progress::Timestamp;
use cairn_solver::worker::{CacheExportSpec, CacheLocation, CacheMode, LayerCompression, Worker};
use cairn_solver::{ImportedCache, SolveOutput, SolveStatus, Stream, VertexEvent, VertexWarning};
use tokio::sync::mpsc::UnboundedSender;

use crate::args::CacheSpec;
use crate::exit::UsageError;

/// The caches of one build, checked before anything runs.
#[derive(Debug, Default)]
pub struct CachePlan {
    imports: Vec<CacheLocation>,
    exports: Vec<Export>,
    /// `--cache-to type=inline`: image outputs carry their cache in their config.
    inline: bool,
}

#[derive(Debug)]
struct Export {
    spec: CacheExportSpec,
    ignore_error: bool,
    kind: &'static str,
}

impl CachePlan {
    pub fn new(from: &[CacheSpec], to: &[CacheSpec]) -> anyhow::Result<CachePlan> {
        let mut plan = CachePlan::default();
        for s in from {
            plan.imports.push(location(s, "src")?);
        }
        for s in to {
            if s.kind == "inline" {
                plan.inline = true;
                continue;
            }
            let mode = match s.attrs.get("mode").map(String::as_str) {
                Some("max") => CacheMode::Max,
                _ => CacheMode::Min,
            };
            let compression = match s.attrs.get("compression").map(String::as_str) {
                None | Some("gzip") => LayerCompression::Gzip,
                Some("zstd") => LayerCompression::Zstd,
                Some("uncompressed") => LayerCompression::None,
                Some(other) => {
                    return Err(usage(format!(
                        "--cache-to type={}: compression={other:?} is not gzip, zstd or uncompressed",
                        s.kind
                    )));
                }
            };
            let ignore_error = match s.attrs.get("ignore-error").map(String::as_str) {
                None | Some("false") => false,
                Some("true") => true,
                Some(other) => {
                    return Err(usage(format!(
                        "--cache-to: ignore-error={other:?} is not true or false"
                    )));
                }
            };
            let kind = if s.kind == "local" {
                "client directory"
            } else {
                "registry"
            };
            plan.exports.push(Export {
                spec: CacheExportSpec {
                    location: location(s, "dest")?,
                    mode,
                    compression,
                },
                ignore_error,
                kind,
            });
        }
        Ok(plan)
    }

    /// Whether image outputs should carry an inline cache.
    pub fn inline(&self) -> bool {
        self.inline
    }

    /// Reads every import; one that fails is reported as a warning and left out.
    pub async fn import(
        &self,
        worker: &Worker,
        progress: &UnboundedSender<SolveStatus>,
    ) -> Vec<Arc<dyn ImportedCache>> {
        let mut out = Vec::new();
        for loc in &self.imports {
            let step = Step::start(progress, format!("importing cache manifest from {loc}"));
            match worker.import_cache(loc).await {
                Ok(imp) => {
                    out.push(imp);
                    step.done("");
                }
                Err(e) => {
                    step.warn(format!("{e}; building without this cache"));
                    step.done("");
                }
            }
        }
        out
    }

    /// Writes every export. A failure fails the build unless the export said
    /// `ignore-error=true`, then it is a warning.
    pub async fn export(
        &self,
        worker: &Worker,
        out: &SolveOutput,
        epoch: Option<i64>,
        progress: &UnboundedSender<SolveStatus>,
    ) -> anyhow::Result<()> {
        for e in &self.exports {
            let step = Step::start(progress, format!("exporting cache to {}", e.kind));
            match worker.export_cache(out, &e.spec, epoch).await {
                Ok(report) => {
                    step.log(format!(
                        "{} steps, {} layers, manifest {}\n",
                        report.steps, report.layers, report.manifest
                    ));
                    step.done("");
                }
                Err(err) if e.ignore_error => {
                    step.warn(format!("exporting cache to {}: {err}", e.spec.location));
                    step.done("");
                }
                Err(err) => {
                    step.done(&err.to_string());
                    return Err(anyhow::Error::new(err))
                        .with_context(|| format!("exporting cache to {}", e.spec.location));
                }
            }
        }
        Ok(())
    }
}

fn usage(msg: String) -> anyhow::Error {
    UsageError::new(anyhow!(msg)).into()
}

fn location(s: &CacheSpec, dir_key: &str) -> anyhow::Result<CacheLocation> {
    match s.kind.as_str() {
        "registry" => {
            let name = s.attrs.get("ref").map(String::as_str).unwrap_or_default();
            CacheLocation::registry(name).map_err(|e| usage(e.to_string()))
        }
        "local" => {
            let dir = s.attrs.get(dir_key).map(String::as_str).unwrap_or_default();
            Ok(CacheLocation::local(
                dir,
                s.attrs.get("tag").map(String::as_str),
            ))
        }
        other => Err(usage(format!(
            "cache type {other:?} is not supported (supported: registry, local)"
        ))),
    }
}

/// A progress line of its own for work outside the graph.
struct Step<'a> {
    tx: &'a UnboundedSender<SolveStatus>,
    event: VertexEvent,
}

impl<'a> Step<'a> {
    fn start(tx: &'a UnboundedSender<SolveStatus>, name: String) -> Step<'a> {
        let event = VertexEvent {
            digest: Digest::of_bytes(format!("cairn side step {name}").as_bytes()),
            inputs: Vec::new(),
            name,
            started: Some(Timestamp::now()),
            completed: None,
            cached: false,
            error: String::new(),
            progress_group: None,
        };
        let step = Step { tx, event };
        step.send(SolveStatus {
            vertexes: vec![step.event.clone()],
            ..SolveStatus::default()
        });
        step
    }

    fn send(&self, s: SolveStatus) {
        let _display_gone_is_fine = self.tx.send(s);
    }

    fn log(&self, text: String) {
        self.send(SolveStatus {
            logs: vec![cairn_solver::VertexLog {
                vertex: self.event.digest.clone(),
                stream: Stream::Stdout,
                data: text.into_bytes(),
                timestamp: Timestamp::now(),
            }],
            ..SolveStatus::default()
        });
    }

    fn warn(&self, text: String) {
        self.send(SolveStatus {
            warnings: vec![VertexWarning {
                vertex: self.event.digest.clone(),
                level: 1,
                short: text.into_bytes(),
                detail: Vec::new(),
                url: String::new(),
                source_info: None,
            }],
            ..SolveStatus::default()
        });
    }

    fn done(mut self, error: &str) {
        self.event.completed = Some(Timestamp::now());
        self.event.error = error.to_owned();
        self.send(SolveStatus {
            vertexes: vec![self.event.clone()],
            ..SolveStatus::default()
        });
    }
}
