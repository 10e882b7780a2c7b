//! The stage graph: names, bases, `--from` dependencies, the target and what it reaches,
//! base image resolution, and the two dispatch passes (the first learns which context
//! paths are used, the second builds the graph with a context source that only follows
//! those paths, as BuildKit's `local.followpaths` does).

use std::collections::{BTreeMap, BTreeSet};

use cairn_llb::builder::{self, ImageOptions, LocalOptions, State};
use cairn_llb::pb::Platform;

use super::dispatch::{Dispatcher, prefix_command};
use super::image::Image;
use super::platform::parse_platform;
use super::reference::Reference;
use super::{
    ConvertOptions, Converted, ImageResolver, ResolvedImage, format_platform, with_source_map,
};
use crate::error::{Error, ErrorKind};
use crate::instructions::{self, ArgDef, Command, Instruction, Stage};
use crate::parser;
use crate::position::Range;
use crate::shell::{EnvGetter, EnvList, Lex, NoEnv};
use crate::suggest;

/// A command with the stages it reads from (`COPY --from`, `RUN --mount from=`).
#[derive(Debug, Clone)]
pub(super) struct Cmd {
    pub command: Command,
    /// One entry per `--from` / mount, in order.
    pub sources: Vec<usize>,
    pub onbuild: bool,
}

/// One stage, or an image / scratch used by `--from` that is not a stage.
#[derive(Debug, Clone)]
pub(super) struct DState {
    pub stage: Option<Stage>,
    /// The expanded base (`FROM` argument, or the `--from` name).
    pub base_name: String,
    pub stage_name: String,
    pub platform: Option<Platform>,
    pub base: Option<usize>,
    pub deps: BTreeSet<usize>,
    pub commands: Vec<Cmd>,
    pub cmd_total: usize,
    pub cmd_index: usize,
    pub cmd_is_onbuild: bool,
    pub range: Range,
    pub onbuild_done: bool,
    // Set once the base is known (resolution) or the stage ran (dispatch).
    pub state: Option<State>,
    pub image: Image,
    pub dispatched: bool,
    pub build_args: Vec<ArgDef>,
    pub env: EnvList,
    pub ctx_paths: BTreeSet<String>,
    pub cmd_set: bool,
    /// Steps of this stage skip the cache (`--no-cache`).
    pub ignore_cache: bool,
}

impl DState {
    fn new(stage: Option<Stage>, base_name: String, range: Range) -> Self {
        Self {
            stage,
            base_name,
            stage_name: String::new(),
            platform: None,
            base: None,
            deps: BTreeSet::new(),
            commands: Vec::new(),
            cmd_total: 0,
            cmd_index: 0,
            cmd_is_onbuild: false,
            range,
            onbuild_done: false,
            state: None,
            image: Image::default(),
            dispatched: false,
            build_args: Vec::new(),
            env: EnvList::new(),
            ctx_paths: BTreeSet::new(),
            cmd_set: false,
            ignore_cache: false,
        }
    }

    fn unregistered(&self) -> bool {
        self.stage.is_none()
    }
}

struct Plan {
    states: Vec<DState>,
    by_name: BTreeMap<String, usize>,
}

impl Plan {
    fn names(&self) -> Vec<String> {
        self.states
            .iter()
            .filter(|s| !s.unregistered())
            .filter_map(|s| s.stage.as_ref()?.name.clone())
            .collect()
    }

    /// The stage a `--from` names, or a new image/scratch state for it.
    fn source_for(&mut self, from: &str, range: Range) -> Result<usize, Error> {
        if let Ok(index) = from.parse::<usize>() {
            if index >= self.states.len() {
                return Err(Error::new(ErrorKind::StageIndex(index)).at(range));
            }
            return Ok(index);
        }
        if let Some(&i) = self.by_name.get(&from.to_lowercase()) {
            return Ok(i);
        }
        self.states.push(DState::new(None, from.to_string(), range));
        Ok(self.states.len() - 1)
    }

