//! Progress events in BuildKit's shape (`client/graph.go`), so the CLI's renderers and a
//! `rawjson` consumer see what `buildctl` users know. Field names follow BuildKit's JSON
//! tags; log bytes are base64 as Go marshals `[]byte`; times are RFC 3339 in UTC.

use std::collections::VecDeque;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use cairn_llb::Digest;
use serde::{Serialize, Serializer};
use tokio::sync::mpsc::UnboundedSender;

use crate::graph::ProgressGroup;

/// One update; any of the lists may be empty.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SolveStatus {
    #[serde(rename = "vertexes", skip_serializing_if = "Vec::is_empty")]
    pub vertexes: Vec<VertexEvent>,
    #[serde(rename = "statuses", skip_serializing_if = "Vec::is_empty")]
    pub statuses: Vec<VertexStatus>,
    #[serde(rename = "logs", skip_serializing_if = "Vec::is_empty")]
    pub logs: Vec<VertexLog>,
    #[serde(rename = "warnings", skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<VertexWarning>,
}

/// BuildKit's `Vertex`: the state of one step.
#[derive(Debug, Clone, Serialize)]
pub struct VertexEvent {
    pub digest: Digest,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub inputs: Vec<Digest>,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completed: Option<Timestamp>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub cached: bool,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub error: String,
    #[serde(rename = "progressGroup", skip_serializing_if = "Option::is_none")]
    pub progress_group: Option<ProgressGroup>,
}

/// BuildKit's `VertexStatus`: a sub-task such as "extracting sha256:…".
#[derive(Debug, Clone, Serialize)]
pub struct VertexStatus {
    pub id: String,
    pub vertex: Digest,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    pub total: i64,
    pub current: i64,
    pub timestamp: Timestamp,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completed: Option<Timestamp>,
}

/// Which output a log chunk came from (1 = stdout, 2 = stderr, as in BuildKit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Serialize for Stream {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u8(match self {
            Stream::Stdout => 1,
            Stream::Stderr => 2,
        })
    }
}

/// BuildKit's `VertexLog`: a chunk of a step's output.
#[derive(Debug, Clone, Serialize)]
pub struct VertexLog {
    pub vertex: Digest,
    pub stream: Stream,
    #[serde(serialize_with = "base64")]
    pub data: Vec<u8>,
    pub timestamp: Timestamp,
}

/// BuildKit's `SourceInfo` in a warning: where in the definition file it points.
#[derive(Debug, Clone, Serialize)]
pub struct SourceInfo {
    pub filename: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
}

/// BuildKit's `VertexWarning`.
#[derive(Debug, Clone, Serialize)]
pub struct VertexWarning {
    pub vertex: Digest,
    pub level: i32,
    #[serde(serialize_with = "base64")]
    pub short: Vec<u8>,
    #[serde(serialize_with = "base64_list", skip_serializing_if = "Vec::is_empty")]
    pub detail: Vec<Vec<u8>>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub url: String,
    #[serde(rename = "sourceInfo", skip_serializing_if = "Option::is_none")]
    pub source_info: Option<SourceInfo>,
}

/// A point in time that serialises as RFC 3339 with nanoseconds, like Go's `time.Time`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Timestamp(pub SystemTime);

impl Timestamp {
    pub fn now() -> Timestamp {
        Timestamp(SystemTime::now())
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", rfc3339(self.0))
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&rfc3339(self.0))
    }
}

fn rfc3339(t: SystemTime) -> String {
    let d = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    // Howard Hinnant's days-to-civil algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:09}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_nanos()
    )
}

fn base64<S: Serializer>(data: &[u8], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&encode_base64(data))
}

fn base64_list<S: Serializer>(data: &[Vec<u8>], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(data.iter().map(|d| encode_base64(d)))
}

/// Standard padded base64, as Go's `encoding/json` writes `[]byte`.
fn encode_base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// How many trailing log lines a vertex keeps for its error message.
const LOG_TAIL_LINES: usize = 10;

struct Subscriber {
    tx: UnboundedSender<SolveStatus>,
    vertex: Digest,
}

#[derive(Default)]
struct MuxState {
    subscribers: Vec<Subscriber>,
    tail: VecDeque<String>,
    partial: Vec<u8>,
}

/// Where a running op writes logs and statuses. One piece of work shared by several
/// solves has one writer; every solve that joined it receives the events under its own
/// vertex digest. Cheap to clone; never blocks.
#[derive(Clone, Default)]
pub struct ProgressWriter {
    inner: Arc<Mutex<MuxState>>,
}

impl fmt::Debug for ProgressWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProgressWriter")
            .field("subscribers", &self.lock().subscribers.len())
            .finish()
    }
}

impl ProgressWriter {
    /// A writer that delivers nowhere (still records the log tail).
    pub fn discard() -> ProgressWriter {
        ProgressWriter::default()
    }

