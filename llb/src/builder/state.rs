//! `State`, the vertex it points at, and the ops that only combine states (merge, diff).

use std::sync::Arc;

use crate::definition::LoadedOp;
use crate::pb::{self, HostIp, NetMode, OpKind, OpMetadata, Platform, SecurityMode, Ulimit};

use super::caps;

/// One op, marshalled, with the outputs it reads and its (digest-neutral) metadata.
#[derive(Debug)]
pub(crate) struct Vertex {
    pub(crate) op: LoadedOp,
    pub(crate) inputs: Vec<Output>,
    pub(crate) metadata: OpMetadata,
}

/// Dropping the last handle on a long chain would otherwise recurse once per op (each
/// vertex owns its inputs) and overflow the stack; unwind it with an explicit stack.
impl Drop for Vertex {
    fn drop(&mut self) {
        let mut pending: Vec<Arc<Vertex>> = self.inputs.drain(..).map(|o| o.vertex).collect();
        while let Some(vertex) = pending.pop() {
            if let Some(mut owned) = Arc::into_inner(vertex) {
                pending.extend(owned.inputs.drain(..).map(|o| o.vertex));
            }
        }
    }
}

/// Output `index` of a vertex.
#[derive(Clone, Debug)]
pub(crate) struct Output {
    pub(crate) vertex: Arc<Vertex>,
    pub(crate) index: i64,
}

impl Output {
    pub(crate) fn to_input(&self) -> pb::Input {
        pb::Input {
            digest: self.vertex.op.digest().to_string(),
            index: self.index,
        }
    }
}

impl Vertex {
    /// Marshals `op` (with `inputs` already set from `inputs`) and wraps it.
    pub(crate) fn new(mut op: pb::Op, inputs: Vec<Output>, metadata: OpMetadata) -> Arc<Vertex> {
        op.inputs = inputs.iter().map(Output::to_input).collect();
        Arc::new(Vertex {
            op: LoadedOp::from_op(op),
            inputs,
            metadata,
        })
    }
}

/// Adds `out` to `inputs` unless an equal input (same digest and index) is already
/// there, and returns its position, as the Go client's exec and file ops do.
pub(crate) fn add_input(inputs: &mut Vec<Output>, out: &Output) -> i64 {
    let wanted = out.to_input();
    if let Some(i) = inputs.iter().position(|o| o.to_input() == wanted) {
        return i as i64;
    }
    inputs.push(out.clone());
    (inputs.len() - 1) as i64
}

/// A file-system state plus the settings the next `run` or `file` op inherits.
#[derive(Clone, Debug, Default)]
pub struct State {
    pub(crate) output: Option<Output>,
    pub(crate) env: Vec<(String, String)>,
    pub(crate) cwd: Option<String>,
    pub(crate) user: Option<String>,
    pub(crate) hostname: Option<String>,
    pub(crate) network: Option<NetMode>,
    pub(crate) security: Option<SecurityMode>,
    pub(crate) extra_hosts: Vec<HostIp>,
    pub(crate) ulimits: Vec<Ulimit>,
    pub(crate) cgroup_parent: Option<String>,
    pub(crate) platform: Option<Platform>,
}

/// The empty file system.
pub fn scratch() -> State {
    State::default()
}

impl State {
    pub(crate) fn from_output(output: Output) -> State {
        State {
            output: Some(output),
            ..State::default()
        }
    }

    /// The same settings, pointing at another result.
    pub(crate) fn with_output(&self, output: Option<Output>) -> State {
        State {
            output,
            ..self.clone()
        }
    }

    /// Whether this is scratch (no op produces it).
    pub fn is_scratch(&self) -> bool {
        self.output.is_none()
    }

    /// The digest of the op producing this state and its output index.
    pub fn edge(&self) -> Option<(crate::Digest, i64)> {
        self.output
            .as_ref()
            .map(|o| (o.vertex.op.digest().clone(), o.index))
    }

    /// Sets an environment variable for later runs. A replaced variable moves to the end,
    /// as Go's `EnvList.AddOrReplace` orders it: the env list is part of the exec op's bytes,
    /// so the order decides whether digests match BuildKit's.
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> State {
        let key = key.into();
        self.env.retain(|(k, _)| *k != key);
        self.env.push((key, value.into()));
        self
    }

