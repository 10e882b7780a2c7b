use cairn_llb::Definition;
use cairn_llb::pb::{OpKind, Platform};

use super::*;

const BUSYBOX_DIGEST: &str =
    "sha256:646805a0052a1e02c8b513eb451ac793e4db67928a4b8007093d4f4975884e0c";

/// Returns one fixed config for every reference: the seam the CLI fills with a registry.
struct FixedResolver {
    config: serde_json::Value,
    digest: Option<String>,
}

impl FixedResolver {
    fn busybox() -> Self {
        Self {
            config: serde_json::json!({
                "architecture": "amd64", "os": "linux",
                "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"], "Cmd": ["sh"]},
                "rootfs": {"type": "layers", "diff_ids": ["sha256:aaaa"]},
                "history": [{"created_by": "ADD busybox"}]
            }),
            digest: Some(BUSYBOX_DIGEST.to_string()),
        }
    }
}

impl ImageResolver for FixedResolver {
    fn resolve(
        &self,
        reference: &str,
        _platform: &Platform,
    ) -> Result<ResolvedImage, ResolveError> {
        if reference.contains("doesnotexist") {
            return Err(Box::from(format!("{reference}: not found")));
        }
        Ok(ResolvedImage {
            reference: None,
            digest: self.digest.clone(),
            config: self.config.to_string().into_bytes(),
        })
    }
}

fn testdata(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/testdata/llb")
        .join(name)
}

fn amd64() -> Platform {
    Platform::new("linux", "amd64")
}

/// The `local.unique` BuildKit's client put into a testdata definition.
fn unique_of(def: &Definition) -> Option<String> {
    def.ops().iter().find_map(|op| match &op.op().op {
        Some(OpKind::Source(s)) if s.identifier.starts_with("local://") => {
            s.attrs.get("local.unique").cloned()
        }
        _ => None,
    })
}

fn convert_like(name: &str) -> (Definition, Converted) {
    let theirs =
        Definition::decode(&std::fs::read(testdata(&format!("{name}.pb"))).expect("testdata pb"))
            .expect("decodes");
    let dockerfile = std::fs::read_to_string(testdata(&format!("{name}.Dockerfile")))
        .expect("testdata Dockerfile");
    let opts = ConvertOptions {
        target_platform: Some(amd64()),
        build_platform: Some(amd64()),
        context_unique_id: unique_of(&theirs),
        ..ConvertOptions::default()
    };
    let ours = convert(&dockerfile, &opts, &FixedResolver::busybox()).expect("converts");
    (theirs, ours)
}

/// Same ops (by digest), same names and descriptions as BuildKit's conversion.
fn assert_same_as_buildkit(name: &str) {
    let (theirs, ours) = convert_like(name);
    let ours_def = &ours.definition;
    let theirs_digests: Vec<String> = theirs
        .ops()
        .iter()
        .map(|o| o.digest().to_string())
        .collect();
    let ours_digests: Vec<String> = ours_def
        .ops()
        .iter()
        .map(|o| o.digest().to_string())
        .collect();
    if theirs_digests != ours_digests {
        panic!(
            "{name}: ops differ\n--- buildkit\n{}--- cairn\n{}",
            cairn_llb::dump::json(&theirs),
            cairn_llb::dump::json(ours_def)
        );
    }
    for op in theirs.ops() {
        let want = theirs
            .metadata(op.digest())
            .map(|m| m.description.clone())
            .unwrap_or_default();
        let got = ours_def
            .metadata(op.digest())
            .map(|m| m.description.clone())
            .unwrap_or_default();
        assert_eq!(got, want, "{name}: descriptions of {}", op.digest());
        let want_pg = theirs
            .metadata(op.digest())
            .and_then(|m| m.progress_group.clone())
            .map(|g| (g.name, g.weak));
        let got_pg = ours_def
            .metadata(op.digest())
            .and_then(|m| m.progress_group.clone())
            .map(|g| (g.name, g.weak));
        assert_eq!(got_pg, want_pg, "{name}: progress group of {}", op.digest());
    }
}

#[test]
fn matches_buildkit_a() {
    assert_same_as_buildkit("a");
}

#[test]
fn matches_buildkit_b() {
    assert_same_as_buildkit("b");
}

