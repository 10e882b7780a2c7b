//! Parser nodes to typed instructions, with Docker's argument and flag rules.

use super::flags::{Flags, Kind};
use super::{
    AddCommand, ArgDef, CmdLine, Command, CopyCommand, Healthcheck, Instruction, KeyValuePair,
    NetworkMode, RunCommand, Security, ShellInlineFile, SourceContent, SourcesAndDest, Stage,
    Stages, parse_go_duration,
};
use crate::error::{Error, ErrorKind};
use crate::parser::{Dockerfile, Node, parse_heredoc_word};
use crate::position::{Range, span_of};
use crate::suggest;

/// Every instruction name, for suggestions.
pub const INSTRUCTIONS: [&str; 18] = [
    "ADD",
    "ARG",
    "CMD",
    "COPY",
    "ENTRYPOINT",
    "ENV",
    "EXPOSE",
    "FROM",
    "HEALTHCHECK",
    "LABEL",
    "MAINTAINER",
    "ONBUILD",
    "RUN",
    "SHELL",
    "STOPSIGNAL",
    "USER",
    "VOLUME",
    "WORKDIR",
];

fn args_err(msg: String) -> Error {
    Error::new(ErrorKind::Arguments(msg))
}

fn at_least_one(cmd: &str) -> Error {
    args_err(format!("{cmd} requires at least one argument"))
}

fn exactly_one(cmd: &str) -> Error {
    args_err(format!("{cmd} requires exactly one argument"))
}

/// Shell form joins the words back into one string; exec form keeps them.
fn json_args(args: Vec<String>, json: bool) -> Vec<String> {
    if args.is_empty() || json {
        return args;
    }
    vec![args.join(" ")]
}

fn cmd_line(node: &Node, args: Vec<String>) -> CmdLine {
    CmdLine {
        args: json_args(args, node.json),
        files: node
            .heredocs
            .iter()
            .map(|h| ShellInlineFile {
                name: h.name.clone(),
                data: h.content.clone(),
                chomp: h.chomp,
            })
            .collect(),
        prepend_shell: !node.json,
    }
}

fn keyword_range(node: &Node) -> Range {
    Range::on_line(
        node.range.start.line,
        node.range.start.column,
        node.instruction.chars().count(),
    )
}

fn kv_pairs(args: &[String], cmd: &str) -> Result<Vec<KeyValuePair>, Error> {
    if args.is_empty() {
        return Err(at_least_one(cmd));
    }
    if !args.len().is_multiple_of(3) {
        return Err(args_err(format!("Bad input to {cmd}, too many arguments")));
    }
    let mut out = Vec::with_capacity(args.len() / 3);
    for chunk in args.chunks(3) {
        if chunk[0].is_empty() {
            return Err(args_err(format!("{cmd} names can not be blank")));
        }
        out.push(KeyValuePair {
            key: chunk[0].clone(),
            value: chunk[1].clone(),
            no_delim: chunk[2].is_empty(),
        });
    }
    Ok(out)
}

fn sources_and_dest(node: &Node, args: &[String], cmd: &str) -> Result<SourcesAndDest, Error> {
    let Some((dest, srcs)) = args.split_last() else {
        return Err(args_err(format!("{cmd} requires at least two arguments")));
    };
    if parse_heredoc_word(dest)?.is_some() {
        return Err(Error::new(ErrorKind::BadHeredoc {
            instruction: cmd.to_string(),
            role: "a destination",
        }));
    }
    let mut sources = Vec::new();
    let mut contents = Vec::new();
    for src in srcs {
        match parse_heredoc_word(src)? {
            Some(marker) => {
                let body = node.heredocs.iter().find(|h| h.name == marker.name);
                let data = body.map(|h| h.chomped_content()).unwrap_or_default();
                contents.push(SourceContent {
                    path: marker.name,
                    data,
                    expand: marker.expand,
                });
            }
            None => sources.push(src.clone()),
        }
    }
    Ok(SourcesAndDest {
        dest: dest.clone(),
        sources,
        contents,
    })
}

