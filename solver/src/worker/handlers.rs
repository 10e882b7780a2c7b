//! Descriptor handlers found through the ancestor walk, with their progress routed to
//! the vertex that needs the bytes (a pull shows under the step that waited for it).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use cairn_cache::refs::{LayerPhase, LayerProgress};
use cairn_cache::{DescHandler, DescHandlers};
use cairn_llb::Digest;

use crate::cache_opts::CacheOpts;
use crate::progress::{ProgressWriter, Timestamp};

const PREFIX: &str = "desc-handler:";

/// The descriptor handlers among `opts`, reporting to `progress`.
pub(crate) fn handlers_from(opts: &CacheOpts, progress: &ProgressWriter) -> DescHandlers {
    let sink = progress_sink(progress.clone());
    opts.keys()
        .filter_map(|k| {
            let digest = Digest::parse(k.strip_prefix(PREFIX)?).ok()?;
            let h = opts.get_as::<DescHandler>(k)?;
            let mut h = (*h).clone();
            h.progress = Some(Arc::clone(&sink));
            Some((digest, h))
        })
        .collect()
}

/// Layer progress as vertex statuses, named as BuildKit names them (what displays count
/// as pulled bytes): the blob digest with bytes while downloading, then
/// `extracting sha256:…`, each with its start and completion time.
fn progress_sink(progress: ProgressWriter) -> cairn_cache::refs::ProgressSink {
    let started: Mutex<HashMap<String, Timestamp>> = Mutex::new(HashMap::new());
    Arc::new(move |p: LayerProgress| {
        let (id, done) = match p.phase {
            LayerPhase::Waiting | LayerPhase::Downloading => {
                (p.digest.to_string(), p.done >= p.total && p.total > 0)
            }
            LayerPhase::Extracting => (format!("extracting {}", p.digest), false),
            LayerPhase::Done => (format!("extracting {}", p.digest), true),
        };
        let now = Timestamp::now();
        let start = {
            let mut m = started.lock().unwrap_or_else(|e| e.into_inner());
            if p.phase == LayerPhase::Extracting || p.phase == LayerPhase::Done {
                // Extraction starts where the download ended: close the pull line.
                let pull = p.digest.to_string();
                if let Some(s) = m.remove(&pull) {
                    progress.status(&pull, p.total as i64, p.total as i64, Some(s), Some(now));
                }
            }
            *m.entry(id.clone()).or_insert(now)
        };
        let (current, total) = match p.phase {
            LayerPhase::Extracting | LayerPhase::Done => (0, 0),
            _ => (p.done as i64, p.total as i64),
        };
        progress.status(&id, current, total, Some(start), done.then_some(now));
    })
}
