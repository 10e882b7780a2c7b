//! Golden tests against definitions BuildKit v0.11.6 produced (`shared/testdata/llb/`):
//! decoding, digests, byte-identical re-encoding, validation and the dump-llb JSON.

use std::path::PathBuf;

use cairn_llb::{Definition, dump};
use prost::Message;

const NAMES: [&str; 4] = ["a", "b", "pull", "diffmerge"];

fn testdata(file: &str) -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/testdata/llb"
    ))
    .join(file)
}

fn read(file: &str) -> Vec<u8> {
    let path = testdata(file);
    std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

fn load(name: &str) -> (Vec<u8>, Definition) {
    let bytes = read(&format!("{name}.pb"));
    let def = Definition::decode(&bytes).unwrap_or_else(|e| panic!("{name}.pb: {e}"));
    (bytes, def)
}

#[test]
fn every_testdata_definition_is_checked() {
    let mut found: Vec<String> = std::fs::read_dir(testdata(""))
        .unwrap()
        .filter_map(|e| {
            e.ok()?
                .file_name()
                .into_string()
                .ok()?
                .strip_suffix(".pb")
                .map(str::to_owned)
        })
        .collect();
    found.sort();
    let mut expected: Vec<String> = NAMES.iter().map(|s| s.to_string()).collect();
    expected.sort();
    assert_eq!(found, expected, "a new testdata file needs adding to NAMES");
}

#[test]
fn digests_match_buildkit() {
    for name in NAMES {
        let (_, def) = load(name);
        let tsv = String::from_utf8(read(&format!("{name}.digests.tsv"))).unwrap();
        let expected: Vec<(&str, &str)> = tsv
            .lines()
            .map(|l| {
                let mut f = l.split('\t');
                (f.next().unwrap(), f.next().unwrap())
            })
            .collect();
        assert_eq!(def.ops().len(), expected.len(), "{name}: op count");
        for (op, (digest, kind)) in def.ops().iter().zip(&expected) {
            assert_eq!(op.digest().as_str(), *digest, "{name}: digest");
            let got = op.op().op.as_ref().map_or("terminal", |k| k.name());
            assert_eq!(
                got,
                kind.trim_matches(|c| c == '(' || c == ')'),
                "{name}: kind of {digest}"
            );
        }
    }
}

#[test]
fn re_encoding_is_byte_identical() {
    for name in NAMES {
        let (bytes, def) = load(name);
        for op in def.ops() {
            assert!(
                op.is_canonical(),
                "{name}: op {} re-encodes differently",
                op.digest()
            );
            assert_eq!(op.op().encode_to_vec(), op.raw());
        }
        assert_eq!(
            def.to_bytes(),
            bytes,
            "{name}: definition re-encodes differently"
        );
        // And through the plain wire struct, not only the loaded form.
        let wire = cairn_llb::pb::Definition::decode(bytes.as_slice()).unwrap();
        assert_eq!(wire.encode_to_vec(), bytes, "{name}: wire definition");
    }
}

#[test]
fn testdata_validates_and_targets_the_last_ops_input() {
    for name in NAMES {
        let (_, def) = load(name);
        let last_input = def.ops().last().unwrap().op().inputs[0].digest.clone();
        let graph = def.validate().unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(graph.target().digest.as_str(), last_input, "{name}");
        assert_eq!(graph.target().index, 0);
        let order: Vec<_> = graph.topological().map(|o| o.digest().clone()).collect();
        assert_eq!(
            order.last(),
            Some(&graph.target().digest),
            "{name}: target comes last"
        );
        // Every op's inputs come before it.
        for (pos, d) in order.iter().enumerate() {
            for e in graph.inputs(d).unwrap() {
                let at = order.iter().position(|x| x == &e.digest).unwrap();
                assert!(at < pos, "{name}: {} before its input {}", d, e.digest);
            }
        }
    }
}

#[test]
fn dump_json_matches_buildctl() {
    for name in NAMES {
        let (_, def) = load(name);
        let got = dump::json(&def);
        let want = String::from_utf8(read(&format!("{name}.json"))).unwrap();
        // Semantic comparison first, for a readable failure…
        let parse = |s: &str| -> Vec<serde_json::Value> {
            s.lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect()
        };
        assert_eq!(parse(&got), parse(&want), "{name}: dump-llb JSON differs");
        // …then the exact text, key order and Go's escaping included.
        assert_eq!(got, want, "{name}: dump-llb text differs");
    }
}

#[test]
fn dot_has_a_node_per_op_and_an_edge_per_input() {
    let (_, def) = load("diffmerge");
    let dot = dump::dot(&def);
    assert!(dot.starts_with("digraph {\n") && dot.ends_with("}\n"));
    let nodes = dot
        .lines()
        .filter(|l| l.contains("[label=") && !l.contains("->"))
        .count();
    let edges = dot.lines().filter(|l| l.contains("->")).count();
    assert_eq!(nodes, def.ops().len());
    assert_eq!(
        edges,
        def.ops().iter().map(|o| o.op().inputs.len()).sum::<usize>()
    );
    assert!(dot.contains(r#"[label="merge" shape="invtriangle"]"#));
    assert!(dot.contains(
        r#"[label="mkdir{path=/dir},mkfile{path=/dir/f},rm{path=/nothing}" shape="note"]"#
    ));
}

#[test]
fn vertex_names_follow_buildkit() {
    let (_, def) = load("diffmerge");
    let graph = def.validate().unwrap();
    let names: Vec<&str> = graph
        .topological()
        .map(|o| graph.vertex_name(o.digest()).unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "docker-image://127.0.0.1:5000/library/busybox:latest",
            "make a",
            "diff a",
            "files",
            "docker-image://127.0.0.1:5000/library/layered:latest",
            "merge all",
            "ls -la /",
        ]
    );
    // Without custom names, merge and diff names nest their inputs' names.
    let (_, b) = load("b");
    let graph = b.validate().unwrap();
    let unnamed = graph
        .topological()
        .find(|o| {
            graph
                .metadata(o.digest())
                .is_some_and(|m| m.description.is_empty())
                && o.op().op.as_ref().is_some_and(|k| k.name() == "file")
        })
        .unwrap();
    assert_eq!(
        graph.vertex_name(unnamed.digest()),
        Some("copy /out/s1.txt /out/")
    );
}
