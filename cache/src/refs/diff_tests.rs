//! Diffs against real parts (the host's snapshotter, real mounts, gzip blobs): a run of
//! layers reuses their records and blobs without reading anything, a computed diff keeps
//! its deletions through a merge onto another base, scratch on either side.

use std::time::Duration;

use cairn_llb::Digest;

use cairn_snapshot::{DriverChoice, overlay_works};

use super::tests::{
    Fixture, Source, blob_files, commit_changes, commit_files, fixture_on, layer, read_in,
    three_layers,
};
use super::*;
use crate::error::CacheError;
use crate::metadata::{RecordId, RecordKind};

fn ids(chain: &[crate::metadata::Record]) -> Vec<RecordId> {
    chain.iter().map(|r| r.id.clone()).collect()
}

fn blob_digests(chain: &[crate::metadata::Record]) -> Vec<Digest> {
    chain
        .iter()
        .map(|r| r.blob.as_ref().expect("blob").descriptor.digest.clone())
        .collect()
}

async fn diff(
    f: &Fixture,
    lower: Option<&ImmutableRef>,
    upper: Option<&ImmutableRef>,
) -> Option<ImmutableRef> {
    f.mgr
        .diff(lower, upper, &DescHandlers::new(), "diff")
        .await
        .expect("diff")
}

/// Every driver this host can run: deletions must mean the same on both.
fn fixtures() -> Vec<Fixture> {
    let mut out = vec![fixture_on(DriverChoice::Copy)];
    let probe = tempfile::tempdir().expect("tempdir");
    match overlay_works(probe.path()) {
        Ok(()) => out.push(fixture_on(DriverChoice::Overlay)),
        Err(why) => eprintln!("overlay not tested here: {why}"),
    }
    out
}

