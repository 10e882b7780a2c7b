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
    // Names: digits and special parameters are names of their own; other characters end
    // a name, and a `$` that starts none stays as written.
    ("$1x", Some("x")),
    ("${12}", Some("")),
    ("a$-b", Some("ab")),
    ("$@", Some("")),
    ("$$", Some("")),
    ("$ x", Some("$ x")),
    ("$/", Some("$/")),
    ("$%", Some("$%")),
    ("\"$\"", Some("$")),
    ("'$'", Some("$")),
    ("$PWD.bak", Some("/home.bak")),
    ("$SHELL_X", Some("")),
    ("${KOREAN}", Some("한국어")),
    ("${PWD}${SHELL}", Some("/homebash")),
    // Quotes and escapes, in and out of quotes.
    ("\\a", Some("a")),
    ("a\\", Some("a")),
    ("\\'", Some("'")),
    ("\\\"", Some("\"")),
    ("'\"'", Some("\"")),
    ("\"'\"", Some("'")),
    ("\"a\\b\"", Some("a\\b")),
    ("\"a\\\\b\"", Some("a\\b")),
    ("\"\\$PWD\"", Some("$PWD")),
    ("\"\\'\"", Some("\\'")),
    ("'a'\"b\"c", Some("abc")),
    ("''", Some("")),
    ("\"\"", Some("")),
    ("'a\"b", None),
    ("a<b", Some("a<b")),
    ("<<EOF", Some("<<EOF")),
    // Words after `:-`, `+` and `?`: nested expansions, quotes and escapes inside.
    ("${UNSET:-${PWD}}", Some("/home")),
    ("${UNSET:-'a b'}", Some("a b")),
    ("${UNSET:-\\}}", Some("}")),
    ("${UNSET:-a\\b}", Some("ab")),
    ("${NULL:-}", Some("")),
    ("${PWD:+$SHELL}", Some("bash")),
    ("${PWD+x}${NULL+y}", Some("xy")),
    ("${UNSET:?}", None),
    ("${NULL:?}", None),
    ("${NULL?}", Some("")),
    ("${PWD?x}", Some("/home")),
    // Prefix and suffix removal: `#`/`%` shortest, `##`/`%%` longest; `?` one character.
    ("${FILE%.*}", Some("archive.tar")),
    ("${FILE%%.*}", Some("archive")),
    ("${FILE#*.}", Some("tar.gz")),
    ("${FILE##*.}", Some("gz")),
    ("${FILE#archive}", Some(".tar.gz")),
    ("${FILE%.zip}", Some("archive.tar.gz")),
    ("${FILE#?}", Some("rchive.tar.gz")),
    ("${FILE%??}", Some("archive.tar.")),
    ("${PATHS%%:*}", Some("/usr/local/bin")),
    ("${PATHS##*:}", Some("/bin")),
    ("${PATHS#*:}", Some("/usr/bin:/bin")),
    ("${PATHS%:*}", Some("/usr/local/bin:/usr/bin")),
    (r"${STARS#*\*}", Some("b*c")),
    (r"${STARS##*\*}", Some("c")),
    (r"${STARS%\**}", Some("a*b")),
    (r"${STARS%%\**}", Some("a")),
    (r"${Q%\?}", Some("what")),
    ("${Q%?}", Some("what")),
    ("${UNSET#x}", Some("")),
    ("${FILE#$SHELL}", Some("archive.tar.gz")),
    // Replacement: first match, or every match with `//`; `*` is greedy.
    ("${FILE/tar/zip}", Some("archive.zip.gz")),
    ("${FILE//a/A}", Some("Archive.tAr.gz")),
    ("${FILE/.*/}", Some("archive")),
    ("${FILE/*/x}", Some("x")),
    ("${FILE//?/x}", Some("xxxxxxxxxxxxxx")),
    ("${PATHS//:/ }", Some("/usr/local/bin /usr/bin /bin")),
    ("${FILE/$NULL/x}", Some("xarchive.tar.gz")),
    ("${FILE/#arch/X}", Some("archive.tar.gz")),
    ("${FILE//[/x}", Some("archive.tar.gz")),
    (r"${PWD/\//\/}", Some(r"\/home")),
    ("${NULL/x/y}", Some("")),
    // Malformed and unsupported substitutions.
    ("${FILE/x}", None),
    ("${FILE/a/b", None),
    ("${UNSET:-x", None),
    ("${}", None),
    ("${:-x}", None),
    ("${{PWD}}", None),
    ("${PWD:=x}", None),
    ("${PWD=x}", None),
    ("${PWD^^}", None),
    ("${FILE:#x}", None),
    ("${FILE:%x}", None),
];

#[test]
fn expansion_table() {
    let env = EnvList::from_pairs([
        "PWD=/home",
        "SHELL=bash",
        "KOREAN=한국어",
        "NULL=",
        "FILE=archive.tar.gz",
        "PATHS=/usr/local/bin:/usr/bin:/bin",
        "STARS=a*b*c",
        "Q=what?",
    ]);
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
    env.set("EMPTY", "");
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
        ("$TWO", &["one", "two"]),
        ("x$TWO", &["xone", "two"]),
        ("\"$TWO\"x", &["one twox"]),
        ("'$TWO'", &["$TWO"]),
        ("a \"\" b", &["a", "b"]),
        ("'' x", &["x"]),
        ("a\\  b", &["a ", "b"]),
        ("${UNSET:-p q}", &["p", "q"]),
        ("\"a\"'b' c", &["ab", "c"]),
        ("a\tb\nc", &["a", "b", "c"]),
        ("$EMPTY", &[]),
        ("a$EMPTY b", &["a", "b"]),
        ("cat << EOF", &["cat", "<< EOF"]),
        ("x\\", &["x"]),
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

/// Which names a word referenced: set ones are matched, unset ones unmatched, whatever
/// the modifier did with them (the frontend reports unused build args from these).
#[test]
fn matched_and_unmatched_names() {
    let lex = Lex::new('\\');
    let env = EnvList::from_pairs(["DIR=/srv", "EMPTY=", "MODE=fast"]);
    let p = lex
        .process_word("$DIR ${EMPTY:-e} ${GONE+g} ${MISSING:-m}/${MODE%t}", &env)
        .expect("expands");
    assert_eq!(p.result, "/srv e  m/fas");
    assert_eq!(
        p.matched.into_iter().collect::<Vec<_>>(),
        ["DIR", "EMPTY", "MODE"]
    );
    assert_eq!(
        p.unmatched.into_iter().collect::<Vec<_>>(),
        ["GONE", "MISSING"]
    );
    let p = lex.process_word("'$DIR' \\$MODE", &env).expect("expands");
    assert!(p.matched.is_empty() && p.unmatched.is_empty(), "{p:?}");
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

/// With `` ` `` as the escape character a backslash is an ordinary character, in and out
/// of double quotes.
#[test]
fn backtick_escape() {
    let lex = Lex::new('`');
    for (input, want) in [
        ("a`$b c\\d", "a$b c\\d"),
        ("``", "`"),
        ("\"a`\"b\"", "a\"b"),
        ("\"c:\\dir\"", "c:\\dir"),
        ("\"``\"", "`"),
        ("x`", "x"),
        ("'`'", "`"),
    ] {
        let got = lex.process_word(input, &NoEnv).map(|p| p.result);
        assert_eq!(got.as_deref(), Ok(want), "{input:?}");
    }
}
