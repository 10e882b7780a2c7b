//! Property: any graph the builder can make marshals to bytes that decode, validate, and
//! re-encode to the same bytes, with every op canonical and inputs before consumers.

use cairn_llb::builder::{
    BindOptions, ChownSpec, CopyOptions, FileActions, ImageOptions, LocalOptions, MkdirOptions,
    MkfileOptions, RmOptions, SecretOptions, State, diff, image_with, local, merge, scratch,
};
use cairn_llb::pb::{CacheSharingOpt, NetMode, Platform};
use cairn_llb::{Definition, dump};
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Step {
    Image(u8),
    Local(u8, Vec<String>),
    Run {
        base: usize,
        args: Vec<String>,
        bind: Option<(usize, bool)>,
        cache: bool,
        tmpfs: Option<i64>,
        secret: bool,
        env: Option<String>,
        net: u8,
    },
    File {
        base: usize,
        dir: String,
        data: Vec<u8>,
        copy_from: Option<usize>,
        rm: bool,
        uid: Option<u32>,
    },
    Merge(Vec<usize>),
    Diff(usize, usize),
    Name(usize, String, bool),
}

fn text() -> impl Strategy<Value = String> {
    // Includes characters Go's JSON escapes, and empty strings.
    "[a-z0-9/<>&. \\-]{0,12}"
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        (0u8..3).prop_map(Step::Image),
        (0u8..3, prop::collection::vec(text(), 0..3)).prop_map(|(n, p)| Step::Local(n, p)),
        (
            any::<usize>(),
            prop::collection::vec(text(), 1..4),
            prop::option::of((any::<usize>(), any::<bool>())),
            any::<bool>(),
            prop::option::of(0i64..1 << 30),
            any::<bool>(),
            prop::option::of(text()),
            0u8..3,
        )
            .prop_map(
                |(base, args, bind, cache, tmpfs, secret, env, net)| Step::Run {
                    base,
                    args,
                    bind,
                    cache,
                    tmpfs,
                    secret,
                    env,
                    net
                }
            ),
        (
            any::<usize>(),
            text(),
            prop::collection::vec(any::<u8>(), 0..16),
            prop::option::of(any::<usize>()),
            any::<bool>(),
            prop::option::of(any::<u32>()),
        )
            .prop_map(|(base, dir, data, copy_from, rm, uid)| Step::File {
                base,
                dir,
                data,
                copy_from,
                rm,
                uid
            }),
        prop::collection::vec(any::<usize>(), 0..4).prop_map(Step::Merge),
        (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Step::Diff(a, b)),
        (any::<usize>(), text(), any::<bool>()).prop_map(|(i, n, c)| Step::Name(i, n, c)),
    ]
}

