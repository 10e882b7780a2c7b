//! `COPY` and `ADD`: file-op copies from the context, another stage, an inline heredoc or
//! a URL, with `--link` turned into a merge onto the stage.

use std::collections::BTreeMap;

use cairn_llb::builder::{self, CopyOptions, FileActions, MkfileOptions, State};

use super::dispatch::{COMMAND_KEY, Dispatcher, chown_spec, prefix_command, uppercase_cmd};
use super::format::normalize_path;
use super::stages::{Cmd, DState};
use crate::error::{Error, ErrorKind};
use crate::instructions::{AddCommand, CopyCommand, SourcesAndDest};
use crate::shell::{EnvList, Lex};

fn is_http(src: &str) -> bool {
    src.starts_with("http://") || src.starts_with("https://")
}

fn is_git(src: &str) -> bool {
    src.starts_with("git://")
        || src.starts_with("git@")
        || (is_http(src) && (src.contains(".git#") || src.ends_with(".git")))
}

impl Dispatcher<'_> {
    pub(super) fn dispatch_copy(
        &mut self,
        d: &mut DState,
        cmd: &Cmd,
        spec: CopySpec,
    ) -> Result<(), Error> {
        let base = Self::state(d);
        let platform = d
            .platform
            .clone()
            .unwrap_or_else(|| self.target_platform.clone());
        let chown = spec
            .chown
            .as_deref()
            .map(|c| self.expand(d, c))
            .transpose()?
            .filter(|c| !c.is_empty());
        let chmod = spec
            .chmod
            .as_deref()
            .map(|c| self.expand(d, c))
            .transpose()?
            .filter(|c| !c.is_empty());
        let mut paths = spec.paths.clone();
        for s in &mut paths.sources {
            *s = self.expand(d, s)?;
        }
        paths.dest = self.expand(d, &paths.dest)?;
        for c in &mut paths.contents {
            if c.expand {
                let mut raw = Lex::new('\\');
                raw.skip_process_quotes = true;
                c.data = raw.process_word(&c.data, &d.env)?.result;
            }
        }
        let dest = normalize_path(base.get_cwd(), &paths.dest, true);

        let (mode, mode_str) = match &chmod {
            None => (None, None),
            Some(m) => match u32::from_str_radix(m, 8) {
                Ok(v) if v <= 0o7777 => (Some(v), None),
                Ok(_) => {
                    return Err(Error::new(ErrorKind::InvalidValue {
                        what: "chmod (an octal string between 0 and 07777)".into(),
                        value: m.clone(),
                    }));
                }
                Err(_) if m.chars().all(|c| c.is_ascii_digit()) => {
                    return Err(Error::new(ErrorKind::InvalidValue {
                        what: "chmod (an octal string between 0 and 07777)".into(),
                        value: m.clone(),
                    }));
                }
                Err(_) => {
                    if !m.chars().all(|c| "ugoa+-=rwxXst,0123456789".contains(c)) {
                        return Err(Error::new(ErrorKind::InvalidValue {
                            what: "chmod".into(),
                            value: m.clone(),
                        }));
                    }
                    (None, Some(m.clone()))
                }
            },
        };
        let owner = chown.as_deref().map(chown_spec);

        if spec.checksum.is_some() {
            if paths.sources.len() != 1 {
                return Err(Error::new(ErrorKind::Arguments(
                    "checksum can't be specified for multiple sources".into(),
                )));
            }
            if !is_http(&paths.sources[0]) {
                return Err(Error::new(ErrorKind::Arguments(
                    "checksum requires HTTP(S) or Git sources".into(),
                )));
            }
        }

        let mut msg = String::from(if spec.is_add { "ADD" } else { "COPY" });
        if spec.parents {
            msg.push_str(" --parents");
        }
        if let Some(c) = &chown {
            msg.push_str(&format!(" --chown={c}"));
        }
        if let Some(c) = &chmod {
            msg.push_str(&format!(" --chmod={c}"));
        }

        let shown = self
            .lex
            .process_word(&cmd.command.code, &d.env)
            .map(|p| p.result)
            .unwrap_or_else(|_| cmd.command.code.clone());
        let name = uppercase_cmd(&shown);
        let pg_name = prefix_command(d, &name);

        let source_state = match (&spec.from, cmd.sources.first()) {
            (Some(from), Some(&idx)) => Some(self.source_state(d, idx, from)?),
            _ => None,
        };
        let from_context = source_state.is_none();
        let source_state = source_state.unwrap_or_else(|| self.context.clone());

        let mut actions = FileActions::new();
        for src in &paths.sources {
            msg.push_str(&format!(" {src}"));
            if is_git(src) {
                return Err(Error::new(ErrorKind::Unsupported(format!(
                    "ADD of the git repository {src}"
                ))));
            }
            if is_http(src) {
                if !spec.is_add {
                    return Err(Error::new(ErrorKind::Arguments(
                        "source can't be a URL for COPY".into(),
                    )));
                }
                let file = src
                    .split(['?', '#'])
                    .next()
                    .and_then(|u| u.rsplit('/').next())
                    .filter(|b| !b.is_empty() && !b.contains(':'))
                    .unwrap_or("__unnamed__")
                    .to_string();
                let mut attrs = BTreeMap::new();
                attrs.insert("http.filename".to_string(), file.clone());
                if let Some(sum) = &spec.checksum {
                    attrs.insert("http.checksum".to_string(), sum.clone());
                }
                // BuildKit describes the HTTP source with its (string-less) params: "".
                let st = builder::source(src, attrs, None)
                    .custom_name(&pg_name)
                    .description(COMMAND_KEY, "");
                actions = actions.copy(
                    &st,
                    &file,
                    &dest,
                    CopyOptions {
                        mode,
                        mode_str: mode_str.clone(),
                        owner: owner.clone(),
                        create_dest_path: true,
                        attempt_unpack: spec.unpack.unwrap_or(false),
                        exclude_patterns: spec.excludes.clone(),
                        ..CopyOptions::default()
                    },
                );
                continue;
            }
            let (mut from_path, mut include, mut required) = (src.clone(), Vec::new(), Vec::new());
            if spec.parents {
                let (parent, pattern) = match src.split_once("/./") {
                    Some((p, pat)) => (p.to_string(), pat.to_string()),
                    None => ("/".to_string(), src.clone()),
                };
                let pattern = normalize_path("/", &pattern, false);
                include = vec![pattern.trim_start_matches('/').to_string()];
                let wild = |s: &str| s.contains(['*', '?', '[']);
                if !wild(&parent) && !wild(&pattern) {
                    required = vec![normalize_path("/", &format!("{parent}/{pattern}"), false)];
                }
                from_path = parent;
            }
            let from_path = normalize_path("/", &from_path, false);
            if from_context {
                d.ctx_paths.insert(normalize_path("/", src, false));
            }
            actions = actions.copy(
                &source_state,
                &from_path,
                &dest,
                CopyOptions {
                    mode,
                    mode_str: mode_str.clone(),
                    owner: owner.clone(),
                    follow_symlinks: true,
                    copy_dir_contents_only: true,
                    attempt_unpack: spec.unpack.unwrap_or(spec.is_add),
                    create_dest_path: true,
                    allow_wildcard: true,
                    allow_empty_wildcard: true,
                    include_patterns: include,
                    exclude_patterns: spec.excludes.clone(),
                    required_paths: required,
                    ..CopyOptions::default()
                },
            );
        }
        for content in &paths.contents {
            msg.push_str(&format!(" <<{}", content.path));
            let st = builder::scratch()
                .platform(platform.clone())
                .file(FileActions::new().mkfile(
                    &content.path,
                    0o644,
                    content.data.clone().into_bytes(),
                    MkfileOptions::default(),
                ))
                .custom_name("[internal] preparing inline document");
            actions = actions.copy(
                &st,
                &content.path,
                &dest,
                CopyOptions {
                    mode,
                    mode_str: mode_str.clone(),
                    owner: owner.clone(),
                    create_dest_path: true,
                    exclude_patterns: spec.excludes.clone(),
                    ..CopyOptions::default()
                },
            );
        }
        msg.push_str(&format!(" {}", paths.dest));

        let state = if spec.link && chmod.is_none() {
            d.cmd_index = d.cmd_index.saturating_sub(1);
            let group_name = prefix_command(d, &name);
            d.cmd_index = d.cmd_index.saturating_sub(1);
            let link_name = prefix_command(d, &format!("LINK {name}"));
            let group_id = progress_group_id(&group_name);
            let mut copied = builder::scratch()
                .platform(platform.clone())
                .file(actions)
                .progress_group(&group_id, &group_name, true);
            if d.ignore_cache {
                copied = copied.ignore_cache();
            }
            self.locate(&copied, cmd.command.range);
            let mut merged = builder::merge(&[base.clone(), copied])
                .custom_name(link_name)
                .progress_group(&group_id, &group_name, false);
            if d.ignore_cache {
                merged = merged.ignore_cache();
            }
            carry_settings(&base, merged, &d.env, &d.image.config.user).platform(platform.clone())
        } else {
            let copied = base.file(actions).custom_name(&pg_name);
            if d.ignore_cache {
                copied.ignore_cache()
            } else {
                copied
            }
        };
        self.locate(&state, cmd.command.range);
        d.state = Some(state);
        self.history(d, format!("{msg} # buildkit"), true);
        Ok(())
    }
}