#[test]
fn image_config_and_history() {
    let (_, ours) = convert_like("a");
    let created: Vec<&str> = ours
        .image
        .history
        .iter()
        .map(|h| h.created_by.as_str())
        .collect();
    assert_eq!(
        created,
        [
            "ADD busybox",
            "RUN /bin/sh -c echo hi > /hi # buildkit",
            "COPY file.txt /file.txt # buildkit"
        ]
    );
    assert!(
        ours.image.history[1..]
            .iter()
            .all(|h| h.comment == HISTORY_COMMENT && !h.empty_layer)
    );
    assert_eq!(
        ours.image.config.cmd.as_deref(),
        Some(&["sh".to_string()][..])
    );
}

fn opts() -> ConvertOptions {
    ConvertOptions {
        target_platform: Some(amd64()),
        build_platform: Some(amd64()),
        ..ConvertOptions::default()
    }
}

fn names(def: &Definition) -> Vec<String> {
    def.ops()
        .iter()
        .filter_map(|op| {
            def.metadata(op.digest())?
                .description
                .get("llb.customname")
                .cloned()
        })
        .collect()
}

fn exec_args(def: &Definition) -> Vec<(Vec<String>, Vec<String>, String)> {
    def.ops()
        .iter()
        .filter_map(|op| match &op.op().op {
            Some(OpKind::Exec(e)) => {
                let meta = e.meta.clone().unwrap_or_default();
                Some((meta.args, meta.env, meta.cwd))
            }
            _ => None,
        })
        .collect()
}

#[test]
fn target_prunes_unreachable_stages() {
    let src = "FROM doesnotexist AS broken\nRUN never\nFROM busybox AS a\nRUN echo a\nFROM busybox AS b\nRUN echo b\n";
    let out = convert(
        src,
        &ConvertOptions {
            target: Some("a".into()),
            ..opts()
        },
        &FixedResolver::busybox(),
    )
    .expect("converts");
    let n = names(&out.definition);
    assert!(n.iter().any(|s| s == "[a 2/2] RUN echo a"), "{n:?}");
    assert!(
        !n.iter()
            .any(|s| s.contains("echo b") || s.contains("never")),
        "{n:?}"
    );
    // Without a target the last stage is built; the broken one is still not needed.
    assert!(convert(src, &opts(), &FixedResolver::busybox()).is_ok());
    let err = convert(
        src,
        &ConvertOptions {
            target: Some("broken".into()),
            ..opts()
        },
        &FixedResolver::busybox(),
    )
    .expect_err("broken base");
    assert!(
        matches!(*err.kind, crate::ErrorKind::ImageResolve { .. }),
        "{err}"
    );
}

#[test]
fn args_scopes_and_build_args() {
    let src = "ARG TAG=1.0\nARG ONLY_GLOBAL=g\nFROM busybox:$TAG\nARG TAG\nARG LOCAL=l\nARG TARGETARCH\nENV E=${LOCAL}-${TAG}-${ONLY_GLOBAL}\nRUN echo $E $TARGETARCH\n";
    let mut o = opts();
    o.build_args.insert("LOCAL".into(), "override".into());
    let out = convert(src, &o, &FixedResolver::busybox()).expect("converts");
    let n = names(&out.definition);
    assert!(
        n[0].starts_with("[1/2] FROM docker.io/library/busybox:1.0@sha256:"),
        "{n:?}"
    );
    let execs = exec_args(&out.definition);
    let (args, env, _) = &execs[0];
    assert_eq!(
        args,
        &["/bin/sh", "-c", "echo $E $TARGETARCH"],
        "RUN shell form is not expanded by the frontend"
    );
    assert!(
        env.contains(&"E=override-1.0-".to_string()),
        "global-only args are not visible in stages: {env:?}"
    );
    assert!(env.contains(&"TARGETARCH=amd64".to_string()), "{env:?}");
    assert!(
        n[1].contains("RUN echo override-1.0- amd64"),
        "step names show expanded values: {n:?}"
    );
    let run_history = out
        .image
        .history
        .iter()
        .find(|h| h.created_by.starts_with("RUN"))
        .expect("run history");
    assert_eq!(
        run_history.created_by,
        "RUN |3 TAG=1.0 LOCAL=override TARGETARCH=amd64 /bin/sh -c echo $E $TARGETARCH # buildkit"
    );
}