    /// Adds a solve's stream as a receiver of this writer's events, reported under
    /// `vertex`.
    pub fn subscribe(&self, tx: UnboundedSender<SolveStatus>, vertex: Digest) {
        self.lock().subscribers.push(Subscriber { tx, vertex });
    }

    /// A chunk of the op's output.
    pub fn log(&self, stream: Stream, data: &[u8]) {
        let now = Timestamp::now();
        let mut st = self.lock();
        st.partial.extend_from_slice(data);
        while let Some(pos) = st.partial.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = st.partial.drain(..=pos).collect();
            let text = String::from_utf8_lossy(&line[..line.len() - 1]).into_owned();
            if st.tail.len() == LOG_TAIL_LINES {
                st.tail.pop_front();
            }
            st.tail.push_back(text);
        }
        st.subscribers.retain(|s| {
            s.tx.send(SolveStatus {
                logs: vec![VertexLog {
                    vertex: s.vertex.clone(),
                    stream,
                    data: data.to_vec(),
                    timestamp: now,
                }],
                ..SolveStatus::default()
            })
            .is_ok()
        });
    }

    /// A sub-task's progress (`current` of `total`, 0 when unknown).
    pub fn status(
        &self,
        id: &str,
        current: i64,
        total: i64,
        started: Option<Timestamp>,
        completed: Option<Timestamp>,
    ) {
        let now = Timestamp::now();
        self.lock().subscribers.retain(|s| {
            s.tx.send(SolveStatus {
                statuses: vec![VertexStatus {
                    id: id.to_owned(),
                    vertex: s.vertex.clone(),
                    name: id.to_owned(),
                    total,
                    current,
                    timestamp: now,
                    started,
                    completed,
                }],
                ..SolveStatus::default()
            })
            .is_ok()
        });
    }

    /// A warning about the step.
    pub fn warn(&self, level: i32, short: &str, detail: Vec<String>) {
        self.lock().subscribers.retain(|s| {
            s.tx.send(SolveStatus {
                warnings: vec![VertexWarning {
                    vertex: s.vertex.clone(),
                    level,
                    short: short.as_bytes().to_vec(),
                    detail: detail.iter().map(|d| d.as_bytes().to_vec()).collect(),
                    url: String::new(),
                    source_info: None,
                }],
                ..SolveStatus::default()
            })
            .is_ok()
        });
    }

    /// The last complete lines written, plus an unterminated last line.
    pub fn tail(&self) -> Vec<String> {
        let st = self.lock();
        let mut lines: Vec<String> = st.tail.iter().cloned().collect();
        if !st.partial.is_empty() {
            lines.push(String::from_utf8_lossy(&st.partial).into_owned());
            if lines.len() > LOG_TAIL_LINES {
                lines.remove(0);
            }
        }
        lines
    }

    /// Whether both handles write to the same place.
    pub fn same_as(&self, other: &ProgressWriter) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    fn lock(&self) -> MutexGuard<'_, MuxState> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn base64_matches_go() {
        assert_eq!(encode_base64(b""), "");
        assert_eq!(encode_base64(b"f"), "Zg==");
        assert_eq!(encode_base64(b"fo"), "Zm8=");
        assert_eq!(encode_base64(b"foo"), "Zm9v");
        assert_eq!(encode_base64(b"hello\n"), "aGVsbG8K");
    }

    #[test]
    fn timestamps_are_rfc3339_utc() {
        let t = SystemTime::UNIX_EPOCH + Duration::new(1_700_000_000, 5);
        assert_eq!(rfc3339(t), "2023-11-14T22:13:20.000000005Z");
        assert_eq!(
            rfc3339(SystemTime::UNIX_EPOCH + Duration::from_secs(951_782_400)),
            "2000-02-29T00:00:00.000000000Z"
        );
    }

    #[test]
    fn log_fans_out_and_keeps_a_tail() {
        let w = ProgressWriter::discard();
        let (tx1, mut rx1) = tokio::sync::mpsc::unbounded_channel();
        let (tx2, mut rx2) = tokio::sync::mpsc::unbounded_channel();
        let d1 = Digest::of_bytes(b"1");
        let d2 = Digest::of_bytes(b"2");
        w.subscribe(tx1, d1.clone());
        w.subscribe(tx2, d2.clone());
        for i in 0..12 {
            w.log(Stream::Stdout, format!("line {i}\n").as_bytes());
        }
        w.log(Stream::Stderr, b"partial");
        let tail = w.tail();
        assert_eq!(tail.len(), 10);
        assert_eq!(tail.last().map(String::as_str), Some("partial"));
        assert_eq!(tail.first().map(String::as_str), Some("line 3"));
        let first = rx1.try_recv().expect("event for solve 1");
        assert_eq!(first.logs[0].vertex, d1);
        let first = rx2.try_recv().expect("event for solve 2");
        assert_eq!(first.logs[0].vertex, d2);
        let json = serde_json::to_value(&first).expect("serialises");
        assert_eq!(json["logs"][0]["data"], "bGluZSAwCg==");
        assert_eq!(json["logs"][0]["stream"], 1);
    }
}
