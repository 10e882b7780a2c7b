//! No input makes the frontend panic: random Dockerfile-shaped text and realistic
//! Dockerfiles go through parse, instruction checking and conversion, and each either converts
//! or fails with an error that renders.

use cairn_frontend::convert::{
    ConvertOptions, ImageResolver, ResolveError, ResolvedImage, convert,
};
use cairn_frontend::{dockerignore, parser, shell};
use cairn_llb::pb::Platform;
use proptest::prelude::*;

struct Resolver;

impl ImageResolver for Resolver {
    fn resolve(
        &self,
        _reference: &str,
        platform: &Platform,
    ) -> Result<ResolvedImage, ResolveError> {
        let config = serde_json::json!({
            "architecture": platform.architecture, "os": platform.os,
            "config": {"Env": ["PATH=/bin"], "WorkingDir": "w", "User": "u", "OnBuild": ["RUN x"]},
            "rootfs": {"type": "layers", "diff_ids": ["sha256:11"]}
        });
        Ok(ResolvedImage {
            reference: None,
            digest: None,
            config: config.to_string().into_bytes(),
        })
    }
}

fn run_all(src: &str) {
    let opts = ConvertOptions {
        target_platform: Some(Platform::new("linux", "amd64")),
        ..ConvertOptions::default()
    };
    if let Err(e) = convert(src, &opts, &Resolver) {
        let rendered = e.render(src);
        assert!(rendered.starts_with("error: "), "{rendered}");
    }
}

const PIECES: &[&str] = &[
    "FROM ",
    "busybox",
    " AS ",
    "b",
    "scratch",
    "RUN ",
    "COPY ",
    "ADD ",
    "--from=b ",
    "--from=0 ",
    "--link ",
    "--chmod=7 ",
    "--mount=type=cache,target=/c ",
    "--mount=type=secret,id=s ",
    "--mount=from=b,target=/m ",
    "--network=none ",
    "ENV ",
    "ARG ",
    "LABEL ",
    "WORKDIR ",
    "USER ",
    "ONBUILD ",
    "HEALTHCHECK ",
    "CMD ",
    "SHELL ",
    "EXPOSE ",
    "VOLUME ",
    "STOPSIGNAL ",
    "x=1 ",
    "$x",
    "${x:-y}",
    "${x",
    "}",
    "\"",
    "'",
    "\\",
    "`",
    "\n",
    "\n",
    "\t",
    " ",
    "<<EOF",
    "<<-'E'",
    "EOF\n",
    "[\"a\",",
    "]",
    "[1]",
    "# escape=`\n",
    "# c\n",
    "/a",
    "./",
    "*.txt",
    "é",
    "\u{feff}",
    "80-81/udp ",
    "SIGKILL",
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn token_soup_never_panics(idx in proptest::collection::vec(0..PIECES.len(), 0..40)) {
        let src: String = idx.iter().map(|&i| PIECES[i]).collect();
        run_all(&src);
        let _ = parser::parse(&src, "Dockerfile");
    }

    #[test]
    fn arbitrary_text_never_panics(src in "\\PC{0,200}") {
        run_all(&src);
        let lex = shell::Lex::new('\\');
        let _ = lex.process_word(&src, &shell::NoEnv);
        if let Ok(m) = dockerignore::Matcher::new(&dockerignore::read_patterns(&src)) {
            let _ = m.excludes(&src);
        }
    }
}

/// Realistic Dockerfiles (multi-stage, mounts, heredocs, odd spacing) go through parse,
/// instructions and conversion without a panic, whether they convert or are refused.
#[test]
fn realistic_dockerfiles_convert_or_fail_cleanly() {
    let cases = [
        "FROM busybox AS build\nRUN --mount=type=cache,target=/c echo hi > /out\nFROM scratch\nCOPY --from=build /out /\n",
        "ARG V=1\nFROM busybox:${V}\nENV A=$V B=\"x y\"\nWORKDIR /app\nCOPY --chmod=755 --link . .\nUSER 1000:1000\nCMD [\"sh\"]\n",
        "FROM busybox\nRUN <<EOF\necho one\necho two\nEOF\nCOPY <<a.txt <<b.txt /d/\nA\na.txt\nB\nb.txt\n",
        "# escape=`\nFROM busybox\nRUN echo `\n  continued\nHEALTHCHECK --interval=1s CMD true\nONBUILD RUN x\n",
        "FROM busybox\nEXPOSE 80/tcp 53/udp\nVOLUME [\"/v\"]\nSTOPSIGNAL SIGTERM\nSHELL [\"/bin/sh\", \"-ec\"]\nLABEL a=b\nMAINTAINER me\n",
        "FROM busybox\nCOPY --from=nowhere /x /y\n",
        "RUN echo before from\n",
        "FROM busybox\nADD --chown=a:b https://127.0.0.1/x /x\nCOPY --exclude=*.tmp --parents a/b /c/\n",
    ];
    for src in cases {
        run_all(src);
    }
}

/// Pathological nesting and sizes fail cleanly instead of exhausting the stack.
#[test]
fn deep_nesting_and_long_chains_do_not_overflow() {
    let onbuilds = format!("FROM busybox\n{}RUN x\n", "ONBUILD ".repeat(20_000));
    run_all(&onbuilds);
    let nested = format!(
        "FROM busybox\nENV A={}x{}\n",
        "${A:-".repeat(20_000),
        "}".repeat(20_000)
    );
    run_all(&nested);
    let pattern = format!("FROM busybox\nENV A=${{B#{}}}\n", "*a".repeat(5_000));
    run_all(&pattern);
    let ignore = vec!["a*".repeat(10_000)];
    assert!(dockerignore::Matcher::new(&ignore).is_err());
    let mut chain = String::from("FROM busybox AS s0\n");
    for i in 1..3_000 {
        chain.push_str(&format!("FROM s{} AS s{i}\nRUN echo {i}\n", i - 1));
    }
    run_all(&chain);
}
