//! Size must not make anything fall over: a chain of 10,000 file ops marshals, decodes,
//! validates and drops without deep recursion.

use cairn_llb::Definition;
use cairn_llb::builder::{FileActions, MkdirOptions, scratch};
use cairn_llb::pb::Platform;

#[test]
fn a_chain_of_ten_thousand_file_ops_round_trips() {
    const N: usize = 10_000;
    // Run on a small stack (the default for spawned threads is 2 MiB; use less) so that
    // recursion proportional to depth would show up as a crash here.
    let handle = std::thread::Builder::new()
        .stack_size(256 * 1024)
        .spawn(|| {
            let mut st = scratch().platform(Platform::new("linux", "amd64"));
            for i in 0..N {
                st = st.file(FileActions::new().mkdir(
                    &format!("/d{i}"),
                    0o755,
                    MkdirOptions::default(),
                ));
            }
            let def = st.marshal();
            drop(st);
            assert_eq!(def.ops().len(), N + 1);
            let bytes = def.to_bytes();
            drop(def);
            let graph = Definition::decode(&bytes).unwrap().validate().unwrap();
            assert_eq!(graph.len(), N);
            assert_eq!(graph.topological().count(), N);
        })
        .unwrap();
    handle.join().expect("no stack overflow");
}