fn missing(r: std::io::Result<String>) -> bool {
    matches!(r, Err(e) if e.kind() == std::io::ErrorKind::NotFound)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_diff_of_layers_on_lower_is_those_layers_with_their_blobs() {
    for f in fixtures() {
        layers_on_lower(f).await;
    }
}

async fn layers_on_lower(f: Fixture) {
    let none = DescHandlers::new();
    let a = commit_files(&f.mgr, None, &[("a", "1"), ("gone", "g")]).await;
    let b = commit_files(&f.mgr, Some(&a), &[("b", "2")]).await;
    let c = commit_changes(&f.mgr, Some(&b), &[("c", "3")], &["gone"]).await;
    let upper_chain = c
        .ensure_blobs(&cairn_snapshot::LayerWriteOptions::default())
        .await
        .expect("blobs of upper");
    let stored = f.mgr.content().list().expect("list");

    // Two layers above: a merge of each layer's own changes, exporting their blobs.
    let d = diff(&f, Some(&a), Some(&c)).await.expect("non-empty");
    assert_eq!(d.record().kind, RecordKind::Merge);
    let chain = d
        .ensure_blobs(&cairn_snapshot::LayerWriteOptions::default())
        .await
        .expect("blobs of diff");
    assert_eq!(ids(&chain), vec![b.id().clone(), c.id().clone()]);
    assert_eq!(blob_digests(&chain), blob_digests(&upper_chain[1..]));
    assert_eq!(
        f.mgr.content().list().expect("list"),
        stored,
        "no blob made"
    );
    // One layer above: a diff record whose chain is that layer.
    let one = diff(&f, Some(&b), Some(&c)).await.expect("non-empty");
    assert_eq!(one.record().kind, RecordKind::Diff);
    assert_eq!(
        ids(&one.layer_chain().expect("chain")),
        vec![c.id().clone()]
    );

    // Mounted alone the diff has only what b and c added; onto another base, c's
    // deletion of `gone` deletes that base's `gone` too.
    assert_eq!(read_in(&d, &none, "c").await.expect("c"), "3");
    assert!(missing(read_in(&d, &none, "a").await));
    let other = commit_files(&f.mgr, None, &[("gone", "other"), ("o", "x")]).await;
    let m = f.mgr.merge(&[other, d], "other+diff").expect("merge");
    assert!(missing(read_in(&m, &none, "gone").await), "deletion kept");
    assert_eq!(read_in(&m, &none, "o").await.expect("o"), "x");
    assert_eq!(read_in(&m, &none, "b").await.expect("b"), "2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_computed_diff_whites_out_deletions_and_merges_onto_another_base() {
    for f in fixtures() {
        computed_with_deletions(f).await;
    }
}

async fn computed_with_deletions(f: Fixture) {
    let none = DescHandlers::new();
    let lower = commit_files(
        &f.mgr,
        None,
        &[
            ("keep", "k"),
            ("gone", "g"),
            ("dir/x", "x"),
            ("dir/old", "o"),
        ],
    )
    .await;
    let upper = commit_files(
        &f.mgr,
        None,
        &[("keep", "k2"), ("new", "n"), ("dir/x", "x")],
    )
    .await;
    let d = diff(&f, Some(&lower), Some(&upper))
        .await
        .expect("non-empty");
    assert_eq!(d.record().kind, RecordKind::Diff);
    assert!(
        d.is_lazy().expect("lazy?"),
        "nothing is computed until needed"
    );
    assert_eq!(ids(&d.layer_chain().expect("chain")), vec![d.id().clone()]);

    // Mounted alone: the changes, and no trace of the deletions.
    assert_eq!(read_in(&d, &none, "keep").await.expect("keep"), "k2");
    assert_eq!(read_in(&d, &none, "new").await.expect("new"), "n");
    assert!(missing(read_in(&d, &none, "gone").await));
    assert!(missing(read_in(&d, &none, "dir/old").await));

    // Merged onto a base that has the deleted paths: they go, the rest of it stays.
    let other = commit_files(
        &f.mgr,
        None,
        &[
            ("gone", "og"),
            ("base", "b"),
            ("dir/old", "o2"),
            ("dir/mine", "m"),
        ],
    )
    .await;
    let m = f
        .mgr
        .merge(&[other.clone(), d.clone()], "other+diff")
        .expect("merge");
    assert!(missing(read_in(&m, &none, "gone").await));
    assert!(missing(read_in(&m, &none, "dir/old").await));
    assert_eq!(read_in(&m, &none, "dir/mine").await.expect("mine"), "m");
    assert_eq!(read_in(&m, &none, "base").await.expect("base"), "b");
    assert_eq!(read_in(&m, &none, "keep").await.expect("keep"), "k2");

    // Exported, the diff is one layer with tar whiteouts, a base layer of its own.
    let chain = m
        .ensure_blobs(&cairn_snapshot::LayerWriteOptions::default())
        .await
        .expect("blobs");
    assert_eq!(ids(&chain), vec![other.id().clone(), d.id().clone()]);
    let blob = chain[1].blob.clone().expect("blob");
    let layer = blob_files(&f.mgr, &blob);
    for (path, body) in [
        (".wh.gone", ""),
        ("dir/.wh.old", ""),
        ("keep", "k2"),
        ("new", "n"),
    ] {
        assert_eq!(
            layer.get(path).map(String::as_str),
            Some(body),
            "{path} in {layer:?}"
        );
    }
    assert!(!layer.contains_key("base"));
    assert_eq!(chain[1].chain_id.as_ref(), Some(&blob.diff_id));

    // Everything, bases and placeholders included, is pruned once unreferenced.
    drop((lower, upper, other, d, m, chain));
    assert!(f.mgr.prune().expect("prune").records > 0);
    assert!(f.mgr.metadata().records().expect("records").is_empty());
    assert!(f.mgr.snapshotter().list().expect("list").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn diffs_with_scratch_sides() {
    for f in fixtures() {
        scratch_sides(f).await;
    }
}

async fn scratch_sides(f: Fixture) {
    let none = DescHandlers::new();
    let x = commit_files(&f.mgr, None, &[("a", "1"), ("sub/b", "2")]).await;
    assert!(diff(&f, None, None).await.is_none());
    assert_eq!(diff(&f, None, Some(&x)).await.expect("upper").id(), x.id());
    assert!(diff(&f, Some(&x), Some(&x)).await.is_none());

    // Against scratch, everything x has is deleted: a merge onto y loses those paths.
    let gone = diff(&f, Some(&x), None).await.expect("non-empty");
    let y = commit_files(&f.mgr, None, &[("a", "y"), ("sub/c", "3"), ("z", "z")]).await;
    let m = f.mgr.merge(&[y, gone], "y-x").expect("merge");
    assert!(missing(read_in(&m, &none, "a").await));
    assert!(
        missing(read_in(&m, &none, "sub/c").await),
        "a deleted dir hides all below"
    );
    assert_eq!(read_in(&m, &none, "z").await.expect("z"), "z");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_diff_of_lazy_layers_downloads_nothing_until_mounted() {
    for f in fixtures() {
        lazy_layers(f).await;
    }
}

async fn lazy_layers(f: Fixture) {
    let src = Source::new(Duration::ZERO);
    let chain = three_layers(&src);
    let upper = f
        .mgr
        .get_by_blob(&chain, None, "image")
        .expect("refs")
        .expect("non-empty");
    let lower = f
        .mgr
        .get_by_blob(&chain[..1], None, "base")
        .expect("refs")
        .expect("non-empty");
    let d = diff(&f, Some(&lower), Some(&upper))
        .await
        .expect("non-empty");
    let exported = d.layer_chain().expect("chain");
    assert_eq!(
        blob_digests(&exported),
        chain[1..]
            .iter()
            .map(|b| b.descriptor.digest.clone())
            .collect::<Vec<_>>()
    );
    let all: Vec<&_> = chain.iter().collect();
    let handlers = src.handlers(&all, None);
    assert_eq!(
        d.get_remote(&handlers).expect("remote").descriptors.len(),
        2
    );
    assert!(src.fetches().is_empty(), "nothing downloaded");
    assert!(f.mgr.content().list().expect("list").is_empty());

    // Not a run of upper's layers: the inputs' files are needed, and asked for.
    let (bytes, blob) = layer(&[("other", "o")]);
    src.put(&bytes, &blob.descriptor.digest);
    let other = f
        .mgr
        .get_by_blob(std::slice::from_ref(&blob), None, "other")
        .expect("refs")
        .expect("non-empty");
    match f
        .mgr
        .diff(Some(&other), Some(&upper), &DescHandlers::new(), "d")
        .await
    {
        Err(CacheError::NeedsRemoteProviders { digests }) => assert!(!digests.is_empty()),
        other => panic!("expected NeedsRemoteProviders, got {other:?}"),
    }

    // Mounted, the diff has the two upper layers' files and not the lower's.
    assert_eq!(
        read_in(&d, &handlers, "app/main").await.expect("main"),
        "hello"
    );
    assert_eq!(
        read_in(&d, &handlers, "bin/tool").await.expect("tool"),
        "v2"
    );
    assert!(missing(read_in(&d, &handlers, "etc/os").await));
}
