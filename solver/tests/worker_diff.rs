//! DiffOp through the worker: LLB graphs made with the builder, solved on a real state
//! root (the host's snapshotter, overlay where it works), exported as OCI layouts and
//! directories. Checks BuildKit's three cases: upper is lower plus layers (the diff is
//! those layers, same blobs), a computed diff with a deletion merged onto another base,
//! and a diff against scratch.

use std::collections::BTreeMap;
use std::io::Read as _;
use std::path::Path;
use std::sync::Arc;

use cairn_llb::builder::{FileActions, MkfileOptions, RmOptions, State, diff, merge, scratch};
use cairn_llb::definition::LoadedOp;
use cairn_llb::pb::{self, OpKind};
use cairn_llb::{Definition, Graph};
use cairn_solver::ExportSpec;
use cairn_solver::SolveOptions;
use cairn_solver::engine::SolveOutput;
use cairn_solver::worker::{DriverChoice, ImageMeta, RegistryConfig, Session, Worker, WorkerSetup};
use serde_json::Value;

fn open(root: &Path) -> Worker {
    Worker::open(WorkerSetup {
        root: root.to_owned(),
        snapshotter: DriverChoice::Auto,
        registry: RegistryConfig::default(),
        runtimes: Vec::new(),
        max_parallelism: None,
    })
    .expect("worker")
}

fn mkfiles(base: &State, files: &[(&str, &str)]) -> State {
    let mut a = FileActions::new();
    for (path, body) in files {
        a = a.mkfile(path, 0o644, body.as_bytes(), MkfileOptions::default());
    }
    base.file(a)
}

fn rm(base: &State, path: &str) -> State {
    base.file(FileActions::new().rm(path, RmOptions::default()))
}

async fn solve(w: &Worker, s: &State) -> SolveOutput {
    solve_graph(w, s.marshal().validate().expect("valid graph")).await
}

async fn solve_graph(w: &Worker, graph: Graph) -> SolveOutput {
    w.solve(
        &graph,
        Arc::new(Session::default()),
        SolveOptions::default(),
    )
    .await
    .expect("solve")
}

/// A DiffOp with a scratch lower side on top of `upper`'s graph. The builder never makes
/// one (BuildKit's Go client returns `upper` itself), other clients may.
fn diff_from_scratch(upper: &State) -> Graph {
    let mut def = upper.marshal().to_pb();
    let head = def.def.pop().expect("terminator");
    let head = LoadedOp::decode(def.def.len(), head).expect("decode");
    let diff = LoadedOp::from_op(pb::Op {
        inputs: head.op().inputs.clone(),
        op: Some(OpKind::Diff(pb::DiffOp {
            lower: Some(pb::LowerDiffInput {
                input: pb::EMPTY_INPUT,
            }),
            upper: Some(pb::UpperDiffInput { input: 0 }),
        })),
        constraints: Some(pb::WorkerConstraints::default()),
        ..Default::default()
    });
    let terminator = LoadedOp::from_op(pb::Op {
        inputs: vec![pb::Input {
            digest: diff.digest().to_string(),
            index: 0,
        }],
        ..Default::default()
    });
    def.def.push(diff.raw().to_vec());
    def.def.push(terminator.raw().to_vec());
    Definition::from_pb(def)
        .expect("definition")
        .validate()
        .expect("valid graph")
}

async fn export(w: &Worker, out: &SolveOutput, spec: &str) {
    w.export(
        out,
        &ExportSpec::parse(spec).expect("spec"),
        &ImageMeta::default(),
        None,
    )
    .await
    .expect("export");
}

fn read_json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).expect("read")).expect("json")
}

fn blob(layout: &Path, digest: &str) -> std::path::PathBuf {
    let hex = digest.strip_prefix("sha256:").expect("sha256 digest");
    layout.join("blobs/sha256").join(hex)
}

/// The layer digests of the one image in an OCI layout directory.
async fn oci_layers(w: &Worker, out: &SolveOutput, dir: &Path) -> Vec<String> {
    export(
        w,
        out,
        &format!("type=oci,dest={},tar=false", dir.display()),
    )
    .await;
    let index = read_json(&dir.join("index.json"));
    let manifest = read_json(&blob(
        dir,
        index["manifests"][0]["digest"].as_str().expect("digest"),
    ));
    manifest["layers"]
        .as_array()
        .expect("layers")
        .iter()
        .map(|l| l["digest"].as_str().expect("digest").to_owned())
        .collect()
}