fn build(steps: &[Step]) -> State {
    let platform = Platform::new("linux", "arm64");
    let mut pool: Vec<State> = vec![scratch()];
    let pick = |pool: &Vec<State>, i: usize| pool[i % pool.len()].clone();
    for s in steps {
        let next = match s {
            Step::Image(n) => image_with(
                &format!("img{n}"),
                ImageOptions {
                    platform: Some(platform.clone()),
                    ..Default::default()
                },
            ),
            Step::Local(n, patterns) => local(
                &format!("ctx{n}"),
                LocalOptions {
                    include_patterns: patterns.clone(),
                    ..Default::default()
                },
            ),
            Step::Run {
                base,
                args,
                bind,
                cache,
                tmpfs,
                secret,
                env,
                net,
            } => {
                let mut run = pick(&pool, *base)
                    .platform(platform.clone())
                    .run(args.clone());
                if let Some((src, ro)) = bind {
                    run = run.mount(
                        "/mnt",
                        &pick(&pool, *src),
                        BindOptions {
                            readonly: *ro,
                            ..Default::default()
                        },
                    );
                }
                if *cache {
                    run = run.cache("/cache", "c", CacheSharingOpt::Private);
                }
                if let Some(size) = tmpfs {
                    run = run.tmpfs("/tmp", Some(*size));
                }
                if *secret {
                    run = run.secret(
                        "/run/secrets/s",
                        SecretOptions {
                            id: "s".into(),
                            ..Default::default()
                        },
                    );
                }
                if let Some(v) = env {
                    run = run.env("V", v);
                }
                run = run.network([NetMode::Unset, NetMode::Host, NetMode::None][*net as usize]);
                let exec = run.build();
                exec.mount_output("/mnt").unwrap_or_else(|| exec.root())
            }
            Step::File {
                base,
                dir,
                data,
                copy_from,
                rm,
                uid,
            } => {
                let mut actions = FileActions::new().mkdir(
                    &format!("/{dir}"),
                    0o755,
                    MkdirOptions {
                        make_parents: true,
                        owner: uid.map(|u| ChownSpec::ids(u, u)),
                        ..Default::default()
                    },
                );
                actions = actions.mkfile("/f", 0o644, data.clone(), MkfileOptions::default());
                if let Some(src) = copy_from {
                    actions = actions.copy(
                        &pick(&pool, *src),
                        "/",
                        "/copied/",
                        CopyOptions {
                            create_dest_path: true,
                            ..Default::default()
                        },
                    );
                }
                if *rm {
                    actions = actions.rm(
                        "/f",
                        RmOptions {
                            allow_not_found: true,
                            ..Default::default()
                        },
                    );
                }
                pick(&pool, *base).platform(platform.clone()).file(actions)
            }
            Step::Merge(ix) => merge(&ix.iter().map(|&i| pick(&pool, i)).collect::<Vec<_>>()),
            Step::Diff(a, b) => diff(&pick(&pool, *a), &pick(&pool, *b)),
            Step::Name(i, name, ignore) => {
                let st = pick(&pool, *i).custom_name(name.clone());
                if *ignore { st.ignore_cache() } else { st }
            }
        };
        pool.push(next);
    }
    pool.last().cloned().unwrap_or_default()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn builder_graphs_round_trip(steps in prop::collection::vec(step(), 1..12)) {
        let state = build(&steps);
        let def = state.marshal();
        let bytes = def.to_bytes();
        let back = Definition::decode(&bytes).expect("marshalled bytes decode");
        prop_assert_eq!(back.to_bytes(), bytes.clone());
        prop_assert_eq!(&back, &def);
        prop_assert_eq!(dump::json(&back), dump::json(&def));
        for op in back.ops() {
            prop_assert!(op.is_canonical(), "op {} not canonical", op.digest());
        }
        // Marshalling is deterministic.
        prop_assert_eq!(state.marshal().to_bytes(), bytes);
        if state.is_scratch() {
            prop_assert!(back.ops().is_empty());
        } else {
            let graph = back.validate().expect("builder output validates");
            let order: Vec<_> = graph.topological().map(|o| o.digest().clone()).collect();
            for (pos, d) in order.iter().enumerate() {
                for e in graph.inputs(d).unwrap() {
                    prop_assert!(order[..pos].contains(&e.digest));
                }
            }
            // Every op in `def` but the marker is reachable: the builder emits no strays.
            prop_assert_eq!(order.len(), graph.definition().ops().len() - 1);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 500, ..ProptestConfig::default() })]

    /// Arbitrary bytes and byte-level mutations of real builder output never panic the
    /// decoder, the validator or the dumps.
    #[test]
    fn mutated_definitions_never_panic(
        steps in prop::collection::vec(step(), 1..6),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
        cut in any::<prop::sample::Index>(),
        noise in prop::collection::vec(any::<u8>(), 0..64),
    ) {
        let mut bytes = build(&steps).marshal().to_bytes();
        for (at, val) in &flips {
            if !bytes.is_empty() {
                let i = at.index(bytes.len());
                bytes[i] = *val;
            }
        }
        let keep = if bytes.is_empty() { 0 } else { cut.index(bytes.len() + 1) };
        bytes.truncate(keep);
        for input in [bytes.as_slice(), noise.as_slice()] {
            if let Ok(def) = Definition::decode(input) {
                let _ = dump::json(&def);
                let _ = dump::dot(&def);
                let _ = def.validate().map(|g| g.topological().count());
            }
        }
    }
}
