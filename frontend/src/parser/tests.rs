use super::*;

/// Dockerfiles written for cairn, each with the dump Docker's parser gives for it
/// (`(instruction ["--flag"] "arg" ...)`): continuations, comments inside them, both
/// escape characters, JSON and shell forms and the fallback from broken JSON, ENV and LABEL
/// forms, HEALTHCHECK, ONBUILD.
const DUMP_CASES: &[(&str, &str, &str)] = &[
    (
        "plain",
        "FROM busybox\nRUN echo hi\n",
        "(from \"busybox\")\n(run \"echo hi\")\n",
    ),
    (
        "case-insensitive names",
        "from busybox AS base\nrUn true\n",
        "(from \"busybox\" \"AS\" \"base\")\n(run \"true\")\n",
    ),
    (
        "continuation with a comment inside",
        "FROM a\nRUN echo one \\\n# a comment\n  two\n",
        "(from \"a\")\n(run \"echo one   two\")\n",
    ),
    (
        "backtick escape",
        "# escape=`\nFROM a\nRUN dir c:\\ `\n  /w\n",
        "(from \"a\")\n(run \"dir c:\\\\   /w\")\n",
    ),
    (
        "json form",
        "FROM a\nCMD [\"/bin/sh\", \"-c\", \"echo $X\"]\n",
        "(from \"a\")\n(cmd \"/bin/sh\" \"-c\" \"echo $X\")\n",
    ),
    (
        "broken json falls back to shell form",
        "FROM a\nCMD ['x']\nENTRYPOINT [\"a\"\nRUN [\"a\", \"b]\n",
        "(from \"a\")\n(cmd \"['x']\")\n(entrypoint \"[\\\"a\\\"\")\n(run \"[\\\"a\\\", \\\"b]\")\n",
    ),
    (
        "env forms",
        "FROM a\nENV K V W\nENV A=1 B=\"x y\"\n",
        "(from \"a\")\n(env \"K\" \"V W\" \"\")\n(env \"A\" \"1\" \"=\" \"B\" \"\\\"x y\\\"\" \"=\")\n",
    ),
    (
        "label with quotes",
        "FROM a\nLABEL \"k 1\"=v k2='a b'\n",
        "(from \"a\")\n(label \"\\\"k 1\\\"\" \"v\" \"=\" \"k2\" \"'a b'\" \"=\")\n",
    ),
    (
        "flags",
        "FROM --platform=linux/amd64 a\nCOPY --chown=1:2 --link x /y\n",
        "(from [\"--platform=linux/amd64\"] \"a\")\n(copy [\"--chown=1:2\" \"--link\"] \"x\" \"/y\")\n",
    ),
    (
        "healthcheck and onbuild",
        "FROM a\nHEALTHCHECK --interval=5s CMD [\"true\"]\nHEALTHCHECK NONE\nONBUILD RUN make\n",
        "(from \"a\")\n(healthcheck [\"--interval=5s\"] \"CMD\" \"true\")\n(healthcheck \"NONE\")\n(onbuild (run \"make\"))\n",
    ),
    (
        "volume forms",
        "FROM a\nVOLUME /a /b\nVOLUME [\"/c\", \"/d\"]\n",
        "(from \"a\")\n(volume \"/a\" \"/b\")\n(volume \"/c\" \"/d\")\n",
    ),
    (
        "trailing backslash at the end of the file",
        "FROM a\nRUN echo x \\",
        "(from \"a\")\n(run \"echo x\")\n",
    ),
    (
        "escape directive after a comment is only a comment",
        "# hello\n# escape=`\nFROM a\nRUN echo a \\\n  b\n",
        "(from \"a\")\n(run \"echo a   b\")\n",
    ),
    (
        "backtick continuation with a comment and an empty line inside",
        "# escape=`\nFROM a\nRUN one `\n# note\n\n  two\n",
        "(from \"a\")\n(run \"one   two\")\n",
    ),
    (
        "indented comment and crlf line ends",
        "FROM a\r\n   # indented\r\nRUN x\r\n",
        "(from \"a\")\n(run \"x\")\n",
    ),
    (
        "json in a string and json with trailing text stay shell form",
        "FROM a\nCMD \"[\\\"a\\\"]\"\nCMD [\"a\", \"b\"] extra\nENTRYPOINT [\"a\", \"b\nRUN [\"ok\"]\n",
        "(from \"a\")\n(cmd \"\\\"[\\\\\\\"a\\\\\\\"]\\\"\")\n(cmd \"[\\\"a\\\", \\\"b\\\"] extra\")\n(entrypoint \"[\\\"a\\\", \\\"b\")\n(run \"ok\")\n",
    ),
    (
        "env with escaped spaces, quotes and a continuation",
        "FROM a\nENV A=a\\ b C=\"x\\\"y\" \\\n    D=''\nENV K a\\ b  c\n",
        "(from \"a\")\n(env \"A\" \"a\\\\ b\" \"=\" \"C\" \"\\\"x\\\\\\\"y\\\"\" \"=\" \"D\" \"''\" \"=\")\n(env \"K\" \"a\\\\ b  c\" \"\")\n",
    ),
    (
        "label over lines and arg forms",
        "FROM a\nLABEL a=1 \\\n  b=\"two words\"\nARG V\nARG X=1 Y\n",
        "(from \"a\")\n(label \"a\" \"1\" \"=\" \"b\" \"\\\"two words\\\"\" \"=\")\n(arg \"V\")\n(arg \"X=1\" \"Y\")\n",
    ),
    (
        "several flags and other instructions",
        "FROM a\nRUN --mount=type=cache,target=/c --network=none make\nEXPOSE 80/tcp 443\nSHELL [\"/bin/bash\", \"-c\"]\nUSER app:app\nWORKDIR /srv\nSTOPSIGNAL SIGTERM\n",
        "(from \"a\")\n(run [\"--mount=type=cache,target=/c\" \"--network=none\"] \"make\")\n(expose \"80/tcp\" \"443\")\n(shell \"/bin/bash\" \"-c\")\n(user \"app:app\")\n(workdir \"/srv\")\n(stopsignal \"SIGTERM\")\n",
    ),
    (
        "healthcheck shell form and onbuild json",
        "FROM a\nHEALTHCHECK --retries=3 --timeout=2s CMD curl -f http://x/ || exit 1\nONBUILD CMD [\"a\"]\n",
        "(from \"a\")\n(healthcheck [\"--retries=3\" \"--timeout=2s\"] \"CMD\" \"curl -f http://x/ || exit 1\")\n(onbuild (cmd \"a\"))\n",
    ),
    (
        "more volume forms",
        "FROM a\nVOLUME /var/log\nVOLUME ['/x']\nVOLUME [\"/data\"]\nVOLUME  /p \\\n  /q\n",
        "(from \"a\")\n(volume \"/var/log\")\n(volume \"['/x']\")\n(volume \"/data\")\n(volume \"/p\" \"/q\")\n",
    ),
];

