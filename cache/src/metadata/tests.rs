use cairn_llb::Digest;

use super::*;
use crate::descriptor::{Descriptor, media_types};

fn layer(parent: Option<&Record>, seed: &str) -> NewRecord {
    let descriptor = Descriptor::of_bytes(media_types::OCI_LAYER_GZIP, seed.as_bytes());
    let diff_id = Digest::of_bytes(format!("tar-{seed}").as_bytes());
    let chain_id = Digest::of_bytes(format!("chain-{seed}").as_bytes());
    NewRecord {
        kind: RecordKind::Layer,
        state: RecordState::Complete,
        owner: None,
        parent: parent.map(|p| p.id.clone()),
        parents: Vec::new(),
        blob_chain_id: Some(Digest::of_bytes(format!("blobchain-{seed}").as_bytes())),
        snapshot_id: format!("l-{}", chain_id.hex()),
        chain_id: Some(chain_id),
        blob: Some(LayerBlob {
            descriptor,
            diff_id,
        }),
        description: format!("layer {seed}"),
    }
}

#[test]
fn fresh_database_is_at_the_latest_schema_and_survives_reopen() {
    let root = tempfile::tempdir().expect("tempdir");
    let db = MetadataDb::open(root.path()).expect("open");
    assert_eq!(
        db.schema_version().expect("version"),
        schema::MIGRATIONS.len() as i64
    );
    let base = db.insert_record(&layer(None, "a")).expect("insert");
    let top = db.insert_record(&layer(Some(&base), "b")).expect("insert");
    db.commit_snapshot(&base.snapshot_id, Some(123))
        .expect("snapshot");
    db.link_cache_key("key-1", 0, &top.id).expect("link");
    db.add_blob_source(
        &base.blob.as_ref().expect("blob").descriptor.digest,
        "127.0.0.1:5000/library/busybox",
    )
    .expect("source");
    drop(db);

    let db = MetadataDb::open(root.path()).expect("reopen");
    let got = db.record(&base.id).expect("read").expect("present");
    assert!(got.local);
    assert_eq!(got.snapshot_size, Some(123));
    assert_eq!(got.blob, base.blob);
    let chain = db.layer_ancestry(&top.id).expect("chain");
    assert_eq!(
        chain.iter().map(|r| r.id.clone()).collect::<Vec<_>>(),
        vec![base.id.clone(), top.id.clone()]
    );
    assert!(!chain[1].local, "top is lazy");
    assert_eq!(
        db.cache_key_records("key-1", 0).expect("lookup"),
        vec![top.id.clone()]
    );
    assert!(db.cache_key_records("key-1", 1).expect("lookup").is_empty());
    assert_eq!(
        db.blob_sources(&base.blob.as_ref().expect("blob").descriptor.digest)
            .expect("sources"),
        vec!["127.0.0.1:5000/library/busybox".to_owned()]
    );
}

#[test]
fn migrates_an_empty_database_and_refuses_a_newer_one() {
    let root = tempfile::tempdir().expect("tempdir");
    {
        let c = rusqlite::Connection::open(root.path().join("metadata.db")).expect("create");
        c.execute_batch("CREATE TABLE unrelated (x INTEGER);")
            .expect("ddl");
        assert_eq!(
            c.pragma_query_value(None, "user_version", |r| r.get::<_, i64>(0))
                .expect("v"),
            0
        );
    }
    let db = MetadataDb::open(root.path()).expect("migrate");
    assert_eq!(
        db.schema_version().expect("version"),
        schema::MIGRATIONS.len() as i64
    );
    db.insert_record(&layer(None, "m")).expect("schema usable");
    drop(db);
    {
        let c = rusqlite::Connection::open(root.path().join("metadata.db")).expect("open");
        c.pragma_update(None, "user_version", 99).expect("bump");
    }
    match MetadataDb::open(root.path()) {
        Err(MetadataError::TooNew { found: 99, .. }) => {}
        other => panic!("expected TooNew, got {other:?}"),
    }
}

#[test]
fn get_or_insert_layer_finds_the_existing_record() {
    let root = tempfile::tempdir().expect("tempdir");
    let db = MetadataDb::open(root.path()).expect("open");
    let new = layer(None, "x");
    let key = new.blob_chain_id.clone().expect("chain");
    let a = db.get_or_insert_layer(&key, || new.clone()).expect("first");
    let b = db
        .get_or_insert_layer(&key, || panic!("must not create a second record"))
        .expect("second");
    assert_eq!(a.id, b.id);
    assert_eq!(db.records().expect("list").len(), 1);
}

