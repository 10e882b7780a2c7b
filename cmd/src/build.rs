//! `cairn build` and `cairn solve`: open the worker on the state root, turn the input
//! (a Dockerfile through the frontend, or an LLB definition) into a graph, solve it with
//! the progress display running, and write every `--output`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, anyhow};
use cairn_frontend::convert::{
    ConvertOptions, Image, ImageResolver, ResolveError, ResolvedImage, convert_path,
};
use cairn_llb::pb::Platform;
use cairn_llb::{Definition, Digest, Graph};
use cairn_solver::worker::{
    BaseConfig, ConfigChanges, DriverChoice, HistoryEntry, HostConfig, ImageMeta, RegistryConfig,
    Session, Worker, WorkerSetup,
};
use cairn_solver::{ExportSpec, SolveOptions};
use tokio_util::sync::CancellationToken;

use crate::args::{
    BuildArg, BuildArgs, CommonSolveFlags, OutputArg, Secret, SecretSource, SolveArgs,
};
use crate::cache_io::CachePlan;
use crate::config::{Runtime, SnapshotterChoice};
use crate::exit::UsageError;
use crate::progress::{FailureInfo, ProgressSession, SourceExcerpt, stderr_renderer};
use crate::settings::Settings;

/// Opens the worker the settings describe.
pub fn open_worker(settings: &Settings, max_parallelism: Option<usize>) -> anyhow::Result<Worker> {
    settings.ensure_root()?;
    let cfg = &settings.config;
    let registry = RegistryConfig {
        hosts: cfg
            .registry
            .iter()
            .map(|(host, r)| {
                (
                    host.clone(),
                    HostConfig {
                        mirrors: r.mirrors.clone(),
                        http: r.http,
                        insecure: r.insecure,
                    },
                )
            })
            .collect(),
    };
    let runtimes = match &cfg.worker.runtime {
        Runtime::Runc => vec![PathBuf::from("runc"), PathBuf::from("crun")],
        Runtime::Crun => vec![PathBuf::from("crun")],
        Runtime::Path(p) => vec![p.clone()],
    };
    let snapshotter = match cfg.worker.snapshotter {
        SnapshotterChoice::Auto => DriverChoice::Auto,
        SnapshotterChoice::Overlay => DriverChoice::Overlay,
        SnapshotterChoice::Copy => DriverChoice::Copy,
    };
    Worker::open(WorkerSetup {
        root: settings.root.path.clone(),
        snapshotter,
        registry,
        runtimes,
        max_parallelism: max_parallelism
            .or(cfg.worker.max_parallelism.map(std::num::NonZeroUsize::get)),
    })
    .with_context(|| format!("opening the state root {}", settings.root.path.display()))
}

/// Resolves base images for the frontend through the worker, so conversion and build
/// agree on digests. The frontend is synchronous: it runs on a blocking thread and this
/// drives the async worker from there.
struct WorkerResolver {
    worker: Worker,
    handle: tokio::runtime::Handle,
}

impl ImageResolver for WorkerResolver {
    fn resolve(&self, reference: &str, platform: &Platform) -> Result<ResolvedImage, ResolveError> {
        let info = self
            .handle
            .block_on(self.worker.image_info(reference, Some(platform)))?;
        Ok(ResolvedImage {
            reference: None,
            digest: Some(info.digest),
            config: info.config,
        })
    }
}

fn read_secrets(secrets: &[Secret]) -> anyhow::Result<HashMap<String, Vec<u8>>> {
    let mut out = HashMap::new();
    for s in secrets {
        let from_file = |p: &Path| {
            std::fs::read(p).map_err(|e| {
                UsageError::new(anyhow!("secret {:?}: reading {}: {e}", s.id, p.display()))
            })
        };
        let bytes = match &s.source {
            SecretSource::File(p) => from_file(p)?,
            SecretSource::Env(var) => std::env::var_os(var)
                .ok_or_else(|| {
                    UsageError::new(anyhow!(
                        "secret {:?}: environment variable {var} is not set",
                        s.id
                    ))
                })?
                .into_encoded_bytes(),
            SecretSource::ById => match std::env::var_os(&s.id) {
                Some(v) => v.into_encoded_bytes(),
                None => from_file(Path::new(&s.id))?,
            },
        };
        out.insert(s.id.clone(), bytes);
    }
    Ok(out)
}

/// The frontend's image config split as the exporter takes it: the base part (with the
/// base image's history) and this build's history entries (those without a time yet).
fn image_meta(image: &Image) -> anyhow::Result<ImageMeta> {
    let mut base = image.clone();
    let first_new = base
        .history
        .iter()
        .rposition(|h| h.created.is_some())
        .map_or(0, |i| i + 1);
    let new: Vec<HistoryEntry> = base
        .history
        .split_off(first_new)
        .into_iter()
        .map(|h| HistoryEntry {
            created_by: h.created_by,
            comment: (!h.comment.is_empty()).then_some(h.comment),
            empty_layer: h.empty_layer,
        })
        .collect();
    // The exporter drops a base image's ONBUILD triggers (they ran when it was used), so
    // this build's own triggers travel as a change, not as part of the base.
    let onbuild = std::mem::take(&mut base.config.on_build);
    let raw = serde_json::to_vec(&base).context("encoding the image config")?;
    Ok(ImageMeta {
        base: BaseConfig::Raw(raw.into()),
        changes: ConfigChanges {
            onbuild,
            ..ConfigChanges::default()
        },
        history: new,
        platform: None,
    })
}