fn duration_flag(value: Option<String>, name: &str) -> Result<i64, Error> {
    let Some(v) = value.filter(|v| !v.is_empty()) else {
        return Ok(0);
    };
    let d = parse_go_duration(&v).ok_or_else(|| {
        Error::new(ErrorKind::InvalidValue {
            what: format!("--{name}"),
            value: v.clone(),
        })
    })?;
    if d == 0 {
        return Ok(0);
    }
    if d < 1_000_000 {
        return Err(args_err(format!(
            "Interval \"{name}\" cannot be less than 1ms"
        )));
    }
    Ok(d)
}

/// What one node became.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    From(Stage),
    Command(Command),
}

/// Checks one node (not expanded).
pub fn parse_node(node: &Node) -> Result<Parsed, Error> {
    parse_node_inner(node).map_err(|e| e.at(node.range))
}

fn parse_node_inner(node: &Node) -> Result<Parsed, Error> {
    let keyword = node.keyword();
    let args = node.flat_args();
    let flags = Flags::new(node);
    let instruction = match keyword.as_str() {
        "from" => {
            let name = match args.len() {
                3 if args[1].eq_ignore_ascii_case("as") => {
                    let name = args[2].to_lowercase();
                    let mut chars = name.chars();
                    let valid = chars.next().is_some_and(|c| c.is_ascii_lowercase())
                        && chars.all(|c| {
                            c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c)
                        });
                    if !valid {
                        return Err(Error::new(ErrorKind::InvalidStageName(args[2].clone())));
                    }
                    Some(name)
                }
                1 => None,
                _ => {
                    return Err(args_err(
                        "FROM requires either one or three arguments".into(),
                    ));
                }
            };
            let parsed = flags.declare("platform", Kind::String).parse()?;
            return Ok(Parsed::From(Stage {
                name,
                base_name: args[0].clone(),
                platform: parsed.string("platform").filter(|p| !p.is_empty()),
                source_code: node.original.trim().to_string(),
                commands: Vec::new(),
                range: node.range,
            }));
        }
        "env" => {
            flags.parse()?;
            Instruction::Env(kv_pairs(&args, "ENV")?)
        }
        "label" => {
            flags.parse()?;
            Instruction::Label(kv_pairs(&args, "LABEL")?)
        }
        "maintainer" => {
            if args.len() != 1 {
                return Err(exactly_one("MAINTAINER"));
            }
            flags.parse()?;
            Instruction::Maintainer(args[0].clone())
        }
        "add" => {
            if args.len() < 2 {
                return Err(args_err(
                    "ADD requires at least two arguments, but only one was provided. Destination could not be determined".into(),
                ));
            }
            let f = flags
                .declare("chown", Kind::String)
                .declare("chmod", Kind::String)
                .declare("link", Kind::Bool)
                .declare("keep-git-dir", Kind::Bool)
                .declare("checksum", Kind::String)
                .declare("unpack", Kind::Bool)
                .declare("exclude", Kind::Strings)
                .parse()?;
            Instruction::Add(AddCommand {
                paths: sources_and_dest(node, &args, "ADD")?,
                chown: f.string("chown").filter(|s| !s.is_empty()),
                chmod: f.string("chmod").filter(|s| !s.is_empty()),
                link: f.bool("link").unwrap_or(false),
                keep_git_dir: f.bool("keep-git-dir"),
                checksum: f.string("checksum").filter(|s| !s.is_empty()),
                unpack: f.bool("unpack"),
                excludes: f.strings("exclude"),
            })
        }
        "copy" => {
            if args.len() < 2 {
                return Err(args_err(
                    "COPY requires at least two arguments, but only one was provided. Destination could not be determined".into(),
                ));
            }
            let f = flags
                .declare("chown", Kind::String)
                .declare("from", Kind::String)
                .declare("chmod", Kind::String)
                .declare("link", Kind::Bool)
                .declare("exclude", Kind::Strings)
                .declare("parents", Kind::Bool)
                .parse()?;
            Instruction::Copy(CopyCommand {
                paths: sources_and_dest(node, &args, "COPY")?,
                from: f.string("from").filter(|s| !s.is_empty()),
                chown: f.string("chown").filter(|s| !s.is_empty()),
                chmod: f.string("chmod").filter(|s| !s.is_empty()),
                link: f.bool("link").unwrap_or(false),
                parents: f.bool("parents").unwrap_or(false),
                excludes: f.strings("exclude"),
            })
        }
        "onbuild" => {
            if args.is_empty() {
                return Err(at_least_one("ONBUILD"));
            }
            flags.parse()?;
            let trigger = args[0].trim().to_uppercase();
            match trigger.as_str() {
                "ONBUILD" => {
                    return Err(args_err(
                        "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed".into(),
                    ));
                }
                "MAINTAINER" | "FROM" => {
                    return Err(args_err(format!(
                        "{trigger} isn't allowed as an ONBUILD trigger"
                    )));
                }
                _ => {}
            }
            let original = node.original.trim_start();
            let mut expr = match (original.get(..7), original.get(7..)) {
                (Some(word), Some(rest)) if word.eq_ignore_ascii_case("onbuild") => rest,
                _ => original,
            }
            .trim_start()
            .to_string();
            for h in &node.heredocs {
                expr.push('\n');
                expr.push_str(&h.content);
                expr.push_str(&h.name);
            }
            Instruction::Onbuild(expr)
        }
        "workdir" => {
            if args.len() != 1 {
                return Err(exactly_one("WORKDIR"));
            }
            flags.parse()?;
            Instruction::Workdir(args[0].clone())
        }
        "run" => {
            let f = flags
                .declare("mount", Kind::Strings)
                .declare("network", Kind::String)
                .declare("security", Kind::String)
                .parse()?;
            let network = match f.string("network").as_deref() {
                None | Some("default") => NetworkMode::Default,
                Some("none") => NetworkMode::None,
                Some("host") => NetworkMode::Host,
                Some(other) => {
                    return Err(Error::new(ErrorKind::InvalidValue {
                        what: "network mode".into(),
                        value: other.to_string(),
                    })
                    .at(span_of(
                        &node.original,
                        node.range,
                        &format!("--network={other}"),
                    ))
                    .suggest(suggest::closest(
                        other,
                        ["default", "none", "host"],
                        true,
                    )));
                }
            };
            let security = match f.string("security").as_deref() {
                None | Some("sandbox") => Security::Sandbox,
                Some("insecure") => Security::Insecure,
                Some(other) => {
                    return Err(Error::new(ErrorKind::InvalidValue {
                        what: "security mode".into(),
                        value: other.to_string(),
                    })
                    .at(span_of(
                        &node.original,
                        node.range,
                        &format!("--security={other}"),
                    ))
                    .suggest(suggest::closest(
                        other,
                        ["sandbox", "insecure"],
                        true,
                    )));
                }
            };
            Instruction::Run(RunCommand {
                cmd: cmd_line(node, args),
                mounts: f.strings("mount"),
                network,
                security,
            })
        }
        "cmd" => {
            flags.parse()?;
            Instruction::Cmd(cmd_line(node, args))
        }
        "entrypoint" => {
            flags.parse()?;
            Instruction::Entrypoint(cmd_line(node, args))
        }
        "healthcheck" => {
            if args.is_empty() {
                return Err(at_least_one("HEALTHCHECK"));
            }
            let typ = args[0].to_uppercase();
            let rest = args[1..].to_vec();
            if typ == "NONE" {
                if !rest.is_empty() {
                    return Err(args_err("HEALTHCHECK NONE takes no arguments".into()));
                }
                Instruction::Healthcheck(Healthcheck {
                    test: vec!["NONE".into()],
                    interval: 0,
                    timeout: 0,
                    start_period: 0,
                    start_interval: 0,
                    retries: 0,
                })
            } else {
                let f = flags
                    .declare("interval", Kind::String)
                    .declare("timeout", Kind::String)
                    .declare("start-period", Kind::String)
                    .declare("start-interval", Kind::String)
                    .declare("retries", Kind::String)
                    .parse()?;
                if typ != "CMD" {
                    return Err(args_err(format!(
                        "Unknown type \"{typ}\" in HEALTHCHECK (try CMD)"
                    )));
                }
                let cmd = json_args(rest, node.json);
                if cmd.is_empty() {
                    return Err(args_err("Missing command after HEALTHCHECK CMD".into()));
                }
                let mut test = vec![if node.json {
                    "CMD".to_string()
                } else {
                    "CMD-SHELL".to_string()
                }];
                test.extend(cmd);
                let retries = match f.string("retries").filter(|s| !s.is_empty()) {
                    None => 0,
                    Some(r) => {
                        let n: i64 = r.parse().map_err(|_| {
                            Error::new(ErrorKind::InvalidValue {
                                what: "--retries".into(),
                                value: r.clone(),
                            })
                        })?;
                        if n < 0 {
                            return Err(args_err(format!("--retries cannot be negative ({n})")));
                        }
                        n
                    }
                };
                Instruction::Healthcheck(Healthcheck {
                    test,
                    interval: duration_flag(f.string("interval"), "interval")?,
                    timeout: duration_flag(f.string("timeout"), "timeout")?,
                    start_period: duration_flag(f.string("start-period"), "start-period")?,
                    start_interval: duration_flag(f.string("start-interval"), "start-interval")?,
                    retries,
                })
            }
        }
        "expose" => {
            if args.is_empty() {
                return Err(at_least_one("EXPOSE"));
            }
            flags.parse()?;
            let mut ports = args;
            ports.sort();
            Instruction::Expose(ports)
        }
        "user" => {
            if args.len() != 1 {
                return Err(exactly_one("USER"));
            }
            flags.parse()?;
            Instruction::User(args[0].clone())
        }
        "volume" => {
            if args.is_empty() {
                return Err(at_least_one("VOLUME"));
            }
            flags.parse()?;
            let mut vols = Vec::with_capacity(args.len());
            for v in args {
                let v = v.trim().to_string();
                if v.is_empty() {
                    return Err(args_err(
                        "VOLUME specified can not be an empty string".into(),
                    ));
                }
                vols.push(v);
            }
            Instruction::Volume(vols)
        }
        "stopsignal" => {
            if args.len() != 1 {
                return Err(exactly_one("STOPSIGNAL"));
            }
            Instruction::StopSignal(args[0].clone())
        }
        "arg" => {
            if args.is_empty() {
                return Err(at_least_one("ARG"));
            }
            flags.parse()?;
            let mut defs = Vec::with_capacity(args.len());
            for a in args {
                match a.split_once('=') {
                    Some(("", _)) => return Err(args_err("ARG names can not be blank".into())),
                    Some((k, v)) => defs.push(ArgDef {
                        key: k.to_string(),
                        value: Some(v.to_string()),
                    }),
                    None => defs.push(ArgDef {
                        key: a,
                        value: None,
                    }),
                }
            }
            Instruction::Arg(defs)
        }
        "shell" => {
            flags.parse()?;
            let shell = json_args(args, node.json);
            if shell.is_empty() {
                return Err(at_least_one("SHELL"));
            }
            if !node.json {
                return Err(Error::new(ErrorKind::JsonRequired {
                    instruction: "SHELL".into(),
                }));
            }
            Instruction::Shell(shell)
        }
        _ => {
            return Err(
                Error::new(ErrorKind::UnknownInstruction(node.instruction.clone()))
                    .at(keyword_range(node))
                    .suggest(suggest::closest(&node.instruction, INSTRUCTIONS, true)),
            );
        }
    };
    Ok(Parsed::Command(Command {
        instruction,
        code: node.original.trim().to_string(),
        name: node.instruction.clone(),
        range: node.range,
    }))
}

/// Groups a parsed Dockerfile into stages; `ARG`s before the first `FROM` are global.
pub fn parse_dockerfile(df: &Dockerfile) -> Result<Stages, Error> {
    let mut stages: Vec<Stage> = Vec::new();
    let mut meta_args = Vec::new();
    for node in &df.nodes {
        match parse_node(node)? {
            Parsed::From(stage) => stages.push(stage),
            Parsed::Command(cmd) => match stages.last_mut() {
                Some(stage) => stage.commands.push(cmd),
                None => match cmd.instruction {
                    Instruction::Arg(defs) => meta_args.push((defs, cmd.range)),
                    _ => {
                        return Err(Error::new(ErrorKind::InstructionBeforeFrom {
                            instruction: node.instruction.to_uppercase(),
                        })
                        .at(keyword_range(node)));
                    }
                },
            },
        }
    }
    if stages.is_empty() {
        let err = Error::new(ErrorKind::NoStages);
        return Err(match df.nodes.first() {
            Some(node) => err.at(keyword_range(node)),
            None => err,
        });
    }
    Ok(Stages { meta_args, stages })
}

#[cfg(test)]
#[path = "parse_tests.rs"]
mod tests;
