//! Running a whole FileOp action chain (BuildKit's `FileOpSolver.Solve`): each action
//! works on a base (an op input, an earlier action's result, or scratch), copy actions
//! read a second tree, and the actions marked with an output number become the op's
//! outputs.
//!
//! Two steps, shared by the directory-backed op and the snapshot-backed one:
//! - [`plan_bases`] validates the chain and decides where each action works. A result
//!   read only by the next action and not itself an output is handed on and modified in
//!   place, which is the common chained case; every other base gets a directory of its
//!   own ([`BasePlan::Fresh`]).
//! - [`run_file_actions_in`] applies the actions in directories the caller made: for an
//!   input base the caller puts the input's files there (a copy, or a writable snapshot
//!   over the input, so `COPY a /a` onto a rootfs copies nothing else); a copy of an
//!   earlier result is filled in here.
//!
//! [`run_file_actions`] puts the two together on plain directories. Inputs are never
//! modified.

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

/// Where an action's result directory comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BaseSource {
    /// A new, empty directory.
    Scratch,
    /// The files of op input `k` (a copy, or a writable snapshot over it).
    Input(usize),
    /// A copy of an earlier action's result that something else also reads.
    CloneOf(usize),
}

/// How one action gets the directory it works in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BasePlan {
    /// A directory of its own, starting with the files of the source.
    Fresh(BaseSource),
    /// The directory of earlier action `j`, which nothing else reads: modified in place.
    HandOn(usize),
}

/// The validated shape of a FileOp: per action its base, and per output the action whose
/// directory (a [`BasePlan::Fresh`] one) holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub bases: Vec<BasePlan>,
    /// Output `o` is the result of action `outputs[o]`.
    pub outputs: Vec<usize>,
    /// Output `o` lives in the directory of fresh action `roots[o]`.
    pub roots: Vec<usize>,
    /// Where each copy action reads from (`None` for the other actions).
    secondaries: Vec<Option<Src>>,
    /// The number of op inputs the indices were checked against.
    inputs: usize,
}

impl Plan {
    /// The fresh action whose directory action `i` (`< bases.len()`) works in.
    pub fn root_of(&self, mut i: usize) -> usize {
        while let BasePlan::HandOn(j) = self.bases[i] {
            i = j;
        }
        i
    }
}

/// Checks `actions` (indices, outputs numbered `0..n`) and decides where each works.
/// An action result read only by the next action and not itself an output is handed on
/// and modified in place; any other base is fresh.
pub fn plan_bases(actions: &[FileAction], inputs: usize) -> Result<Plan, FileOpError> {
    let n = inputs;
    let mut numbered: Vec<(i64, usize)> = actions
        .iter()
        .enumerate()
        .filter(|(_, a)| a.output >= 0)
        .map(|(i, a)| (a.output, i))
        .collect();
    numbered.sort_unstable();
    if numbered
        .iter()
        .enumerate()
        .any(|(i, (o, _))| usize::try_from(*o).ok() != Some(i))
    {
        return Err(FileOpError::BadOutputs(
            numbered.iter().map(|(o, _)| *o).collect(),
        ));
    }
    let mut readers = vec![0usize; actions.len()];
    let mut raw = Vec::with_capacity(actions.len());
    let mut secondaries = Vec::with_capacity(actions.len());
    for (i, a) in actions.iter().enumerate() {
        if a.action.is_none() {
            return Err(FileOpError::UnknownAction(i));
        }
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
        raw.push(base);
        secondaries.push(secondary);
    }
    let bases = raw
        .into_iter()
        .map(|b| match b {
            Src::Scratch => BasePlan::Fresh(BaseSource::Scratch),
            Src::Input(k) => BasePlan::Fresh(BaseSource::Input(k)),
            Src::Action(j) if readers[j] == 1 && actions[j].output < 0 => BasePlan::HandOn(j),
            Src::Action(j) => BasePlan::Fresh(BaseSource::CloneOf(j)),
        })
        .collect();
    let mut plan = Plan {
        bases,
        outputs: numbered.iter().map(|(_, i)| *i).collect(),
        roots: Vec::new(),
        secondaries,
        inputs,
    };
    plan.roots = plan.outputs.iter().map(|&i| plan.root_of(i)).collect();
    Ok(plan)
}

