//! One stage's instructions applied to its LLB state and image config, as BuildKit's
//! `dispatch*` functions do: which words are expanded, step names, history entries.

use std::collections::BTreeMap;

use cairn_llb::builder::{self, ChownSpec, FileActions, MkdirOptions, State, UserSpec};
use cairn_llb::pb::Platform;

use super::ConvertOptions;
use super::format::{go_duration, go_list, go_quoted_list, normalize_path};
use super::stages::{Cmd, DState};
use crate::error::{Error, ErrorKind};
use crate::instructions::{ArgDef, Healthcheck, Instruction, KeyValuePair};
use crate::position::Range;
use crate::shell::{EnvGetter, EnvList, Lex};

/// The `PATH` BuildKit gives Linux stages whose image sets none.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

pub(super) const COMMAND_KEY: &str = "com.docker.dockerfile.v1.command";

/// `[stage 2/5] ` before a step name, advancing the stage's step counter.
pub(super) fn prefix_command(d: &mut DState, s: &str) -> String {
    if d.cmd_total == 0 {
        return s.to_string();
    }
    let mut out = String::from("[");
    if !d.stage_name.is_empty() {
        out.push_str(&d.stage_name);
        out.push(' ');
    }
    d.cmd_index += 1;
    // Go computes int(1 + math.Log10(total)); Log10 there is log2(x) * (ln 2 / ln 10).
    let log10 = (d.cmd_total as f64).log2() * (std::f64::consts::LN_2 / std::f64::consts::LN_10);
    let width = (1.0 + log10) as usize;
    out.push_str(&format!("{:>width$}/{}] ", d.cmd_index, d.cmd_total));
    if d.cmd_is_onbuild {
        out.push_str("ONBUILD ");
    }
    out.push_str(s);
    out
}

/// Upper-cases the instruction word of a step name.
pub(super) fn uppercase_cmd(s: &str) -> String {
    match s.split_once(' ') {
        Some((cmd, rest)) => format!("{} {rest}", cmd.to_uppercase()),
        None => s.to_uppercase(),
    }
}

/// `shell + [joined args]`.
pub(super) fn with_shell(image: &super::Image, args: &[String]) -> Vec<String> {
    let mut shell = if image.config.shell.is_empty() {
        vec!["/bin/sh".to_string(), "-c".to_string()]
    } else {
        image.config.shell.clone()
    };
    shell.push(args.join(" "));
    shell
}

/// `user[:group]`, numeric parts as IDs.
pub(super) fn chown_spec(s: &str) -> ChownSpec {
    let one = |p: &str| match p.parse::<u32>() {
        Ok(id) => UserSpec::Id(id),
        Err(_) => UserSpec::Name(p.to_string()),
    };
    match s.split_once(':') {
        Some((u, g)) => ChownSpec {
            user: Some(one(u)),
            group: Some(one(g)),
        },
        None => ChownSpec {
            user: Some(one(s)),
            group: None,
        },
    }
}

/// Signals `STOPSIGNAL` accepts: a number or a known name, with or without `SIG`.
fn valid_signal(s: &str) -> bool {
    if let Ok(n) = s.parse::<u32>() {
        return n > 0;
    }
    let name = s.trim_start_matches("SIG");
    let known = [
        "ABRT", "ALRM", "BUS", "CHLD", "CLD", "CONT", "FPE", "HUP", "ILL", "INT", "IO", "IOT",
        "KILL", "PIPE", "POLL", "PROF", "PWR", "QUIT", "SEGV", "STKFLT", "STOP", "SYS", "TERM",
        "TRAP", "TSTP", "TTIN", "TTOU", "URG", "USR1", "USR2", "VTALRM", "WINCH", "XCPU", "XFSZ",
    ];
    known.contains(&name) || name.starts_with("RTMIN") || name.starts_with("RTMAX")
}

