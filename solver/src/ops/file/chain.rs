//! Running a whole FileOp action chain on plain directories (BuildKit's
//! `FileOpSolver.Solve`, without snapshots): each action works on a base (an op input, an
//! earlier action's result, or scratch), copy actions read a second tree, and the
//! actions marked with an output number become the op's outputs.
//!
//! Inputs are never modified: a base taken from an input, or from an action result that
//! something else also reads, is cloned first. A result read only by the next action is
//! handed on and modified in place, which is the common chained case.

use std::path::{Path, PathBuf};

use cairn_llb::pb::{FileAction, FileActionCopy, FileActionKind};
use tokio_util::sync::CancellationToken;

use super::error::{FileOpError, io_err};
use super::user::resolve_owner;
use super::{actions, copy};

/// Where an action reads from, decoded from an index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Src {
    Scratch,
    Input(usize),
    Action(usize),
}

fn decode(
    index: i64,
    action: usize,
    what: &'static str,
    inputs: usize,
) -> Result<Src, FileOpError> {
    let bad = || FileOpError::BadIndex {
        action,
        what,
        index,
        inputs,
    };
    if index == -1 {
        return Ok(Src::Scratch);
    }
    let i = usize::try_from(index).map_err(|_| bad())?;
    if i < inputs {
        return Ok(Src::Input(i));
    }
    let a = i - inputs;
    // Only earlier actions: this is what rules out loops.
    if a < action {
        Ok(Src::Action(a))
    } else {
        Err(bad())
    }
}

/// Runs `actions` against the directories `inputs`, creating result directories under
/// `work_dir` (which must exist and be empty of `action-*` names). Returns the output
/// directories in output order. Blocking: call from a blocking task.
pub fn run_file_actions(
    actions: &[FileAction],
    inputs: &[PathBuf],
    work_dir: &Path,
    cancel: &CancellationToken,
) -> Result<Vec<PathBuf>, FileOpError> {
    let n = inputs.len();
    let mut outputs: Vec<i64> = actions
        .iter()
        .map(|a| a.output)
        .filter(|o| *o >= 0)
        .collect();
    outputs.sort_unstable();
    if outputs
        .iter()
        .enumerate()
        .any(|(i, o)| usize::try_from(*o).ok() != Some(i))
    {
        return Err(FileOpError::BadOutputs(outputs));
    }
    let mut readers = vec![0usize; actions.len()];
    let mut plan = Vec::with_capacity(actions.len());
    for (i, a) in actions.iter().enumerate() {
        let base = decode(a.input, i, "input", n)?;
        let secondary = match &a.action {
            Some(FileActionKind::Copy(_)) => {
                Some(decode(a.secondary_input, i, "secondary input", n)?)
            }
            _ => None,
        };
        for s in [Some(base), secondary]
            .into_iter()
            .flatten()
            .chain(owner_sources(a, i, n)?)
        {
            if let Src::Action(j) = s {
                readers[j] += 1;
            }
        }
        plan.push((base, secondary));
    }
    let mut results: Vec<Option<PathBuf>> = vec![None; actions.len()];
    let empty = work_dir.join("scratch-empty");
    let mut made_empty = false;
    for (i, (a, (base, secondary))) in actions.iter().zip(plan).enumerate() {
        if cancel.is_cancelled() {
            return Err(FileOpError::Cancelled);
        }
        let dir = work_dir.join(format!("action-{i}"));
        match base {
            Src::Scratch => {
                std::fs::create_dir(&dir).map_err(io_err("mkdir", format!("action-{i}")))?
            }
            Src::Input(k) => clone_tree(&inputs[k], &dir, cancel)?,
            Src::Action(j) => {
                let prev = results[j].clone().ok_or(FileOpError::BadIndex {
                    action: i,
                    what: "input",
                    index: a.input,
                    inputs: n,
                })?;
                if readers[j] == 1 && actions[j].output < 0 {
                    std::fs::rename(&prev, &dir)
                        .map_err(io_err("rename", format!("action-{j}")))?;
                    results[j] = None;
                } else {
                    clone_tree(&prev, &dir, cancel)?;
                }
            }
        }
        let root_of = |idx: i64| -> Option<&Path> {
            match decode(idx, i, "user input", n).ok()? {
                Src::Input(k) => inputs.get(k).map(PathBuf::as_path),
                Src::Action(j) => results.get(j).and_then(|r| r.as_deref()),
                Src::Scratch => None,
            }
        };
        match &a.action {
            None => return Err(FileOpError::UnknownAction(i)),
            Some(FileActionKind::Mkdir(m)) => {
                let owner = resolve_owner(m.owner.as_ref(), root_of)?;
                actions::mkdir(&dir, m, owner)?;
            }
            Some(FileActionKind::Mkfile(m)) => {
                let owner = resolve_owner(m.owner.as_ref(), root_of)?;
                actions::mkfile(&dir, m, owner)?;
            }
            Some(FileActionKind::Symlink(s)) => {
                let owner = resolve_owner(s.owner.as_ref(), root_of)?;
                actions::symlink(&dir, s, owner)?;
            }
            Some(FileActionKind::Rm(r)) => actions::rm(&dir, r)?,
            Some(FileActionKind::Copy(c)) => {
                let owner = resolve_owner(c.owner.as_ref(), root_of)?;
                let src = match secondary {
                    Some(Src::Input(k)) => inputs[k].clone(),
                    Some(Src::Action(j)) => results[j].clone().ok_or(FileOpError::BadIndex {
                        action: i,
                        what: "secondary input",
                        index: a.secondary_input,
                        inputs: n,
                    })?,
                    Some(Src::Scratch) | None => {
                        if !made_empty {
                            std::fs::create_dir(&empty)
                                .map_err(io_err("mkdir", "scratch-empty"))?;
                            made_empty = true;
                        }
                        empty.clone()
                    }
                };
                copy::copy(&src, &dir, c, owner, cancel)?;
            }
        }
        results[i] = Some(dir);
    }
    let mut out = vec![PathBuf::new(); outputs.len()];
    for (i, a) in actions.iter().enumerate() {
        if let (Ok(o), Some(dir)) = (usize::try_from(a.output), results[i].take()) {
            out[o] = dir;
        }
    }
    // Intermediate results nobody exposes.
    for dir in results.into_iter().flatten() {
        std::fs::remove_dir_all(&dir)
            .map_err(io_err("remove", dir.to_string_lossy().into_owned()))?;
    }
    if made_empty {
        std::fs::remove_dir(&empty).map_err(io_err("remove", "scratch-empty"))?;
    }
    Ok(out)
}

