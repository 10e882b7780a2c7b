//! `State::file`: a chain of file actions marshalled into one file op.

use crate::pb::{self, FileActionKind, OpKind, OpMetadata};

use super::state::{Output, State, Vertex, add_input, cap};

/// A user or group: numeric, or a name looked up in the base state's `/etc/passwd` or
/// `/etc/group`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UserSpec {
    Id(u32),
    Name(String),
}

/// Owner of created files.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChownSpec {
    pub user: Option<UserSpec>,
    pub group: Option<UserSpec>,
}

impl ChownSpec {
    pub fn ids(uid: u32, gid: u32) -> ChownSpec {
        ChownSpec {
            user: Some(UserSpec::Id(uid)),
            group: Some(UserSpec::Id(gid)),
        }
    }

    fn marshal(&self, base: i64) -> pb::ChownOpt {
        let one = |u: &UserSpec| pb::UserOpt {
            user: Some(match u {
                UserSpec::Id(id) => pb::UserOptKind::ById(*id),
                UserSpec::Name(name) => pb::UserOptKind::ByName(pb::NamedUserOpt {
                    name: name.clone(),
                    input: base,
                }),
            }),
        };
        pb::ChownOpt {
            user: self.user.as_ref().map(one),
            group: self.group.as_ref().map(one),
        }
    }
}

#[derive(Clone, Debug, Default)]
pub struct MkdirOptions {
    pub make_parents: bool,
    pub owner: Option<ChownSpec>,
    /// Unix nanoseconds; `None` means now (-1 on the wire).
    pub timestamp: Option<i64>,
}

#[derive(Clone, Debug, Default)]
pub struct MkfileOptions {
    pub owner: Option<ChownSpec>,
    pub timestamp: Option<i64>,
}

#[derive(Clone, Debug, Default)]
pub struct RmOptions {
    pub allow_not_found: bool,
    pub allow_wildcard: bool,
}

#[derive(Clone, Debug, Default)]
pub struct SymlinkOptions {
    pub owner: Option<ChownSpec>,
    pub timestamp: Option<i64>,
}

/// Options of a copy, named after Go's `llb.CopyInfo`.
#[derive(Clone, Debug, Default)]
pub struct CopyOptions {
    /// Permission bits for copied files; `None` keeps the source's (-1 on the wire).
    pub mode: Option<u32>,
    /// Symbolic chmod such as `u+x` (BuildKit v0.17+).
    pub mode_str: Option<String>,
    pub owner: Option<ChownSpec>,
    pub follow_symlinks: bool,
    pub copy_dir_contents_only: bool,
    pub attempt_unpack: bool,
    pub create_dest_path: bool,
    pub allow_wildcard: bool,
    pub allow_empty_wildcard: bool,
    pub timestamp: Option<i64>,
    pub include_patterns: Vec<String>,
    pub exclude_patterns: Vec<String>,
    pub always_replace_existing_dest_paths: bool,
    pub required_paths: Vec<String>,
}

#[derive(Clone, Debug)]
enum Action {
    Mkdir {
        path: String,
        mode: u32,
        opts: MkdirOptions,
    },
    Mkfile {
        path: String,
        mode: u32,
        data: Vec<u8>,
        opts: MkfileOptions,
    },
    Rm {
        path: String,
        opts: RmOptions,
    },
    Symlink {
        oldpath: String,
        newpath: String,
        opts: SymlinkOptions,
    },
    Copy {
        source: Box<State>,
        src: String,
        dest: String,
        opts: Box<CopyOptions>,
    },
}

/// Actions applied in order, each to the result of the one before; the first applies to
/// the state `file` is called on.
#[derive(Clone, Debug, Default)]
pub struct FileActions {
    actions: Vec<Action>,
}

impl FileActions {
    pub fn new() -> FileActions {
        FileActions::default()
    }

    pub fn mkdir(mut self, path: &str, mode: u32, opts: MkdirOptions) -> FileActions {
        self.actions.push(Action::Mkdir {
            path: path.to_owned(),
            mode,
            opts,
        });
        self
    }

