//! `cairn du` and `cairn prune`: what the state root holds and freeing it, in the shape
//! of `buildctl du` / `buildctl prune`.

use std::io::Write;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, anyhow};
use cairn_solver::worker::{PruneRequest, UsageReport};

use crate::exit::UsageError;
use crate::progress::format::bytes;
use crate::settings::Settings;
use crate::units::{parse_duration, parse_size};

#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct DuArgs {
    /// One block per record with every field, instead of the table.
    #[arg(short, long)]
    pub verbose: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct PruneArgs {
    /// Also remove `RUN --mount=type=cache` directories.
    #[arg(short, long)]
    pub all: bool,
    /// Keep this much (e.g. `10GB`), removing least recently used records first.
    #[arg(long = "keep-storage", value_name = "SIZE", value_parser = size_arg)]
    pub keep_storage: Option<u64>,
    /// `until=DURATION`: only records unused for longer than that (e.g. `until=24h`).
    #[arg(long, value_name = "FILTER", value_parser = filter_arg)]
    pub filter: Vec<Duration>,
}

fn size_arg(s: &str) -> Result<u64, String> {
    parse_size(s).map_err(|e| e.to_string())
}

fn filter_arg(s: &str) -> Result<Duration, String> {
    let Some((key, value)) = s.split_once('=') else {
        return Err(format!("filter {s:?} is not KEY=VALUE (e.g. until=24h)"));
    };
    if key != "until" {
        return Err(format!(
            "unknown filter {key:?}{} (supported: until)",
            crate::suggest::hint(key, &["until"])
        ));
    }
    parse_duration(value).map_err(|e| e.to_string())
}

fn ago(secs: i64) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let d = (now - secs).max(0);
    match d {
        0..60 => format!("{d} seconds ago"),
        60..3600 => format!("{} minutes ago", d / 60),
        3600..86400 => format!("{} hours ago", d / 3600),
        _ => format!("{} days ago", d / 86400),
    }
}

/// The `du` table (or blocks with `--verbose`) and the totals.
pub fn render_usage(r: &UsageReport, verbose: bool, out: &mut dyn Write) -> std::io::Result<()> {
    if verbose {
        for e in &r.entries {
            writeln!(out, "ID:\t\t{}", e.id)?;
            writeln!(out, "Kind:\t\t{}", e.kind)?;
            writeln!(out, "Description:\t{}", e.description)?;
            writeln!(out, "Size:\t\t{}", e.size.map_or("-".into(), bytes))?;
            writeln!(out, "Local:\t\t{}", e.local)?;
            writeln!(out, "Shared:\t\t{}", e.shared)?;
            writeln!(out, "Reclaimable:\t{}", e.reclaimable)?;
            writeln!(out, "Last used:\t{}", ago(e.last_used))?;
            writeln!(out, "Usage count:\t{}\n", e.usage_count)?;
        }
    } else {
        writeln!(
            out,
            "{:<34} {:<11} {:<6} {:>10}  {:<18} DESCRIPTION",
            "ID", "RECLAIMABLE", "STATE", "SIZE", "LAST ACCESSED"
        )?;
        for e in &r.entries {
            let state = if !e.local {
                "lazy"
            } else if e.shared {
                "shared"
            } else {
                "local"
            };
            writeln!(
                out,
                "{:<34} {:<11} {:<6} {:>10}  {:<18} {}",
                e.id,
                e.reclaimable,
                state,
                e.size.map_or("-".into(), bytes),
                ago(e.last_used),
                e.description
            )?;
        }
    }
    writeln!(out, "Blobs:\t\t{}", bytes(r.blob_bytes))?;
    writeln!(out, "Snapshots:\t{}", bytes(r.snapshot_bytes))?;
    writeln!(out, "Cache mounts:\t{}", bytes(r.cache_mount_bytes))?;
    writeln!(out, "Reclaimable:\t{}", bytes(r.reclaimable_bytes))?;
    writeln!(out, "Total:\t\t{}", bytes(r.total_bytes()))
}

pub fn du(settings: Settings, args: DuArgs) -> anyhow::Result<()> {
    let worker = crate::build::open_worker(&settings, None)?;
    let report = worker.disk_usage().context("reading the cache")?;
    let stdout = std::io::stdout();
    render_usage(&report, args.verbose, &mut stdout.lock()).context("writing to stdout")
}

pub fn prune(settings: Settings, args: PruneArgs) -> anyhow::Result<()> {
    if args.filter.len() > 1 {
        return Err(UsageError::new(anyhow!("give --filter until=… at most once")).into());
    }
    let worker = crate::build::open_worker(&settings, None)?;
    let done = worker
        .prune(&PruneRequest {
            all: args.all,
            keep_storage: args.keep_storage,
            unused_for: args.filter.first().copied(),
        })
        .context("pruning the cache")?;
    println!(
        "Removed {} records and {} cache mounts; freed {}",
        done.records,
        done.cache_mounts,
        bytes(done.bytes)
    );
    Ok(())
}

/// The `[gc]` policy, applied after a build: keep the store within `keep-storage` and
/// drop what was unused for `keep-duration`. Only what no build holds is removed.
pub fn apply_gc(worker: &cairn_solver::worker::Worker, settings: &Settings) -> anyhow::Result<()> {
    let gc = &settings.config.gc;
    if !gc.enabled {
        return Ok(());
    }
    if let Some(age) = gc.keep_duration {
        worker.prune(&PruneRequest {
            unused_for: Some(age),
            ..PruneRequest::default()
        })?;
    }
    if let Some(keep) = gc.keep_storage
        && worker.disk_usage()?.total_bytes() > keep
    {
        let done = worker.prune(&PruneRequest {
            keep_storage: Some(keep),
            ..PruneRequest::default()
        })?;
        tracing::info!(records = done.records, freed = done.bytes, "gc after build");
    }
    Ok(())
}