    /// Records the sources of a command (registering images it names).
    fn command_sources(&mut self, cmd: &Command) -> Result<Vec<usize>, Error> {
        let mut sources = Vec::new();
        match &cmd.instruction {
            Instruction::Copy(c) => {
                if let Some(from) = &c.from {
                    let lex = Lex::new('\\');
                    let expanded = lex
                        .process_word(from, &NoEnv)
                        .map_err(|e| Error::from(e).at(cmd.range))?;
                    if expanded.result != *from {
                        return Err(Error::new(ErrorKind::FromExpansion).at(cmd.range));
                    }
                    sources.push(self.source_for(from, cmd.range)?);
                }
            }
            Instruction::Run(r) => {
                for raw in &r.mounts {
                    let from = instructions::mount_from(raw).map_err(|e| e.at(cmd.range))?;
                    let from = from.unwrap_or_else(|| "scratch".to_string());
                    match self.by_name.get(&from.to_lowercase()) {
                        Some(&i) => sources.push(i),
                        None => {
                            self.states.push(DState::new(None, from, cmd.range));
                            sources.push(self.states.len() - 1);
                        }
                    }
                }
            }
            _ => {}
        }
        Ok(sources)
    }

    fn reachable(&self, target: usize) -> BTreeSet<usize> {
        let mut seen = BTreeSet::new();
        let mut todo = vec![target];
        while let Some(i) = todo.pop() {
            if !seen.insert(i) {
                continue;
            }
            let s = &self.states[i];
            todo.extend(s.base);
            todo.extend(s.deps.iter().copied());
        }
        seen
    }

    /// Depth-first with an explicit stack, so a chain of thousands of stages cannot
    /// exhaust the thread's stack.
    fn check_cycles(&self) -> Result<(), Error> {
        // 0 = unvisited, 1 = on the current path, 2 = done
        let mut mark = vec![0u8; self.states.len()];
        for root in 0..self.states.len() {
            if mark[root] != 0 {
                continue;
            }
            let mut stack: Vec<(usize, Vec<usize>)> = vec![(root, self.edges(root))];
            mark[root] = 1;
            while let Some((node, pending)) = stack.last_mut() {
                let Some(next) = pending.pop() else {
                    mark[*node] = 2;
                    stack.pop();
                    continue;
                };
                match mark[next] {
                    1 => {
                        let s = &self.states[next];
                        let name = if s.stage_name.is_empty() {
                            s.base_name.clone()
                        } else {
                            s.stage_name.clone()
                        };
                        return Err(Error::new(ErrorKind::CircularDependency(name)).at(s.range));
                    }
                    2 => {}
                    _ => {
                        mark[next] = 1;
                        stack.push((next, self.edges(next)));
                    }
                }
            }
        }
        Ok(())
    }

    fn edges(&self, i: usize) -> Vec<usize> {
        let s = &self.states[i];
        s.base.iter().chain(s.deps.iter()).copied().collect()
    }
}

/// BuildKit's automatic platform args, overridable by `--build-arg`.
fn default_args(
    bp: &Platform,
    tp: &Platform,
    target: &str,
    overrides: &BTreeMap<String, String>,
) -> EnvList {
    let mut env = EnvList::new();
    let target = if target.is_empty() { "default" } else { target };
    let pairs = [
        ("BUILDPLATFORM", format_platform(bp)),
        ("BUILDOS", bp.os.clone()),
        ("BUILDOSVERSION", bp.os_version.clone()),
        ("BUILDARCH", bp.architecture.clone()),
        ("BUILDVARIANT", bp.variant.clone()),
        ("TARGETPLATFORM", format_platform(tp)),
        ("TARGETOS", tp.os.clone()),
        ("TARGETOSVERSION", tp.os_version.clone()),
        ("TARGETARCH", tp.architecture.clone()),
        ("TARGETVARIANT", tp.variant.clone()),
        ("TARGETSTAGE", target.to_string()),
    ];
    for (k, v) in pairs {
        let v = overrides.get(k).cloned().unwrap_or(v);
        env.set(k, &v);
    }
    env
}

/// Global `ARG`s (before the first `FROM`): `--build-arg` wins, else the default expanded
/// with the args defined so far.
fn meta_args(
    mut args: EnvList,
    lex: &Lex,
    defs: &[(Vec<ArgDef>, Range)],
    build_args: &BTreeMap<String, String>,
) -> Result<EnvList, Error> {
    for (list, range) in defs {
        for def in list {
            let value = match build_args.get(&def.key) {
                Some(v) => Some(v.clone()),
                None => match &def.value {
                    Some(v) => Some(
                        lex.process_word(v, &args)
                            .map_err(|e| Error::from(e).at(*range))?
                            .result,
                    ),
                    None => None,
                },
            };
            if let Some(v) = value {
                args.set(&def.key, &v);
            }
        }
    }
    Ok(args)
}

