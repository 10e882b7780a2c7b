//! Writes the seed corpus of the `decode_definition` fuzz target: small definitions made
//! with the builder, plus truncated and bit-flipped variants and hand-made edge cases.
//!
//!     cargo run -p cairn-llb --example gen_fuzz_corpus -- fuzz/corpus/decode_definition
//!
//! File names are the sha256 of the contents (as libFuzzer names its own finds), so
//! running it again adds nothing new.

use cairn_llb::builder::{
    BindOptions, ChownSpec, CopyOptions, FileActions, ImageOptions, LocalOptions, MkdirOptions,
    MkfileOptions, RmOptions, SecretOptions, diff, image_with, local, merge, scratch,
};
use cairn_llb::pb::{self, CacheSharingOpt, Platform};
use cairn_llb::{Digest, LoadedOp};
use prost::Message;

fn seeds() -> Vec<Vec<u8>> {
    let amd64 = || ImageOptions {
        platform: Some(Platform::new("linux", "amd64")),
        ..Default::default()
    };
    let base = image_with("busybox", amd64());
    let ctx = local(
        "context",
        LocalOptions {
            follow_paths: vec!["a".into()],
            ..Default::default()
        },
    );
    let run = base
        .run(["sh", "-c", "echo hi > /hi"])
        .mount(
            "/src",
            &ctx,
            BindOptions {
                readonly: true,
                ..Default::default()
            },
        )
        .cache("/cache", "id", CacheSharingOpt::Locked)
        .tmpfs("/tmp", Some(4096))
        .secret(
            "/s",
            SecretOptions {
                id: "s".into(),
                ..Default::default()
            },
        )
        .custom_name("run")
        .root();
    let files = scratch().file(
        FileActions::new()
            .mkdir(
                "/d",
                0o755,
                MkdirOptions {
                    make_parents: true,
                    owner: Some(ChownSpec::ids(1, 1)),
                    ..Default::default()
                },
            )
            .mkfile("/d/f", 0o644, "x", MkfileOptions::default())
            .copy(
                &ctx,
                "a",
                "/d/",
                CopyOptions {
                    allow_wildcard: true,
                    ..Default::default()
                },
            )
            .rm(
                "/d/f",
                RmOptions {
                    allow_not_found: true,
                    ..Default::default()
                },
            ),
    );
    let d = diff(&base, &run);
    let m = merge(&[d.clone(), files.clone(), base.clone()]).ignore_cache();

    let mut out: Vec<Vec<u8>> = [
        base.marshal(),
        ctx.marshal(),
        run.marshal(),
        files.marshal(),
        d.marshal(),
        m.marshal(),
    ]
    .iter()
    .map(|def| def.to_bytes())
    .collect();

    // Hand-made edge cases: empty input, a lone marker, a self-referencing marker, an
    // unknown op field, a negative input index, a dangling input, deep nesting.
    out.push(Vec::new());
    let lone = LoadedOp::from_op(pb::Op::default());
    out.push(
        pb::Definition {
            def: vec![lone.raw().to_vec()],
            ..Default::default()
        }
        .encode_to_vec(),
    );
    let ghost = Digest::of_bytes(b"ghost").to_string();
    let dangling = pb::Op {
        inputs: vec![pb::Input {
            digest: ghost,
            index: 0,
        }],
        ..Default::default()
    };
    let src = LoadedOp::from_op(pb::Op {
        op: Some(pb::OpKind::Source(pb::SourceOp {
            identifier: "local://x".into(),
            ..Default::default()
        })),
        ..Default::default()
    });
    let negative = pb::Op {
        inputs: vec![pb::Input {
            digest: src.digest().to_string(),
            index: -1,
        }],
        ..Default::default()
    };
    for last in [dangling, negative] {
        out.push(
            pb::Definition {
                def: vec![src.raw().to_vec(), last.encode_to_vec()],
                ..Default::default()
            }
            .encode_to_vec(),
        );
    }
    out.push(
        pb::Definition {
            def: vec![vec![0x48, 0x01], src.raw().to_vec()],
            ..Default::default()
        }
        .encode_to_vec(),
    );
    // 40 nested BuildOp definitions: exercises the decoder's recursion limit.
    let mut nested = pb::Definition::default();
    for _ in 0..40 {
        let build = pb::Op {
            op: Some(pb::OpKind::Build(pb::BuildOp {
                builder: -1,
                def: Some(nested),
                ..Default::default()
            })),
            ..Default::default()
        };
        nested = pb::Definition {
            def: vec![build.encode_to_vec()],
            ..Default::default()
        };
    }
    out.push(nested.encode_to_vec());

    // Truncations and single-byte flips of the builder-made definitions.
    let made: Vec<Vec<u8>> = out[..6].to_vec();
    for (i, bytes) in made.iter().enumerate() {
        for cut in [
            1,
            bytes.len() / 3,
            bytes.len() / 2,
            bytes.len().saturating_sub(1),
        ] {
            out.push(bytes[..cut.min(bytes.len())].to_vec());
        }
        for k in 0..3 {
            let mut flipped = bytes.clone();
            if !flipped.is_empty() {
                let at = (i * 131 + k * 977) % flipped.len();
                flipped[at] ^= 0x80 >> k;
            }
            out.push(flipped);
        }
    }
    out
}

fn main() -> std::io::Result<()> {
    let Some(dir) = std::env::args_os().nth(1) else {
        eprintln!("usage: gen_fuzz_corpus DIR");
        std::process::exit(2);
    };
    let dir = std::path::PathBuf::from(dir);
    std::fs::create_dir_all(&dir)?;
    let mut written = 0;
    for seed in seeds() {
        let path = dir.join(Digest::of_bytes(&seed).hex());
        if !path.exists() {
            std::fs::write(&path, &seed)?;
            written += 1;
        }
    }
    println!("wrote {written} new seed(s) to {}", dir.display());
    Ok(())
}