#[test]
fn two_handles_write_concurrently_without_losing_rows() {
    let root = tempfile::tempdir().expect("tempdir");
    let a = MetadataDb::open(root.path()).expect("a");
    let b = MetadataDb::open(root.path()).expect("b");
    std::thread::scope(|s| {
        for (db, tag) in [(&a, "a"), (&b, "b")] {
            s.spawn(move || {
                for i in 0..40 {
                    let r = db
                        .insert_record(&layer(None, &format!("{tag}{i}")))
                        .expect("insert");
                    db.link_cache_key(&format!("k{tag}{i}"), 0, &r.id)
                        .expect("link");
                }
            });
        }
    });
    assert_eq!(a.records().expect("list").len(), 80);
    assert_eq!(b.cache_key_records("kb7", 0).expect("lookup").len(), 1);
}

#[test]
fn delete_refuses_a_parent_in_use_and_reports_what_is_freed() {
    let root = tempfile::tempdir().expect("tempdir");
    let db = MetadataDb::open(root.path()).expect("open");
    let base = db.insert_record(&layer(None, "p")).expect("insert");
    let child = db.insert_record(&layer(Some(&base), "c")).expect("insert");
    // A second record sharing base's snapshot and blob (same content, found twice).
    let twin = db.insert_record(&layer(None, "p")).expect("insert");
    db.link_cache_key("k", 0, &child.id).expect("link");

    match db.delete_record(&base.id) {
        Err(MetadataError::InUse { users, .. }) => assert_eq!(users, child.id.to_string()),
        other => panic!("expected InUse, got {other:?}"),
    }
    let removed = db.delete_record(&child.id).expect("delete child");
    assert_eq!(removed.snapshots, vec![child.snapshot_id.clone()]);
    assert_eq!(removed.blobs.len(), 1);
    assert!(
        db.cache_key_records("k", 0).expect("lookup").is_empty(),
        "links cascade"
    );
    let removed = db.delete_record(&base.id).expect("delete base");
    assert_eq!(
        removed,
        Removed::default(),
        "twin still uses snapshot and blob"
    );
    let removed = db.delete_record(&twin.id).expect("delete twin");
    assert_eq!(removed.snapshots, vec![twin.snapshot_id.clone()]);
    assert!(matches!(
        db.delete_record(&twin.id),
        Err(MetadataError::NoSuchRecord(_))
    ));
}

#[test]
fn leases_keep_records_and_their_ancestors_alive() {
    let root = tempfile::tempdir().expect("tempdir");
    let db = MetadataDb::open(root.path()).expect("open");
    let base = db.insert_record(&layer(None, "1")).expect("insert");
    let mid = db.insert_record(&layer(Some(&base), "2")).expect("insert");
    let top = db.insert_record(&layer(Some(&mid), "3")).expect("insert");
    let other = db.insert_record(&layer(None, "4")).expect("insert");
    let merge = db
        .insert_record(&NewRecord {
            kind: RecordKind::Merge,
            state: RecordState::Complete,
            owner: None,
            parent: None,
            parents: vec![other.id.clone(), mid.id.clone()],
            blob: None,
            chain_id: None,
            blob_chain_id: None,
            snapshot_id: "merge-1".into(),
            description: String::new(),
        })
        .expect("merge");
    assert_eq!(
        db.record(&merge.id).expect("read").expect("some").parents,
        vec![other.id.clone(), mid.id.clone()]
    );

    let ids = |v: Vec<Record>| {
        let mut v: Vec<RecordId> = v.into_iter().map(|r| r.id).collect();
        v.sort();
        v
    };
    let mut all = vec![
        base.id.clone(),
        mid.id.clone(),
        top.id.clone(),
        other.id.clone(),
        merge.id.clone(),
    ];
    all.sort();
    assert_eq!(ids(db.collectable().expect("c")), all);

    let lease = db
        .add_lease(&merge.id, Some("proc-1"), None)
        .expect("lease");
    assert_eq!(ids(db.collectable().expect("c")), vec![top.id.clone()]);
    let (n, removed) = db.prune_batch(100).expect("prune");
    assert_eq!(n, 1, "only the unleased top goes");
    assert_eq!(removed.snapshots, vec![top.snapshot_id.clone()]);
    assert!(db.record(&top.id).expect("read").is_none());

    db.release_lease(lease).expect("release");
    db.release_lease(lease).expect("release twice is fine");
    let persistent = db.add_lease(&base.id, None, Some("keep")).expect("lease");
    assert_eq!(db.lease_count(&base.id).expect("count"), 1);
    let mut expect = vec![mid.id.clone(), other.id.clone(), merge.id.clone()];
    expect.sort();
    assert_eq!(ids(db.collectable().expect("c")), expect);
    assert_eq!(db.release_named_lease("keep").expect("release"), 1);
    let _ = persistent;
    assert!(db.add_lease(&RecordId::random(), None, None).is_err());
}

