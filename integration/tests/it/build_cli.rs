//! What a terminal or a CI log sees from `cairn build`: each progress mode on a real build,
//! the tty bars under a pseudo-terminal, and the GC policy applied after a build.

use std::fs;
use std::process::Command;

use cairn_integration::cli::{cairn, run_ok};
use cairn_integration::skip_unless;
use cairn_integration::tools::require_tool;
use serde_json::Value;

use super::build::setup;

const DOCKERFILE: &str = "FROM busybox\nRUN echo from-the-step\nCOPY a.txt /a.txt\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_rawjson_and_quiet_on_a_real_build() {
    let s = skip_unless!(setup().await);
    s.write("Dockerfile", DOCKERFILE);
    s.write("a.txt", "a\n");

    let plain = run_ok(&mut s.build(&["--no-cache"]));
    let text = String::from_utf8_lossy(&plain.stderr);
    // `#N` numbers appear in order of first appearance, 1, 2, 3, … without gaps.
    let mut seen: Vec<u32> = Vec::new();
    for line in text.lines() {
        if let Some(n) = line
            .strip_prefix('#')
            .and_then(|r| r.split_whitespace().next())
            .and_then(|n| n.parse::<u32>().ok())
            && !seen.contains(&n)
        {
            seen.push(n);
        }
    }
    let expected: Vec<u32> = (1..=seen.len() as u32).collect();
    assert_eq!(seen, expected, "{text}");
    assert!(
        text.contains("from-the-step"),
        "step output is shown: {text}"
    );
    assert!(text.contains("Build finished"), "{text}");

    let raw = run_ok(
        cairn(&s.root())
            .args(["build", "--no-cache", "--progress", "rawjson"])
            .arg(s.context()),
    );
    let mut events = 0;
    let mut summary = None;
    for line in String::from_utf8_lossy(&raw.stderr).lines() {
        if !line.starts_with('{') {
            continue;
        }
        let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{line}: {e}"));
        if v.get("summary").is_some() {
            summary = Some(v["summary"].clone());
        }
        events += 1;
    }
    assert!(events > 3, "{events} events");
    let summary = summary.expect("a summary event");
    assert!(summary["run"].as_u64().unwrap_or(0) >= 2, "{summary}");

    let quiet = run_ok(
        cairn(&s.root())
            .args(["build", "--progress", "quiet", "-o"])
            .arg(format!("type=oci,dest={}", s.out("q.tar").display()))
            .arg(s.context()),
    );
    assert!(
        quiet.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&quiet.stderr)
    );
    let out = String::from_utf8_lossy(&quiet.stdout);
    assert!(
        out.trim().starts_with("sha256:") && out.lines().count() == 1,
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tty_bars_render_and_finish_under_a_pseudo_terminal() {
    let s = skip_unless!(setup().await);
    let script = skip_unless!(require_tool("script", "util-linux"));
    s.write("Dockerfile", DOCKERFILE);
    s.write("a.txt", "a\n");
    let cmd = format!(
        "{} --root {} build {}",
        cairn_integration::cli::cairn_bin().display(),
        s.root().display(),
        s.context().display()
    );
    let log = s.out("tty.log");
    let out = Command::new(&script)
        .args(["-q", "-e", "-c", &cmd])
        .arg(&log)
        .env("TERM", "xterm")
        .env("COLUMNS", "120")
        .output()
        .unwrap();
    let typed = fs::read_to_string(&log).unwrap_or_default();
    assert!(out.status.success(), "{typed}");
    // The tty renderer (not plain) drew: finished steps collapse to `=> …` lines.
    assert!(typed.contains("=> "), "{typed}");
    assert!(!typed.contains("#1 "), "plain lines on a terminal: {typed}");
    assert!(typed.contains("Build finished"), "{typed}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gc_policy_trims_the_cache_after_a_build() {
    let s = skip_unless!(setup().await);
    s.write(
        "Dockerfile",
        "FROM busybox\nRUN head -c 3000000 /dev/urandom > /big\n",
    );
    run_ok(&mut s.build(&[]));
    let du = String::from_utf8(run_ok(cairn(&s.root()).arg("du")).stdout).unwrap();
    assert!(du.contains("RUN head -c 3000000"), "{du}");

    let toml = s.root().join("cairn.toml");
    let mut cfg = fs::read_to_string(&toml).unwrap();
    cfg.push_str("\n[gc]\nkeep-storage = \"1MB\"\n");
    fs::write(&toml, cfg).unwrap();
    s.write("Dockerfile", "FROM busybox\nRUN echo small > /small\n");
    run_ok(&mut s.build(&[]));
    let du = String::from_utf8(run_ok(cairn(&s.root()).arg("du")).stdout).unwrap();
    assert!(
        !du.contains("RUN head -c 3000000"),
        "the earlier build's 3 MB step was collected: {du}"
    );
}
