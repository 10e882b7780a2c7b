//! `RUN`: the exec op with its shell, heredocs, mounts, network and security mode.

use std::collections::BTreeMap;

use cairn_llb::builder::{
    self, BindOptions, FileActions, MkfileOptions, SecretOptions, SshOptions, State,
};
use cairn_llb::pb::{CacheSharingOpt, NetMode, SecurityMode};

use super::dispatch::{COMMAND_KEY, Dispatcher, prefix_command, uppercase_cmd, with_shell};
use super::format::clean;
use super::stages::{Cmd, DState};
use crate::error::{Error, ErrorKind};
use crate::instructions::{MountType, NetworkMode, RunCommand, Security, Sharing, parse_mount};
use crate::parser::parse_heredoc_word;
use crate::position::span_of;
use crate::shell::EnvGetter;

/// The first line of a heredoc, with `...` when there are more.
fn summarize_heredoc(doc: &str) -> String {
    let doc = doc.trim().replace("\r\n", "\n");
    let mut lines = doc.split('\n');
    let first = lines.next().unwrap_or_default().to_string();
    if lines.next().is_some() {
        format!("{first}...")
    } else {
        first
    }
}

/// Proxy settings passed as build args reach every `RUN` without entering its cache key
/// (BuildKit's `ProxyEnv`); the names are matched case-insensitively.
fn proxy_env(build_args: &BTreeMap<String, String>) -> Option<cairn_llb::pb::ProxyEnv> {
    let mut proxy = cairn_llb::pb::ProxyEnv::default();
    let mut any = false;
    for (k, v) in build_args {
        let slot = match k.to_lowercase().as_str() {
            "http_proxy" => &mut proxy.http_proxy,
            "https_proxy" => &mut proxy.https_proxy,
            "ftp_proxy" => &mut proxy.ftp_proxy,
            "no_proxy" => &mut proxy.no_proxy,
            "all_proxy" => &mut proxy.all_proxy,
            _ => continue,
        };
        v.clone_into(slot);
        any = true;
    }
    any.then_some(proxy)
}

/// `path.Base`.
fn base_name(p: &str) -> String {
    let t = p.trim_end_matches('/');
    if t.is_empty() {
        return "/".to_string();
    }
    t.rsplit('/').next().unwrap_or(t).to_string()
}

