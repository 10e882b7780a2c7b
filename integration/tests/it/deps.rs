//! The crate dependency rule of DESIGN.md, checked so it cannot erode:
//! `cmd → frontend, solver → cache → snapshot`, and every crate may use `llb`.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

/// For each workspace crate, the workspace crates it may depend on (normal deps only).
fn allowed() -> BTreeMap<&'static str, BTreeSet<&'static str>> {
    let rules: [(&str, &[&str]); 7] = [
        ("cairn-llb", &[]),
        ("cairn-snapshot", &["cairn-llb"]),
        ("cairn-cache", &["cairn-llb", "cairn-snapshot"]),
        ("cairn-solver", &["cairn-llb", "cairn-cache"]),
        ("cairn-frontend", &["cairn-llb"]),
        ("cairn", &["cairn-llb", "cairn-frontend", "cairn-solver"]),
        (
            "cairn-integration",
            &[
                "cairn-llb",
                "cairn-snapshot",
                "cairn-cache",
                "cairn-solver",
                "cairn-frontend",
            ],
        ),
    ];
    rules
        .into_iter()
        .map(|(k, v)| (k, v.iter().copied().collect()))
        .collect()
}

#[test]
fn dependencies_point_one_way() {
    let out = Command::new(env!("CARGO"))
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo metadata runs");
    assert!(
        out.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("cargo metadata is JSON");
    let rules = allowed();
    let packages = meta["packages"].as_array().expect("packages array");
    let names: BTreeSet<&str> = packages.iter().filter_map(|p| p["name"].as_str()).collect();
    assert_eq!(
        names,
        rules.keys().copied().collect(),
        "workspace crates changed: update the rule table"
    );
    for p in packages {
        let name = p["name"].as_str().unwrap_or_default();
        for d in p["dependencies"].as_array().into_iter().flatten() {
            let dep = d["name"].as_str().unwrap_or_default();
            let is_dev = d["kind"].as_str() == Some("dev");
            if !names.contains(dep) || is_dev {
                continue;
            }
            assert!(
                rules[name].contains(dep),
                "{name} depends on {dep}, which DESIGN.md's direction forbids"
            );
        }
    }
}