/// Runs `actions` in place, as planned by [`plan_bases`] for the same actions and input
/// count.
///
/// - `inputs[k]` is the root of op input `k`, only read: copy sources and `/etc/passwd`
///   for chown by name.
/// - `dirs[i]` is given for every [`BasePlan::Fresh`] action `i` (others may be `None`):
///   for `Scratch` and `Input` it already holds the base files (the caller's job), for
///   `CloneOf(j)` it is empty and is filled here with action `j`'s result, root
///   metadata included. Handed-on actions work in their predecessor's directory, so
///   output `o` ends in `dirs[plan.roots[o]]`.
/// - `scratch_dir` is an empty directory standing for a scratch copy source.
///
/// On error the directories are left part-done for the caller to drop. Blocking: call
/// from a blocking task.
pub fn run_file_actions_in(
    actions: &[FileAction],
    plan: &Plan,
    inputs: &[PathBuf],
    dirs: &[Option<PathBuf>],
    scratch_dir: &Path,
    cancel: &CancellationToken,
) -> Result<(), FileOpError> {
    let n = inputs.len();
    if n != plan.inputs || actions.len() != plan.bases.len() {
        return Err(FileOpError::PlanMismatch {
            planned: (plan.inputs, plan.bases.len()),
            given: (n, actions.len()),
        });
    }
    for (i, b) in plan.bases.iter().enumerate() {
        if matches!(b, BasePlan::Fresh(_)) && dirs.get(i).is_none_or(Option::is_none) {
            return Err(FileOpError::MissingDir { action: i });
        }
    }
    // Every fresh action has a directory (checked above), so this cannot fail.
    let dir_of = |i: usize| -> Result<&Path, FileOpError> {
        dirs.get(plan.root_of(i))
            .and_then(|d| d.as_deref())
            .ok_or(FileOpError::MissingDir { action: i })
    };
    for (i, a) in actions.iter().enumerate() {
        if cancel.is_cancelled() {
            return Err(FileOpError::Cancelled);
        }
        let dir = dir_of(i)?;
        if let BasePlan::Fresh(BaseSource::CloneOf(j)) = plan.bases[i] {
            fill_tree(dir_of(j)?, dir, cancel)?;
        }
        // Results of earlier actions are read where they live; a handed-on one has been
        // modified since, but nothing reads those (that is what handing on means).
        let root_of = |idx: i64| -> Option<&Path> {
            match decode(idx, i, "user input", n).ok()? {
                Src::Input(k) => inputs.get(k).map(PathBuf::as_path),
                Src::Action(j) => dir_of(j).ok(),
                Src::Scratch => None,
            }
        };
        match &a.action {
            None => return Err(FileOpError::UnknownAction(i)),
            Some(FileActionKind::Mkdir(m)) => {
                let owner = resolve_owner(m.owner.as_ref(), root_of)?;
                actions::mkdir(dir, m, owner)?;
            }
            Some(FileActionKind::Mkfile(m)) => {
                let owner = resolve_owner(m.owner.as_ref(), root_of)?;
                actions::mkfile(dir, m, owner)?;
            }
            Some(FileActionKind::Symlink(s)) => {
                let owner = resolve_owner(s.owner.as_ref(), root_of)?;
                actions::symlink(dir, s, owner)?;
            }
            Some(FileActionKind::Rm(r)) => actions::rm(dir, r)?,
            Some(FileActionKind::Copy(c)) => {
                let owner = resolve_owner(c.owner.as_ref(), root_of)?;
                let src: &Path = match plan.secondaries[i] {
                    Some(Src::Input(k)) => &inputs[k],
                    Some(Src::Action(j)) => dir_of(j)?,
                    Some(Src::Scratch) | None => scratch_dir,
                };
                copy::copy(src, dir, c, owner, cancel)?;
            }
        }
    }
    Ok(())
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
    let plan = plan_bases(actions, inputs.len())?;
    let mut dirs: Vec<Option<PathBuf>> = vec![None; actions.len()];
    let cleanup = |dirs: &[Option<PathBuf>]| {
        for d in dirs.iter().flatten() {
            let _ = std::fs::remove_dir_all(d);
        }
    };
    // Each directory is named after the last action working in it, whose result it
    // holds at the end.
    let mut last: Vec<usize> = (0..actions.len()).collect();
    for i in 0..actions.len() {
        last[plan.root_of(i)] = i;
    }
    for (i, b) in plan.bases.iter().enumerate() {
        let BasePlan::Fresh(src) = b else { continue };
        let name = format!("action-{}", last[i]);
        let dir = work_dir.join(&name);
        let made = match src {
            BaseSource::Input(k) => clone_tree(&inputs[*k], &dir, cancel),
            BaseSource::Scratch | BaseSource::CloneOf(_) => {
                std::fs::create_dir(&dir).map_err(io_err("mkdir", name))
            }
        };
        if let Err(e) = made {
            cleanup(&dirs);
            return Err(e);
        }
        dirs[i] = Some(dir);
    }
    let empty = work_dir.join("scratch-empty");
    let ran = std::fs::create_dir(&empty)
        .map_err(io_err("mkdir", "scratch-empty"))
        .and_then(|()| run_file_actions_in(actions, &plan, inputs, &dirs, &empty, cancel));
    let _ = std::fs::remove_dir(&empty);
    if let Err(e) = ran {
        cleanup(&dirs);
        return Err(e);
    }
    let out: Vec<PathBuf> = plan
        .roots
        .iter()
        .map(|&r| dirs[r].take().unwrap_or_default())
        .collect();
    // Intermediate results nobody exposes.
    for dir in dirs.into_iter().flatten() {
        std::fs::remove_dir_all(&dir)
            .map_err(io_err("remove", dir.to_string_lossy().into_owned()))?;
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
    std::fs::create_dir(dst).map_err(io_err("mkdir", dst.to_string_lossy().into_owned()))?;
    fill_tree(src, dst, cancel)
}

/// [`clone_tree`] into an existing empty directory.
pub fn fill_tree(src: &Path, dst: &Path, cancel: &CancellationToken) -> Result<(), FileOpError> {
    use std::os::unix::fs::MetadataExt;
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