/// `SOURCE_DATE_EPOCH` from the environment, as BuildKit's build-arg of that name.
fn source_date_epoch(
    build_args: &std::collections::BTreeMap<String, String>,
) -> anyhow::Result<Option<i64>> {
    let raw = build_args
        .get("SOURCE_DATE_EPOCH")
        .cloned()
        .or_else(|| std::env::var("SOURCE_DATE_EPOCH").ok());
    match raw {
        None => Ok(None),
        Some(s) if s.is_empty() => Ok(None),
        Some(s) => s.trim().parse::<i64>().map(Some).map_err(|_| {
            UsageError::new(anyhow!(
                "SOURCE_DATE_EPOCH={s:?} is not a number of seconds"
            ))
            .into()
        }),
    }
}

/// The failing step's lines in the Dockerfile, from the definition's source map.
fn excerpt(def: &Definition, vertex: &Digest) -> Option<SourceExcerpt> {
    let src = def.source()?;
    let loc = src.locations.get(vertex.as_str())?.locations.first()?;
    let info = src.infos.get(usize::try_from(loc.source_index).ok()?)?;
    let range = loc.ranges.first()?;
    let start = u32::try_from(range.start.as_ref()?.line).ok()?;
    let end = u32::try_from(range.end.as_ref().map_or(start as i32, |p| p.line)).ok()?;
    let text = String::from_utf8_lossy(&info.data);
    SourceExcerpt::from_text(&info.filename, &text, start..=end.max(start), 2)
}

/// One solve and what to do with its result.
struct Job {
    definition: Definition,
    graph: Graph,
    session: Session,
    outputs: Vec<ExportSpec>,
    meta: ImageMeta,
    epoch: Option<i64>,
    caches: CachePlan,
}

/// Solves the job's graph and writes its outputs, with the progress display running.
async fn solve_and_export(
    worker: &Worker,
    settings: &Settings,
    job: Job,
    common: &CommonSolveFlags,
    cancel: CancellationToken,
) -> anyhow::Result<()> {
    let Job {
        definition,
        graph,
        session,
        outputs,
        meta,
        epoch,
        caches,
    } = job;
    let (definition, outputs, meta) = (&definition, &outputs[..], &meta);
    let progress = ProgressSession::start(stderr_renderer(common.progress.resolve_for_stderr()));
    let imports = caches.import(worker, &progress.sender()).await;
    let opts = SolveOptions {
        no_cache: common.no_cache,
        max_parallelism: common.max_parallelism.map(std::num::NonZeroUsize::get),
        progress: Some(progress.sender()),
        cancel: cancel.clone(),
        imports,
    };
    let solved = worker.solve(&graph, Arc::new(session), opts).await;
    let mut metadata = serde_json::Map::new();
    let exported = match &solved {
        Ok(out) => {
            let mut res = Ok(());
            for spec in outputs {
                let mut meta = meta.clone();
                if caches.inline() {
                    match worker.inline_cache_for(out, spec, epoch).await {
                        Ok(c) => meta.changes.inline_cache = c,
                        Err(e) => {
                            res = Err(anyhow::Error::new(e).context("making the inline cache"));
                            break;
                        }
                    }
                }
                match worker.export(out, spec, &meta, epoch).await {
                    Ok(Some(resp)) => {
                        if let serde_json::Value::Object(m) = resp.metadata {
                            metadata.extend(m);
                        }
                    }
                    Ok(None) => {}
                    Err(e) => {
                        res = Err(anyhow::Error::new(e).context("exporting the result"));
                        break;
                    }
                }
            }
            if res.is_ok() {
                res = caches.export(worker, out, epoch, &progress.sender()).await;
            }
            res
        }
        Err(_) => Ok(()),
    };
    progress
        .finish(
            |model| {
                let f = FailureInfo::from_model(model)?;
                let src = f.vertex.as_ref().and_then(|v| excerpt(definition, v));
                Some(match src {
                    Some(s) => f.with_source(s),
                    None => f,
                })
            },
            None,
        )
        .await
        .context("finishing the progress display")?;
    solved.map_err(|e| anyhow::Error::new(e).context("failed to solve"))?;
    exported?;
    if let Some(digest) = metadata
        .get("containerimage.digest")
        .and_then(|d| d.as_str())
    {
        // The digest is the build's answer; stdout unless an output already uses it.
        if outputs.iter().any(ExportSpec::writes_stdout) {
            eprintln!("{digest}");
        } else {
            println!("{digest}");
        }
    }
    if let Some(path) = &common.metadata_file {
        write_json_atomically(path, &serde_json::Value::Object(metadata))?;
    }
    if let Err(e) = crate::du::apply_gc(worker, settings) {
        eprintln!("WARNING: cleaning the cache after the build failed: {e:#}");
    }
    if outputs.is_empty() {
        eprintln!(
            "WARNING: no output specified; the result is only in the build cache (add -o type=…)"
        );
    }
    Ok(())
}