#[test]
fn own_cases_dump_as_docker_does() {
    let mut failures = Vec::new();
    for (name, src, want) in DUMP_CASES {
        match parse(src, "Dockerfile") {
            Ok(df) if df.dump() == *want => {}
            Ok(df) => failures.push(format!("{name}:\n got {:?}\nwant {want:?}", df.dump())),
            Err(e) => failures.push(format!("{name}: {e}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Inputs Docker's parser refuses.
#[test]
fn refused_inputs() {
    for (name, src) in [
        ("empty", ""),
        ("only comments", "# one\n# two\n"),
        ("env without a value", "FROM a\nENV PATH\n"),
        ("blank lines only", "\n\n   \n"),
        (
            "env with a name only among others",
            "FROM a\nENV A=1\nENV B\n",
        ),
        ("label without a value", "FROM a\nLABEL lonely\n"),
        ("nested json", "FROM a\nCMD [\"echo\", [\"inner\"]]\n"),
        ("json with a number", "FROM a\nENTRYPOINT [\"a\", 2]\n"),
        ("directive only", "# syntax=x/y\n"),
    ] {
        assert!(parse(src, "Dockerfile").is_err(), "{name} should fail");
    }
}

#[test]
fn positions_cover_continuations() {
    let src = "FROM busybox\n\n  RUN echo a \\\n    # a comment\n    b\nCOPY x y\n";
    let df = parse(src, "Dockerfile").expect("parses");
    let run = &df.nodes[1];
    assert_eq!(run.original, "RUN echo a     b");
    assert_eq!(run.range.start, Position { line: 3, column: 3 });
    assert_eq!(run.range.end.line, 5);
    assert_eq!(df.nodes[2].range.start.line, 6);
}

#[test]
fn directives_and_escape() {
    let src = "# syntax=docker/dockerfile:1\n# escape=`\nFROM x\nRUN a `\n  b\nCOPY c\\ d\n";
    let df = parse(src, "Dockerfile").expect("parses");
    assert_eq!(df.escape, '`');
    assert_eq!(df.directive("syntax"), Some("docker/dockerfile:1"));
    assert_eq!(df.nodes[1].original, "RUN a   b");
    assert_eq!(df.nodes[2].flat_args(), ["c\\", "d"]);
    // Directives are only read at the top.
    let df = parse("FROM x\n# escape=`\nRUN a \\\n b\n", "Dockerfile").expect("parses");
    assert_eq!(df.escape, '\\');
    assert!(df.directives.is_empty());
    let err = parse("# escape=x\nFROM y\n", "Dockerfile").expect_err("bad escape");
    assert_eq!(*err.kind, ErrorKind::InvalidEscapeToken("x".into()));
}

#[test]
fn empty_continuation_warns() {
    let df = parse("FROM x\nRUN a \\\n\n b\n", "Dockerfile").expect("parses");
    assert_eq!(df.nodes[1].original, "RUN a  b");
    assert_eq!(df.warnings.len(), 1);
}

#[test]
fn case_insensitive_and_json_fallback() {
    let df = parse(
        "from x\nrun [\"a\", \"b\"]\nCmd [\"a\", 'b']\n",
        "Dockerfile",
    )
    .expect("parses");
    assert!(df.nodes[1].json);
    assert_eq!(df.nodes[1].flat_args(), ["a", "b"]);
    assert!(!df.nodes[2].json, "single quotes are not JSON");
    assert_eq!(df.nodes[2].flat_args(), ["[\"a\", 'b']"]);
    assert!(parse("FROM x\nCMD [1]\n", "Dockerfile").is_err());
}

/// Heredocs found per instruction: name, fd, whether the body expands, whether tabs are
/// chomped (`<<-`), body. Quoted words, exec form and non-heredoc instructions have none.
#[test]
fn heredocs_extracted() {
    let src = "FROM scratch
RUN <<SCRIPT
set -e
echo $HOME
SCRIPT
RUN 2<<ERR cat
oops
ERR
RUN <<-TABS
\tindented
\tTABS
RUN <<\"QUOTED\"
keep $VAR
QUOTED
COPY <<A <<B /out/
first
A
second
B
ADD <<  SPACED /s
x
SPACED
RUN echo '<<NOT'
WORKDIR <<W
RUN python3 <<PY >/log
# not a comment
print(1)
PY
RUN <<'E'
E
RUN [\"<<J\"]
";
    type Doc = (&'static str, u32, bool, bool, &'static str);
    let want: &[&[Doc]] = &[
        &[("SCRIPT", 0, true, false, "set -e\necho $HOME\n")],
        &[("ERR", 2, true, false, "oops\n")],
        &[("TABS", 0, true, true, "\tindented\n")],
        &[("QUOTED", 0, false, false, "keep $VAR\n")],
        &[
            ("A", 0, true, false, "first\n"),
            ("B", 0, true, false, "second\n"),
        ],
        &[("SPACED", 0, true, false, "x\n")],
        &[],
        &[],
        &[("PY", 0, true, false, "# not a comment\nprint(1)\n")],
        &[("E", 0, false, false, "")],
        &[],
    ];
    let df = parse(src, "Dockerfile").expect("parses");
    assert_eq!(df.nodes.len(), want.len() + 1);
    for (i, docs) in want.iter().enumerate() {
        let node = &df.nodes[i + 1];
        let got: Vec<(String, u32, bool, bool, String)> = node
            .heredocs
            .iter()
            .map(|h| (h.name.clone(), h.fd, h.expand, h.chomp, h.content.clone()))
            .collect();
        let docs: Vec<(String, u32, bool, bool, String)> = docs
            .iter()
            .map(|d| (d.0.to_string(), d.1, d.2, d.3, d.4.to_string()))
            .collect();
        assert_eq!(got, docs, "node {} ({})", i + 1, node.original);
    }
}

#[test]
fn heredoc_errors_and_json_form() {
    let err = parse("FROM x\nRUN <<EOF\necho\n", "Dockerfile").expect_err("unterminated");
    assert_eq!(*err.kind, ErrorKind::UnterminatedHeredoc("EOF".into()));
    assert_eq!(err.range.map(|r| r.start.line), Some(2));
    let df = parse("FROM x\nRUN [\"<<EOF\"]\nEOF\n", "Dockerfile").expect("parses");
    assert!(df.nodes[1].heredocs.is_empty(), "exec form has no heredocs");
    let df = parse("FROM x\nONBUILD RUN <<EOF\nhi\nEOF\n", "Dockerfile").expect("parses");
    assert_eq!(df.nodes[1].heredocs.len(), 1, "ONBUILD RUN takes heredocs");
    assert_eq!(df.nodes[1].dump(), "onbuild (run \"<<EOF\")");
}

/// Start and end lines of each instruction, with blank lines, comments and empty
/// continuation lines in between, and a directive whose name is written in capitals.
#[test]
fn line_numbers_span_continuations_and_skip_comments() {
    let src = "# ESCAPE=\\\n\n# comment\nFROM busybox\n\n\n# another\nRUN echo \\\n  one\n\nRUN a \\\n\n  # inside\n  b \\\n  c\n";
    let df = parse(src, "Dockerfile").expect("parses");
    let lines: Vec<(usize, usize)> = df
        .nodes
        .iter()
        .map(|n| (n.range.start.line, n.range.end.line))
        .collect();
    assert_eq!(lines, [(4, 4), (8, 9), (11, 15)]);
    assert_eq!(
        df.directive("escape"),
        Some("\\"),
        "`# ESCAPE=` is case-insensitive"
    );
}

/// An instruction with a heredoc ends on its terminator line; one cut off by the end of
/// the file after a trailing escape ends on its own line.
#[test]
fn line_numbers_with_heredocs_onbuild_and_a_trailing_escape() {
    let src = "FROM a\nRUN <<EOF\nbody\nEOF\n\nONBUILD RUN x \\\n  y\nCOPY a \\";
    let df = parse(src, "Dockerfile").expect("parses");
    let lines: Vec<(usize, usize)> = df
        .nodes
        .iter()
        .map(|n| (n.range.start.line, n.range.end.line))
        .collect();
    assert_eq!(lines, [(1, 1), (2, 4), (6, 7), (8, 8)]);
}
