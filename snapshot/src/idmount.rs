//! Kernel ID-mapped mounts (Linux ≥ 5.12; as overlay layers ≥ 5.19; passed to overlay as
//! file descriptors, `fsconfig(FSCONFIG_SET_FD, "lowerdir+")`, on newer kernels, checked on
//! 6.18). They let an overlay ID-mapped copy show a layer dir with shifted owners without
//! writing a byte: `open_tree(OPEN_TREE_CLONE)` makes a private, detached bind mount of the
//! dir, and `mount_setattr(MOUNT_ATTR_IDMAP)` gives it the id map of a user namespace.
//!
//! The kernel takes the map only as a user namespace, and a namespace only exists while
//! something is in it or holds it open, so [`UserNs::new`] does what containers/storage
//! does: clone a child straight into a new user namespace, write its `uid_map`/`gid_map`,
//! keep `/proc/<pid>/ns/user` open, kill and reap the child. The fd keeps the namespace.
//! Making one costs 0.3-4 ms (mostly waiting for the killed child), so namespaces are kept
//! per map for the life of the process (a few fds; builds use one or two maps). The
//! ID-mapped mounts themselves are made per mount: nothing outlives the overlay using them.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;
use std::sync::{Arc, Mutex};

use rustix::fs::CWD;
use rustix::mount::{MoveMountFlags, OpenTreeFlags, move_mount, open_tree};

use crate::error::SnapshotError;
use crate::idmap::IdMap;
use crate::mount::{Lower, MountGuard};

/// A user namespace carrying one id map, held open by fd.
pub(crate) struct UserNs {
    fd: OwnedFd,
}

/// How many maps' namespaces [`UserNs::for_map`] keeps; the oldest is dropped past it.
const KEPT_NAMESPACES: usize = 16;

static NAMESPACES: Mutex<Vec<(IdMap, Arc<UserNs>)>> = Mutex::new(Vec::new());

/// A child parked in a fresh user namespace; killed and reaped on drop, on every path.
///
/// It is cloned with `CLONE_VM` onto a small stack of its own: a fork-like clone would copy
/// the page tables of the whole process, which costs ~25 ms per mount in a process with a
/// 200 MB heap (measured), against ~0.1 ms this way whatever the heap.
struct Parked {
    pid: libc::pid_t,
    /// The child's stack; freed only after the child is reaped.
    _stack: Vec<u128>,
}

/// The child's whole life: die with the thread that made it, else sleep until killed. With
/// every catchable signal blocked (inherited from `spawn`), `pause` never returns, and no
/// handler of the parent's ever runs on this stack in the shared address space.
extern "C" fn park(_: *mut libc::c_void) -> libc::c_int {
    // SAFETY: plain syscalls that touch no memory the parent uses.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong);
        loop {
            libc::pause();
        }
    }
}

impl Parked {
    fn spawn() -> io::Result<Parked> {
        const STACK_WORDS: usize = 4096; // 64 KiB, 16-byte aligned as the ABI wants.
        let mut stack = vec![0u128; STACK_WORDS];
        let flags = libc::CLONE_VM | libc::CLONE_NEWUSER | libc::SIGCHLD;
        // SAFETY: `top` is the end of a live, aligned allocation that outlives the child
        // (kept in `Parked` until `waitpid`); `park` uses only that stack. Signal masks are
        // plain values; the old mask is restored before returning on every path.
        let (pid, err) = unsafe {
            let top = stack.as_mut_ptr().add(STACK_WORDS).cast::<libc::c_void>();
            let mut all: libc::sigset_t = std::mem::zeroed();
            let mut old: libc::sigset_t = std::mem::zeroed();
            libc::sigfillset(&mut all);
            libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old);
            let pid = libc::clone(park, top, flags, std::ptr::null_mut());
            let err = io::Error::last_os_error();
            libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
            (pid, err)
        };
        if pid < 0 {
            return Err(err);
        }
        Ok(Parked { pid, _stack: stack })
    }
}

