//! Fetching one blob into the store exactly once, verified, resumable.
//!
//! Protocol for one digest (see `crate::lock` for the lock table):
//!
//! 1. In one process, concurrent callers share one fetch through the store's `Flight`.
//! 2. Across processes, the fetcher holds `ingest/<hex>.lock` exclusively; the others wait
//!    for it, then find the blob committed and return without fetching.
//! 3. Bytes stream from the provider through a channel into one blocking writer task that
//!    appends to `ingest/<hex>.partial` and hashes as it writes. Size is checked on every
//!    chunk, digest at the end; then the file is fsynced, renamed into `blobs/sha256/<hex>`
//!    and the directory fsynced. Only then may a metadata row point at it.
//! 4. A mismatch deletes the partial and reports expected and actual values: nothing of a
//!    bad blob stays behind.
//!
//! **Resume, not discard.** A partial left by a killed or cancelled fetch is *resumed*: its
//! bytes are re-hashed and the provider is asked for the rest from the partial's length
//! (an HTTP Range request for registries). Because the partial is only ever written under
//! the digest's exclusive lock, it is always a prefix of what some source sent. If the
//! source refuses ranges, or the resumed blob fails verification (a power loss can leave
//! unsynced garbage at the end of a file), the partial is discarded and the fetch restarts
//! from byte 0, once.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use cairn_llb::{Digest, Hasher};
use futures::StreamExt;
use tokio::sync::mpsc;

use super::error::{ContentError, ProviderError};
use super::provider::{ByteStream, ContentProvider};
use super::store::{blob_path, fsync_dir, ingest_dir};
use crate::descriptor::Descriptor;
use crate::flight::ProgressSink;
use crate::lock::{FileLock, LockMode};

/// Progress of one blob fetch, as every waiter sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngestProgress {
    pub digest: Digest,
    /// Bytes present so far, including resumed ones.
    pub done: u64,
    pub total: u64,
    /// Bytes that were already on disk from an earlier, interrupted fetch.
    pub resumed_from: u64,
}

/// Chunks in flight between the network and the writer: bounds memory to a few chunks.
const CHANNEL_DEPTH: usize = 16;

/// Fetches `desc` into the store under `content_dir` unless it is there already.
pub(crate) async fn fetch_blob(
    content_dir: PathBuf,
    desc: Descriptor,
    provider: Arc<dyn ContentProvider>,
    sink: ProgressSink<IngestProgress>,
) -> Result<(), ContentError> {
    let blob = blob_path(&content_dir, &desc.digest);
    if blob.exists() {
        return Ok(());
    }
    let ingest = ingest_dir(&content_dir);
    let hex = desc.digest.hex();
    let lock = FileLock::acquire(&ingest.join(format!("{hex}.lock")), LockMode::Exclusive).await?;
    if blob.exists() {
        // Another process fetched it while we waited.
        lock.remove_and_release()?;
        return Ok(());
    }
    let partial = ingest.join(format!("{hex}.partial"));
    let offset = resumable_len(&partial, desc.size)?;
    match transfer(&partial, &desc, offset, &provider, &sink).await {
        Ok(()) => {}
        Err(e) if offset > 0 && restart_helps(&e) => {
            tracing::info!(digest = %desc.digest, offset, error = %e, "discarding partial blob, fetching from the start");
            discard(&partial)?;
            transfer(&partial, &desc, 0, &provider, &sink).await?;
        }
        Err(e) => return Err(e),
    }
    std::fs::rename(&partial, &blob)
        .map_err(ContentError::io("renaming verified blob into place", &blob))?;
    fsync_dir(blob.parent().unwrap_or(&content_dir))?;
    lock.remove_and_release()?;
    Ok(())
}

/// Whether a failed resumed fetch may succeed from byte 0: the source refused the range,
/// or the kept prefix was not what the source holds.
fn restart_helps(e: &ContentError) -> bool {
    match e {
        ContentError::SizeMismatch { .. } | ContentError::DigestMismatch { .. } => true,
        ContentError::Provider { source, .. } => {
            matches!(**source, ProviderError::RangeNotSupported { .. })
        }
        _ => false,
    }
}

/// Length of a usable partial: a prefix no longer than the blob.
fn resumable_len(partial: &Path, size: u64) -> Result<u64, ContentError> {
    match std::fs::metadata(partial) {
        Ok(m) if m.len() <= size => Ok(m.len()),
        Ok(_) => Ok(0),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
        Err(e) => Err(ContentError::io("inspecting partial blob", partial)(e)),
    }
}