/// A deterministic progress-group ID (BuildKit uses a random one; cairn keeps
/// definitions reproducible).
fn progress_group_id(name: &str) -> String {
    let digest = cairn_llb::Digest::of_bytes(name.as_bytes());
    digest.hex().chars().take(25).collect()
}

/// A merge result is a fresh state; the stage's process settings carry over to it.
fn carry_settings(from: &State, onto: State, env: &EnvList, user: &str) -> State {
    let mut st = onto.cwd(from.get_cwd());
    for (k, v) in env.iter() {
        st = st.env(k, v);
    }
    if !user.is_empty() {
        st = st.user(user);
    }
    st
}

/// `COPY` and `ADD` seen the same way.
pub(super) struct CopySpec {
    paths: SourcesAndDest,
    from: Option<String>,
    chown: Option<String>,
    chmod: Option<String>,
    link: bool,
    parents: bool,
    excludes: Vec<String>,
    is_add: bool,
    checksum: Option<String>,
    unpack: Option<bool>,
}

impl CopySpec {
    pub(super) fn from_copy(c: CopyCommand) -> Self {
        Self {
            paths: c.paths,
            from: c.from,
            chown: c.chown,
            chmod: c.chmod,
            link: c.link,
            parents: c.parents,
            excludes: c.excludes,
            is_add: false,
            checksum: None,
            unpack: None,
        }
    }

    pub(super) fn from_add(a: AddCommand) -> Self {
        Self {
            paths: a.paths,
            from: None,
            chown: a.chown,
            chmod: a.chmod,
            link: a.link,
            parents: false,
            excludes: a.excludes,
            is_add: true,
            checksum: a.checksum,
            unpack: a.unpack,
        }
    }
}
