//! A validated build graph: what the solver loads.
//!
//! Checks follow BuildKit's `loadLLB` and its op loaders, and add the ones BuildKit leaves
//! to run time (index ranges), so that an untrusted definition fails here with an error
//! naming the op and field instead of deep in a solve.

use std::collections::HashMap;

use crate::Digest;
use crate::definition::{Definition, LoadedOp};
use crate::error::LlbError;
use crate::pb::{self, OpKind, OpMetadata};

/// An edge to output `index` of op `digest`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Edge {
    pub digest: Digest,
    pub index: u64,
}

/// A definition whose ops all decode, whose edges all resolve, and whose graph is acyclic.
#[derive(Clone, Debug)]
pub struct Graph {
    def: Definition,
    /// Digest → position of the first op with that digest in `def`.
    by_digest: HashMap<Digest, usize>,
    /// Parsed input edges, per position in `def`.
    edges: Vec<Vec<Edge>>,
    /// Positions reachable from the target, inputs before consumers, target last.
    order: Vec<usize>,
    /// Display names of the reachable ops, per position in `def`.
    names: Vec<String>,
    target: Edge,
}

/// Longest vertex name kept. BuildKit nests input names into merge and diff names, which
/// grows without bound on deep graphs; past this length the name is cut.
pub const MAX_NAME_LEN: usize = 1024;

impl Graph {
    pub(crate) fn new(def: Definition) -> Result<Graph, LlbError> {
        let ops = def.ops();
        if ops.len() < 2 {
            return Err(LlbError::TooFewOps { count: ops.len() });
        }
        let mut by_digest = HashMap::with_capacity(ops.len());
        for (i, op) in ops.iter().enumerate() {
            by_digest.entry(op.digest().clone()).or_insert(i);
        }
        let last = ops.len() - 1;

        let mut edges = Vec::with_capacity(ops.len());
        for op in ops {
            edges.push(parse_edges(op, &by_digest)?);
        }
        for (i, op) in ops.iter().enumerate().take(last) {
            check_op(i, op)?;
        }
        for (i, op) in ops.iter().enumerate() {
            for (j, edge) in edges[i].iter().enumerate() {
                let target = &ops[by_digest[&edge.digest]];
                if let Some(outputs) = output_count(target.op())
                    && edge.index >= outputs
                {
                    return Err(LlbError::InputOutputOutOfRange {
                        digest: op.digest().clone(),
                        input: j,
                        index: edge.index as i64,
                        target: edge.digest.clone(),
                        outputs,
                    });
                }
            }
        }

        let terminal = &ops[last];
        let Some(target) = edges[last].first().cloned() else {
            return Err(LlbError::TerminalWithoutInputs {
                digest: terminal.digest().clone(),
            });
        };
        let order = topological_order(by_digest[&target.digest], &edges, &by_digest, ops)?;
        let names = vertex_names(&def, &order, &edges, &by_digest);
        Ok(Graph {
            def,
            by_digest,
            edges,
            order,
            names,
            target,
        })
    }

    /// The build result: the first input of the output marker.
    pub fn target(&self) -> &Edge {
        &self.target
    }

    /// The output marker (the last op of `def`).
    pub fn terminal(&self) -> &LoadedOp {
        let ops = self.def.ops();
        &ops[ops.len() - 1]
    }

    pub fn op(&self, digest: &Digest) -> Option<&LoadedOp> {
        self.by_digest.get(digest).map(|&i| &self.def.ops()[i])
    }

    /// The parsed input edges of an op, in `Op.inputs` order.
    pub fn inputs(&self, digest: &Digest) -> Option<&[Edge]> {
        self.by_digest
            .get(digest)
            .map(|&i| self.edges[i].as_slice())
    }

    pub fn metadata(&self, digest: &Digest) -> Option<&OpMetadata> {
        self.def.metadata(digest)
    }

