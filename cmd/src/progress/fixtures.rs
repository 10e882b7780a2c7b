//! Recorded event sequences for the renderer tests, with fixed timestamps so every
//! duration in the output is deterministic.

use std::time::{Duration, SystemTime};

use cairn_llb::Digest;
use cairn_solver::progress::{
    SolveStatus, Stream, Timestamp, VertexEvent, VertexLog, VertexStatus,
};

pub fn at(ms: u64) -> Timestamp {
    Timestamp(
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000) + Duration::from_millis(ms),
    )
}

pub fn digest(n: u8) -> Digest {
    Digest::of_bytes(&[n])
}

pub fn vertex(
    d: &Digest,
    name: &str,
    started: Option<u64>,
    completed: Option<u64>,
    cached: bool,
    error: &str,
) -> SolveStatus {
    SolveStatus {
        vertexes: vec![VertexEvent {
            digest: d.clone(),
            inputs: Vec::new(),
            name: name.to_owned(),
            started: started.map(at),
            completed: completed.map(at),
            cached,
            error: error.to_owned(),
            progress_group: None,
        }],
        ..SolveStatus::default()
    }
}

pub fn log(d: &Digest, ms: u64, text: &str) -> SolveStatus {
    SolveStatus {
        logs: vec![VertexLog {
            vertex: d.clone(),
            stream: Stream::Stdout,
            data: text.as_bytes().to_vec(),
            timestamp: at(ms),
        }],
        ..SolveStatus::default()
    }
}

pub fn status(
    d: &Digest,
    id: &str,
    current: i64,
    total: i64,
    ms: u64,
    started: Option<u64>,
    completed: Option<u64>,
) -> SolveStatus {
    SolveStatus {
        statuses: vec![VertexStatus {
            id: id.to_owned(),
            vertex: d.clone(),
            name: id.to_owned(),
            total,
            current,
            timestamp: at(ms),
            started: started.map(at),
            completed: completed.map(at),
        }],
        ..SolveStatus::default()
    }
}

pub const BLOB: &str = "sha256:5cc84ad355aaa64f46ea9c7bbcc319a9d808ab15088a27209c9e70ef86e5a2aa";

/// A Dockerfile build: load, resolve, pull one layer, a cached COPY, a RUN with output.
pub fn successful_build() -> Vec<SolveStatus> {
    let (d1, d2, d3, d4, d5) = (digest(1), digest(2), digest(3), digest(4), digest(5));
    let def = "[internal] load build definition from Dockerfile";
    let meta = "[internal] load metadata for docker.io/library/busybox:latest";
    let from = "[1/3] FROM docker.io/library/busybox:latest";
    let run = "[3/3] RUN make";
    vec![
        vertex(&d1, def, Some(0), None, false, ""),
        status(&d1, "transferring dockerfile:", 220, 0, 5, Some(0), Some(5)),
        vertex(&d1, def, Some(0), Some(10), false, ""),
        vertex(&d2, meta, Some(10), None, false, ""),
        vertex(&d2, meta, Some(10), Some(300), false, ""),
        vertex(&d3, from, Some(300), None, false, ""),
        status(&d3, BLOB, 1_000_000, 2_150_000, 500, Some(300), None),
        status(&d3, BLOB, 1_050_000, 2_150_000, 520, Some(300), None),
        status(&d3, BLOB, 2_150_000, 2_150_000, 900, Some(300), Some(900)),
        status(
            &d3,
            &format!("extracting {BLOB}"),
            0,
            0,
            1200,
            Some(900),
            Some(1200),
        ),
        vertex(&d3, from, Some(300), Some(1200), false, ""),
        vertex(&d4, "[2/3] COPY app /app", Some(1200), Some(1200), true, ""),
        vertex(&d5, run, Some(1200), None, false, ""),
        log(&d5, 1323, "building\n"),
        log(&d5, 3100, "done"),
        vertex(&d5, run, Some(1200), Some(3200), false, ""),
    ]
}

pub const EXEC_ERROR: &str =
    "process \"/bin/sh -c false\" did not complete successfully: exit code: 1";

/// A build whose RUN fails while a parallel step is running; the parallel step is
/// cancelled.
pub fn failed_build() -> Vec<SolveStatus> {
    let (d1, d2, d3, d4) = (digest(1), digest(2), digest(3), digest(4));
    let fail = "[2/3] RUN false";
    let other = "[other 1/1] RUN sleep 10";
    vec![
        vertex(
            &d1,
            "[internal] load build definition from Dockerfile",
            Some(0),
            Some(10),
            false,
            "",
        ),
        vertex(
            &d2,
            "[1/3] FROM docker.io/library/busybox:latest",
            Some(10),
            Some(50),
            false,
            "",
        ),
        vertex(&d3, fail, Some(50), None, false, ""),
        vertex(&d4, other, Some(60), None, false, ""),
        log(&d3, 173, "checking things\nabout to fail"),
        log(&d4, 180, "tick\n"),
        log(&d3, 190, "\noops\n"),
        vertex(&d3, fail, Some(50), Some(300), false, EXEC_ERROR),
        vertex(&d4, other, Some(60), Some(310), false, "cancelled"),
    ]
}