/// `EXPOSE` values to `port/proto` keys (ranges expanded).
fn parse_ports(raw: &str) -> Result<Vec<String>, Error> {
    let bad = || {
        Error::new(ErrorKind::InvalidValue {
            what: "port".into(),
            value: raw.to_string(),
        })
    };
    let (spec, proto) = match raw.rsplit_once('/') {
        Some((s, p)) => (s, p.to_lowercase()),
        None => (raw, "tcp".to_string()),
    };
    if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
        return Err(bad());
    }
    let container = spec.rsplit(':').next().unwrap_or(spec);
    let (start, end) = match container.split_once('-') {
        Some((a, b)) => (
            a.parse::<u16>().map_err(|_| bad())?,
            b.parse::<u16>().map_err(|_| bad())?,
        ),
        None => {
            let p = container.parse::<u16>().map_err(|_| bad())?;
            (p, p)
        }
    };
    if end < start {
        return Err(bad());
    }
    Ok((start..=end).map(|p| format!("{p}/{proto}")).collect())
}

/// What a stage needs to know while converting its instructions.
pub(super) struct Dispatcher<'a> {
    pub lex: Lex,
    pub opts: &'a ConvertOptions,
    pub global: &'a EnvList,
    pub context: &'a State,
    pub target_platform: &'a Platform,
    /// Every state of the build; those before the current one are dispatched.
    pub states: &'a [DState],
    /// Op digest → the Dockerfile lines that made it.
    pub locations: &'a mut Vec<(String, Range)>,
    /// `SOURCE_DATE_EPOCH` in seconds: history times and created directories use it.
    pub epoch: Option<i64>,
}