    /// The op's display name as BuildKit's solver forms it: `llb.customname` if set, else
    /// the source identifier, the exec's argv joined by spaces, `mkdir /p, copy a b` for
    /// file ops, `merge (a, b)`, `diff (lower) -> (upper)`. Only for ops the target reaches.
    pub fn vertex_name(&self, digest: &Digest) -> Option<&str> {
        let i = *self.by_digest.get(digest)?;
        self.names
            .get(i)
            .map(String::as_str)
            .filter(|n| !n.is_empty())
    }

    /// The ops the target depends on (and the target), inputs before consumers, each once.
    /// Ops of `def` that the target does not reach are not included.
    pub fn topological(&self) -> impl Iterator<Item = &LoadedOp> + '_ {
        self.order.iter().map(|&i| &self.def.ops()[i])
    }

    /// Number of ops reachable from the target (the output marker excluded).
    pub fn len(&self) -> usize {
        self.order.len()
    }

    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    pub fn definition(&self) -> &Definition {
        &self.def
    }

    pub fn into_definition(self) -> Definition {
        self.def
    }
}

fn vertex_names(
    def: &Definition,
    order: &[usize],
    edges: &[Vec<Edge>],
    by_digest: &HashMap<Digest, usize>,
) -> Vec<String> {
    let ops = def.ops();
    let mut names = vec![String::new(); ops.len()];
    for &i in order {
        let op = &ops[i];
        let custom = def
            .metadata(op.digest())
            .and_then(|m| m.description.get("llb.customname"));
        let input_name = |j: usize| names[by_digest[&edges[i][j].digest]].clone();
        let mut name = match (custom, &op.op().op) {
            (Some(custom), _) => custom.clone(),
            (None, Some(OpKind::Source(s))) => s.identifier.clone(),
            (None, Some(OpKind::Exec(e))) => e
                .meta
                .as_ref()
                .map(|m| m.args.join(" "))
                .unwrap_or_default(),
            (None, Some(OpKind::File(f))) => file_op_name(&f.actions),
            (None, Some(OpKind::Build(_))) => "build".to_owned(),
            (None, Some(OpKind::Merge(_))) => {
                let subs: Vec<String> = (0..edges[i].len()).map(input_name).collect();
                format!("merge ({})", subs.join(", "))
            }
            (None, Some(OpKind::Diff(d))) => {
                let side = |input: Option<i64>| match input {
                    Some(j) if j >= 0 => format!("({})", input_name(j as usize)),
                    _ => "scratch".to_owned(),
                };
                let lower = side(d.lower.as_ref().map(|l| l.input));
                let upper = side(d.upper.as_ref().map(|u| u.input));
                format!("diff {lower} -> {upper}")
            }
            (None, Some(OpKind::Passthrough(p))) => format!("passthrough {}", p.id),
            (None, None) => "unknown".to_owned(),
        };
        if name.len() > MAX_NAME_LEN {
            let mut cut = MAX_NAME_LEN;
            while !name.is_char_boundary(cut) {
                cut -= 1;
            }
            name.truncate(cut);
            name.push('…');
        }
        names[i] = name;
    }
    names
}

fn file_op_name(actions: &[pb::FileAction]) -> String {
    let names: Vec<String> = actions
        .iter()
        .filter_map(|a| {
            Some(match a.action.as_ref()? {
                pb::FileActionKind::Mkdir(m) => format!("mkdir {}", m.path),
                pb::FileActionKind::Mkfile(m) => format!("mkfile {}", m.path),
                pb::FileActionKind::Symlink(s) => format!("symlink {} -> {}", s.newpath, s.oldpath),
                pb::FileActionKind::Rm(r) => format!("rm {}", r.path),
                pb::FileActionKind::Copy(c) => format!("copy {} {}", c.src, c.dest),
            })
        })
        .collect();
    names.join(", ")
}