/// One attempt from `offset`. A mismatch discards the partial; any other failure keeps it
/// for a later resume.
async fn transfer(
    partial: &Path,
    desc: &Descriptor,
    offset: u64,
    provider: &Arc<dyn ContentProvider>,
    sink: &ProgressSink<IngestProgress>,
) -> Result<(), ContentError> {
    let digest = &desc.digest;
    // A partial that is already whole (a crash between the last write and the rename)
    // only needs verifying; asking a registry for a range starting at the end would
    // earn a 416.
    let mut stream: ByteStream = if offset == desc.size {
        futures::stream::empty().boxed()
    } else {
        provider
            .fetch(desc, offset)
            .await
            .map_err(|e| provider_error(digest, e))?
    };
    let (tx, rx) = mpsc::channel::<Bytes>(CHANNEL_DEPTH);
    let writer = {
        let partial = partial.to_owned();
        tokio::task::spawn_blocking(move || write_partial(&partial, offset, rx))
    };
    let mut done = offset;
    let mut received: Result<(), ContentError> = Ok(());
    sink.send(progress(desc, done, offset));
    while let Some(chunk) = stream.next().await {
        let chunk = match chunk {
            Ok(c) => c,
            Err(e) => {
                received = Err(provider_error(digest, e));
                break;
            }
        };
        done += chunk.len() as u64;
        if done > desc.size {
            received = Err(ContentError::SizeMismatch {
                digest: digest.clone(),
                expected: desc.size,
                actual: done,
            });
            break;
        }
        if tx.send(chunk).await.is_err() {
            break; // the writer failed; its error is reported below
        }
        sink.send(progress(desc, done, offset));
    }
    drop(tx);
    drop(stream);
    let written = writer.await.unwrap_or_else(|join| {
        Err(ContentError::io("writing partial blob", partial)(
            std::io::Error::other(join.to_string()),
        ))
    });
    let hasher = match (written, received) {
        (Err(e), _) => return Err(e),
        (Ok(_), Err(e @ ContentError::SizeMismatch { .. })) => {
            discard(partial)?;
            return Err(e);
        }
        // Keep what arrived: the next attempt resumes from it.
        (Ok(_), Err(e)) => return Err(e),
        (Ok(h), Ok(())) => h,
    };
    let size = hasher.len();
    if size != desc.size {
        discard(partial)?;
        return Err(ContentError::SizeMismatch {
            digest: digest.clone(),
            expected: desc.size,
            actual: size,
        });
    }
    let actual = hasher.finalize();
    if &actual != digest {
        discard(partial)?;
        return Err(ContentError::DigestMismatch {
            expected: digest.clone(),
            actual,
            size,
        });
    }
    Ok(())
}

fn progress(desc: &Descriptor, done: u64, resumed_from: u64) -> IngestProgress {
    IngestProgress {
        digest: desc.digest.clone(),
        done,
        total: desc.size,
        resumed_from,
    }
}

fn provider_error(digest: &Digest, e: ProviderError) -> ContentError {
    ContentError::Provider {
        digest: digest.clone(),
        source: Arc::new(e),
    }
}

fn discard(partial: &Path) -> Result<(), ContentError> {
    match std::fs::remove_file(partial) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(ContentError::io("removing rejected partial blob", partial)(
            e,
        )),
    }
}

/// The blocking half: re-hashes the kept prefix, appends every received chunk, fsyncs.
/// Returns the hasher over the whole file.
fn write_partial(
    partial: &Path,
    offset: u64,
    mut rx: mpsc::Receiver<Bytes>,
) -> Result<Hasher, ContentError> {
    let io = |op| ContentError::io(op, partial);
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .read(true)
        .write(true)
        .truncate(false)
        .open(partial)
        .map_err(io("opening partial blob"))?;
    file.set_len(offset)
        .map_err(io("truncating partial blob"))?;
    let mut hasher = Hasher::new();
    if offset > 0 {
        let mut buf = vec![0u8; 256 * 1024];
        let mut reader = (&file).take(offset);
        loop {
            let n = reader
                .read(&mut buf)
                .map_err(io("re-reading partial blob"))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
        }
    }
    use std::io::Seek;
    file.seek(std::io::SeekFrom::Start(offset))
        .map_err(io("seeking partial blob"))?;
    while let Some(chunk) = rx.blocking_recv() {
        file.write_all(&chunk).map_err(io("writing partial blob"))?;
        hasher.update(&chunk);
    }
    file.sync_all().map_err(io("syncing partial blob"))?;
    Ok(hasher)
}
