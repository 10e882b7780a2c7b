//! Malformed definitions: each must fail validation with the error that names the op and
//! the field, never panic.

use cairn_llb::pb::{self, Input, Op, OpKind};
use cairn_llb::{Definition, Digest, LlbError, LoadedOp};
use prost::Message;

fn source(id: &str) -> Op {
    Op {
        op: Some(OpKind::Source(pb::SourceOp {
            identifier: id.into(),
            ..Default::default()
        })),
        ..Default::default()
    }
}

fn input(op: &LoadedOp, index: i64) -> Input {
    Input {
        digest: op.digest().to_string(),
        index,
    }
}

fn marker(target: &LoadedOp) -> LoadedOp {
    LoadedOp::from_op(Op {
        inputs: vec![input(target, 0)],
        ..Default::default()
    })
}

fn def_of(ops: Vec<LoadedOp>) -> Definition {
    Definition::from_parts(ops, Default::default(), None)
}

/// `consumer` reading `src`, then the output marker.
fn with_source(consumer: Op, src: &LoadedOp) -> Result<cairn_llb::Graph, LlbError> {
    let c = LoadedOp::from_op(consumer);
    let m = marker(&c);
    def_of(vec![src.clone(), c, m]).validate()
}

fn exec(mounts: Vec<pb::Mount>, inputs: Vec<Input>) -> Op {
    Op {
        inputs,
        op: Some(OpKind::Exec(pb::ExecOp {
            meta: Some(pb::Meta {
                args: vec!["true".into()],
                cwd: "/".into(),
                ..Default::default()
            }),
            mounts,
            ..Default::default()
        })),
        ..Default::default()
    }
}

fn root_mount(input: i64) -> pb::Mount {
    pb::Mount {
        input,
        dest: "/".into(),
        output: 0,
        ..Default::default()
    }
}

#[test]
fn garbage_is_a_bad_definition() {
    let err = Definition::decode(&[0xff, 0xff, 0xff]).unwrap_err();
    assert!(matches!(err, LlbError::BadDefinition(_)), "{err}");
    assert!(err.to_string().contains("pb.Definition"));
}

#[test]
fn an_undecodable_op_is_named_by_its_index() {
    let wire = pb::Definition {
        def: vec![source("local://a").encode_to_vec(), vec![0x0a, 0x09]],
        ..Default::default()
    };
    let err = Definition::decode(&wire.encode_to_vec()).unwrap_err();
    assert!(matches!(err, LlbError::BadOp { index: 1, .. }), "{err}");
    assert!(err.to_string().contains("def[1]"));
}

#[test]
fn fewer_than_two_ops_is_rejected() {
    let err = def_of(vec![LoadedOp::from_op(source("local://a"))])
        .validate()
        .unwrap_err();
    assert!(matches!(err, LlbError::TooFewOps { count: 1 }), "{err}");
    assert!(matches!(
        def_of(vec![]).validate(),
        Err(LlbError::TooFewOps { count: 0 })
    ));
}

#[test]
fn a_marker_without_inputs_is_rejected() {
    let a = LoadedOp::from_op(source("local://a"));
    let b = LoadedOp::from_op(source("local://b"));
    let err = def_of(vec![a, b.clone()]).validate().unwrap_err();
    assert!(
        matches!(&err, LlbError::TerminalWithoutInputs { digest } if digest == b.digest()),
        "{err}"
    );
}