fn parse_edges(op: &LoadedOp, by_digest: &HashMap<Digest, usize>) -> Result<Vec<Edge>, LlbError> {
    let digest = op.digest();
    op.op()
        .inputs
        .iter()
        .enumerate()
        .map(|(j, input)| {
            let target = Digest::parse(&input.digest).map_err(|_| LlbError::BadInputDigest {
                digest: digest.clone(),
                input: j,
                value: input.digest.clone(),
            })?;
            if input.index < 0 {
                return Err(LlbError::NegativeInputIndex {
                    digest: digest.clone(),
                    input: j,
                    index: input.index,
                });
            }
            if !by_digest.contains_key(&target) {
                return Err(LlbError::UnknownInput {
                    digest: digest.clone(),
                    input: j,
                    target,
                });
            }
            Ok(Edge {
                digest: target,
                index: input.index as u64,
            })
        })
        .collect()
}

/// How many outputs an op has, when that is known without running it.
pub fn output_count(op: &pb::Op) -> Option<u64> {
    let max_plus_one = |outs: &mut dyn Iterator<Item = i64>| -> u64 {
        outs.filter(|&o| o >= 0)
            .map(|o| o as u64 + 1)
            .max()
            .unwrap_or(0)
    };
    match op.op.as_ref()? {
        OpKind::Source(_) | OpKind::Merge(_) | OpKind::Diff(_) => Some(1),
        // Only bind mounts produce outputs; BuildKit's client leaves `output` at 0 on
        // secret and SSH mounts, and the solver ignores it there.
        OpKind::Exec(e) => Some(max_plus_one(
            &mut e.mounts.iter().filter(|m| is_bind(m)).map(|m| m.output),
        )),
        OpKind::File(f) => Some(max_plus_one(&mut f.actions.iter().map(|a| a.output))),
        OpKind::Passthrough(p) => Some(p.outputs.len() as u64),
        OpKind::Build(_) => None,
    }
}

fn is_bind(m: &pb::Mount) -> bool {
    m.mount_type == pb::MountType::Bind as i32
}