pub(super) fn convert(
    source: &str,
    opts: &ConvertOptions,
    resolver: &dyn ImageResolver,
) -> Result<Converted, Error> {
    if source.is_empty() {
        return Err(Error::new(ErrorKind::Empty));
    }
    let df = parser::parse(source, &opts.filename)?;
    let parsed = instructions::parse_dockerfile(&df)?;
    let lex = Lex::new(df.escape);

    let bp = opts.build_platform.clone().unwrap_or_else(Platform::host);
    let tp = opts.target_platform.clone().unwrap_or_else(|| bp.clone());
    let target_name = match &opts.target {
        Some(t) => t.clone(),
        None => parsed
            .stages
            .last()
            .and_then(|s| s.name.clone())
            .unwrap_or_default(),
    };
    let global = default_args(&bp, &tp, &target_name, &opts.build_args);
    let global = meta_args(global, &lex, &parsed.meta_args, &opts.build_args)?;

    // Stages, in order; a base names only an earlier stage.
    let mut plan = Plan {
        states: Vec::new(),
        by_name: BTreeMap::new(),
    };
    for (i, stage) in parsed.stages.iter().enumerate() {
        let base = lex
            .process_word(&stage.base_name, &global)
            .map_err(|e| Error::from(e).at(stage.range))?
            .result;
        if base.is_empty() {
            return Err(
                Error::new(ErrorKind::BlankBaseName(stage.base_name.clone())).at(stage.range),
            );
        }
        let mut d = DState::new(Some(stage.clone()), base.clone(), stage.range);
        if let Some(p) = &stage.platform {
            let expanded = lex
                .process_word(p, &global)
                .map_err(|e| Error::from(e).at(stage.range))?
                .result;
            d.platform = Some(parse_platform(&expanded).map_err(|e| e.at(stage.range))?);
        }
        d.base = plan.by_name.get(&base.to_lowercase()).copied();
        d.stage_name = stage.name.clone().unwrap_or_else(|| format!("stage-{i}"));
        let from_op = usize::from(base != "scratch" && d.base.is_none());
        let steps = stage
            .commands
            .iter()
            .filter(|c| {
                matches!(
                    c.instruction,
                    Instruction::Add(_)
                        | Instruction::Copy(_)
                        | Instruction::Run(_)
                        | Instruction::Workdir(_)
                )
            })
            .count();
        d.cmd_total = from_op + steps;
        d.ignore_cache = match &opts.no_cache {
            None => false,
            Some(names) => {
                names.is_empty()
                    || stage
                        .name
                        .as_ref()
                        .is_some_and(|n| names.iter().any(|x| x.eq_ignore_ascii_case(n)))
            }
        };
        if let Some(name) = &stage.name {
            plan.by_name.insert(name.clone(), plan.states.len());
        }
        plan.states.push(d);
    }

    let target = match &opts.target {
        Some(t) => *plan.by_name.get(&t.to_lowercase()).ok_or_else(|| {
            Error::new(ErrorKind::TargetNotFound(t.clone())).suggest(suggest::closest(
                t,
                plan.names().iter().map(String::as_str),
                true,
            ))
        })?,
        None => plan.states.len() - 1,
    };

    let n_stages = plan.states.len();
    for i in 0..n_stages {
        let commands = plan.states[i]
            .stage
            .as_ref()
            .map(|s| s.commands.clone())
            .unwrap_or_default();
        let mut cmds = Vec::with_capacity(commands.len());
        for command in commands {
            let sources = plan.command_sources(&command)?;
            plan.states[i].deps.extend(sources.iter().copied());
            cmds.push(Cmd {
                command,
                sources,
                onbuild: false,
            });
        }
        plan.states[i].commands = cmds;
    }
    plan.check_cycles()?;
    if plan.states.len() == 1 {
        plan.states[0].stage_name.clear();
    }

    // Resolve bases of what the target reaches; ONBUILD triggers may add dependencies.
    let mut resolved: BTreeSet<usize> = BTreeSet::new();
    let mut memo = Memo {
        resolver,
        seen: BTreeMap::new(),
    };
    loop {
        let reachable = plan.reachable(target);
        for &i in &reachable {
            if plan.states[i].base.is_none() && !resolved.contains(&i) {
                resolve_base(&mut plan, i, &tp, &mut memo)?;
                resolved.insert(i);
            }
        }
        let mut new_deps = false;
        for &i in &reachable {
            if plan.states[i].onbuild_done || plan.states[i].unregistered() {
                continue;
            }
            plan.states[i].onbuild_done = true;
            let mut triggers: Vec<String> = match plan.states[i].base {
                Some(b) => plan.states[b]
                    .commands
                    .iter()
                    .filter(|c| !c.onbuild)
                    .filter_map(|c| match &c.command.instruction {
                        Instruction::Onbuild(expr) => Some(expr.clone()),
                        _ => None,
                    })
                    .collect(),
                None => plan.states[i].image.config.on_build.clone(),
            };
            if plan.states[i].base.is_none() {
                plan.states[i].image.config.on_build.clear();
            }
            if triggers.is_empty() {
                continue;
            }
            let range = plan.states[i].range;
            let mut cmds = Vec::new();
            for trigger in triggers.drain(..) {
                let tdf =
                    parser::parse(&trigger, &opts.filename).map_err(|e| e.at_exactly(range))?;
                let [node] = tdf.nodes.as_slice() else {
                    return Err(Error::new(ErrorKind::Arguments(
                        "onbuild trigger should be a single expression".into(),
                    ))
                    .at(range));
                };
                let mut node = node.clone();
                node.range = range;
                let instructions::Parsed::Command(command) =
                    instructions::parse_node(&node).map_err(|e| e.at_exactly(range))?
                else {
                    return Err(Error::new(ErrorKind::Arguments(
                        "FROM isn't allowed as an ONBUILD trigger".into(),
                    ))
                    .at(range));
                };
                let before = plan.states.len();
                let sources = plan.command_sources(&command)?;
                if !sources.is_empty() {
                    new_deps = true;
                }
                if plan.states.len() > before {
                    new_deps = true;
                }
                plan.states[i].deps.extend(sources.iter().copied());
                cmds.push(Cmd {
                    command,
                    sources,
                    onbuild: true,
                });
            }
            let count = cmds.len();
            let rest = std::mem::take(&mut plan.states[i].commands);
            cmds.extend(rest);
            plan.states[i].commands = cmds;
            plan.states[i].cmd_total += count;
        }
        if !new_deps {
            break;
        }
        plan.check_cycles()?;
    }
    let reachable = plan.reachable(target);

    // Pass 1 learns the context paths, pass 2 builds with the real context source.
    let placeholder = builder::scratch();
    let (paths, _, _) = dispatch_all(&plan, &reachable, &placeholder, &lex, &global, opts, &tp)?;
    let local = LocalOptions {
        follow_paths: follow_paths(&paths),
        exclude_patterns: opts.exclude_patterns.clone(),
        shared_key_hint: Some(opts.context_name.clone()),
        unique_id: opts.context_unique_id.clone(),
        ..LocalOptions::default()
    };
    let context =
        builder::local(&opts.context_name, local).custom_name("[internal] load build context");
    let (_, states, locations) =
        dispatch_all(&plan, &reachable, &context, &lex, &global, opts, &tp)?;

    let mut out = states
        .into_iter()
        .nth(target)
        .ok_or_else(|| Error::new(ErrorKind::NoStages))?;
    let state = out
        .state
        .take()
        .unwrap_or_else(builder::scratch)
        .platform(tp.clone());
    let mut image = out.image;
    if !opts.labels.is_empty() {
        image
            .config
            .labels
            .get_or_insert_with(BTreeMap::new)
            .extend(opts.labels.clone());
    }
    if opts.target_platform.is_some() {
        image.os = tp.os.clone();
        image.architecture = tp.architecture.clone();
        image.variant = tp.variant.clone();
    }
    let definition = with_source_map(state.marshal(), &opts.filename, source, &locations)?;
    Ok(Converted {
        definition,
        state,
        image,
        warnings: df.warnings,
    })
}

