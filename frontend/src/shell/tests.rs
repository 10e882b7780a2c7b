use super::*;

/// Expansion cases written for cairn, with the results Docker's lexer gives: quotes,
/// escapes, unset vs empty variables and every `${VAR<op>word}` form. `None` is an error.
const EXPANSIONS: &[(&str, Option<&str>)] = &[
    ("hello", Some("hello")),
    ("he'll'o", Some("hello")),
    ("\"a b\"", Some("a b")),
    ("'$PWD'", Some("$PWD")),
    ("\"$PWD\"", Some("/home")),
    ("$PWD/x", Some("/home/x")),
    ("${PWD}x", Some("/homex")),
    ("\\$PWD", Some("$PWD")),
    ("a\\ b", Some("a b")),
    ("\"a\\\"b\"", Some("a\"b")),
    ("'a\\b'", Some("a\\b")),
    ("\\\\", Some("\\")),
    ("\"\\\\\"", Some("\\")),
    ("\"\\$\"", Some("$")),
    ("'\\\\'", Some("\\\\")),
    ("\"it's\"", Some("it's")),
    ("'say \"hi\"'", Some("say \"hi\"")),
    ("$UNSET", Some("")),
    ("x${UNSET}y", Some("xy")),
    ("${UNSET:-def}", Some("def")),
    ("${NULL:-def}", Some("def")),
    ("${NULL-def}", Some("")),
    ("${UNSET-def}", Some("def")),
    ("${PWD:-def}", Some("/home")),
    ("${PWD:+alt}", Some("alt")),
    ("${NULL:+alt}", Some("")),
    ("${NULL+alt}", Some("alt")),
    ("${UNSET+alt}", Some("")),
    ("${UNSET:-$PWD}", Some("/home")),
    ("\"${UNSET:-a b}\"", Some("a b")),
    ("${PWD:?must be set}", Some("/home")),
    ("${UNSET:?must be set}", None),
    ("${NULL:?must be set}", None),
    ("${UNSET?must be set}", None),
    ("${NULL?must be set}", Some("")),
    ("$KOREAN!", Some("한국어!")),
    ("a$", Some("a$")),
    ("$.", Some("$.")),
    ("${PWD", None),
    ("'unterminated", None),
    ("\"unterminated", None),
    ("\"x\\\"", None),
    ("$SHELL$SHELL", Some("bashbash")),
    ("${SHELL}_${PWD}", Some("bash_/home")),
    ("\"$SHELL '$PWD'\"", Some("bash '/home'")),
];