/// Per-kind field checks for a non-terminal op at position `index` of `def`.
fn check_op(index: usize, op: &LoadedOp) -> Result<(), LlbError> {
    let digest = op.digest();
    let n = op.op().inputs.len() as i64;
    let in_range = |field: String, value: i64, lo: i64, hi: i64| -> Result<(), LlbError> {
        if value < lo || value >= hi {
            // Ranges are half-open: `0..hi` allows 0 through hi - 1.
            let valid = match (lo, hi) {
                (-1, h) if h <= 0 => "only -1 (scratch): nothing to read from".to_owned(),
                (-1, h) => format!("-1 for scratch, or 0..{h}"),
                (_, h) if h <= 0 => "none: the op has no inputs".to_owned(),
                (_, h) => format!("0..{h}"),
            };
            return Err(LlbError::IndexOutOfRange {
                digest: digest.clone(),
                field,
                value,
                valid,
            });
        }
        Ok(())
    };
    let invalid = |field: String, reason: &str| LlbError::InvalidField {
        digest: digest.clone(),
        field,
        reason: reason.to_owned(),
    };

    let Some(kind) = &op.op().op else {
        return Err(if op.is_canonical() {
            LlbError::MissingOpKind {
                digest: digest.clone(),
                index,
            }
        } else {
            LlbError::UnknownOpKind {
                digest: digest.clone(),
                index,
            }
        });
    };
    match kind {
        OpKind::Source(s) => {
            if s.identifier.is_empty() {
                return Err(invalid("source.identifier".into(), "is empty"));
            }
        }
        OpKind::Exec(e) => {
            let Some(meta) = &e.meta else {
                return Err(invalid("exec.meta".into(), "is missing"));
            };
            if meta.args.is_empty() {
                return Err(invalid(
                    "exec.meta.args".into(),
                    "is empty; there is no process to run",
                ));
            }
            if pb::NetMode::try_from(e.network).is_err() {
                return Err(invalid(
                    "exec.network".into(),
                    &format!("unknown mode {}", e.network),
                ));
            }
            if pb::SecurityMode::try_from(e.security).is_err() {
                return Err(invalid(
                    "exec.security".into(),
                    &format!("unknown mode {}", e.security),
                ));
            }
            let mut seen_outputs = std::collections::HashSet::new();
            for (i, m) in e.mounts.iter().enumerate() {
                in_range(format!("exec.mounts[{i}].input"), m.input, -1, n)?;
                if m.output < -1 {
                    return Err(invalid(format!("exec.mounts[{i}].output"), "is below -1"));
                }
                if is_bind(m) && m.output >= 0 && !seen_outputs.insert(m.output) {
                    return Err(invalid(
                        format!("exec.mounts[{i}].output"),
                        &format!("output {} is used by another mount", m.output),
                    ));
                }
                if pb::MountType::try_from(m.mount_type).is_err() {
                    return Err(invalid(
                        format!("exec.mounts[{i}].mountType"),
                        &format!("unknown mount type {}", m.mount_type),
                    ));
                }
                if !m.dest.starts_with('/') {
                    return Err(invalid(
                        format!("exec.mounts[{i}].dest"),
                        "is not an absolute path",
                    ));
                }
            }
        }
        OpKind::File(f) => {
            if f.actions.is_empty() {
                return Err(invalid("file.actions".into(), "is empty"));
            }
            let mut outputs = Vec::new();
            for (j, a) in f.actions.iter().enumerate() {
                // An action may read an op input or the result of an earlier action.
                let hi = n + j as i64;
                in_range(format!("file.actions[{j}].input"), a.input, -1, hi)?;
                in_range(
                    format!("file.actions[{j}].secondaryInput"),
                    a.secondary_input,
                    -1,
                    hi,
                )?;
                if a.output < -1 {
                    return Err(invalid(format!("file.actions[{j}].output"), "is below -1"));
                }
                if a.output >= 0 {
                    outputs.push(a.output);
                }
                let owner = match &a.action {
                    None => return Err(invalid(format!("file.actions[{j}]"), "has no action")),
                    Some(pb::FileActionKind::Copy(c)) => c.owner.as_ref(),
                    Some(pb::FileActionKind::Mkfile(c)) => c.owner.as_ref(),
                    Some(pb::FileActionKind::Mkdir(c)) => c.owner.as_ref(),
                    Some(pb::FileActionKind::Symlink(c)) => c.owner.as_ref(),
                    Some(pb::FileActionKind::Rm(_)) => None,
                };
                for (which, user) in owner
                    .iter()
                    .flat_map(|o| [("user", &o.user), ("group", &o.group)])
                {
                    if let Some(pb::UserOpt {
                        user: Some(pb::UserOptKind::ByName(named)),
                    }) = user
                    {
                        in_range(
                            format!("file.actions[{j}].owner.{which}.byName.input"),
                            named.input,
                            -1,
                            hi,
                        )?;
                    }
                }
            }
            outputs.sort_unstable();
            if outputs.iter().enumerate().any(|(k, &o)| o != k as i64) {
                return Err(invalid(
                    "file.actions[].output".into(),
                    &format!(
                        "outputs {outputs:?} are not exactly 0..{} without gaps or repeats",
                        outputs.len()
                    ),
                ));
            }
        }
        OpKind::Merge(m) => {
            if m.inputs.is_empty() {
                return Err(invalid("merge.inputs".into(), "is empty"));
            }
            for (i, input) in m.inputs.iter().enumerate() {
                in_range(format!("merge.inputs[{i}].input"), input.input, 0, n)?;
            }
        }
        OpKind::Diff(d) => {
            let Some(lower) = &d.lower else {
                return Err(invalid("diff.lower".into(), "is missing"));
            };
            let Some(upper) = &d.upper else {
                return Err(invalid("diff.upper".into(), "is missing"));
            };
            in_range("diff.lower.input".into(), lower.input, -1, n)?;
            in_range("diff.upper.input".into(), upper.input, -1, n)?;
        }
        OpKind::Passthrough(p) => {
            for (i, &o) in p.outputs.iter().enumerate() {
                in_range(format!("passthrough.outputs[{i}]"), o, 0, n)?;
            }
        }
        OpKind::Build(b) => {
            in_range("build.builder".into(), b.builder, -1, n)?;
            for (name, input) in &b.inputs {
                in_range(format!("build.inputs[{name:?}].input"), input.input, 0, n)?;
            }
        }
    }
    Ok(())
}

