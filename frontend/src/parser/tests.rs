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

/// The heredoc cases of Docker's `TestParseExtractsHeredoc`: name, fd, expand, chomp, body.
#[test]
fn heredocs_extracted() {
    let src = "
FROM alpine:3.6

ENV NAME=me

RUN ls

USER <<INVALID
INVALID

RUN <<EMPTY
EMPTY

RUN 3<<EMPTY2
EMPTY2

RUN \"<<NOHEREDOC\"

RUN <<INDENT
\tfoo
\tbar
INDENT

RUN <<-UNINDENT
\tbaz
\tquux
UNINDENT

RUN <<-UNINDENT2
\tbaz
\tquux
\tUNINDENT2

RUN <<-EXPAND
\texpand $NAME
EXPAND

RUN <<-'NOEXPAND'
\tdon't expand $NAME
NOEXPAND

RUN <<COPY
echo hello world
echo foo bar
COPY

RUN <<COMMENT
# internal comment
echo hello world
echo foo bar # trailing comment
COMMENT

RUN --mount=type=cache,target=/foo <<MOUNT
echo hello
MOUNT

COPY <<FILE1 <<FILE2 /dest
content 1
FILE1
content 2
FILE2

COPY <<EOF /quotes
\"foo\"
'bar'
EOF

COPY <<X <<Y /dest
Y
X
X
Y

RUN <<COMPLEX python3
print('hello world')
COMPLEX

COPY <<file.txt /dest
hello world
file.txt

RUN <<eo'f'
echo foo
eof

RUN <<eo\\'f
echo foo
eo'f

RUN <<'e'o\\'f
echo foo
eo'f

RUN <<'one two'
echo bar
one two

RUN <<$EOF
$EOF

RUN <<  EOF
EOF

RUN <<  EOF  > foo
EOF
\t";
    type Doc = (&'static str, u32, bool, bool, &'static str);
    let want: Vec<Vec<Doc>> = vec![
        vec![],
        vec![],
        vec![],
        vec![],
        vec![("EMPTY", 0, true, false, "")],
        vec![("EMPTY2", 3, true, false, "")],
        vec![],
        vec![("INDENT", 0, true, false, "\tfoo\n\tbar\n")],
        vec![("UNINDENT", 0, true, true, "\tbaz\n\tquux\n")],
        vec![("UNINDENT2", 0, true, true, "\tbaz\n\tquux\n")],
        vec![("EXPAND", 0, true, true, "\texpand $NAME\n")],
        vec![("NOEXPAND", 0, false, true, "\tdon't expand $NAME\n")],
        vec![("COPY", 0, true, false, "echo hello world\necho foo bar\n")],
        vec![(
            "COMMENT",
            0,
            true,
            false,
            "# internal comment\necho hello world\necho foo bar # trailing comment\n",
        )],
        vec![("MOUNT", 0, true, false, "echo hello\n")],
        vec![
            ("FILE1", 0, true, false, "content 1\n"),
            ("FILE2", 0, true, false, "content 2\n"),
        ],
        vec![("EOF", 0, true, false, "\"foo\"\n'bar'\n")],
        vec![("X", 0, true, false, "Y\n"), ("Y", 0, true, false, "X\n")],
        vec![("COMPLEX", 0, true, false, "print('hello world')\n")],
        vec![("file.txt", 0, true, false, "hello world\n")],
        vec![("eof", 0, false, false, "echo foo\n")],
        vec![("eo'f", 0, true, false, "echo foo\n")],
        vec![("eo'f", 0, false, false, "echo foo\n")],
        vec![("one two", 0, false, false, "echo bar\n")],
        vec![("$EOF", 0, true, false, "")],
        vec![("EOF", 0, true, false, "")],
        vec![("EOF", 0, true, false, "")],
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
