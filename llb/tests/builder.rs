//! The builder against BuildKit: the graph `diffmerge` describes, built with cairn's
//! builder, must give BuildKit's exact bytes and digests. Plus structural checks of the
//! builder's own rules (dedup, ordering, output indices).

use cairn_llb::builder::{
    BindOptions, ChownSpec, CopyOptions, FileActions, ImageOptions, LocalOptions, MkdirOptions,
    MkfileOptions, RmOptions, SecretOptions, diff, image, image_with, local, merge, scratch,
};
use cairn_llb::pb::{self, CacheSharingOpt, MountType, NetMode, OpKind, Platform};
use cairn_llb::{Definition, dump};

fn testdata(file: &str) -> Vec<u8> {
    let path = std::path::PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/testdata/llb"
    ))
    .join(file);
    std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

fn amd64() -> Platform {
    Platform::new("linux", "amd64")
}

#[test]
fn diffmerge_built_with_the_builder_matches_buildkit_byte_for_byte() {
    let opts = || ImageOptions {
        platform: Some(amd64()),
        ..Default::default()
    };
    let base = image_with("127.0.0.1:5000/library/busybox:latest", opts());
    let a = base
        .run(["sh", "-c", "echo a > /a && rm /bin/vi"])
        .custom_name("make a")
        .root();
    let d = diff(&base, &a).custom_name("diff a");
    let files = scratch()
        .platform(amd64())
        .file(
            FileActions::new()
                .mkdir(
                    "/dir",
                    0o755,
                    MkdirOptions {
                        make_parents: true,
                        ..Default::default()
                    },
                )
                .mkfile(
                    "/dir/f",
                    0o644,
                    "x",
                    MkfileOptions {
                        owner: Some(ChownSpec::ids(1000, 1000)),
                        ..Default::default()
                    },
                )
                .rm(
                    "/nothing",
                    RmOptions {
                        allow_not_found: true,
                        ..Default::default()
                    },
                ),
        )
        .custom_name("files");
    let layered = image_with("127.0.0.1:5000/library/layered:latest", opts());
    let all = merge(&[d, files, layered]).custom_name("merge all");
    let out = all
        .platform(amd64())
        .run(["ls", "-la", "/"])
        .ignore_cache()
        .root();
    let def = out.marshal();

    let want_bytes = testdata("diffmerge.pb");
    let want = Definition::decode(&want_bytes).unwrap();
    // Readable comparison first (dump JSON), then the bytes.
    assert_eq!(dump::json(&def), dump::json(&want));
    assert_same_bytes(&def.to_bytes(), &want_bytes);
}

/// Byte equality that reports the first differing offset instead of two huge arrays.
fn assert_same_bytes(got: &[u8], want: &[u8]) {
    if let Some(at) = got.iter().zip(want).position(|(a, b)| a != b) {
        panic!(
            "bytes differ at offset {at}: got {:02x?}, want {:02x?}",
            &got[at..(at + 16).min(got.len())],
            &want[at..(at + 16).min(want.len())]
        );
    }
    assert_eq!(got.len(), want.len(), "same prefix, different lengths");
}

#[test]
fn image_short_names_normalise_and_carry_the_platform() {
    let def = image("busybox").marshal();
    let Some(OpKind::Source(s)) = &def.ops()[0].op().op else {
        panic!("not a source")
    };
    assert_eq!(
        s.identifier,
        "docker-image://docker.io/library/busybox:latest"
    );
    assert_eq!(def.ops()[0].op().platform, Some(Platform::host()));
    def.validate().unwrap();
}

#[test]
fn local_sources_have_no_platform_and_deterministic_attrs() {
    let opts = LocalOptions {
        follow_paths: vec!["file.txt".into()],
        shared_key_hint: Some("context".into()),
        unique_id: Some("jpyzlvqnauuvp9rfl35cn7q47".into()),
        ..Default::default()
    };
    let def = local("context", opts).marshal();
    // Byte-identical to the build-context op of testdata `a` (made by BuildKit's
    // Dockerfile frontend), whose digest the `.tsv` pins.
    assert_eq!(
        def.ops()[0].digest().as_str(),
        "sha256:9094564c42fe7c2f0ab6d37f31ffb182121e4693ca2a3b08154ba35d8bd6ac1a"
    );
    // An empty `local.unique` is still written (the map-entry trap).
    let empty = local("context", LocalOptions::default()).marshal();
    let Some(OpKind::Source(s)) = &empty.ops()[0].op().op else {
        panic!()
    };
    assert_eq!(s.attrs.get("local.unique").map(String::as_str), Some(""));
    assert!(
        empty.ops()[0]
            .raw()
            .windows(14)
            .any(|w| w == b"\x0a\x0clocal.unique")
    );
}