/// Depth-first post-order from `start` without recursion (a chain of 10,000 ops must
/// not overflow the stack). An edge back to an op still on the path is a cycle.
fn topological_order(
    start: usize,
    edges: &[Vec<Edge>],
    by_digest: &HashMap<Digest, usize>,
    ops: &[LoadedOp],
) -> Result<Vec<usize>, LlbError> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        OnPath,
        Done,
    }
    let mut mark = vec![Mark::New; ops.len()];
    let mut order = Vec::new();
    // (node, next input to visit)
    let mut stack = vec![(start, 0usize)];
    mark[start] = Mark::OnPath;
    while let Some(top) = stack.last_mut() {
        let (node, next) = *top;
        if let Some(edge) = edges[node].get(next) {
            top.1 += 1;
            let child = by_digest[&edge.digest];
            match mark[child] {
                Mark::New => {
                    mark[child] = Mark::OnPath;
                    stack.push((child, 0));
                }
                Mark::OnPath => {
                    return Err(LlbError::Cycle {
                        digest: ops[child].digest().clone(),
                    });
                }
                Mark::Done => {}
            }
        } else {
            mark[node] = Mark::Done;
            order.push(node);
            stack.pop();
        }
    }
    Ok(order)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pb::{Input, Op};

    fn op_with_inputs(id: &str, inputs: &[&Digest]) -> LoadedOp {
        LoadedOp::from_op(Op {
            inputs: inputs
                .iter()
                .map(|d| Input {
                    digest: d.to_string(),
                    index: 0,
                })
                .collect(),
            op: Some(OpKind::Source(pb::SourceOp {
                identifier: id.into(),
                ..Default::default()
            })),
            ..Default::default()
        })
    }

    #[test]
    fn cycles_are_found_even_though_sha256_makes_them_unbuildable() {
        // Real digests cannot form a cycle, so wire up the edges by hand.
        let a = op_with_inputs("local://a", &[]);
        let b = op_with_inputs("local://b", &[]);
        let ops = vec![a.clone(), b.clone()];
        let by_digest: HashMap<_, _> = ops
            .iter()
            .enumerate()
            .map(|(i, o)| (o.digest().clone(), i))
            .collect();
        let edges = vec![
            vec![Edge {
                digest: b.digest().clone(),
                index: 0,
            }],
            vec![Edge {
                digest: a.digest().clone(),
                index: 0,
            }],
        ];
        let err = topological_order(0, &edges, &by_digest, &ops).unwrap_err();
        assert!(matches!(err, LlbError::Cycle { .. }), "{err}");
    }

    #[test]
    fn order_puts_inputs_first_and_visits_shared_inputs_once() {
        let a = op_with_inputs("local://a", &[]);
        let b = op_with_inputs("local://b", &[a.digest()]);
        let c = op_with_inputs("local://c", &[a.digest(), b.digest()]);
        let ops = vec![a.clone(), b.clone(), c.clone()];
        let by_digest: HashMap<_, _> = ops
            .iter()
            .enumerate()
            .map(|(i, o)| (o.digest().clone(), i))
            .collect();
        let edges: Vec<_> = ops
            .iter()
            .map(|o| parse_edges(o, &by_digest).unwrap())
            .collect();
        assert_eq!(
            topological_order(2, &edges, &by_digest, &ops).unwrap(),
            vec![0, 1, 2]
        );
    }
}