#[test]
fn sweeping_a_dead_owner_drops_its_leases_and_unfinished_records() {
    let root = tempfile::tempdir().expect("tempdir");
    let db = MetadataDb::open(root.path()).expect("open");
    let base = db.insert_record(&layer(None, "b")).expect("insert");
    db.add_lease(&base.id, Some("dead"), None).expect("lease");
    db.add_lease(&base.id, Some("alive"), None).expect("lease");
    let mut scratch = layer(Some(&base), "s");
    scratch.kind = RecordKind::Mutable;
    scratch.state = RecordState::Incomplete;
    scratch.owner = Some("dead".into());
    scratch.blob = None;
    let scratch = db.insert_record(&scratch).expect("insert");
    assert_eq!(
        db.owners().expect("owners"),
        vec!["alive".to_owned(), "dead".to_owned()]
    );
    assert!(
        db.collectable().expect("c").is_empty(),
        "incomplete records are live"
    );

    let swept = db.sweep_owner("dead").expect("sweep");
    assert_eq!(swept.leases, 1);
    assert_eq!(
        swept
            .records
            .iter()
            .map(|r| r.id.clone())
            .collect::<Vec<_>>(),
        vec![scratch.id.clone()]
    );
    assert_eq!(swept.removed.snapshots, vec![scratch.snapshot_id.clone()]);
    assert!(db.record(&scratch.id).expect("read").is_none());
    assert_eq!(db.lease_count(&base.id).expect("count"), 1);

    let done = db.insert_record(&{
        let mut m = layer(Some(&base), "m");
        m.kind = RecordKind::Mutable;
        m.state = RecordState::Incomplete;
        m.owner = Some("alive".into());
        m.blob = None;
        m
    });
    let done = done.expect("insert");
    let done = db
        .complete_record(&done.id, RecordKind::Layer, "l-new")
        .expect("complete");
    assert_eq!(
        (done.state, done.kind, done.owner.clone()),
        (RecordState::Complete, RecordKind::Layer, None)
    );
    assert_eq!(done.snapshot_id, "l-new");
}

#[test]
fn prune_batches_delete_long_chains_children_first() {
    let root = tempfile::tempdir().expect("tempdir");
    let db = MetadataDb::open(root.path()).expect("open");
    let mut parent: Option<Record> = None;
    for i in 0..300 {
        let r = db
            .insert_record(&layer(parent.as_ref(), &format!("c{i}")))
            .expect("insert");
        parent = Some(r);
    }
    let mut total = 0;
    loop {
        let (n, removed) = db.prune_batch(64).expect("prune");
        if n == 0 {
            break;
        }
        assert_eq!(removed.snapshots.len(), n);
        total += n;
    }
    assert_eq!(total, 300);
    assert!(db.records().expect("records").is_empty());
}

#[test]
fn a_version_1_database_gains_the_solver_keys_table_and_keeps_its_rows() {
    let root = tempfile::tempdir().expect("tempdir");
    let digest = Digest::of_bytes(b"blob");
    {
        let c = rusqlite::Connection::open(root.path().join("metadata.db")).expect("create");
        c.execute_batch(schema::MIGRATIONS[0]).expect("schema 1");
        c.pragma_update(None, "user_version", 1).expect("version");
        c.execute(
            "INSERT INTO blob_sources (digest, source) VALUES (?1, 'r.example/app')",
            [digest.as_str()],
        )
        .expect("row");
    }
    let db = MetadataDb::open(root.path()).expect("migrate");
    assert_eq!(
        db.schema_version().expect("version"),
        schema::MIGRATIONS.len() as i64
    );
    assert_eq!(
        db.blob_sources(&digest).expect("sources"),
        vec!["r.example/app".to_owned()]
    );
    assert_eq!(db.solver_key("k").expect("lookup"), None);
    db.put_solver_key("k", "canonical", &["r1".to_owned()])
        .expect("put");
    drop(db);
    let db = MetadataDb::open(root.path()).expect("reopen");
    assert_eq!(
        db.solver_key("k").expect("lookup"),
        Some(("canonical".to_owned(), vec!["r1".to_owned()]))
    );
}

/// Many processes may start on one fresh root at once (CI jobs sharing a cache dir). Turning
/// on WAL takes an exclusive lock for which SQLite does not call the busy handler, so every
/// open but the first used to fail with "database is locked". Separate connections in
/// threads contend on the file locks like processes do.
#[test]
fn many_concurrent_opens_of_a_fresh_database_all_succeed() {
    for _round in 0..20 {
        let dir = tempfile::tempdir().unwrap();
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(8));
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let root = dir.path().to_path_buf();
                let barrier = barrier.clone();
                std::thread::spawn(move || {
                    barrier.wait();
                    MetadataDb::open(&root).map(|db| db.schema_version().unwrap())
                })
            })
            .collect();
        for h in handles {
            let version = h.join().unwrap().expect("concurrent open");
            assert_eq!(version, MIGRATIONS_LEN);
        }
    }
}