/// The inputs a chown-by-name reads `/etc/passwd` from.
fn owner_sources(a: &FileAction, i: usize, n: usize) -> Result<Vec<Src>, FileOpError> {
    let owner = match &a.action {
        Some(FileActionKind::Copy(c)) => c.owner.as_ref(),
        Some(FileActionKind::Mkdir(m)) => m.owner.as_ref(),
        Some(FileActionKind::Mkfile(m)) => m.owner.as_ref(),
        Some(FileActionKind::Symlink(s)) => s.owner.as_ref(),
        _ => None,
    };
    let mut out = Vec::new();
    for u in owner
        .into_iter()
        .flat_map(|o| [o.user.as_ref(), o.group.as_ref()])
        .flatten()
    {
        if let Some(cairn_llb::pb::UserOptKind::ByName(named)) = &u.user {
            out.push(decode(named.input, i, "user input", n)?);
        }
    }
    Ok(out)
}

/// Copies the whole tree `src` to the new directory `dst`, keeping everything (`cp -a`),
/// including the root directory's own mode, owner and times.
pub fn clone_tree(src: &Path, dst: &Path, cancel: &CancellationToken) -> Result<(), FileOpError> {
    use std::os::unix::fs::MetadataExt;
    std::fs::create_dir(dst).map_err(io_err("mkdir", dst.to_string_lossy().into_owned()))?;
    let all = FileActionCopy {
        src: "/".into(),
        dest: "/".into(),
        mode: -1,
        timestamp: -1,
        dir_copy_contents: true,
        create_dest_path: true,
        ..FileActionCopy::default()
    };
    copy::copy(src, dst, &all, None, cancel)?;
    let meta = std::fs::metadata(src).map_err(io_err("stat", "/"))?;
    let shown = || dst.to_string_lossy().into_owned();
    super::sys::lchown(
        dst,
        super::user::Owner {
            uid: meta.uid(),
            gid: meta.gid(),
        },
    )
    .map_err(io_err("chown", shown()))?;
    super::sys::chmod(dst, meta.mode()).map_err(io_err("chmod", shown()))?;
    super::sys::copy_times(dst, &meta).map_err(io_err("utimes", shown()))
}