#[test]
fn shared_inputs_are_emitted_once_and_before_their_consumers() {
    let base = image_with(
        "alpine",
        ImageOptions {
            platform: Some(amd64()),
            ..Default::default()
        },
    );
    let x = base.run(["touch", "/x"]).root();
    let y = base.run(["touch", "/y"]).root();
    let def = merge(&[x, y]).marshal();
    // image, x, y, merge, marker
    assert_eq!(def.ops().len(), 5);
    let graph = def.clone().validate().unwrap();
    let order: Vec<_> = graph.topological().map(|o| o.digest().clone()).collect();
    let def_order: Vec<_> = def.ops()[..4].iter().map(|o| o.digest().clone()).collect();
    assert_eq!(order, def_order);
}

#[test]
fn exec_mounts_are_sorted_deduplicated_and_get_outputs_only_when_writable() {
    let base = image_with(
        "alpine",
        ImageOptions {
            platform: Some(amd64()),
            ..Default::default()
        },
    );
    let src = local("src", LocalOptions::default());
    let exec = base
        .run(["make"])
        .mount(
            "/src",
            &src,
            BindOptions {
                readonly: true,
                selector: Some("sub".into()),
                ..Default::default()
            },
        )
        .mount("/out", &scratch(), BindOptions::default())
        .mount("/again", &base, BindOptions::default())
        .cache("/root/.cache", "gocache", CacheSharingOpt::Locked)
        .tmpfs("/tmp", Some(1 << 20))
        .secret(
            "/run/secrets/tok",
            SecretOptions {
                id: "tok".into(),
                mode: 0o400,
                ..Default::default()
            },
        )
        .network(NetMode::None)
        .env("A", "1")
        .custom_name("build")
        .build();
    let out = exec.mount_output("/out").expect("/out is writable");
    assert!(
        exec.mount_output("/src").is_none(),
        "read-only mounts have no output"
    );
    let def = out.marshal();
    let graph = def.clone().validate().unwrap();
    let exec_op = graph.op(&graph.target().digest).unwrap();
    let Some(OpKind::Exec(e)) = &exec_op.op().op else {
        panic!("not exec")
    };
    let dests: Vec<_> = e.mounts.iter().map(|m| m.dest.as_str()).collect();
    assert_eq!(
        dests,
        [
            "/",
            "/again",
            "/out",
            "/root/.cache",
            "/src",
            "/tmp",
            "/run/secrets/tok"
        ]
    );
    // `/` and `/again` share one input; `/out` is scratch.
    assert_eq!(exec_op.op().inputs.len(), 2);
    assert_eq!(
        (e.mounts[0].input, e.mounts[1].input, e.mounts[2].input),
        (0, 0, -1)
    );
    let outputs: Vec<_> = e.mounts.iter().map(|m| m.output).collect();
    assert_eq!(&outputs[..6], &[0, 1, 2, -1, -1, -1]);
    assert_eq!(graph.target().index, 2);
    assert_eq!(e.mounts[3].mount_type, MountType::Cache as i32);
    assert_eq!(e.mounts[5].tmpfs_opt, Some(pb::TmpfsOpt { size: 1 << 20 }));
    assert_eq!(e.mounts[4].selector, "sub");
    assert_eq!(e.network, NetMode::None as i32);
    assert_eq!(e.meta.as_ref().unwrap().env, ["A=1"]);
    let md = graph.metadata(&graph.target().digest).unwrap();
    assert_eq!(
        md.description.get("llb.customname").map(String::as_str),
        Some("build")
    );
    for cap in [
        "exec.mount.cache",
        "exec.mount.tmpfs.size",
        "exec.mount.secret",
        "exec.mount.selector",
        "exec.meta.network",
    ] {
        assert_eq!(md.caps.get(cap), Some(&true), "{cap}");
    }
}

#[test]
fn file_chains_index_earlier_actions_after_the_inputs() {
    let base = image_with(
        "alpine",
        ImageOptions {
            platform: Some(amd64()),
            ..Default::default()
        },
    )
    .cwd("/app");
    let ctx = local("context", LocalOptions::default());
    let st = base.file(
        FileActions::new()
            .mkdir("out", 0o755, MkdirOptions::default())
            .copy(
                &ctx,
                "a.txt",
                "out/",
                CopyOptions {
                    include_patterns: vec!["*.txt".into()],
                    ..Default::default()
                },
            )
            .rm("tmp", RmOptions::default()),
    );
    let def = st.marshal();
    let graph = def.validate().unwrap();
    let op = graph.op(&graph.target().digest).unwrap();
    let Some(OpKind::File(f)) = &op.op().op else {
        panic!("not file")
    };
    assert_eq!(op.op().inputs.len(), 2);
    let idx: Vec<_> = f
        .actions
        .iter()
        .map(|a| (a.input, a.secondary_input, a.output))
        .collect();
    assert_eq!(idx, [(0, -1, -1), (2, 1, -1), (3, -1, 0)]);
    let Some(pb::FileActionKind::Copy(c)) = &f.actions[1].action else {
        panic!()
    };
    assert_eq!(
        (c.src.as_str(), c.dest.as_str(), c.mode, c.timestamp),
        ("/a.txt", "/app/out/", -1, -1)
    );
    let Some(pb::FileActionKind::Mkdir(m)) = &f.actions[0].action else {
        panic!()
    };
    assert_eq!(m.path, "/app/out");
}