#[test]
fn input_digests_must_parse_resolve_and_be_non_negative() {
    let a = LoadedOp::from_op(source("local://a"));
    let bad = Op {
        inputs: vec![Input {
            digest: "nope".into(),
            index: 0,
        }],
        ..Default::default()
    };
    let err = def_of(vec![a.clone(), LoadedOp::from_op(bad)])
        .validate()
        .unwrap_err();
    assert!(
        matches!(&err, LlbError::BadInputDigest { input: 0, value, .. } if value == "nope"),
        "{err}"
    );

    let ghost = Digest::of_bytes(b"ghost");
    let dangling = Op {
        inputs: vec![Input {
            digest: ghost.to_string(),
            index: 0,
        }],
        ..Default::default()
    };
    let err = def_of(vec![a.clone(), LoadedOp::from_op(dangling)])
        .validate()
        .unwrap_err();
    assert!(
        matches!(&err, LlbError::UnknownInput { target, .. } if *target == ghost),
        "{err}"
    );

    let negative = Op {
        inputs: vec![input(&a, -1)],
        ..Default::default()
    };
    let err = def_of(vec![a.clone(), LoadedOp::from_op(negative)])
        .validate()
        .unwrap_err();
    assert!(
        matches!(err, LlbError::NegativeInputIndex { index: -1, .. }),
        "{err}"
    );

    let too_far = Op {
        inputs: vec![input(&a, 1)],
        ..Default::default()
    };
    let err = def_of(vec![a.clone(), LoadedOp::from_op(too_far)])
        .validate()
        .unwrap_err();
    assert!(
        matches!(
            err,
            LlbError::InputOutputOutOfRange {
                index: 1,
                outputs: 1,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn ops_before_the_marker_need_a_kind() {
    let empty = LoadedOp::from_op(Op {
        platform: Some(pb::Platform::new("linux", "amd64")),
        ..Default::default()
    });
    let err = def_of(vec![empty.clone(), marker(&empty)])
        .validate()
        .unwrap_err();
    assert!(
        matches!(err, LlbError::MissingOpKind { index: 0, .. }),
        "{err}"
    );

    // Field 9 is unused in BuildKit's Op: a newer client's op kind, say.
    let unknown = LoadedOp::decode(0, vec![0x48, 0x01]).unwrap();
    assert!(!unknown.is_canonical());
    let err = def_of(vec![unknown.clone(), marker(&unknown)])
        .validate()
        .unwrap_err();
    assert!(
        matches!(&err, LlbError::UnknownOpKind { digest, .. } if digest == unknown.digest()),
        "{err}"
    );
    // The digest is over the received bytes, not a re-encoding.
    assert_eq!(unknown.digest(), &Digest::of_bytes(&[0x48, 0x01]));
}

#[test]
fn exec_mount_indices_are_checked() {
    let a = LoadedOp::from_op(source("local://a"));
    let err = with_source(exec(vec![root_mount(1)], vec![input(&a, 0)]), &a).unwrap_err();
    assert!(
        matches!(&err, LlbError::IndexOutOfRange { field, value: 1, .. } if field == "exec.mounts[0].input"),
        "{err}"
    );
    let err = with_source(exec(vec![root_mount(-2)], vec![input(&a, 0)]), &a).unwrap_err();
    assert!(
        matches!(err, LlbError::IndexOutOfRange { value: -2, .. }),
        "{err}"
    );

    let twice = vec![
        root_mount(0),
        pb::Mount {
            input: 0,
            dest: "/x".into(),
            output: 0,
            ..Default::default()
        },
    ];
    let err = with_source(exec(twice, vec![input(&a, 0)]), &a).unwrap_err();
    assert!(
        matches!(&err, LlbError::InvalidField { field, .. } if field == "exec.mounts[1].output"),
        "{err}"
    );

    let mut no_meta = exec(vec![root_mount(0)], vec![input(&a, 0)]);
    if let Some(OpKind::Exec(e)) = &mut no_meta.op {
        e.meta = None;
    }
    let err = with_source(no_meta, &a).unwrap_err();
    assert!(
        matches!(&err, LlbError::InvalidField { field, .. } if field == "exec.meta"),
        "{err}"
    );

    let mut bad_type = root_mount(0);
    bad_type.mount_type = 42;
    let err = with_source(exec(vec![bad_type], vec![input(&a, 0)]), &a).unwrap_err();
    assert!(
        matches!(&err, LlbError::InvalidField { field, .. } if field == "exec.mounts[0].mountType"),
        "{err}"
    );

    // A valid exec passes, and its output 0 is usable.
    with_source(exec(vec![root_mount(0)], vec![input(&a, 0)]), &a).unwrap();
}

fn file(actions: Vec<pb::FileAction>, inputs: Vec<Input>) -> Op {
    Op {
        inputs,
        op: Some(OpKind::File(pb::FileOp { actions })),
        ..Default::default()
    }
}

fn mkdir(input: i64, output: i64) -> pb::FileAction {
    pb::FileAction {
        input,
        secondary_input: -1,
        output,
        action: Some(pb::FileActionKind::Mkdir(pb::FileActionMkDir {
            path: "/d".into(),
            mode: 0o755,
            ..Default::default()
        })),
    }
}

#[test]
fn file_action_indices_are_checked() {
    let a = LoadedOp::from_op(source("local://a"));
    // One op input: action 0 may read -1 or 0; action 1 may also read 1 (action 0's result).
    with_source(
        file(vec![mkdir(0, -1), mkdir(1, 0)], vec![input(&a, 0)]),
        &a,
    )
    .unwrap();

    let err = with_source(
        file(vec![mkdir(0, -1), mkdir(2, 0)], vec![input(&a, 0)]),
        &a,
    )
    .unwrap_err();
    assert!(
        matches!(&err, LlbError::IndexOutOfRange { field, value: 2, .. } if field == "file.actions[1].input"),
        "{err}"
    );
    let mut copy_from_future = mkdir(0, 0);
    copy_from_future.secondary_input = 1;
    let err = with_source(file(vec![copy_from_future], vec![input(&a, 0)]), &a).unwrap_err();
    assert!(
        matches!(&err, LlbError::IndexOutOfRange { field, .. } if field == "file.actions[0].secondaryInput"),
        "{err}"
    );

    let err = with_source(file(vec![mkdir(0, 1)], vec![input(&a, 0)]), &a).unwrap_err();
    assert!(
        matches!(&err, LlbError::InvalidField { field, .. } if field == "file.actions[].output"),
        "{err}"
    );

    let mut no_action = mkdir(0, 0);
    no_action.action = None;
    let err = with_source(file(vec![no_action], vec![input(&a, 0)]), &a).unwrap_err();
    assert!(
        matches!(&err, LlbError::InvalidField { field, .. } if field == "file.actions[0]"),
        "{err}"
    );

    let err = with_source(file(vec![], vec![input(&a, 0)]), &a).unwrap_err();
    assert!(
        matches!(&err, LlbError::InvalidField { field, .. } if field == "file.actions"),
        "{err}"
    );

    let mut by_name = mkdir(0, 0);
    if let Some(pb::FileActionKind::Mkdir(m)) = &mut by_name.action {
        let user = pb::UserOpt {
            user: Some(pb::UserOptKind::ByName(pb::NamedUserOpt {
                name: "app".into(),
                input: 7,
            })),
        };
        m.owner = Some(pb::ChownOpt {
            user: Some(user),
            group: None,
        });
    }
    let err = with_source(file(vec![by_name], vec![input(&a, 0)]), &a).unwrap_err();
    assert!(
        matches!(&err, LlbError::IndexOutOfRange { field, .. } if field.ends_with("owner.user.byName.input")),
        "{err}"
    );
}

#[test]
fn merge_diff_and_passthrough_indices_are_checked() {
    let a = LoadedOp::from_op(source("local://a"));
    let merge = |i: i64| Op {
        inputs: vec![input(&a, 0)],
        op: Some(OpKind::Merge(pb::MergeOp {
            inputs: vec![pb::MergeInput { input: i }],
        })),
        ..Default::default()
    };
    with_source(merge(0), &a).unwrap();
    let err = with_source(merge(-1), &a).unwrap_err();
    assert!(
        matches!(&err, LlbError::IndexOutOfRange { field, .. } if field == "merge.inputs[0].input"),
        "{err}"
    );

    let diff = |lower: Option<i64>, upper: i64| Op {
        inputs: vec![input(&a, 0)],
        op: Some(OpKind::Diff(pb::DiffOp {
            lower: lower.map(|input| pb::LowerDiffInput { input }),
            upper: Some(pb::UpperDiffInput { input: upper }),
        })),
        ..Default::default()
    };
    with_source(diff(Some(-1), 0), &a).unwrap();
    let err = with_source(diff(Some(0), 3), &a).unwrap_err();
    assert!(
        matches!(&err, LlbError::IndexOutOfRange { field, .. } if field == "diff.upper.input"),
        "{err}"
    );
    let err = with_source(diff(None, 0), &a).unwrap_err();
    assert!(
        matches!(&err, LlbError::InvalidField { field, .. } if field == "diff.lower"),
        "{err}"
    );

    let pass = Op {
        inputs: vec![input(&a, 0)],
        op: Some(OpKind::Passthrough(pb::PassthroughOp {
            id: "x".into(),
            outputs: vec![0, 1],
        })),
        ..Default::default()
    };
    let err = with_source(pass, &a).unwrap_err();
    assert!(
        matches!(&err, LlbError::IndexOutOfRange { field, .. } if field == "passthrough.outputs[1]"),
        "{err}"
    );
}

#[test]
fn errors_name_the_op() {
    let a = LoadedOp::from_op(source("local://a"));
    let consumer = exec(vec![root_mount(9)], vec![input(&a, 0)]);
    let c = LoadedOp::from_op(consumer.clone());
    let err = with_source(consumer, &a).unwrap_err();
    assert_eq!(err.digest(), Some(c.digest()));
    assert!(err.to_string().contains(c.digest().as_str()), "{err}");
}

#[test]
fn unknown_op_fields_survive_a_definition_round_trip_with_their_digest() {
    // A source op plus field 12 (unknown here), as a newer client might send it.
    let mut raw = source("local://a").encode_to_vec();
    raw.extend_from_slice(&[0x60, 0x01]);
    let op = LoadedOp::decode(0, raw.clone()).unwrap();
    assert!(
        !op.is_canonical(),
        "prost drops the unknown field on decode"
    );
    let wire = pb::Definition {
        def: vec![raw.clone(), marker(&op).raw().to_vec()],
        ..Default::default()
    };
    let def = Definition::decode(&wire.encode_to_vec()).unwrap();
    assert_eq!(def.ops()[0].digest(), &Digest::of_bytes(&raw));
    // Re-encoding the definition re-emits the received op bytes, unknown field included.
    assert_eq!(def.to_bytes(), wire.encode_to_vec());
    def.validate().unwrap();
}
