//! Untrusted bytes through everything `cairn solve` does before running anything:
//! decode, validate, dump. None of it may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(def) = cairn_llb::Definition::decode(data) else { return };
    let _ = cairn_llb::dump::json(&def);
    let _ = cairn_llb::dump::dot(&def);
    // What decodes re-encodes to a decodable definition.
    let again = cairn_llb::Definition::decode(&def.to_bytes()).expect("re-encoded definition decodes");
    assert_eq!(again.ops().len(), def.ops().len());
    if let Ok(graph) = def.validate() {
        for op in graph.topological() {
            let _ = graph.inputs(op.digest());
        }
    }
});