    pub fn mkfile(
        mut self,
        path: &str,
        mode: u32,
        data: impl Into<Vec<u8>>,
        opts: MkfileOptions,
    ) -> FileActions {
        self.actions.push(Action::Mkfile {
            path: path.to_owned(),
            mode,
            data: data.into(),
            opts,
        });
        self
    }

    pub fn rm(mut self, path: &str, opts: RmOptions) -> FileActions {
        self.actions.push(Action::Rm {
            path: path.to_owned(),
            opts,
        });
        self
    }

    /// Creates the link `newpath` pointing at `oldpath` (BuildKit v0.19+).
    pub fn symlink(mut self, oldpath: &str, newpath: &str, opts: SymlinkOptions) -> FileActions {
        self.actions.push(Action::Symlink {
            oldpath: oldpath.to_owned(),
            newpath: newpath.to_owned(),
            opts,
        });
        self
    }

    /// Copies `src` of `source` to `dest`. Relative `src` joins `source`'s working
    /// directory; relative `dest` joins the base state's.
    pub fn copy(mut self, source: &State, src: &str, dest: &str, opts: CopyOptions) -> FileActions {
        self.actions.push(Action::Copy {
            source: Box::new(source.clone()),
            src: src.to_owned(),
            dest: dest.to_owned(),
            opts: Box::new(opts),
        });
        self
    }

    pub fn is_empty(&self) -> bool {
        self.actions.is_empty()
    }
}

impl State {
    /// Applies `actions` to this state as one file op. An empty chain leaves the state
    /// unchanged.
    pub fn file(&self, actions: FileActions) -> State {
        if actions.actions.is_empty() {
            return self.clone();
        }
        let mut inputs: Vec<Output> = Vec::new();
        let mut metadata = OpMetadata::default();
        cap(&mut metadata, "file.base");
        // First pass: inputs in the Go client's order (base, then the copy source, per
        // action), so that action indices can refer to `inputs.len() + i`.
        let mut bases = Vec::new();
        let mut secondaries = Vec::new();
        for action in &actions.actions {
            let base = match &self.output {
                Some(out) => add_input(&mut inputs, out),
                None => pb::EMPTY_INPUT,
            };
            bases.push(base);
            let secondary = match action {
                Action::Copy { source, opts, .. } => {
                    if !opts.include_patterns.is_empty() || !opts.exclude_patterns.is_empty() {
                        cap(&mut metadata, "file.copy.includeexcludepatterns");
                    }
                    if opts.mode_str.is_some() {
                        cap(&mut metadata, "file.copy.modestring");
                    }
                    match &source.output {
                        Some(out) => add_input(&mut inputs, out),
                        None => pb::EMPTY_INPUT,
                    }
                }
                Action::Symlink { .. } => {
                    cap(&mut metadata, "file.symlink.create");
                    pb::EMPTY_INPUT
                }
                Action::Rm { opts, .. } => {
                    if opts.allow_wildcard {
                        cap(&mut metadata, "file.rm.wildcard");
                    }
                    pb::EMPTY_INPUT
                }
                _ => pb::EMPTY_INPUT,
            };
            secondaries.push(secondary);
        }
        let n = inputs.len() as i64;
        let parent = self.get_cwd();
        let last = actions.actions.len() - 1;
        let timestamp = |t: Option<i64>| t.unwrap_or(-1);
        let owner = |o: &Option<ChownSpec>, base: i64| o.as_ref().map(|o| o.marshal(base));
        let mut pb_actions = Vec::with_capacity(actions.actions.len());
        for (i, action) in actions.actions.iter().enumerate() {
            let base = bases[i];
            let kind = match action {
                Action::Mkdir { path, mode, opts } => FileActionKind::Mkdir(pb::FileActionMkDir {
                    path: normalize_path(parent, path, false),
                    mode: (*mode & 0o7777) as i32,
                    make_parents: opts.make_parents,
                    owner: owner(&opts.owner, base),
                    timestamp: timestamp(opts.timestamp),
                }),
                Action::Mkfile {
                    path,
                    mode,
                    data,
                    opts,
                } => FileActionKind::Mkfile(pb::FileActionMkFile {
                    path: normalize_path(parent, path, false),
                    mode: (*mode & 0o7777) as i32,
                    data: data.clone(),
                    owner: owner(&opts.owner, base),
                    timestamp: timestamp(opts.timestamp),
                }),
                Action::Rm { path, opts } => FileActionKind::Rm(pb::FileActionRm {
                    path: normalize_path(parent, path, false),
                    allow_not_found: opts.allow_not_found,
                    allow_wildcard: opts.allow_wildcard,
                }),
                Action::Symlink {
                    oldpath,
                    newpath,
                    opts,
                } => FileActionKind::Symlink(pb::FileActionSymlink {
                    oldpath: oldpath.clone(),
                    newpath: normalize_path(parent, newpath, false),
                    owner: owner(&opts.owner, base),
                    timestamp: timestamp(opts.timestamp),
                }),
                Action::Copy {
                    source,
                    src,
                    dest,
                    opts,
                } => {
                    let mut src_path = crate::go::clean_path(src);
                    if !src_path.starts_with('/') {
                        src_path =
                            crate::go::clean_path(&format!("/{}/{}", source.get_cwd(), src_path));
                    }
                    FileActionKind::Copy(pb::FileActionCopy {
                        src: src_path,
                        dest: normalize_path(parent, dest, true),
                        owner: owner(&opts.owner, base),
                        mode: opts.mode.map_or(-1, |m| (m & 0o7777) as i32),
                        follow_symlink: opts.follow_symlinks,
                        dir_copy_contents: opts.copy_dir_contents_only,
                        attempt_unpack_docker_compatibility: opts.attempt_unpack,
                        create_dest_path: opts.create_dest_path,
                        allow_wildcard: opts.allow_wildcard,
                        allow_empty_wildcard: opts.allow_empty_wildcard,
                        timestamp: timestamp(opts.timestamp),
                        include_patterns: opts.include_patterns.clone(),
                        exclude_patterns: opts.exclude_patterns.clone(),
                        always_replace_existing_dest_paths: opts.always_replace_existing_dest_paths,
                        mode_str: opts.mode_str.clone().unwrap_or_default(),
                        required_paths: opts.required_paths.clone(),
                    })
                }
            };
            pb_actions.push(pb::FileAction {
                // The first action reads the base; each later one the previous result.
                input: if i == 0 { base } else { n + i as i64 - 1 },
                secondary_input: secondaries[i],
                output: if i == last { 0 } else { pb::SKIP_OUTPUT },
                action: Some(kind),
            });
        }
        let op = pb::Op {
            op: Some(OpKind::File(pb::FileOp {
                actions: pb_actions,
            })),
            platform: Some(self.resolved_platform()),
            constraints: Some(pb::WorkerConstraints::default()),
            ..Default::default()
        };
        self.with_output(Some(Output {
            vertex: Vertex::new(op, inputs, metadata),
            index: 0,
        }))
    }
}