impl Drop for Parked {
    fn drop(&mut self) {
        // SAFETY: `pid` is our own child, not yet reaped, so it names no other process.
        unsafe {
            libc::kill(self.pid, libc::SIGKILL);
            libc::waitpid(self.pid, std::ptr::null_mut(), 0);
        }
    }
}

impl UserNs {
    /// The process's namespace for `map`, made on first use.
    pub(crate) fn for_map(map: &IdMap) -> Result<Arc<UserNs>, SnapshotError> {
        let mut kept = NAMESPACES.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, ns)) = kept.iter().find(|(m, _)| m == map) {
            return Ok(ns.clone());
        }
        let ns = Arc::new(UserNs::new(map)?);
        if kept.len() == KEPT_NAMESPACES {
            kept.remove(0);
        }
        kept.push((map.clone(), ns.clone()));
        Ok(ns)
    }

    /// A user namespace whose uid and gid maps are `map` (as written to
    /// `/proc/<pid>/uid_map`: the kernel refuses overlapping ranges and more than 340).
    fn new(map: &IdMap) -> Result<UserNs, SnapshotError> {
        let err = |source| SnapshotError::UserNamespace {
            map: map.to_string(),
            source,
        };
        let child = Parked::spawn().map_err(err)?;
        let proc = format!("/proc/{}", child.pid);
        std::fs::write(format!("{proc}/uid_map"), map.proc_lines(true)).map_err(err)?;
        std::fs::write(format!("{proc}/gid_map"), map.proc_lines(false)).map_err(err)?;
        let fd = std::fs::File::open(format!("{proc}/ns/user")).map_err(err)?;
        drop(child);
        Ok(UserNs { fd: fd.into() })
    }
}

/// `struct mount_attr` of `mount_setattr(2)` (libc has the syscall number, not the type).
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// A detached clone of `dir` that shows every owner through `ns`'s map: on-disk uid `k`
/// appears as the host uid that `k` maps to. Nothing is attached anywhere; closing the fd
/// (unless an overlay has taken the layer) makes it vanish.
pub(crate) fn clone_idmapped(dir: &Path, ns: &UserNs) -> Result<OwnedFd, SnapshotError> {
    let err = |step, source| SnapshotError::IdmappedMount {
        step,
        path: dir.to_owned(),
        source,
    };
    let tree = open_tree(
        CWD,
        dir,
        OpenTreeFlags::OPEN_TREE_CLONE | OpenTreeFlags::OPEN_TREE_CLOEXEC,
    )
    .map_err(|e| err("open_tree", e.into()))?;
    let attr = MountAttr {
        attr_set: libc::MOUNT_ATTR_IDMAP,
        attr_clr: 0,
        propagation: 0,
        userns_fd: ns.fd.as_raw_fd() as u64,
    };
    // SAFETY: every pointer is valid for the call: a NUL-terminated empty path and an
    // initialised `mount_attr` of the size passed.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            tree.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if rc != 0 {
        return Err(err("mount_setattr", io::Error::last_os_error()));
    }
    Ok(tree)
}

/// For each lower that has an id map, its ID-mapped clone (in order; `None` for plain
/// lowers).
pub(crate) fn clone_lowers(lowers: &[Lower]) -> Result<Vec<Option<OwnedFd>>, SnapshotError> {
    lowers
        .iter()
        .map(|l| match &l.idmap {
            Some(map) => clone_idmapped(&l.dir, &*UserNs::for_map(map)?).map(Some),
            None => Ok(None),
        })
        .collect()
}

/// Attaches an ID-mapped clone of `dir` at `target`, for reading one layer's own files
/// (whiteouts and opaque marks included) with shifted owners.
pub(crate) fn mount_idmapped(
    dir: &Path,
    map: &IdMap,
    target: &Path,
) -> Result<MountGuard, SnapshotError> {
    let tree = clone_idmapped(dir, &*UserNs::for_map(map)?)?;
    move_mount(
        &tree,
        "",
        CWD,
        target,
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
    )
    .map_err(|e| SnapshotError::IdmappedMount {
        step: "move_mount",
        path: dir.to_owned(),
        source: e.into(),
    })?;
    Ok(MountGuard::attached(target))
}