impl Dispatcher<'_> {
    /// `RUN` history: the build args in effect (`|N K=V …`) then the command.
    fn run_command_string(d: &DState, args: &[String]) -> String {
        let mut pairs: Vec<(String, String)> = Vec::new();
        for arg in &d.build_args {
            let v = d
                .env
                .get(&arg.key)
                .or_else(|| arg.value.clone())
                .unwrap_or_default();
            match pairs.iter_mut().find(|(k, _)| *k == arg.key) {
                Some(slot) => slot.1 = v,
                None => pairs.push((arg.key.clone(), v)),
            }
        }
        let mut out: Vec<String> = Vec::new();
        if !pairs.is_empty() {
            out.push(format!("|{}", pairs.len()));
            out.extend(pairs.into_iter().map(|(k, v)| format!("{k}={v}")));
        }
        out.extend(args.iter().cloned());
        out.join(" ")
    }

    pub(super) fn dispatch_run(
        &mut self,
        d: &mut DState,
        cmd: &Cmd,
        run: &RunCommand,
    ) -> Result<(), Error> {
        let code = cmd.command.code.clone();
        let mut custom = code.clone();
        let mut args = run.cmd.args.clone();
        let platform = d
            .platform
            .clone()
            .unwrap_or_else(|| self.target_platform.clone());
        let mut inline: Option<(String, State)> = None;
        if let Some(first) = run.cmd.files.first() {
            if args.len() != 1 || !run.cmd.prepend_shell {
                return Err(Error::new(ErrorKind::Arguments(format!(
                    "parsing produced an invalid run command: {args:?}"
                ))));
            }
            if parse_heredoc_word(&args[0])?.is_some() {
                let data = if first.chomp {
                    first
                        .data
                        .split_inclusive('\n')
                        .map(|l| l.trim_start_matches('\t'))
                        .collect()
                } else {
                    first.data.clone()
                };
                if data.starts_with("#!") {
                    let st = builder::scratch()
                        .platform(platform.clone())
                        .file(FileActions::new().mkfile(
                            &first.name,
                            0o755,
                            data.into_bytes(),
                            MkfileOptions::default(),
                        ))
                        .custom_name("[internal] preparing inline document");
                    args = vec![format!("/dev/pipes/{}", first.name)];
                    inline = Some(("/dev/pipes/".to_string(), st));
                } else {
                    args = vec![data];
                }
                custom.push_str(&format!(" ({})", summarize_heredoc(&first.data)));
            } else {
                let mut b = args[0].clone();
                for f in &run.cmd.files {
                    b.push('\n');
                    b.push_str(&f.data);
                    b.push_str(&f.name);
                }
                args = vec![b];
            }
        }
        if run.cmd.prepend_shell {
            args = with_shell(&d.image, &args);
        }

        let mut raw_lex = self.lex;
        raw_lex.raw_quotes = true;
        raw_lex.skip_unset_env = true;
        let shown = raw_lex
            .process_word(&custom, &d.env)
            .map(|p| p.result)
            .unwrap_or_else(|_| custom.clone());
        let name = prefix_command(d, &uppercase_cmd(&shown));

        let base = Self::state(d);
        let cwd = base.get_cwd().to_string();
        let mut exec = base
            .run(args.clone())
            .custom_name(&name)
            .description(COMMAND_KEY, &code);
        if d.ignore_cache {
            exec = exec.ignore_cache();
        }
        if let Some((target, st)) = &inline {
            exec = exec.mount(
                target,
                st,
                BindOptions {
                    selector: Some("/".into()),
                    readonly: true,
                    no_output: false,
                },
            );
        }
        match run.network {
            NetworkMode::Default => {}
            NetworkMode::None => exec = exec.network(NetMode::None),
            NetworkMode::Host => exec = exec.network(NetMode::Host),
        }
        if run.security == Security::Insecure {
            exec = exec.security(SecurityMode::Insecure);
        }
        if let Some(proxy) = proxy_env(&self.opts.build_args) {
            exec = exec.proxy_env(proxy);
        }
        let env = d.env.clone();
        let lex = self.lex;
        let expand =
            move |w: &str| -> Result<String, Error> { Ok(lex.process_word(w, &env)?.result) };
        for (i, raw) in run.mounts.iter().enumerate() {
            let m = parse_mount(raw, &expand).map_err(|e| {
                e.at(span_of(
                    &cmd.command.code,
                    cmd.command.range,
                    &format!("--mount={raw}"),
                ))
            })?;
            let target_raw = m.target.clone().unwrap_or_default();
            match m.kind {
                MountType::Secret => {
                    let mut id = m.id.clone().unwrap_or_default();
                    if let Some(s) = &m.source {
                        id = s.clone();
                    }
                    if id.is_empty() {
                        if target_raw.is_empty() {
                            return Err(Error::new(ErrorKind::Mount(
                                "one of source, target required".into(),
                            )));
                        }
                        id = base_name(&target_raw);
                    }
                    let optional = !m.required;
                    if let Some(env_name) = &m.env {
                        exec = exec.secret_env(env_name, &id, optional);
                    }
                    let dest = if m.env.is_none() && target_raw.is_empty() {
                        format!("/run/secrets/{}", base_name(&id))
                    } else {
                        target_raw.clone()
                    };
                    if !dest.is_empty() {
                        exec = exec.secret(
                            &dest,
                            SecretOptions {
                                id,
                                uid: m.uid.unwrap_or(0),
                                gid: m.gid.unwrap_or(0),
                                mode: m.mode.unwrap_or(0o400),
                                optional,
                            },
                        );
                    }
                    continue;
                }
                MountType::Ssh => {
                    if m.source.is_some() {
                        return Err(Error::new(ErrorKind::Mount(
                            "ssh does not support source".into(),
                        )));
                    }
                    exec = exec.ssh(SshOptions {
                        id: m.id.clone().unwrap_or_else(|| "default".into()),
                        target: m.target.clone().filter(|t| !t.is_empty()),
                        uid: m.uid.unwrap_or(0),
                        gid: m.gid.unwrap_or(0),
                        mode: m.mode.unwrap_or(0o600),
                        optional: !m.required,
                    });
                    continue;
                }
                _ => {}
            }
            let cleaned = clean(&target_raw);
            let target = if cleaned.starts_with('/') {
                cleaned
            } else {
                clean(&format!("/{cwd}/{target_raw}"))
            };
            if target == "/" {
                return Err(Error::new(ErrorKind::Mount(format!(
                    "invalid mount target {target:?}"
                ))));
            }
            let source_path = clean(&format!("/{}", m.source.clone().unwrap_or_default()));
            match m.kind {
                MountType::Tmpfs => {
                    let size = m.size_limit.map(|s| i64::try_from(s).unwrap_or(i64::MAX));
                    exec = exec.tmpfs(&target, size);
                }
                MountType::Cache => {
                    let sharing = match m.sharing {
                        None | Some(Sharing::Shared) => CacheSharingOpt::Shared,
                        Some(Sharing::Private) => CacheSharingOpt::Private,
                        Some(Sharing::Locked) => CacheSharingOpt::Locked,
                    };
                    let id = m.id.clone().unwrap_or_else(|| clean(&target_raw));
                    let id = format!("/{id}");
                    exec = match (&m.from, cmd.sources.get(i)) {
                        // Seeded from another stage or image: its files under `source`.
                        (Some(from), Some(&idx)) => {
                            let st = self.source_state(d, idx, from)?;
                            let selector = (source_path != "/").then(|| source_path.clone());
                            exec.cache_from(&target, &id, sharing, &st, selector)
                        }
                        // Owner or mode given: the directory starts as one made so.
                        _ if m.uid.is_some() || m.gid.is_some() || m.mode.is_some() => {
                            let st = builder::scratch()
                                .file(FileActions::new().mkdir(
                                    "/cache",
                                    m.mode.unwrap_or(0o755),
                                    builder::MkdirOptions {
                                        owner: Some(builder::ChownSpec::ids(
                                            m.uid.unwrap_or(0),
                                            m.gid.unwrap_or(0),
                                        )),
                                        ..builder::MkdirOptions::default()
                                    },
                                ))
                                .custom_name("[internal] settings cache mount permissions");
                            exec.cache_from(&target, &id, sharing, &st, Some("/cache".into()))
                        }
                        _ => exec.cache(&target, &id, sharing),
                    };
                }
                _ => {
                    let st = match (&m.from, cmd.sources.get(i)) {
                        (Some(from), Some(&idx)) => self.source_state(d, idx, from)?,
                        _ => {
                            d.ctx_paths.insert(source_path.clone());
                            self.context.clone()
                        }
                    };
                    let selector = (source_path != "/").then(|| source_path.clone());
                    exec = exec.mount(
                        &target,
                        &st,
                        BindOptions {
                            selector,
                            readonly: m.read_only,
                            no_output: !m.read_only,
                        },
                    );
                }
            }
        }
        let state = exec.root();
        self.locate(&state, cmd.command.range);
        d.state = Some(state);
        let msg = format!("RUN {} # buildkit", Self::run_command_string(d, &args));
        self.history(d, msg, true);
        Ok(())
    }
}
