//! Golden conversions: each `tests/golden/NAME.Dockerfile` (with `NAME.dockerignore` when
//! present) must convert to exactly `NAME.llb.json` (`dump-llb` lines) and
//! `NAME.image.json` (the image config). The expected files are reviewed by eye; after an
//! intended change, regenerate them with `UPDATE_GOLDEN=1` and review the diff.

use std::path::{Path, PathBuf};

use cairn_frontend::convert::{
    ConvertOptions, ImageResolver, ResolveError, ResolvedImage, convert,
};
use cairn_frontend::dockerignore::read_patterns;
use cairn_llb::pb::Platform;

/// Every image resolves to the same small config; the digest is derived from the name so
/// different bases stay distinguishable in the dumps.
struct Resolver;

impl ImageResolver for Resolver {
    fn resolve(&self, reference: &str, platform: &Platform) -> Result<ResolvedImage, ResolveError> {
        let config = serde_json::json!({
            "architecture": platform.architecture, "os": platform.os,
            "config": {"Env": ["PATH=/usr/local/bin:/usr/bin:/bin", "HOME=/root"], "Cmd": ["sh"]},
            "rootfs": {"type": "layers", "diff_ids": ["sha256:1111111111111111111111111111111111111111111111111111111111111111"]},
            "history": [{"created_by": "base layer"}]
        });
        let digest = cairn_llb::Digest::of_bytes(reference.as_bytes()).to_string();
        Ok(ResolvedImage {
            reference: None,
            digest: Some(digest),
            config: config.to_string().into_bytes(),
        })
    }
}

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

fn check(path: &Path, got: &str, failures: &mut Vec<String>) {
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(path, got).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
        return;
    }
    match std::fs::read_to_string(path) {
        Ok(want) if want == got => {}
        Ok(want) => failures.push(format!(
            "{} differs\n--- want\n{want}\n--- got\n{got}",
            path.display()
        )),
        Err(e) => failures.push(format!(
            "{}: {e} (run with UPDATE_GOLDEN=1 to create it)",
            path.display()
        )),
    }
}

#[test]
fn dockerfiles_convert_to_golden_llb() {
    let mut names: Vec<String> = std::fs::read_dir(golden_dir())
        .expect("golden dir")
        .flatten()
        .filter_map(|e| {
            e.file_name()
                .to_str()?
                .strip_suffix(".Dockerfile")
                .map(str::to_string)
        })
        .collect();
    names.sort();
    assert!(names.len() >= 3, "golden cases missing: {names:?}");
    let mut failures = Vec::new();
    for name in &names {
        let dir = golden_dir();
        let src =
            std::fs::read_to_string(dir.join(format!("{name}.Dockerfile"))).expect("Dockerfile");
        let ignore =
            std::fs::read_to_string(dir.join(format!("{name}.dockerignore"))).unwrap_or_default();
        let amd64 = Platform::new("linux", "amd64");
        let opts = ConvertOptions {
            filename: format!("{name}.Dockerfile"),
            target_platform: Some(amd64.clone()),
            build_platform: Some(amd64),
            exclude_patterns: read_patterns(&ignore),
            ..ConvertOptions::default()
        };
        let out = convert(&src, &opts, &Resolver)
            .unwrap_or_else(|e| panic!("{name}:\n{}", e.render(&src)));
        check(
            &dir.join(format!("{name}.llb.json")),
            &cairn_llb::dump::json(&out.definition),
            &mut failures,
        );
        let image = serde_json::to_string_pretty(&out.image).expect("image json") + "\n";
        check(
            &dir.join(format!("{name}.image.json")),
            &image,
            &mut failures,
        );
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