/// `path.Join(".", p)` for each used path, sorted; nothing when the whole context is used.
fn follow_paths(paths: &BTreeSet<String>) -> Vec<String> {
    let mut out = Vec::new();
    for p in paths {
        if p == "/" {
            return Vec::new();
        }
        out.push(super::format::clean(p.trim_start_matches('/')));
    }
    out.sort();
    out.dedup();
    out
}

/// Asks the resolver once per (reference, platform), however many stages share a base.
struct Memo<'a> {
    resolver: &'a dyn ImageResolver,
    seen: BTreeMap<(String, String), Result<ResolvedImage, String>>,
}

impl Memo<'_> {
    fn resolve(&mut self, reference: &str, platform: &Platform) -> Result<ResolvedImage, String> {
        let key = (reference.to_string(), format_platform(platform));
        self.seen
            .entry(key)
            .or_insert_with(|| {
                self.resolver
                    .resolve(reference, platform)
                    .map_err(|e| super::error_chain(e.as_ref()))
            })
            .clone()
    }
}

/// Resolves the base of state `i`: scratch, or an image through the resolver.
fn resolve_base(
    plan: &mut Plan,
    i: usize,
    tp: &Platform,
    resolver: &mut Memo<'_>,
) -> Result<(), Error> {
    let names = plan.names();
    let d = &mut plan.states[i];
    let platform = d.platform.clone().unwrap_or_else(|| tp.clone());
    if d.base_name == "scratch" {
        d.state = Some(builder::scratch().platform(platform.clone()));
        d.image = Image::empty(&tp.os, &tp.architecture, &tp.variant);
        d.platform = Some(platform);
        if d.unregistered() {
            d.dispatched = true;
        }
        return Ok(());
    }
    let not_found = |reason: String, d: &DState| -> Error {
        let suggestion = suggest::closest(&d.base_name, names.iter().map(String::as_str), true);
        let kind = if d.unregistered() {
            ErrorKind::UndefinedStage {
                name: d.base_name.clone(),
                reason,
            }
        } else {
            ErrorKind::ImageResolve {
                reference: d.base_name.clone(),
                reason,
            }
        };
        Error::new(kind).at(d.range).suggest(suggestion)
    };
    let reference = match Reference::parse(&d.base_name) {
        Ok(r) => r.with_default_tag(),
        Err(e) if d.unregistered() => return Err(not_found(e.kind.to_string(), d)),
        Err(e) => return Err(e.at(d.range)),
    };
    let resolved = resolver
        .resolve(&reference.to_string(), &platform)
        .map_err(|reason| not_found(reason, d))?;
    let mut reference = match &resolved.reference {
        Some(r) if *r != reference.to_string() => Reference::parse(r).map_err(|e| e.at(d.range))?,
        _ => reference,
    };
    let mut image: Image = serde_json::from_slice(&resolved.config).map_err(|e| {
        Error::new(ErrorKind::ImageConfig {
            reference: reference.to_string(),
            reason: e.to_string(),
        })
        .at(d.range)
    })?;
    image.created = None;
    if let Some(dg) = &resolved.digest {
        reference = reference.with_digest(dg);
    }
    d.base_name = reference.to_string();
    let state = if image.is_scratch() {
        builder::scratch().platform(platform.clone())
    } else {
        let name = prefix_command(d, &format!("FROM {}", d.base_name));
        let code = d
            .stage
            .as_ref()
            .map(|s| s.source_code.clone())
            .unwrap_or_default();
        builder::image_with(
            &d.base_name,
            ImageOptions {
                platform: Some(platform.clone()),
                ..ImageOptions::default()
            },
        )
        .custom_name(name)
        .description("com.docker.dockerfile.v1.command", code)
    };
    d.state = Some(state);
    d.image = image;
    d.platform = Some(platform);
    if d.unregistered() {
        d.dispatched = true;
    }
    Ok(())
}