impl Dispatcher<'_> {
    pub(super) fn history(&self, d: &mut DState, created_by: String, with_layer: bool) {
        d.image.add_history(created_by, with_layer);
        if let (Some(epoch), Some(last)) = (self.epoch, d.image.history.last_mut()) {
            last.created = Some(super::format::rfc3339(epoch));
        }
    }

    pub(super) fn expand(&self, d: &DState, word: &str) -> Result<String, Error> {
        Ok(self.lex.process_word(word, &d.env)?.result)
    }

    pub(super) fn locate(&mut self, state: &State, range: Range) {
        if let Some((digest, _)) = state.edge() {
            self.locations.push((digest.to_string(), range));
        }
    }

    pub(super) fn set_env(d: &mut DState, key: &str, value: &str) {
        d.env.set(key, value);
        d.state = d.state.take().map(|s| s.env(key, value));
    }

    /// Sets up the stage from its base, then applies its instructions.
    pub(super) fn dispatch_stage(&mut self, d: &mut DState) -> Result<(), Error> {
        if let Some(b) = d.base {
            let base = &self.states[b];
            d.state = base.state.clone();
            d.platform = base.platform.clone();
            d.image = base.image.clone();
            d.image.config.on_build.clear();
            d.env = base.env.clone();
            let mut args = base.build_args.clone();
            args.append(&mut d.build_args);
            d.build_args = args;
        }
        let platform = d
            .platform
            .clone()
            .unwrap_or_else(|| self.target_platform.clone());
        d.platform = Some(platform.clone());
        d.state = Some(
            d.state
                .take()
                .unwrap_or_else(builder::scratch)
                .platform(platform),
        );

        if !d
            .image
            .config
            .env
            .iter()
            .any(|e| e.split('=').next() == Some("PATH"))
        {
            d.image.config.env.push(format!("PATH={DEFAULT_PATH}"));
        }
        for entry in d.image.config.env.clone() {
            let (k, v) = entry.split_once('=').unwrap_or((entry.as_str(), ""));
            Self::set_env(d, k, v);
        }
        if !d.image.config.working_dir.is_empty() {
            let wd = normalize_path("/", &d.image.config.working_dir, false);
            d.image.config.working_dir = wd.clone();
            d.state = d.state.take().map(|s| s.cwd(&wd));
        }
        if !d.image.config.user.is_empty() {
            let user = d.image.config.user.clone();
            d.state = d.state.take().map(|s| s.user(user));
        }
        for cmd in d.commands.clone() {
            let range = cmd.command.range;
            self.dispatch(d, &cmd).map_err(|e| e.at(range))?;
        }
        d.dispatched = true;
        Ok(())
    }

    pub(super) fn state(d: &DState) -> State {
        d.state.clone().unwrap_or_else(builder::scratch)
    }

    fn dispatch(&mut self, d: &mut DState, cmd: &Cmd) -> Result<(), Error> {
        d.cmd_is_onbuild = cmd.onbuild;
        let code = cmd.command.code.clone();
        match cmd.command.instruction.clone() {
            Instruction::Env(kvs) => {
                // Every word is expanded against the environment before this instruction:
                // `ENV A=1 B=$A` gives B the previous A.
                let mut pairs = Vec::with_capacity(kvs.len());
                for KeyValuePair { key, value, .. } in kvs {
                    pairs.push((self.expand(d, &key)?, self.expand(d, &value)?));
                }
                let mut msg = String::from("ENV");
                for (k, v) in pairs {
                    msg.push_str(&format!(" {k}={v}"));
                    Self::set_env(d, &k, &v);
                    d.image.set_env(&k, &v);
                }
                self.history(d, msg, false);
            }
            Instruction::Label(kvs) => {
                let mut msg = String::from("LABEL");
                for KeyValuePair { key, value, .. } in kvs {
                    let (k, v) = (self.expand(d, &key)?, self.expand(d, &value)?);
                    msg.push_str(&format!(" {k}={v}"));
                    d.image
                        .config
                        .labels
                        .get_or_insert_with(BTreeMap::new)
                        .insert(k, v);
                }
                self.history(d, msg, false);
            }
            Instruction::Maintainer(m) => {
                d.image.author = m.clone();
                self.history(d, format!("MAINTAINER {m}"), false);
            }
            Instruction::Arg(defs) => self.dispatch_arg(d, defs)?,
            Instruction::Run(run) => self.dispatch_run(d, cmd, &run)?,
            Instruction::Workdir(path) => {
                let path = self.expand(d, &path)?;
                let wd =
                    normalize_path(d.state.as_ref().map_or("/", |s| s.get_cwd()), &path, false);
                d.image.config.working_dir = wd.clone();
                let mut state = Self::state(d).cwd(&wd);
                let mut with_layer = false;
                if wd != "/" {
                    let owner =
                        (!d.image.config.user.is_empty()).then(|| chown_spec(&d.image.config.user));
                    let name = self.step_name(d, &code);
                    let platform = d
                        .platform
                        .clone()
                        .unwrap_or_else(|| self.target_platform.clone());
                    state = state
                        .platform(platform)
                        .file(FileActions::new().mkdir(
                            &wd,
                            0o755,
                            MkdirOptions {
                                make_parents: true,
                                owner,
                                timestamp: self.epoch.map(|e| e.saturating_mul(1_000_000_000)),
                            },
                        ))
                        .custom_name(name);
                    self.locate(&state, cmd.command.range);
                    with_layer = true;
                }
                d.state = Some(state);
                self.history(d, format!("WORKDIR {wd}"), with_layer);
            }
            Instruction::Copy(c) => {
                self.dispatch_copy(d, cmd, super::copy::CopySpec::from_copy(c))?
            }
            Instruction::Add(a) => {
                self.dispatch_copy(d, cmd, super::copy::CopySpec::from_add(a))?
            }
            Instruction::Onbuild(expr) => d.image.config.on_build.push(expr),
            Instruction::Cmd(c) => {
                let args = if c.prepend_shell {
                    with_shell(&d.image, &c.args)
                } else {
                    c.args
                };
                self.history(d, format!("CMD {}", go_quoted_list(&args)), false);
                d.image.config.cmd = Some(args);
                d.image.config.args_escaped = true;
                d.cmd_set = true;
            }
            Instruction::Entrypoint(c) => {
                let args = if c.prepend_shell {
                    with_shell(&d.image, &c.args)
                } else {
                    c.args
                };
                self.history(d, format!("ENTRYPOINT {}", go_quoted_list(&args)), false);
                // `ENTRYPOINT []` clears the entrypoint (BuildKit keeps a nil list).
                d.image.config.entrypoint = if args.is_empty() { None } else { Some(args) };
                if !d.cmd_set {
                    d.image.config.cmd = None;
                }
            }
            Instruction::Healthcheck(h) => {
                let Healthcheck {
                    test,
                    interval,
                    timeout,
                    start_period,
                    start_interval,
                    retries,
                } = h;
                self.history(d,
                    format!(
                        "HEALTHCHECK {{Test:{} Interval:{} Timeout:{} StartPeriod:{} StartInterval:{} Retries:{retries}}}",
                        go_list(&test),
                        go_duration(interval),
                        go_duration(timeout),
                        go_duration(start_period),
                        go_duration(start_interval)
                    ),
                    false,
                );
                d.image.config.healthcheck = Some(super::HealthConfig {
                    test,
                    interval,
                    timeout,
                    start_period,
                    start_interval,
                    retries,
                });
            }
            Instruction::Expose(ports) => {
                let mut specs = Vec::new();
                for p in ports {
                    for word in self.lex.process_words(&p, &d.env)? {
                        specs.extend(parse_ports(&word)?);
                    }
                }
                let map = d
                    .image
                    .config
                    .exposed_ports
                    .get_or_insert_with(BTreeMap::new);
                for s in &specs {
                    map.insert(s.clone(), serde_json::json!({}));
                }
                self.history(d, format!("EXPOSE {}", go_list(&specs)), false);
            }
            Instruction::User(u) => {
                let u = self.expand(d, &u)?;
                d.state = d.state.take().map(|s| s.user(u.clone()));
                d.image.config.user = u.clone();
                self.history(d, format!("USER {u}"), false);
            }
            Instruction::Volume(vols) => {
                let mut expanded = Vec::with_capacity(vols.len());
                for v in vols {
                    let v = self.expand(d, &v)?;
                    if v.is_empty() {
                        return Err(Error::new(ErrorKind::Arguments(
                            "VOLUME specified can not be an empty string".into(),
                        )));
                    }
                    d.image
                        .config
                        .volumes
                        .get_or_insert_with(BTreeMap::new)
                        .insert(v.clone(), serde_json::json!({}));
                    expanded.push(v);
                }
                self.history(d, format!("VOLUME {}", go_list(&expanded)), false);
            }
            Instruction::StopSignal(s) => {
                let s = self.expand(d, &s)?;
                if !valid_signal(&s) {
                    return Err(Error::new(ErrorKind::InvalidValue {
                        what: "stop signal".into(),
                        value: s,
                    }));
                }
                d.image.config.stop_signal = s.clone();
                self.history(d, format!("STOPSIGNAL {s}"), false);
            }
            Instruction::Shell(shell) => {
                self.history(d, format!("SHELL {}", go_list(&shell)), false);
                d.image.config.shell = shell;
            }
        }
        Ok(())
    }

    /// `[stage n/m] CMD args` with variables the stage knows expanded.
    pub(super) fn step_name(&self, d: &mut DState, code: &str) -> String {
        let shown = self
            .lex
            .process_word(code, &d.env)
            .map(|p| p.result)
            .unwrap_or_else(|_| code.to_string());
        prefix_command(d, &uppercase_cmd(&shown))
    }

    fn dispatch_arg(&mut self, d: &mut DState, defs: Vec<ArgDef>) -> Result<(), Error> {
        let mut parts = Vec::with_capacity(defs.len());
        for def in defs {
            let given = self.opts.build_args.get(&def.key).cloned();
            let mut value = def.value.clone();
            if def.value.is_none() && given.is_none() {
                value = self.global.get(&def.key);
            }
            if let Some(v) = given {
                value = Some(v);
            } else if let Some(default) = &def.value {
                value = Some(self.expand(d, default)?);
            }
            if let Some(v) = &value {
                Self::set_env(d, &def.key, v);
            }
            parts.push(match &value {
                Some(v) => format!("{}={v}", def.key),
                None => def.key.clone(),
            });
            d.build_args.push(ArgDef {
                key: def.key,
                value,
            });
        }
        self.history(d, format!("ARG {}", parts.join(" ")), false);
        Ok(())
    }

    /// The state a `--from` / mount source points at, which must be converted already.
    pub(super) fn source_state(&self, d: &DState, idx: usize, what: &str) -> Result<State, Error> {
        let src = &self.states[idx];
        if !src.dispatched {
            return Err(Error::new(ErrorKind::StageOrder {
                from: what.to_string(),
                current: d.stage_name.clone(),
            }));
        }
        Ok(src.state.clone().unwrap_or_else(builder::scratch))
    }
}