#[test]
fn expansion_table() {
    let env = EnvList::from_pairs(["PWD=/home", "SHELL=bash", "KOREAN=한국어", "NULL="]);
    let lex = Lex::new('\\');
    let mut failures = Vec::new();
    for (input, want) in EXPANSIONS {
        let got = lex.process_word(input, &env).map(|w| w.result);
        match (want, &got) {
            (None, Err(_)) => {}
            (Some(w), Ok(g)) if g == w => {}
            _ => failures.push(format!("{input:?}: got {got:?}, want {want:?}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Word splitting (`process_words`, used for EXPOSE, VOLUME, shell-form words): quotes
/// and escapes group, and an unquoted variable's value is split at white space.
#[test]
fn words_table() {
    let mut env = EnvList::new();
    env.set("TWO", "one two");
    env.set("ONE", "x");
    let lex = Lex::new('\\');
    let cases: &[(&str, &[&str])] = &[
        ("a b  c", &["a", "b", "c"]),
        ("\"a b\" c", &["a b", "c"]),
        ("a\\ b c", &["a b", "c"]),
        ("'a  b'", &["a  b"]),
        ("$ONE $ONE", &["x", "x"]),
        ("\"$TWO\"", &["one two"]),
        ("  lead trail  ", &["lead", "trail"]),
        ("", &[]),
    ];
    let mut failures = Vec::new();
    for (input, want) in cases {
        match lex.process_words(input, &env) {
            Ok(got) if got == *want => {}
            got => failures.push(format!("{input:?}: got {got:?}, want {want:?}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn required_variables() {
    let lex = Lex::new('\\');
    let set = EnvList::from_pairs(["VAR=plain", "ARG=x"]);
    let empty = EnvList::from_pairs(["VAR=", "ARG=x"]);
    let unset = EnvList::from_pairs(["ARG=x"]);
    let no_empty = "${VAR:?message here$ARG}";
    let no_unset = "${VAR?message here$ARG}";
    assert_eq!(
        lex.process_word(no_empty, &set).map(|p| p.result),
        Ok("plain".into())
    );
    let err = lex
        .process_word(no_empty, &empty)
        .expect_err("empty is refused");
    assert!(err.to_string().contains("message herex"), "{err}");
    let err = lex
        .process_word(no_empty, &unset)
        .expect_err("unset is refused");
    assert!(err.to_string().contains("message herex"), "{err}");
    assert_eq!(
        lex.process_word(no_unset, &empty).map(|p| p.result),
        Ok(String::new())
    );
    assert!(lex.process_word(no_unset, &unset).is_err());
}

/// Cases from Docker's `TestProcessWithMatches`: result plus matched/unmatched names.
#[test]
fn matches_and_modifiers() {
    let lex = Lex::new('\\');
    type Case = (
        &'static str,
        &'static [(&'static str, &'static str)],
        Option<&'static str>,
    );
    let cases: &[Case] = &[
        ("x ${UNUSED}", &[("DUMMY", "dummy")], Some("x ")),
        (
            "${FOO-aaa} ${BAR-bbb} ${BAZ-ccc}",
            &[("FOO", "xxx"), ("BAR", "")],
            Some("xxx  ccc"),
        ),
        (
            "${FOO:-aaa} ${BAR:-bbb} ${BAZ:-ccc}",
            &[("FOO", "xxx"), ("BAR", "")],
            Some("xxx bbb ccc"),
        ),
        (
            "${FOO+aaa} ${BAR+bbb} ${BAZ+ccc}",
            &[("FOO", "xxx"), ("BAR", "")],
            Some("aaa bbb "),
        ),
        (
            "${FOO:+aaa} ${BAR:+bbb} ${BAZ:+ccc}",
            &[("FOO", "xxx"), ("BAR", "")],
            Some("aaa  "),
        ),
        ("${BAR?bbb}", &[("BAR", "")], Some("")),
        ("${BAZ?ccc}", &[], None),
        ("${BAR:?bbb}", &[("BAR", "")], None),
        ("${FOO=aaa}", &[("FOO", "xxx")], None),
        ("${FOO=}", &[], None),
        (
            "${FOO#()[]{\\}^$.\\*\\?|\\\\}",
            &[("FOO", "()[]{}^$.*?|\\x")],
            Some("x"),
        ),
        ("${FOO%%\\**}", &[("FOO", "xx**")], Some("xx")),
        ("${FOO#*x*y}", &[("FOO", "xxyy")], Some("y")),
        ("${FOO#*}", &[("FOO", "xxyy")], Some("xxyy")),
        ("${FOO#$BAR}", &[("FOO", "xxyy"), ("BAR", "x")], Some("xyy")),
        ("${FOO##*x}", &[("FOO", "xxyy")], Some("yy")),
        ("${FOO#?\\?}", &[("FOO", "???y")], Some("?y")),
        (
            "${ABC:-.}${FOO%x}${ABC:-.}",
            &[("FOO", "xxyy")],
            Some(".xxyy."),
        ),
        ("${FOO%%\\**\\*}", &[("FOO", "a***yy*")], Some("a")),
        ("${FOO:#}", &[], None),
        ("${FOO:%%}", &[], None),
        (
            "${FOO/$NEEDLE/.} - ${FOO//$NEEDLE/.}",
            &[("FOO", "/foo*/*/*.txt"), ("NEEDLE", "\\*/")],
            Some("/foo.*/*.txt - /foo..*.txt"),
        ),
        (
            "${FOO/$NEEDLE/} - ${FOO//$NEEDLE/}",
            &[("FOO", "/tmp/tmp/bar.txt"), ("NEEDLE", "/tmp")],
            Some("/tmp/bar.txt - /bar.txt"),
        ),
        (
            "${FOO/$NEEDLE/$R}",
            &[
                ("FOO", "http://google.de"),
                ("NEEDLE", "http://"),
                ("R", "https://"),
            ],
            Some("https://google.de"),
        ),
        (
            "${FOO//\\//\\/}",
            &[("FOO", "/tmp/foo.txt")],
            Some("\\/tmp\\/foo.txt"),
        ),
        (
            "${FOO/$BAR/ww}",
            &[("FOO", "xxyy"), ("BAR", "")],
            Some("wwxxyy"),
        ),
        ("${FOO//ww}", &[("FOO", "xxyy")], None),
        ("${FOO//}", &[("FOO", "xxyy")], None),
        ("${FOO///}", &[("FOO", "xxyy")], Some("xxyy")),
        ("${FOO///}", &[], Some("")),
    ];
    for (input, vars, expected) in cases {
        let env: BTreeMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let got = lex.process_word(input, &env);
        match expected {
            Some(want) => assert_eq!(got.map(|p| p.result).as_deref(), Ok(*want), "{input}"),
            None => assert!(got.is_err(), "{input} should fail, got {got:?}"),
        }
    }
    let env: BTreeMap<String, String> = [("FOO", "xxx"), ("BAR", "")]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let p = lex
        .process_word("${FOO:-aaa} ${BAR:-bbb} ${BAZ:-ccc}", &env)
        .expect("expands");
    assert_eq!(p.matched.into_iter().collect::<Vec<_>>(), ["BAR", "FOO"]);
    assert_eq!(p.unmatched.into_iter().collect::<Vec<_>>(), ["BAZ"]);
}

#[test]
fn skip_unset_keeps_references() {
    let mut lex = Lex::new('\\');
    lex.skip_unset_env = true;
    let env = EnvList::from_pairs(["A=1"]);
    let p = lex
        .process_word("$A $B ${C} ${D:-x} ${E/a/b} ${XXX:YYY}", &env)
        .expect("expands");
    assert_eq!(p.result, "1 $B ${C} ${D:-x} ${E/a/b} ${XXX:YYY}");
}

#[test]
fn backtick_escape() {
    let lex = Lex::new('`');
    let p = lex.process_word("a`$b c\\d", &NoEnv).expect("expands");
    assert_eq!(p.result, "a$b c\\d");
}