#[test]
fn merge_and_diff_shortcuts_make_no_ops() {
    let a = image("alpine");
    assert!(merge(&[]).is_scratch());
    assert_eq!(merge(&[scratch(), a.clone()]).edge(), a.edge());
    assert!(diff(&scratch(), &scratch()).is_scratch());
    assert_eq!(diff(&scratch(), &a).edge(), a.edge());
    assert!(scratch().marshal().ops().is_empty());
}

#[test]
fn testdata_a_rebuilt_with_the_builder_has_buildkits_ops_and_metadata() {
    // What BuildKit's Dockerfile frontend made of `a.Dockerfile`, rebuilt by hand: the
    // frontend's extra metadata goes through `description` and `cap`.
    let from = "127.0.0.1:5000/library/busybox:latest@sha256:646805a0052a1e02c8b513eb451ac793e4db67928a4b8007093d4f4975884e0c";
    let base = image_with(
        from,
        ImageOptions {
            platform: Some(amd64()),
            ..Default::default()
        },
    )
    .description(
        "com.docker.dockerfile.v1.command",
        "FROM 127.0.0.1:5000/library/busybox:latest",
    )
    .custom_name(format!("[1/3] FROM {from}"));
    let run = base
        .env(
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        )
        .run(["/bin/sh", "-c", "echo hi > /hi"])
        .description("com.docker.dockerfile.v1.command", "RUN echo hi > /hi")
        .custom_name("[2/3] RUN echo hi > /hi")
        .cap("exec.meta.setsdefaultpath")
        .root();
    let ctx = local(
        "context",
        LocalOptions {
            follow_paths: vec!["file.txt".into()],
            shared_key_hint: Some("context".into()),
            unique_id: Some("jpyzlvqnauuvp9rfl35cn7q47".into()),
            ..Default::default()
        },
    )
    .custom_name("[internal] load build context");
    let copy = CopyOptions {
        follow_symlinks: true,
        copy_dir_contents_only: true,
        create_dest_path: true,
        allow_wildcard: true,
        allow_empty_wildcard: true,
        ..Default::default()
    };
    let out = run
        .file(FileActions::new().copy(&ctx, "/file.txt", "/file.txt", copy))
        .custom_name("[3/3] COPY file.txt /file.txt");
    let def = out.marshal();

    let want = Definition::decode(&testdata("a.pb")).unwrap();
    // Same ops, digests and metadata; only the source map (Dockerfile line ranges) differs.
    assert_eq!(dump::json(&def), dump::json(&want));
}

/// The exec op of the definition's target.
fn target_exec(def: Definition) -> pb::ExecOp {
    let graph = def.validate().unwrap();
    let op = graph.op(&graph.target().digest).unwrap();
    match &op.op().op {
        Some(OpKind::Exec(e)) => e.clone(),
        other => panic!("target is not an exec: {other:?}"),
    }
}

/// `Run::network` is a run option as in Go: the step gets it, the state after it does not,
/// so the next step is back in the sandbox network.
#[test]
fn a_steps_network_does_not_reach_the_next_step() {
    let first = image("busybox")
        .run(["true"])
        .network(NetMode::Host)
        .security(pb::SecurityMode::Insecure)
        .root();
    let first_exec = target_exec(first.marshal());
    assert_eq!(first_exec.network, NetMode::Host as i32);
    assert_eq!(first_exec.security, pb::SecurityMode::Insecure as i32);
    let second = target_exec(first.run(["true"]).root().marshal());
    assert_eq!(second.network, NetMode::Unset as i32);
    assert_eq!(second.security, pb::SecurityMode::Sandbox as i32);
    // A mode set on the state itself still applies to every later step.
    let on_state = image("busybox").network(NetMode::None).run(["true"]).root();
    let third = target_exec(on_state.run(["true"]).root().marshal());
    assert_eq!(third.network, NetMode::None as i32);
}

/// Replacing a variable moves it to the end, as Go's `EnvList.AddOrReplace` orders it.
#[test]
fn a_replaced_variable_moves_to_the_end() {
    let st = scratch()
        .env("PATH", "/bin")
        .env("A", "1")
        .env("PATH", "/x:/bin");
    let e = target_exec(st.run(["true"]).root().marshal());
    assert_eq!(e.meta.unwrap().env, ["A=1", "PATH=/x:/bin"]);
}
