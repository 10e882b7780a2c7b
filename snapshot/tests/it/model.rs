//! A reference model: an in-memory tree with OCI layer semantics. Random layer stacks (with
//! deletions and opaque dirs) are applied, merged and diffed by both drivers, and what the
//! mounts show must equal the model.

use std::collections::{BTreeMap, BTreeSet};

use cairn_snapshot::{AnySnapshotter, ApplyOptions, LayerWriteOptions, Snapshotter, apply_layer};
use proptest::prelude::*;

use crate::drivers::{add_layer, id, view_tree};
use crate::support::{E, TarBuilder, drivers, mounts_under};

const PATHS: &[&str] = &["a", "b", "a/x", "a/y", "a/x/q", "b/z", "c"];

#[derive(Debug, Clone)]
enum Op {
    File(u8),
    Dir,
    Symlink(u8),
    Delete,
    Opaque,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => any::<u8>().prop_map(|b| Op::File(b % 4)),
        2 => Just(Op::Dir),
        1 => any::<u8>().prop_map(|b| Op::Symlink(b % 3)),
        2 => Just(Op::Delete),
        1 => Just(Op::Opaque),
    ]
}

type Model = BTreeMap<String, String>;

fn parents(p: &str) -> Vec<String> {
    let parts: Vec<&str> = p.split('/').collect();
    (1..parts.len()).map(|i| parts[..i].join("/")).collect()
}

fn under(p: &str, anc: &str) -> bool {
    p.len() > anc.len() && p.starts_with(anc) && p.as_bytes()[anc.len()] == b'/'
}

/// A valid layer: at most one op per path, parents as explicit dir entries, no entry
/// under a non-dir of the same layer, no deletion clashing with an entry.
#[derive(Debug, Clone)]
struct Layer {
    adds: BTreeMap<String, Op>,
    deletes: BTreeSet<String>,
}

fn normalise(ops: &[(usize, Op)]) -> Layer {
    let mut first: BTreeMap<String, Op> = BTreeMap::new();
    for (i, o) in ops {
        first
            .entry(PATHS[*i % PATHS.len()].to_owned())
            .or_insert_with(|| o.clone());
    }
    let mut adds: BTreeMap<String, Op> = BTreeMap::new();
    let mut deletes = BTreeSet::new();
    for (p, o) in &first {
        if matches!(o, Op::Delete) {
            continue;
        }
        let blocked = parents(p).iter().any(|a| {
            adds.get(a)
                .is_some_and(|o| matches!(o, Op::File(_) | Op::Symlink(_)))
        });
        if blocked {
            continue;
        }
        for a in parents(p) {
            adds.entry(a).or_insert(Op::Dir);
        }
        adds.insert(p.clone(), o.clone());
    }
    // A deletion must not meet any entry of the layer: not the path itself, nothing below
    // it, no non-dir above it, and not another deletion above or below it (its parent dir
    // entries would resurrect the other).
    for (p, o) in &first {
        if !matches!(o, Op::Delete) {
            continue;
        }
        let clash = adds.keys().any(|a| a == p || under(a, p))
            || parents(p).iter().any(|a| {
                adds.get(a)
                    .is_some_and(|o| !matches!(o, Op::Dir | Op::Opaque))
            })
            || deletes
                .iter()
                .any(|d: &String| d == p || under(d, p) || under(p, d));
        if !clash {
            deletes.insert(p.clone());
            for a in parents(p) {
                adds.entry(a).or_insert(Op::Dir);
            }
        }
    }
    Layer { adds, deletes }
}

fn to_tar(l: &Layer) -> Vec<u8> {
    let mut t = TarBuilder::new();
    let mut names: Vec<(String, Option<&Op>)> =
        l.adds.iter().map(|(p, o)| (p.clone(), Some(o))).collect();
    for d in &l.deletes {
        let (dir, base) = d.rsplit_once('/').map_or(("", d.as_str()), |(a, b)| (a, b));
        let wh = if dir.is_empty() {
            format!(".wh.{base}")
        } else {
            format!("{dir}/.wh.{base}")
        };
        names.push((wh, None));
    }
    names.sort_by(|a, b| a.0.cmp(&b.0));
    for (p, o) in names {
        t = match o {
            None => t.entry(E::File(&p, b"")),
            Some(Op::File(c)) => t.entry(E::File(&p, format!("c{c}").as_bytes())),
            Some(Op::Symlink(c)) => t.entry(E::Symlink(&p, &format!("t{c}"))),
            Some(Op::Dir) => t.entry(E::Dir(&format!("{p}/"))),
            Some(Op::Opaque) => t
                .entry(E::Dir(&format!("{p}/")))
                .entry(E::File(&format!("{p}/.wh..wh..opq"), b"")),
            Some(Op::Delete) => unreachable!("deletes are kept apart"),
        };
    }
    t.build()
}

fn remove_subtree(m: &mut Model, p: &str) {
    m.retain(|k, _| k != p && !under(k, p));
}

