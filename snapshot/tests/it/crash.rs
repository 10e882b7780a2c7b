//! A process killed with SIGKILL in the middle of an extraction leaves a staging dir; the
//! next `open` sweeps it, but never a staging dir another live process still holds.

use std::io::Read;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use cairn_snapshot::{ApplyOptions, OverlaySnapshotter, Snapshotter, apply_layer};

use crate::support::{E, TarBuilder, need_root};

const CHILD_ENV: &str = "CAIRN_SNAPSHOT_CRASH_CHILD";

/// Hands out the tar, then blocks forever half way, after saying so in `ready`.
struct StallingReader {
    data: Vec<u8>,
    pos: usize,
    ready: std::path::PathBuf,
}

impl Read for StallingReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.pos >= self.data.len() / 2 {
            std::fs::write(&self.ready, b"1")?;
            loop {
                std::thread::sleep(Duration::from_secs(60));
            }
        }
        let n = buf.len().min(self.data.len() / 2 - self.pos).min(512);
        buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

#[test]
#[ignore = "run only as the child of sigkill_mid_extraction_is_swept_on_open"]
fn crash_child() {
    let Ok(root) = std::env::var(CHILD_ENV) else {
        return;
    };
    let root = Path::new(&root);
    let sn = OverlaySnapshotter::open(root).unwrap();
    let staged = sn.stage_layer().unwrap();
    let mut t = TarBuilder::new();
    for i in 0..200 {
        t = t.entry(E::File(&format!("f{i:03}"), &[b'x'; 1000]));
    }
    let r = StallingReader {
        data: t.build(),
        pos: 0,
        ready: root.join("ready"),
    };
    let _ = apply_layer(r, &staged.path(), &ApplyOptions::staged());
    unreachable!("the reader never finishes");
}

#[test]
fn sigkill_mid_extraction_is_swept_on_open() {
    if !need_root("sigkill_mid_extraction_is_swept_on_open") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let sn = OverlaySnapshotter::open(root).unwrap();
    // A live stage of this process: must survive the sweep.
    let live = sn.stage_layer().unwrap();
    std::fs::write(live.path().join("mine"), b"m").unwrap();

    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "crash::crash_child", "--ignored", "--nocapture"])
        .env(CHILD_ENV, root)
        .spawn()
        .unwrap();
    let start = Instant::now();
    while !root.join("ready").exists() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "child never got half way"
        );
        if let Some(st) = child.try_wait().unwrap() {
            panic!("child exited early: {st}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    rustix::process::kill_process(
        rustix::process::Pid::from_child(&child),
        rustix::process::Signal::KILL,
    )
    .unwrap();
    child.wait().unwrap();

    let staged_dirs = || std::fs::read_dir(root.join("staging")).unwrap().count();
    assert_eq!(
        staged_dirs(),
        2,
        "the killed child's partial layer and ours"
    );
    let dead: Vec<_> = std::fs::read_dir(root.join("staging"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| !p.join("fs/mine").exists())
        .collect();
    assert!(
        std::fs::read_dir(dead[0].join("fs")).unwrap().count() > 10,
        "child extracted some files"
    );

    let reopened = OverlaySnapshotter::open(root).unwrap();
    assert_eq!(staged_dirs(), 1);
    assert!(live.path().join("mine").exists());
    assert!(reopened.list().unwrap().is_empty());
    drop(live);
    assert_eq!(staged_dirs(), 0);
}
