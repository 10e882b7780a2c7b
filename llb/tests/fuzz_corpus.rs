//! Every seed of the `decode_definition` fuzz target (and every truncation of BuildKit's
//! testdata) goes through decode, dump and validate without panicking.

use std::path::PathBuf;

use cairn_llb::{Definition, dump};

fn exercise(bytes: &[u8]) -> &'static str {
    let Ok(def) = Definition::decode(bytes) else {
        return "undecodable";
    };
    let _ = dump::json(&def);
    let _ = dump::dot(&def);
    let again = Definition::decode(&def.to_bytes())
        .expect("a decoded definition re-encodes to decodable bytes");
    assert_eq!(again.ops().len(), def.ops().len());
    match def.validate() {
        Ok(graph) => {
            assert!(graph.topological().count() >= 1);
            "valid"
        }
        Err(e) => {
            assert!(!e.to_string().is_empty());
            "invalid"
        }
    }
}

#[test]
fn fuzz_seed_corpus_never_panics() {
    let dir = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../fuzz/corpus/decode_definition"
    ));
    let mut seen = std::collections::BTreeMap::new();
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        *seen.entry(exercise(&bytes)).or_insert(0) += 1;
    }
    // The corpus covers all three outcomes.
    for outcome in ["undecodable", "valid", "invalid"] {
        assert!(
            seen.get(outcome).copied().unwrap_or(0) > 0,
            "no {outcome} seed: {seen:?}"
        );
    }
}

#[test]
fn every_truncation_of_buildkit_testdata_is_handled() {
    for name in ["a", "b", "pull", "diffmerge"] {
        let path = format!(
            "{}/../../shared/testdata/llb/{name}.pb",
            env!("CARGO_MANIFEST_DIR")
        );
        let bytes = std::fs::read(&path).unwrap();
        for cut in 0..bytes.len() {
            exercise(&bytes[..cut]);
        }
        assert_eq!(exercise(&bytes), "valid", "{name}");
    }
}