type Locations = Vec<(String, Range)>;

/// Converts every reachable stage in file order against `context`.
fn dispatch_all(
    plan: &Plan,
    reachable: &BTreeSet<usize>,
    context: &State,
    lex: &Lex,
    global: &EnvList,
    opts: &ConvertOptions,
    tp: &Platform,
) -> Result<(BTreeSet<String>, Vec<DState>, Locations), Error> {
    let mut states = plan.states.clone();
    let mut locations = Vec::new();
    for d in &states {
        if let (Some(st), Some(stage), None) = (&d.state, &d.stage, d.base)
            && let Some((digest, _)) = st.edge()
        {
            locations.push((digest.to_string(), stage.range));
        }
    }
    // BuildKit takes the build arg, else a non-empty global ARG default; only the
    // integer form is supported here (not `context` or named contexts).
    let epoch = opts
        .build_args
        .get("SOURCE_DATE_EPOCH")
        .cloned()
        .or_else(|| global.get("SOURCE_DATE_EPOCH").filter(|v| !v.is_empty()))
        .and_then(|v| v.parse::<i64>().ok());
    let mut paths = BTreeSet::new();
    for i in 0..states.len() {
        if !reachable.contains(&i) || states[i].dispatched {
            continue;
        }
        let mut d = std::mem::replace(
            &mut states[i],
            DState::new(None, String::new(), Range::default()),
        );
        let result = {
            let mut dispatcher = Dispatcher {
                lex: *lex,
                opts,
                global,
                context,
                target_platform: tp,
                states: &states,
                locations: &mut locations,
                epoch,
            };
            dispatcher.dispatch_stage(&mut d)
        };
        states[i] = d;
        result?;
        paths.extend(states[i].ctx_paths.iter().cloned());
    }
    Ok((paths, states, locations))
}
