use super::*;

fn data(name: &str) -> String {
    let path = format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {path}: {e}"))
}

/// The `envVarTest` table: `platform | input | expected` (or `error`), run with the
/// variables Docker's own test uses. Windows-only rows are skipped: cairn builds Linux images.
#[test]
fn env_var_table() {
    let env = EnvList::from_pairs(["PWD=/home", "SHELL=bash", "KOREAN=한국어", "NULL="]);
    let lex = Lex::new('\\');
    let mut checked = 0;
    for (n, line) in data("envVarTest").lines().enumerate() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let cols: Vec<&str> = line.trim().split('|').collect();
        assert_eq!(cols.len(), 3, "line {}: {line:?}", n + 1);
        let (platform, input, expected) = (cols[0].trim(), cols[1].trim(), cols[2].trim());
        if platform == "W" {
            continue;
        }
        let got = lex.process_word(input, &env);
        if expected == "error" {
            assert!(
                got.is_err(),
                "line {}: {input:?} should fail, got {got:?}",
                n + 1
            );
        } else {
            let got = got.unwrap_or_else(|e| panic!("line {}: {input:?}: {e}", n + 1));
            assert_eq!(got.result, expected, "line {}: {input:?}", n + 1);
        }
        checked += 1;
    }
    assert!(checked > 150, "only {checked} cases ran");
}

/// The `wordsTest` table, in both lexer modes Docker runs it in.
#[test]
fn words_table() {
    for raw_mode in [false, true] {
        let mut lex = Lex::new('\\');
        if raw_mode {
            lex.raw_quotes = true;
            lex.skip_unset_env = true;
        }
        let mut env = EnvList::new();
        let mut checked = 0;
        for (n, line) in data("wordsTest").lines().enumerate() {
            if line.starts_with('#') {
                continue;
            }
            if let Some(rest) = line.strip_prefix("ENV ") {
                let rest = rest.trim_start_matches(' ');
                let (k, v) = rest.split_once('=').unwrap_or((rest, ""));
                env.set(k, v);
                continue;
            }
            let cols: Vec<&str> = line.split('|').collect();
            assert_eq!(cols.len(), 2, "line {}", n + 1);
            let input = cols[0].trim();
            let expected: Vec<&str> = cols[1].trim_start_matches(' ').split(',').collect();
            let got = match lex.process_words(input, &env) {
                Ok(words) => words,
                Err(_) => vec!["error".to_string()],
            };
            // Docker's raw mode keeps quotes, so only the default mode is compared there.
            if !raw_mode {
                assert_eq!(got, expected, "line {}: {input:?}", n + 1);
            } else {
                assert_eq!(
                    got.len(),
                    expected.len(),
                    "line {} (raw): {input:?} gave {got:?}",
                    n + 1
                );
            }
            checked += 1;
        }
        assert!(checked > 20);
    }
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
