//! Dockerfile to LLB (BuildKit's `dockerfile2llb`): every stage becomes an LLB state,
//! independent stages stay independent subgraphs (so they run in parallel), `--target`
//! prunes stages the target does not need, and the image config of the target stage is
//! accumulated beside the graph for the exporter.
//!
//! Step names, descriptions, history entries and op options are BuildKit's, so progress
//! output and graphs look the same as with `docker buildx build`; the conversion is pinned
//! against BuildKit-made definitions in `shared/testdata/llb`.

mod copy;
mod dispatch;
mod format;
mod image;
mod platform;
mod reference;
mod run;
mod stages;

use std::collections::BTreeMap;

use cairn_llb::Definition;
use cairn_llb::builder::State;
use cairn_llb::pb::{self, Platform};

pub use format::{go_duration, go_quoted_list, normalize_path};
pub use image::{HISTORY_COMMENT, HealthConfig, History, Image, ImageConfig, RootFs};
pub use platform::{format_platform, parse_platform};
pub use reference::Reference;

use crate::error::Error;
use crate::position::Range;

/// What an image reference resolved to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedImage {
    /// The canonical reference when the resolver changed it (e.g. a mirror), else `None`.
    pub reference: Option<String>,
    /// The manifest digest the build will pin the source to.
    pub digest: Option<String>,
    /// The raw image config JSON.
    pub config: Vec<u8>,
}

/// Looks up base images while converting: a stage's base config (its `ENV`, `WORKDIR`,
/// `USER`, `SHELL`, `ONBUILD`) shapes the LLB that follows `FROM`, so it must be known
/// before the stage is converted.
///
/// Contract: called once per distinct (reference, platform) the reachable stages use, from
/// the converting thread, before any op of that stage is built; `reference` is normalised
/// (`docker.io/library/busybox:latest`). The converter is synchronous, so an async registry
/// client is driven from a blocking context (e.g. `Handle::block_on` inside
/// `spawn_blocking`). An error aborts the conversion and is reported at the line naming the
/// image (`FROM`, `COPY --from`, `RUN --mount from=`),
/// with near stage names suggested.
pub trait ImageResolver {
    fn resolve(&self, reference: &str, platform: &Platform) -> Result<ResolvedImage, ResolveError>;
}

/// Whatever went wrong inside a resolver; its whole source chain ends up in the message.
pub type ResolveError = Box<dyn std::error::Error + Send + Sync>;

/// `err: cause: cause…`, so a resolver's typed error keeps its detail in the report.
fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut cur = err.source();
    while let Some(e) = cur {
        out.push_str(": ");
        out.push_str(&e.to_string());
        cur = e.source();
    }
    out
}

/// Inputs of a conversion besides the Dockerfile (BuildKit's frontend options).
#[derive(Debug, Clone)]
pub struct ConvertOptions {
    /// Shown in errors and recorded in the definition's source map.
    pub filename: String,
    /// `--target`: the stage to build (default: the last).
    pub target: Option<String>,
    /// `--build-arg`.
    pub build_args: BTreeMap<String, String>,
    /// `--platform` (default: the build platform).
    pub target_platform: Option<Platform>,
    /// The platform the build runs on (default: the host's).
    pub build_platform: Option<Platform>,
    /// `--label`, added to the result image.
    pub labels: BTreeMap<String, String>,
    /// `.dockerignore` patterns, carried as `local.excludepatterns`.
    pub exclude_patterns: Vec<String>,
    /// Name of the build context source (`local://context`).
    pub context_name: String,
    /// `local.unique` of the context source; BuildKit's client puts a random ID there.
    pub context_unique_id: Option<String>,
    /// `--no-cache`: `Some(vec![])` re-runs every step, `Some(names)` only the steps of
    /// those stages (BuildKit's `no-cache` option); image sources are still cached.
    pub no_cache: Option<Vec<String>>,
}

impl Default for ConvertOptions {
    fn default() -> Self {
        Self {
            filename: "Dockerfile".to_string(),
            target: None,
            build_args: BTreeMap::new(),
            target_platform: None,
            build_platform: None,
            labels: BTreeMap::new(),
            exclude_patterns: Vec::new(),
            context_name: "context".to_string(),
            context_unique_id: None,
            no_cache: None,
        }
    }
}

/// The converted build.
#[derive(Debug, Clone)]
pub struct Converted {
    /// The LLB graph of the target stage, with source locations.
    pub definition: Definition,
    /// The final state (for callers that keep building on it).
    pub state: State,
    /// The target stage's image config, history included.
    pub image: Image,
    /// Parser warnings (empty continuation lines, …).
    pub warnings: Vec<crate::parser::Warning>,
}

/// Converts a Dockerfile to LLB.
pub fn convert(
    source: &str,
    opts: &ConvertOptions,
    resolver: &dyn ImageResolver,
) -> Result<Converted, Error> {
    stages::convert(source, opts, resolver).map_err(|e| e.in_file(&opts.filename))
}

/// Converts the Dockerfile at `dockerfile` for the build context `context`, the way
/// `docker build -f DOCKERFILE CONTEXT` does: the ignore file (`DOCKERFILE.dockerignore`,
/// else `CONTEXT/.dockerignore`) supplies the exclude patterns unless `opts` already has
/// some, and errors name the Dockerfile by its file name.
pub fn convert_path(
    context: &std::path::Path,
    dockerfile: &std::path::Path,
    mut opts: ConvertOptions,
    resolver: &dyn ImageResolver,
) -> Result<Converted, Error> {
    let io = |reason: std::io::Error| {
        Error::new(crate::error::ErrorKind::Io {
            path: dockerfile.to_path_buf(),
            reason: reason.to_string(),
        })
    };
    let source = std::fs::read_to_string(dockerfile).map_err(io)?;
    if opts.exclude_patterns.is_empty()
        && let Some((_, patterns)) = crate::dockerignore::load(context, dockerfile)?
    {
        opts.exclude_patterns = patterns;
    }
    if let Some(name) = dockerfile.file_name().and_then(|n| n.to_str()) {
        opts.filename = name.to_string();
    }
    convert(&source, &opts, resolver)
}

/// Attaches the Dockerfile and the ranges each op came from to the definition
/// (`Definition.Source`), which clients use to point at the failing line.
fn with_source_map(
    def: Definition,
    filename: &str,
    source: &str,
    locations: &[(String, Range)],
) -> Result<Definition, Error> {
    let mut raw = def.to_pb();
    let mut src = raw.source.take().unwrap_or_default();
    src.infos = vec![pb::SourceInfo {
        filename: filename.to_string(),
        data: source.as_bytes().to_vec(),
        definition: None,
        language: "Dockerfile".to_string(),
    }];
    for (digest, range) in locations {
        let Some(entry) = src.locations.get_mut(digest) else {
            continue;
        };
        let pos = |line: usize| {
            Some(pb::Position {
                line: i32::try_from(line).unwrap_or(i32::MAX),
                character: 0,
            })
        };
        let r = pb::Range {
            start: pos(range.start.line),
            end: pos(range.end.line),
        };
        match entry.locations.iter_mut().find(|l| l.source_index == 0) {
            Some(loc) => {
                if !loc.ranges.contains(&r) {
                    loc.ranges.push(r);
                }
            }
            None => entry.locations.push(pb::Location {
                source_index: 0,
                ranges: vec![r],
            }),
        }
    }
    raw.source = Some(src);
    Definition::from_pb(raw).map_err(|e| Error::new(crate::error::ErrorKind::Llb(e.to_string())))
}

#[cfg(test)]
mod tests;
