use super::*;
use crate::parser::parse;

fn stages(src: &str) -> Result<Stages, Error> {
    parse_dockerfile(&parse(src, "Dockerfile")?)
}

fn only_command(src: &str) -> Result<Instruction, Error> {
    let s = stages(&format!("FROM scratch\n{src}\n"))?;
    Ok(s.stages[0].commands[0].instruction.clone())
}

#[test]
fn stages_and_meta_args() {
    let s = stages(
        "ARG V=1\nARG B\nFROM --platform=linux/arm64 busybox:$V AS Build\nRUN x\nFROM build\n",
    )
    .expect("ok");
    assert_eq!(s.meta_args.len(), 2);
    assert_eq!(s.stages.len(), 2);
    assert_eq!(
        s.stages[0].name.as_deref(),
        Some("build"),
        "stage names are lower-cased"
    );
    assert_eq!(s.stages[0].platform.as_deref(), Some("linux/arm64"));
    assert_eq!(s.stages[0].base_name, "busybox:$V");
    assert_eq!(s.stages[0].commands.len(), 1);
}

#[test]
fn from_errors() {
    let e = stages("RUN x\nFROM y\n").expect_err("before FROM");
    assert!(matches!(*e.kind, ErrorKind::InstructionBeforeFrom { .. }));
    assert!(stages("FROM a AS 1x\n").is_err());
    assert!(stages("FROM a b\n").is_err());
    assert!(matches!(
        *stages("ARG x\n").expect_err("no stage").kind,
        ErrorKind::NoStages
    ));
}

#[test]
fn unknown_instruction_suggests() {
    let e = stages("FROM x\nRUNN echo\n").expect_err("unknown");
    assert_eq!(*e.kind, ErrorKind::UnknownInstruction("RUNN".into()));
    assert_eq!(e.suggestion.as_deref(), Some("RUN"));
    assert_eq!(e.range, Some(Range::on_line(2, 1, 4)));
}

#[test]
fn unknown_flag_suggests() {
    let e = stages("FROM x\nCOPY --chmown=1 a b\n").expect_err("unknown flag");
    assert_eq!(
        *e.kind,
        ErrorKind::UnknownFlag {
            flag: "chmown".into()
        }
    );
    assert_eq!(e.suggestion.as_deref(), Some("--chown"));
    assert_eq!(e.range, Some(Range::on_line(2, 6, 10)));
    let e = stages("FROM x\nCOPY --link=maybe a b\n").expect_err("bad bool");
    assert!(matches!(*e.kind, ErrorKind::FlagNotBool { .. }));
    let e = stages("FROM x\nCOPY --from=a --from=b a b\n").expect_err("dup");
    assert!(matches!(*e.kind, ErrorKind::DuplicateFlag(_)));
    let e = stages("FROM x\nCOPY --from a b\n").expect_err("no value");
    assert!(matches!(*e.kind, ErrorKind::FlagMissingValue(_)));
    let e = stages("FROM x\nRUN --netwrk=host a\n").expect_err("typo");
    assert_eq!(e.suggestion.as_deref(), Some("--network"));
}

#[test]
fn copy_and_add_flags() {
    let Instruction::Copy(c) = only_command(
        "COPY --from=build --chown=1:2 --chmod=755 --link --parents --exclude=*.md --exclude=x a b /dst/",
    )
    .expect("ok") else {
        panic!("copy");
    };
    assert_eq!(c.from.as_deref(), Some("build"));
    assert_eq!(
        (c.chown.as_deref(), c.chmod.as_deref(), c.link, c.parents),
        (Some("1:2"), Some("755"), true, true)
    );
    assert_eq!(c.excludes, ["*.md", "x"]);
    assert_eq!(
        (c.paths.sources.clone(), c.paths.dest.as_str()),
        (vec!["a".to_string(), "b".to_string()], "/dst/")
    );
    let Instruction::Add(a) = only_command(
        "ADD --keep-git-dir=true --checksum=sha256:abc --unpack=false https://x/y.tar /",
    )
    .expect("ok") else {
        panic!("add");
    };
    assert_eq!(
        (a.keep_git_dir, a.checksum.as_deref(), a.unpack),
        (Some(true), Some("sha256:abc"), Some(false))
    );
    assert!(only_command("COPY a").is_err());
    assert!(
        only_command("ADD --from=x a b").is_err(),
        "ADD has no --from"
    );
}

#[test]
fn copy_heredoc_sources() {
    let s = stages("FROM x\nCOPY <<A <<-'B' /dst/\nhello $X\nA\n\tbye\n\tB\n").expect("ok");
    let Instruction::Copy(c) = &s.stages[0].commands[0].instruction else {
        panic!("copy")
    };
    assert_eq!(c.paths.contents.len(), 2);
    assert_eq!(
        (
            c.paths.contents[0].path.as_str(),
            c.paths.contents[0].data.as_str(),
            c.paths.contents[0].expand
        ),
        ("A", "hello $X\n", true)
    );
    assert_eq!(
        (
            c.paths.contents[1].data.as_str(),
            c.paths.contents[1].expand
        ),
        ("bye\n", false)
    );
    assert!(
        stages("FROM x\nCOPY a <<EOF\nz\nEOF\n").is_err(),
        "heredoc as destination"
    );
}