/// Go client's `normalizePath`: relative paths join `parent`; with `keep_slash`, a
/// trailing `/` or `/.` (meaning "into this directory") survives the cleaning.
fn normalize_path(parent: &str, p: &str, keep_slash: bool) -> String {
    let mut out = crate::go::clean_path(p);
    if !out.starts_with('/') {
        out = crate::go::clean_path(&format!("/{parent}/{out}"));
    }
    if keep_slash {
        if p.ends_with('/') && !out.ends_with('/') {
            out.push('/');
        } else if p.ends_with("/.") {
            if out != "/" {
                out.push('/');
            }
            out.push('.');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_path_matches_go() {
        for (input, want) in [
            ("", "."),
            ("/", "/"),
            ("a/b/../c", "a/c"),
            ("/../a", "/a"),
            ("../a", "../a"),
            ("//a//b/./", "/a/b"),
            ("a/..", "."),
        ] {
            assert_eq!(crate::go::clean_path(input), want, "{input:?}");
        }
    }

    #[test]
    fn normalize_keeps_directory_markers() {
        assert_eq!(normalize_path("/w", "out/", true), "/w/out/");
        assert_eq!(normalize_path("/w", "out/", false), "/w/out");
        assert_eq!(normalize_path("/", "/x/.", true), "/x/.");
        assert_eq!(normalize_path("/", ".", false), "/");
    }
}