fn write_json_atomically(path: &Path, v: &serde_json::Value) -> anyhow::Result<()> {
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    let text = serde_json::to_vec_pretty(v).context("encoding metadata")?;
    std::fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))
}

fn specs(outputs: &[OutputArg]) -> Vec<ExportSpec> {
    outputs.iter().map(|o| o.spec().clone()).collect()
}

/// `cairn build`.
pub async fn build(
    settings: Settings,
    args: BuildArgs,
    cancel: CancellationToken,
) -> anyhow::Result<()> {
    let context = args.context.clone();
    if !context.is_dir() {
        return Err(UsageError::new(anyhow!(
            "build context {} is not a directory",
            context.display()
        ))
        .into());
    }
    let dockerfile = args
        .file
        .clone()
        .unwrap_or_else(|| context.join("Dockerfile"));
    let secrets = read_secrets(&args.secrets)?;
    let build_args = BuildArg::resolve(&args.build_args, |k| std::env::var(k).ok());
    let epoch = source_date_epoch(&build_args)?;
    let caches = CachePlan::new(&args.common.cache_from, &args.common.cache_to)?;
    let mut outputs = specs(&args.outputs);
    let names: Vec<String> = args.tags.iter().map(|t| t.0.clone()).collect();
    if !names.is_empty() {
        for o in &mut outputs {
            o.add_default_names(&names);
        }
    }
    let worker = open_worker(
        &settings,
        args.common.max_parallelism.map(std::num::NonZeroUsize::get),
    )?;
    let opts = ConvertOptions {
        filename: converted_file(&dockerfile),
        target: args.target.clone(),
        build_args,
        no_cache: args.common.no_cache.then(Vec::new),
        ..ConvertOptions::default()
    };
    let resolver = WorkerResolver {
        worker: worker.clone(),
        handle: tokio::runtime::Handle::current(),
    };
    let (ctx2, df2) = (context.clone(), dockerfile.clone());
    let converted = tokio::task::spawn_blocking(move || convert_path(&ctx2, &df2, opts, &resolver))
        .await
        .context("the Dockerfile conversion task failed")?
        .map_err(|e| UsageError::new(anyhow!("{e}")))?;
    for w in &converted.warnings {
        eprintln!(
            "WARNING: {}:{}: {}",
            converted_file(&dockerfile),
            w.range.start.line,
            w.message
        );
    }
    let meta = image_meta(&converted.image)?;
    let definition = converted.definition;
    let graph = definition
        .clone()
        .validate()
        .context("the frontend produced an invalid definition")?;
    let mut locals = HashMap::new();
    locals.insert("context".to_owned(), context.clone());
    if let Some(dir) = dockerfile.parent() {
        locals.insert("dockerfile".to_owned(), dir.to_path_buf());
    }
    let session = Session { locals, secrets };
    let job = Job {
        definition,
        graph,
        session,
        outputs,
        meta,
        epoch,
        caches,
    };
    solve_and_export(&worker, &settings, job, &args.common, cancel).await
}

/// `cairn solve`: an LLB definition from a file or stdin (what `buildctl build` takes).
pub async fn solve(
    settings: Settings,
    args: SolveArgs,
    cancel: CancellationToken,
) -> anyhow::Result<()> {
    let bytes = if args.reads_stdin() {
        let mut buf = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut buf)
            .context("reading the definition from stdin")?;
        buf
    } else {
        std::fs::read(&args.definition)
            .with_context(|| format!("reading {}", args.definition.display()))?
    };
    let definition = Definition::decode(&bytes).map_err(|e| UsageError::new(anyhow!("{e}")))?;
    let graph = definition
        .clone()
        .validate()
        .map_err(|e| UsageError::new(anyhow!("{e}")))?;
    let worker = open_worker(
        &settings,
        args.common.max_parallelism.map(std::num::NonZeroUsize::get),
    )?;
    let outputs = specs(&args.outputs);
    let cwd = std::env::current_dir().context("reading the current directory")?;
    // buildctl's convention: local sources named `context` and `dockerfile` are the
    // current directory unless the definition says otherwise.
    let locals = HashMap::from([
        ("context".to_owned(), cwd.clone()),
        ("dockerfile".to_owned(), cwd),
    ]);
    let session = Session {
        locals,
        secrets: HashMap::new(),
    };
    let job = Job {
        definition,
        graph,
        session,
        outputs,
        meta: ImageMeta::default(),
        epoch: source_date_epoch(&Default::default())?,
        caches: CachePlan::new(&args.common.cache_from, &args.common.cache_to)?,
    };
    solve_and_export(&worker, &settings, job, &args.common, cancel).await
}

/// The Dockerfile's name as errors, warnings and the source map show it.
fn converted_file(dockerfile: &Path) -> String {
    dockerfile
        .file_name()
        .map_or_else(|| "Dockerfile".into(), |n| n.to_string_lossy().into_owned())
}