#[test]
fn run_forms() {
    let Instruction::Run(r) = only_command(
        "RUN --mount=type=cache,target=/c --network=none --security=insecure make all",
    )
    .expect("ok") else {
        panic!("run");
    };
    assert_eq!(r.cmd.args, ["make all"]);
    assert!(r.cmd.prepend_shell);
    assert_eq!(
        (r.network, r.security),
        (NetworkMode::None, Security::Insecure)
    );
    assert_eq!(r.mounts, ["type=cache,target=/c"]);
    let Instruction::Run(r) = only_command("RUN [\"a\", \"b c\"]").expect("ok") else {
        panic!("run")
    };
    assert_eq!(
        (r.cmd.args.clone(), r.cmd.prepend_shell),
        (vec!["a".to_string(), "b c".to_string()], false)
    );
    let e = only_command("RUN --network=hots x").expect_err("bad network");
    assert_eq!(e.suggestion.as_deref(), Some("host"));
}

#[test]
fn env_label_arg() {
    let Instruction::Env(e) = only_command("ENV A=1 B=\"2 3\"").expect("ok") else {
        panic!("env")
    };
    assert_eq!(e.len(), 2);
    assert_eq!(e[1].value, "\"2 3\"", "quotes stay until expansion");
    let Instruction::Env(e) = only_command("ENV A 1 2").expect("ok") else {
        panic!("env")
    };
    assert_eq!(
        (e[0].key.as_str(), e[0].value.as_str(), e[0].no_delim),
        ("A", "1 2", true)
    );
    let Instruction::Arg(a) = only_command("ARG A B=2 C=").expect("ok") else {
        panic!("arg")
    };
    assert_eq!(a[0].value, None);
    assert_eq!(a[1].value.as_deref(), Some("2"));
    assert_eq!(a[2].value.as_deref(), Some(""));
    assert!(only_command("ARG =1").is_err());
    assert!(only_command("LABEL").is_err());
}

#[test]
fn healthcheck_forms() {
    let Instruction::Healthcheck(h) =
        only_command("HEALTHCHECK --interval=5s --timeout=3s --retries=3 CMD curl -f http://x/")
            .expect("ok")
    else {
        panic!("hc");
    };
    assert_eq!(h.test, ["CMD-SHELL", "curl -f http://x/"]);
    assert_eq!(
        (h.interval, h.timeout, h.retries),
        (5_000_000_000, 3_000_000_000, 3)
    );
    let Instruction::Healthcheck(h) = only_command("HEALTHCHECK CMD [\"a\", \"b\"]").expect("ok")
    else {
        panic!()
    };
    assert_eq!(h.test, ["CMD", "a", "b"]);
    let Instruction::Healthcheck(h) = only_command("HEALTHCHECK NONE").expect("ok") else {
        panic!()
    };
    assert_eq!(h.test, ["NONE"]);
    assert!(only_command("HEALTHCHECK CONNECT x").is_err());
    assert!(only_command("HEALTHCHECK --interval=1us CMD x").is_err());
    assert!(only_command("HEALTHCHECK --retries=-1 CMD x").is_err());
    assert!(only_command("HEALTHCHECK --intervl=1s CMD x").is_err());
}

#[test]
fn misc_instructions() {
    assert_eq!(
        only_command("EXPOSE 8080 80/udp").expect("ok"),
        Instruction::Expose(vec!["80/udp".into(), "8080".into()])
    );
    assert_eq!(
        only_command("SHELL [\"/bin/bash\", \"-c\"]").expect("ok"),
        Instruction::Shell(vec!["/bin/bash".into(), "-c".into()])
    );
    assert!(matches!(
        *only_command("SHELL /bin/bash").expect_err("json").kind,
        ErrorKind::JsonRequired { .. }
    ));
    assert_eq!(
        only_command("VOLUME [\"/a\", \"/b\"]").expect("ok"),
        Instruction::Volume(vec!["/a".into(), "/b".into()])
    );
    assert_eq!(
        only_command("ONBUILD RUN echo hi").expect("ok"),
        Instruction::Onbuild("RUN echo hi".into())
    );
    assert!(only_command("ONBUILD FROM x").is_err());
    assert!(only_command("ONBUILD ONBUILD RUN x").is_err());
    assert_eq!(
        only_command("MAINTAINER me").expect("ok"),
        Instruction::Maintainer("me".into())
    );
    assert!(only_command("USER").is_err());
    assert_eq!(
        only_command("WORKDIR /a b").expect("ok"),
        Instruction::Workdir("/a b".into())
    );
    assert_eq!(
        only_command("STOPSIGNAL SIGKILL").expect("ok"),
        Instruction::StopSignal("SIGKILL".into())
    );
}