#[test]
fn workdir_user_and_relative_paths() {
    let src = "FROM busybox\nUSER app\nWORKDIR /srv\nWORKDIR sub\nCOPY x* ./\nRUN pwd\n";
    let out = convert(src, &opts(), &FixedResolver::busybox()).expect("converts");
    let n = names(&out.definition);
    assert_eq!(&n[1..3], ["[2/5] WORKDIR /srv", "[3/5] WORKDIR sub"]);
    let json = cairn_llb::dump::json(&out.definition);
    assert!(
        json.contains(r#""path":"/srv/sub""#) && json.contains(r#""byName":{"name":"app""#),
        "{json}"
    );
    assert!(json.contains(r#""dest":"/srv/sub/""#), "{json}");
    assert!(json.contains(r#""local.followpaths":"[\"x*\"]""#), "{json}");
    let execs = exec_args(&out.definition);
    assert_eq!(execs[0].2, "/srv/sub");
    assert_eq!(out.image.config.working_dir, "/srv/sub");
    assert_eq!(out.image.config.user, "app");
}

#[test]
fn stage_order_and_cycles() {
    let err = convert(
        "FROM busybox AS a\nCOPY --from=b /x /x\nFROM busybox AS b\nRUN x\n",
        &ConvertOptions {
            target: Some("a".into()),
            ..opts()
        },
        &FixedResolver::busybox(),
    )
    .expect_err("later stage");
    assert!(
        matches!(*err.kind, crate::ErrorKind::StageOrder { .. }),
        "{err}"
    );
    let err = convert(
        "FROM busybox AS a\nCOPY --from=b /x /x\nFROM a AS b\n",
        &opts(),
        &FixedResolver::busybox(),
    )
    .expect_err("cycle");
    assert!(
        matches!(*err.kind, crate::ErrorKind::CircularDependency(_)),
        "{err}"
    );
    let err = convert(
        "FROM busybox\nARG S=a\nCOPY --from=$S /x /x\n",
        &opts(),
        &FixedResolver::busybox(),
    )
    .expect_err("expansion");
    assert!(
        matches!(*err.kind, crate::ErrorKind::FromExpansion),
        "{err}"
    );
}

#[test]
fn scratch_and_stage_index() {
    let src = "FROM scratch AS files\nCOPY a /a\nFROM busybox\nCOPY --from=0 /a /b\n";
    let out = convert(src, &opts(), &FixedResolver::busybox()).expect("converts");
    let n = names(&out.definition);
    assert!(
        n.contains(&"[files 1/1] COPY a /a".to_string()),
        "scratch has no FROM step: {n:?}"
    );
    assert!(
        n.contains(&"[stage-1 2/2] COPY --from=0 /a /b".to_string()),
        "{n:?}"
    );
}

#[test]
fn onbuild_triggers_from_base_image() {
    let mut r = FixedResolver::busybox();
    r.config["config"]["OnBuild"] = serde_json::json!(["RUN echo from-onbuild"]);
    let out = convert("FROM busybox\nRUN echo mine\n", &opts(), &r).expect("converts");
    let n = names(&out.definition);
    assert_eq!(
        n[1..],
        ["[2/3] ONBUILD RUN echo from-onbuild", "[3/3] RUN echo mine"]
    );
    assert!(
        out.image.config.on_build.is_empty(),
        "triggers are consumed"
    );
}

#[test]
fn onbuild_triggers_from_base_stage() {
    let src = "FROM busybox AS base\nONBUILD RUN echo trig\nFROM base\nRUN echo child\n";
    let out = convert(src, &opts(), &FixedResolver::busybox()).expect("converts");
    let n = names(&out.definition);
    assert!(
        n.contains(&"[stage-1 1/2] ONBUILD RUN echo trig".to_string()),
        "{n:?}"
    );
}

#[test]
fn source_map_points_at_lines() {
    let src = "FROM busybox\n\nRUN echo a \\\n  b\n";
    let out = convert(src, &opts(), &FixedResolver::busybox()).expect("converts");
    let source = out.definition.source().expect("source map");
    assert_eq!(source.infos[0].data, src.as_bytes());
    assert_eq!(source.infos[0].language, "Dockerfile");
    let exec = out
        .definition
        .ops()
        .iter()
        .find(|o| matches!(o.op().op, Some(OpKind::Exec(_))))
        .expect("exec");
    let locs = &source.locations[exec.digest().as_str()].locations[0].ranges[0];
    assert_eq!(
        (
            locs.start.as_ref().map(|p| p.line),
            locs.end.as_ref().map(|p| p.line)
        ),
        (Some(3), Some(4))
    );
}

#[test]
fn exclude_patterns_reach_the_context() {
    let o = ConvertOptions {
        exclude_patterns: vec!["*.log".into(), "!keep.log".into()],
        ..opts()
    };
    let out =
        convert("FROM busybox\nCOPY . /app\n", &o, &FixedResolver::busybox()).expect("converts");
    let json = cairn_llb::dump::json(&out.definition);
    assert!(
        json.contains(r#""local.excludepatterns":"[\"*.log\",\"!keep.log\"]""#),
        "{json}"
    );
    assert!(
        !json.contains("local.followpaths"),
        "COPY . uses the whole context: {json}"
    );
}

#[test]
fn independent_stages_share_nothing_but_the_base() {
    let src = "FROM busybox AS a\nRUN echo a\nFROM busybox AS b\nRUN echo b\nFROM busybox\nCOPY --from=a /a /a\nCOPY --from=b /b /b\n";
    let out = convert(src, &opts(), &FixedResolver::busybox()).expect("converts");
    let def = &out.definition;
    let by_name = |needle: &str| {
        def.ops()
            .iter()
            .find(|op| {
                def.metadata(op.digest())
                    .and_then(|m| m.description.get("llb.customname"))
                    .is_some_and(|n| n.contains(needle))
            })
            .expect(needle)
    };
    let (a, b) = (by_name("RUN echo a"), by_name("RUN echo b"));
    assert_eq!(
        a.op().inputs,
        b.op().inputs,
        "both stages start from the same image op"
    );
    assert!(
        !b.op()
            .inputs
            .iter()
            .any(|i| i.digest == a.digest().as_str()),
        "b does not wait for a"
    );
}

#[test]
fn env_words_see_the_previous_environment() {
    let src = "FROM busybox\nENV A=old\nENV A=new B=$A\nRUN true\n";
    let out = convert(src, &opts(), &FixedResolver::busybox()).expect("converts");
    let env = &exec_args(&out.definition)[0].1;
    assert!(
        env.contains(&"A=new".to_string()) && env.contains(&"B=old".to_string()),
        "{env:?}"
    );
    assert!(out.image.config.env.contains(&"B=old".to_string()));
}

#[test]
fn proxy_build_args_become_proxy_env() {
    let mut o = opts();
    o.build_args
        .insert("HTTPS_PROXY".into(), "http://proxy:3128".into());
    let out = convert("FROM busybox\nRUN true\n", &o, &FixedResolver::busybox()).expect("converts");
    let proxy = out
        .definition
        .ops()
        .iter()
        .find_map(|op| match &op.op().op {
            Some(OpKind::Exec(e)) => e.meta.as_ref()?.proxy_env.clone(),
            _ => None,
        });
    assert_eq!(
        proxy.map(|p| p.https_proxy),
        Some("http://proxy:3128".to_string())
    );
    let env = &exec_args(&out.definition)[0].1;
    assert!(
        !env.iter().any(|e| e.contains("proxy:3128")),
        "not in the env (and so not in the cache key): {env:?}"
    );
}

#[test]
fn no_cache_marks_steps_not_sources() {
    let src = "FROM busybox AS a\nRUN echo a\nFROM busybox\nCOPY --from=a /a /a\nRUN echo b\n";
    let ignored = |o: &ConvertOptions| -> Vec<String> {
        let out = convert(src, o, &FixedResolver::busybox()).expect("converts");
        let def = out.definition;
        def.ops()
            .iter()
            .filter_map(|op| def.metadata(op.digest()).filter(|m| m.ignore_cache))
            .filter_map(|m| m.description.get("llb.customname").cloned())
            .collect()
    };
    assert!(ignored(&opts()).is_empty());
    let all = ignored(&ConvertOptions {
        no_cache: Some(vec![]),
        ..opts()
    });
    assert_eq!(all.len(), 3, "{all:?}");
    assert!(all.iter().all(|n| !n.contains("FROM")), "{all:?}");
    let only_a = ignored(&ConvertOptions {
        no_cache: Some(vec!["A".into()]),
        ..opts()
    });
    assert_eq!(only_a, ["[a 2/2] RUN echo a"]);
}

#[test]
fn source_date_epoch_dates_history_and_directories() {
    let mut o = opts();
    o.build_args
        .insert("SOURCE_DATE_EPOCH".into(), "1700000000".into());
    let out = convert(
        "FROM busybox\nWORKDIR /app\nENV A=1\nCMD [\"x\"]\n",
        &o,
        &FixedResolver::busybox(),
    )
    .expect("converts");
    let ours: Vec<_> = out
        .image
        .history
        .iter()
        .skip(1)
        .map(|h| h.created.clone())
        .collect();
    assert_eq!(ours, vec![Some("2023-11-14T22:13:20Z".to_string()); 3]);
    let json = cairn_llb::dump::json(&out.definition);
    assert!(
        json.contains(r#""timestamp":1700000000000000000"#),
        "{json}"
    );
}

#[test]
fn resolver_error_chains_are_kept() {
    #[derive(Debug, thiserror::Error)]
    #[error("registry said no")]
    struct Outer(#[source] std::io::Error);
    struct Failing;
    impl ImageResolver for Failing {
        fn resolve(&self, _r: &str, _p: &Platform) -> Result<ResolvedImage, ResolveError> {
            Err(Box::new(Outer(std::io::Error::other("connection refused"))))
        }
    }
    let err = convert("FROM busybox\n", &opts(), &Failing).expect_err("fails");
    assert_eq!(
        err.to_string(),
        "Dockerfile:1:1: failed to resolve image \"busybox\": registry said no: connection refused"
    );
}

#[test]
fn each_base_is_resolved_once() {
    struct Counting(std::cell::RefCell<Vec<String>>, FixedResolver);
    impl ImageResolver for Counting {
        fn resolve(&self, r: &str, p: &Platform) -> Result<ResolvedImage, ResolveError> {
            self.0.borrow_mut().push(r.to_string());
            self.1.resolve(r, p)
        }
    }
    let counting = Counting(
        std::cell::RefCell::new(Vec::new()),
        FixedResolver::busybox(),
    );
    let src = "FROM busybox AS a\nRUN a\nFROM busybox AS b\nRUN b\nFROM alpine\nCOPY --from=a /a /a\nCOPY --from=b /b /b\nCOPY --from=busybox /c /c\n";
    convert(src, &opts(), &counting).expect("converts");
    let mut calls = counting.0.into_inner();
    calls.sort();
    assert_eq!(
        calls,
        [
            "docker.io/library/alpine:latest",
            "docker.io/library/busybox:latest"
        ]
    );
}

#[test]
fn convert_path_reads_dockerfile_and_ignore_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let df = dir.path().join("app.Dockerfile");
    std::fs::write(&df, "FROM busybox\nCOPY . /src\nRUNN x\n").expect("write");
    std::fs::write(dir.path().join(".dockerignore"), "target\n").expect("write");
    let err = convert_path(dir.path(), &df, opts(), &FixedResolver::busybox()).expect_err("typo");
    assert!(
        err.to_string()
            .starts_with("app.Dockerfile:3:1: unknown instruction: RUNN"),
        "{err}"
    );
    std::fs::write(&df, "FROM busybox\nCOPY . /src\n").expect("write");
    let out = convert_path(dir.path(), &df, opts(), &FixedResolver::busybox()).expect("converts");
    let json = cairn_llb::dump::json(&out.definition);
    assert!(
        json.contains(r#""local.excludepatterns":"[\"target\"]""#),
        "{json}"
    );
    assert_eq!(
        out.definition
            .source()
            .map(|s| s.infos[0].filename.as_str()),
        Some("app.Dockerfile")
    );
    let missing = convert_path(
        dir.path(),
        &dir.path().join("nope"),
        opts(),
        &FixedResolver::busybox(),
    );
    assert!(matches!(
        missing.map_err(|e| *e.kind),
        Err(crate::ErrorKind::Io { .. })
    ));
}