fn apply_model(m: &mut Model, l: &Layer) {
    for d in &l.deletes {
        remove_subtree(m, d);
    }
    for (p, o) in &l.adds {
        match o {
            Op::Dir => {
                if m.get(p).map(String::as_str) != Some("dir") {
                    remove_subtree(m, p);
                    m.insert(p.clone(), "dir".into());
                }
            }
            Op::Opaque => {
                remove_subtree(m, p);
                m.insert(p.clone(), "dir".into());
            }
            Op::File(c) => {
                remove_subtree(m, p);
                m.insert(p.clone(), format!("file:c{c}"));
            }
            Op::Symlink(c) => {
                remove_subtree(m, p);
                m.insert(p.clone(), format!("symlink:t{c}"));
            }
            Op::Delete => {}
        }
    }
}

fn stack() -> impl Strategy<Value = Vec<Vec<(usize, Op)>>> {
    prop::collection::vec(prop::collection::vec((0..PATHS.len(), op()), 1..6), 1..4)
}

/// What a layer means once applied on its own stack `before`: a deletion counts only if
/// it removed something, an opaque dir becomes deletions of what the stack had below it.
/// This is what a merge replays (BuildKit: deletions are entities of a ref's history).
fn effective(l: &Layer, before: &Model) -> Layer {
    let mut deletes: BTreeSet<String> = l
        .deletes
        .iter()
        .filter(|d| before.contains_key(*d))
        .cloned()
        .collect();
    let mut adds = l.adds.clone();
    for (o, op) in &l.adds {
        if !matches!(op, Op::Opaque) {
            continue;
        }
        for p in before
            .keys()
            .filter(|p| under(p, o) && !l.adds.contains_key(*p))
        {
            let parent = p.rsplit_once('/').map(|(a, _)| a).unwrap_or("");
            if parent == o
                || l.adds
                    .get(parent)
                    .is_some_and(|op| matches!(op, Op::Dir | Op::Opaque))
            {
                deletes.insert(p.clone());
            }
        }
        adds.insert(o.clone(), Op::Dir);
    }
    Layer { adds, deletes }
}

/// Commits `layers` as `<prefix>0..n`; returns the model of each level and the effective
/// layers.
fn build(sn: &AnySnapshotter, prefix: &str, layers: &[Layer]) -> (Vec<Model>, Vec<Layer>) {
    let mut m = Model::new();
    let mut out = Vec::new();
    let mut eff = Vec::new();
    for (i, l) in layers.iter().enumerate() {
        let parent = (i > 0).then(|| format!("{prefix}{}", i - 1));
        add_layer(sn, &to_tar(l), &format!("{prefix}{i}"), parent.as_deref());
        eff.push(effective(l, &m));
        apply_model(&mut m, l);
        out.push(m.clone());
    }
    (out, eff)
}

/// Writes the diff lower→upper, applies it as a new layer on `lower` and returns its view.
fn round_trip(sn: &AnySnapshotter, lower: Option<&str>, upper: &str, name: &str) -> Model {
    let mut blob = Vec::new();
    sn.write_diff(
        lower.map(id).as_ref(),
        &id(upper),
        &mut blob,
        &LayerWriteOptions::default(),
    )
    .unwrap();
    let staged = sn.stage_layer().unwrap();
    apply_layer(&blob[..], &staged.path(), &ApplyOptions::staged()).unwrap();
    sn.commit_staged(staged, &id(name), lower.map(id).as_ref())
        .unwrap();
    view_tree(sn, name)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn drivers_agree_with_the_model(s1 in stack(), s2 in stack()) {
        if !crate::support::need_root("drivers_agree_with_the_model") {
            return Ok(());
        }
        let l1: Vec<Layer> = s1.iter().map(|o| normalise(o)).collect();
        let l2: Vec<Layer> = s2.iter().map(|o| normalise(o)).collect();
        let tmp = tempfile::tempdir().unwrap();
        for (name, sn) in drivers(tmp.path()) {
            let (m1, _) = build(&sn, "x", &l1);
            let (m2, e2) = build(&sn, "y", &l2);
            let top1 = format!("x{}", l1.len() - 1);
            let top2 = format!("y{}", l2.len() - 1);
            prop_assert_eq!(&view_tree(&sn, &top1), m1.last().unwrap(), "{} stack 1", name);
            prop_assert_eq!(&view_tree(&sn, &top2), m2.last().unwrap(), "{} stack 2", name);

            sn.merge(&id("m"), &[id(&top1), id(&top2)]).unwrap();
            let mut mm = m1.last().unwrap().clone();
            for l in &e2 {
                apply_model(&mut mm, l);
            }
            prop_assert_eq!(&view_tree(&sn, "m"), &mm, "{} merge", name);

            // Single-layer diff (overlay reads the layer dir), whole-tree diffs of a merge.
            let lower1 = (l1.len() > 1).then(|| format!("x{}", l1.len() - 2));
            prop_assert_eq!(&round_trip(&sn, lower1.as_deref(), &top1, "rt1"), m1.last().unwrap(), "{} diff of top", name);
            prop_assert_eq!(&round_trip(&sn, None, "m", "rt2"), &mm, "{} merge from scratch", name);
            prop_assert_eq!(&round_trip(&sn, Some(&top1), "m", "rt3"), &mm, "{} merge over input", name);
        }
        prop_assert_eq!(mounts_under(tmp.path()), Vec::<String>::new());
    }
}