    /// The value of an environment variable set on this state.
    pub fn get_env(&self, key: &str) -> Option<&str> {
        self.env
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Working directory for later runs; relative paths join the current one.
    pub fn cwd(mut self, dir: impl AsRef<str>) -> State {
        let dir = dir.as_ref();
        let joined = if dir.starts_with('/') {
            dir.to_owned()
        } else {
            format!("{}/{}", self.get_cwd(), dir)
        };
        self.cwd = Some(crate::go::clean_path(&joined));
        self
    }

    /// The working directory (`/` unless set).
    pub fn get_cwd(&self) -> &str {
        self.cwd.as_deref().unwrap_or("/")
    }

    pub fn user(mut self, user: impl Into<String>) -> State {
        self.user = Some(user.into());
        self
    }

    pub fn hostname(mut self, hostname: impl Into<String>) -> State {
        self.hostname = Some(hostname.into());
        self
    }

    pub fn network(mut self, mode: NetMode) -> State {
        self.network = Some(mode);
        self
    }

    pub fn security(mut self, mode: SecurityMode) -> State {
        self.security = Some(mode);
        self
    }

    pub fn add_extra_host(mut self, host: impl Into<String>, ip: impl Into<String>) -> State {
        self.extra_hosts.push(HostIp {
            host: host.into(),
            ip: ip.into(),
        });
        self
    }

    pub fn add_ulimit(mut self, name: impl Into<String>, soft: i64, hard: i64) -> State {
        self.ulimits.push(Ulimit {
            name: name.into(),
            soft,
            hard,
        });
        self
    }

    pub fn cgroup_parent(mut self, parent: impl Into<String>) -> State {
        self.cgroup_parent = Some(parent.into());
        self
    }

    /// Platform for later `run` and `file` ops (default: the host's).
    pub fn platform(mut self, platform: Platform) -> State {
        self.platform = Some(platform);
        self
    }

    pub(crate) fn resolved_platform(&self) -> Platform {
        self.platform.clone().unwrap_or_else(Platform::host)
    }

    /// Changes the metadata of the op producing this state. Metadata is not part of the
    /// digest, so the op stays the same vertex. No effect on scratch.
    fn map_metadata(mut self, f: impl FnOnce(&mut OpMetadata)) -> State {
        if let Some(out) = &self.output {
            let mut metadata = out.vertex.metadata.clone();
            f(&mut metadata);
            let vertex = Arc::new(Vertex {
                op: out.vertex.op.clone(),
                inputs: out.vertex.inputs.clone(),
                metadata,
            });
            self.output = Some(Output {
                vertex,
                index: out.index,
            });
        }
        self
    }

    /// The display name of the producing op (`llb.customname`).
    pub fn custom_name(self, name: impl Into<String>) -> State {
        self.description(caps::CUSTOM_NAME, name)
    }

    /// Adds a description entry to the producing op.
    pub fn description(self, key: impl Into<String>, value: impl Into<String>) -> State {
        let (key, value) = (key.into(), value.into());
        self.map_metadata(|m| {
            m.description.insert(key, value);
        })
    }

    /// Runs the producing op even when its result is cached.
    pub fn ignore_cache(self) -> State {
        self.map_metadata(|m| m.ignore_cache = true)
    }

    /// Shows the producing op under a shared progress group.
    pub fn progress_group(
        self,
        id: impl Into<String>,
        name: impl Into<String>,
        weak: bool,
    ) -> State {
        let group = pb::ProgressGroup {
            id: id.into(),
            name: name.into(),
            weak,
        };
        self.map_metadata(|m| m.progress_group = Some(group))
    }

    /// Records that the producing op needs solver capability `id` (BuildKit's
    /// `caps.go` names, e.g. `exec.meta.setsdefaultpath`), for frontends that know more
    /// than the builder does.
    pub fn with_cap(self, id: &str) -> State {
        self.map_metadata(|m| cap(m, id))
    }

    /// Marks the producing op's result for inline cache export.
    pub fn export_cache(self, value: bool) -> State {
        self.map_metadata(|m| m.export_cache = Some(pb::ExportCache { value }))
    }
}

/// Records that the op needs solver capability `id`.
pub(crate) fn cap(metadata: &mut OpMetadata, id: &str) {
    metadata.caps.insert(id.to_owned(), true);
}

/// Layers `states` in order (later ones win). Scratch inputs are dropped; merging one
/// state is that state and merging none is scratch, so no op is made for them.
pub fn merge(states: &[State]) -> State {
    let outputs: Vec<&Output> = states.iter().filter_map(|s| s.output.as_ref()).collect();
    match outputs.as_slice() {
        [] => return scratch(),
        [only] => return State::from_output((*only).clone()),
        _ => {}
    }
    let mut merge = pb::MergeOp::default();
    let mut inputs = Vec::new();
    for out in outputs {
        merge.inputs.push(pb::MergeInput {
            input: inputs.len() as i64,
        });
        inputs.push(out.clone());
    }
    let mut metadata = OpMetadata::default();
    cap(&mut metadata, "mergeop");
    // Merge and diff are not platform specific: no platform, so no platform in the digest.
    let op = pb::Op {
        op: Some(OpKind::Merge(merge)),
        constraints: Some(pb::WorkerConstraints::default()),
        ..Default::default()
    };
    State::from_output(Output {
        vertex: Vertex::new(op, inputs, metadata),
        index: 0,
    })
}

/// The changes that turn `lower` into `upper`. `diff(scratch, scratch)` is scratch and
/// `diff(scratch, upper)` is `upper`.
pub fn diff(lower: &State, upper: &State) -> State {
    let Some(lower_out) = &lower.output else {
        return match &upper.output {
            None => scratch(),
            Some(_) => upper.clone(),
        };
    };
    let mut inputs = vec![lower_out.clone()];
    let upper_index = match &upper.output {
        Some(out) => {
            inputs.push(out.clone());
            1
        }
        None => pb::EMPTY_INPUT,
    };
    let diff = pb::DiffOp {
        lower: Some(pb::LowerDiffInput { input: 0 }),
        upper: Some(pb::UpperDiffInput { input: upper_index }),
    };
    let mut metadata = OpMetadata::default();
    cap(&mut metadata, "diffop");
    let op = pb::Op {
        op: Some(OpKind::Diff(diff)),
        constraints: Some(pb::WorkerConstraints::default()),
        ..Default::default()
    };
    State::from_output(Output {
        vertex: Vertex::new(op, inputs, metadata),
        index: 0,
    })
}