/// Entry names of a gzip layer tar in a layout.
fn layer_entries(layout: &Path, digest: &str) -> Vec<String> {
    let mut tar = Vec::new();
    flate2::read::GzDecoder::new(std::fs::File::open(blob(layout, digest)).expect("blob"))
        .read_to_end(&mut tar)
        .expect("gzip");
    tar::Archive::new(&tar[..])
        .entries()
        .expect("tar")
        .map(|e| {
            e.expect("entry")
                .path()
                .expect("path")
                .display()
                .to_string()
        })
        .collect()
}

/// The regular files under `dir` (path → contents).
fn tree(dir: &Path) -> BTreeMap<String, String> {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .map(|e| e.expect("walk"))
        .filter(|e| e.file_type().is_file())
        .map(|e| {
            let rel = e.path().strip_prefix(dir).expect("under dir");
            (
                rel.display().to_string(),
                std::fs::read_to_string(e.path()).expect("read"),
            )
        })
        .collect()
}

fn files(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(p, b)| ((*p).to_owned(), (*b).to_owned()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_diff_of_layers_on_lower_exports_the_upper_layers_blobs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let w = open(&dir.path().join("state"));
    let lower = mkfiles(&scratch(), &[("/a", "1"), ("/gone", "g")]);
    let upper = rm(&mkfiles(&lower, &[("/b", "2")]), "/gone");

    let whole = oci_layers(&w, &solve(&w, &upper).await, &dir.path().join("upper")).await;
    assert_eq!(whole.len(), 3);
    let layout = dir.path().join("diff");
    let out = solve(&w, &diff(&lower, &upper)).await;
    let layers = oci_layers(&w, &out, &layout).await;
    assert_eq!(layers, whole[1..], "the upper's own blobs, reused");
    assert!(
        layer_entries(&layout, &layers[1]).contains(&".wh.gone".to_owned()),
        "the deletion is a whiteout"
    );

    // Merged onto another base, the diff replays both layers, the deletion included.
    let other = mkfiles(&scratch(), &[("/gone", "other"), ("/o", "x")]);
    let out = solve(&w, &merge(&[other, diff(&lower, &upper)])).await;
    let dest = dir.path().join("files");
    export(&w, &out, &format!("type=local,dest={}", dest.display())).await;
    assert_eq!(tree(&dest), files(&[("b", "2"), ("o", "x")]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_computed_diff_deletes_on_another_base() {
    let dir = tempfile::tempdir().expect("tempdir");
    let w = open(&dir.path().join("state"));
    // Two unrelated layers: the diff has to be computed.
    let lower = mkfiles(&scratch(), &[("/keep", "k"), ("/gone", "g")]);
    let upper = mkfiles(&scratch(), &[("/keep", "k2"), ("/new", "n")]);
    let other = mkfiles(&scratch(), &[("/gone", "og"), ("/base", "b")]);
    let result = merge(&[other, diff(&lower, &upper)]);

    let out = solve(&w, &result).await;
    let dest = dir.path().join("files");
    export(&w, &out, &format!("type=local,dest={}", dest.display())).await;
    assert_eq!(
        tree(&dest),
        files(&[("base", "b"), ("keep", "k2"), ("new", "n")])
    );
    let layout = dir.path().join("oci");
    let layers = oci_layers(&w, &out, &layout).await;
    assert_eq!(layers.len(), 2, "the base's layer and the diff's one");
    let mut entries = layer_entries(&layout, &layers[1]);
    entries.sort();
    assert_eq!(entries, vec![".wh.gone", "keep", "new"]);

    // A second solve of the same graph is a cache hit with the same layers.
    let again = solve(&w, &result).await;
    assert!(again.cached);
    assert_eq!(
        oci_layers(&w, &again, &dir.path().join("oci2")).await,
        layers
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_diff_against_scratch_is_the_whole_upper() {
    let dir = tempfile::tempdir().expect("tempdir");
    let w = open(&dir.path().join("state"));
    let upper = mkfiles(&mkfiles(&scratch(), &[("/a", "1")]), &[("/b", "2")]);
    let whole = oci_layers(&w, &solve(&w, &upper).await, &dir.path().join("upper")).await;
    let out = solve_graph(&w, diff_from_scratch(&upper)).await;
    assert_eq!(oci_layers(&w, &out, &dir.path().join("diff")).await, whole);
}
