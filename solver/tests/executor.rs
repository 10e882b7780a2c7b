//! The executor against the real `runc` and a busybox rootfs built from Debian's
//! `busybox-static`. Each test checks, besides its own point, that nothing is left
//! behind: no mount under the test's directories, no bundle, no runtime state.
//!
//! Needs root, `runc` and `/bin/busybox`. Without them the tests skip with a message,
//! except under `CI=true`, where they fail.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use cairn_solver::executor::{
    ExecError, ExecMeta, ExecMount, Executor, MountKind, NetMode, RunRequest, RuncConfig,
    RuncExecutor, RuntimeKind, SecretFile, channel_output, merge_env,
};
use cairn_solver::progress::Stream;
use tokio_util::sync::CancellationToken;

const APPLETS: &[&str] = &[
    "sh", "echo", "id", "cat", "ls", "sleep", "touch", "pwd", "env", "mkdir", "hostname", "stat",
    "grep", "seq", "true", "false", "printf", "rm", "ip",
];

/// Whether the real parts are here; under `CI=true` their absence is a failure.
fn real_parts() -> bool {
    let missing: Vec<&str> = [
        ("runc", which("runc").is_some()),
        ("/bin/busybox", Path::new("/bin/busybox").is_file()),
    ]
    .into_iter()
    .filter(|(_, ok)| !ok)
    .map(|(n, _)| n)
    .collect();
    let root = rustix::process::geteuid().is_root();
    if missing.is_empty() && root {
        return true;
    }
    let why = format!("missing {missing:?}, root={root}");
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("executor tests need runc, busybox-static and root under CI: {why}");
    }
    eprintln!("skipping: {why}");
    false
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

struct Sandbox {
    _dir: tempfile::TempDir,
    base: PathBuf,
    state: PathBuf,
    exec: RuncExecutor,
}

impl Sandbox {
    async fn new() -> Sandbox {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().to_owned();
        let state = base.join("state");
        let mut cfg = RuncConfig::new(&state);
        cfg.tail_lines = 5;
        let exec = RuncExecutor::new(cfg).await.expect("runtime probe");
        Sandbox {
            _dir: dir,
            base,
            state,
            exec,
        }
    }

    /// A fresh busybox rootfs with users `root` and `user` (1000, also in `wheel`).
    fn rootfs(&self, name: &str) -> PathBuf {
        let r = self.base.join(name);
        for d in ["bin", "etc", "tmp", "root", "home/user"] {
            std::fs::create_dir_all(r.join(d)).unwrap();
        }
        std::fs::set_permissions(r.join("tmp"), std::fs::Permissions::from_mode(0o1777)).unwrap();
        std::os::unix::fs::chown(r.join("home/user"), Some(1000), Some(1000)).unwrap();
        std::fs::copy("/bin/busybox", r.join("bin/busybox")).unwrap();
        for a in APPLETS {
            std::os::unix::fs::symlink("busybox", r.join("bin").join(a)).unwrap();
        }
        std::fs::write(
            r.join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000:user:/home/user:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(
            r.join("etc/group"),
            "root:x:0:\nwheel:x:10:user\nuser:x:1000:\n",
        )
        .unwrap();
        r
    }

    /// Nothing of any run is left: no mount below the sandbox, no bundle, no state.
    fn assert_clean(&self) {
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        let base = self.base.to_str().unwrap();
        let leaked: Vec<&str> = mountinfo.lines().filter(|l| l.contains(base)).collect();
        assert!(leaked.is_empty(), "mounts left: {leaked:#?}");
        for sub in ["runs", "runc", "probe"] {
            let entries: Vec<_> = std::fs::read_dir(self.state.join(sub)).unwrap().collect();
            assert!(entries.is_empty(), "{sub} not empty: {entries:?}");
        }
    }
}

struct Outcome {
    result: Result<i32, ExecError>,
    stdout: String,
    stderr: String,
}

fn sh(script: &str) -> ExecMeta {
    ExecMeta::new(vec!["/bin/sh".into(), "-c".into(), script.into()])
}

fn req(rootfs: &Path, meta: ExecMeta) -> RunRequest {
    RunRequest {
        rootfs: rootfs.to_owned(),
        meta,
        mounts: Vec::new(),
    }
}

async fn run(sb: &Sandbox, r: RunRequest) -> Outcome {
    run_with(sb, r, CancellationToken::new()).await
}

async fn run_with(sb: &Sandbox, r: RunRequest, cancel: CancellationToken) -> Outcome {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let result = sb
        .exec
        .run(r, channel_output(tx), cancel)
        .await
        .map(|s| s.code);
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    while let Ok((s, b)) = rx.try_recv() {
        match s {
            Stream::Stdout => stdout.extend(b),
            Stream::Stderr => stderr.extend(b),
        }
    }
    Outcome {
        result,
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    }
}

fn ok(o: &Outcome) {
    assert!(
        matches!(o.result, Ok(0)),
        "{:?}\nstdout: {}\nstderr: {}",
        o.result,
        o.stdout,
        o.stderr
    );
}

#[tokio::test]
async fn probe_picks_runc_and_an_unknown_runtime_fails() {
    if !real_parts() {
        return;
    }
    let sb = Sandbox::new().await;
    assert_eq!(sb.exec.runtime().kind, RuntimeKind::Runc);
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = RuncConfig::new(dir.path());
    cfg.runtimes = vec!["cairn-no-such-runtime".into()];
    let err = RuncExecutor::new(cfg).await.unwrap_err();
    assert!(matches!(err, ExecError::NoRuntime { .. }), "{err}");
    assert!(err.to_string().contains("cairn-no-such-runtime"), "{err}");
    let mut cfg = RuncConfig::new(dir.path());
    cfg.runtimes = vec![which("runc").unwrap()];
    assert!(RuncExecutor::new(cfg).await.is_ok());
    sb.assert_clean();
}

#[tokio::test]
async fn echo_with_env_streams_both_outputs() {
    if !real_parts() {
        return;
    }
    let sb = Sandbox::new().await;
    let rootfs = sb.rootfs("r");
    let mut meta = sh("echo \"$FOO-$BAR\"; echo oops >&2; echo \"$PATH\"; hostname; pwd");
    meta.env = merge_env(&["FOO=image".into(), "BAR=b".into()], &["FOO=step".into()]);
    let o = run(&sb, req(&rootfs, meta)).await;
    ok(&o);
    assert_eq!(
        o.stdout,
        "step-b\n/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\nbuildkitsandbox\n/\n"
    );
    assert_eq!(o.stderr, "oops\n");
    sb.assert_clean();
}

#[tokio::test]
async fn writes_land_in_rootfs_and_mount_stubs_do_not() {
    if !real_parts() {
        return;
    }
    let sb = Sandbox::new().await;
    let rootfs = sb.rootfs("r");
    let mut meta = sh(
        "echo hi > /out.txt; cat /etc/hosts; cat /etc/resolv.conf; ls -d /proc/1 /dev/null /sys/kernel",
    );
    meta.hostname = Some("custom".into());
    let o = run(&sb, req(&rootfs, meta)).await;
    ok(&o);
    assert!(
        o.stdout.contains("127.0.0.1\tlocalhost custom\n"),
        "{}",
        o.stdout
    );
    assert!(o.stdout.contains("nameserver "), "{}", o.stdout);
    assert_eq!(
        std::fs::read_to_string(rootfs.join("out.txt")).unwrap(),
        "hi\n"
    );
    for stub in ["proc", "dev", "sys", "etc/hosts", "etc/resolv.conf"] {
        assert!(!rootfs.join(stub).exists(), "stub {stub} left in rootfs");
    }
    // The process itself created /out.txt, so the root's mtime changed legitimately;
    // a run that writes nothing must leave it as it was.
    let rootfs2 = sb.rootfs("r2");
    let m2 = std::fs::metadata(&rootfs2).unwrap().mtime_nsec();
    ok(&run(&sb, req(&rootfs2, sh("true"))).await);
    assert_eq!(std::fs::metadata(&rootfs2).unwrap().mtime_nsec(), m2);
    sb.assert_clean();
}

#[tokio::test]
async fn cwd_is_created_and_owned_by_the_user() {
    if !real_parts() {
        return;
    }
    let sb = Sandbox::new().await;
    let rootfs = sb.rootfs("r");
    let mut meta = sh("pwd; touch mine");
    meta.cwd = "/app/deep/er".into();
    meta.user = "user".into();
    let o = run(&sb, req(&rootfs, meta)).await;
    ok(&o);
    assert_eq!(o.stdout, "/app/deep/er\n");
    for d in ["app", "app/deep", "app/deep/er"] {
        let md = std::fs::metadata(rootfs.join(d)).unwrap();
        assert_eq!((md.uid(), md.gid()), (1000, 1000), "{d}");
    }
    assert_eq!(
        std::fs::metadata(rootfs.join("app/deep/er/mine"))
            .unwrap()
            .uid(),
        1000
    );
    sb.assert_clean();
}

#[tokio::test]
async fn user_forms_resolve_through_the_rootfs() {
    if !real_parts() {
        return;
    }
    let sb = Sandbox::new().await;
    let rootfs = sb.rootfs("r");
    for (user, want) in [
        ("user", "1000 1000 1000 10"),
        ("1000", "1000 1000 1000 10"),
        ("1000:1000", "1000 1000 1000"),
        ("user:wheel", "1000 10 10"),
        ("root", "0 0 0"),
        ("", "0 0 0"),
    ] {
        let mut meta = sh("echo $(id -u) $(id -g) $(id -G)");
        meta.user = user.into();
        let o = run(&sb, req(&rootfs, meta)).await;
        ok(&o);
        assert_eq!(o.stdout.trim(), want, "user {user:?}");
    }
    let mut meta = sh("true");
    meta.user = "nobody".into();
    let o = run(&sb, req(&rootfs, meta)).await;
    assert!(
        matches!(o.result, Err(ExecError::User { .. })),
        "{:?}",
        o.result
    );
    sb.assert_clean();
}

#[tokio::test]
async fn network_none_has_only_loopback_up() {
    if !real_parts() {
        return;
    }
    let sb = Sandbox::new().await;
    let rootfs = sb.rootfs("r");
    let o = run(
        &sb,
        req(
            &rootfs,
            sh("ls /sys/class/net; cat /sys/class/net/lo/flags"),
        ),
    )
    .await;
    ok(&o);
    let lines: Vec<&str> = o.stdout.lines().collect();
    assert_eq!(lines[0], "lo", "{}", o.stdout);
    assert_eq!(lines.len(), 2, "only lo: {}", o.stdout);
    let flags = u32::from_str_radix(lines[1].trim_start_matches("0x"), 16).unwrap();
    assert_eq!(flags & 1, 1, "lo is up: {}", lines[1]);
    sb.assert_clean();
}

#[tokio::test]
async fn host_network_sees_host_interfaces() {
    if !real_parts() {
        return;
    }
    let sb = Sandbox::new().await;
    let rootfs = sb.rootfs("r");
    let mut meta = sh("ls /sys/class/net");
    meta.network = NetMode::Host;
    let o = run(&sb, req(&rootfs, meta)).await;
    ok(&o);
    let mut host: Vec<String> = std::fs::read_dir("/sys/class/net")
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    host.sort();
    let mut seen: Vec<String> = o.stdout.split_whitespace().map(String::from).collect();
    seen.sort();
    assert_eq!(seen, host);
    assert!(host.len() > 1, "host has more than lo");
    sb.assert_clean();
}

#[tokio::test]
async fn binds_tmpfs_and_readonly_refusal() {
    if !real_parts() {
        return;
    }
    let sb = Sandbox::new().await;
    let rootfs = sb.rootfs("r");
    let ro = sb.base.join("ro-src");
    let rw = sb.base.join("rw-src");
    std::fs::create_dir_all(&ro).unwrap();
    std::fs::create_dir_all(&rw).unwrap();
    std::fs::write(ro.join("given"), "from host\n").unwrap();
    let mounts = vec![
        ExecMount {
            dest: "/mnt/ro".into(),
            kind: MountKind::Bind {
                src: ro.clone(),
                readonly: true,
            },
        },
        ExecMount {
            dest: "/mnt/rw".into(),
            kind: MountKind::Bind {
                src: rw.clone(),
                readonly: false,
            },
        },
        ExecMount {
            dest: "/scratch".into(),
            kind: MountKind::Tmpfs {
                size: Some(1 << 20),
            },
        },
    ];
    let script = "cat /mnt/ro/given; echo w > /mnt/rw/written; grep ' /scratch ' /proc/mounts; \
                  echo t > /scratch/t; if touch /mnt/ro/nope 2>/dev/null; then echo WRITABLE; fi";
    let o = run(
        &sb,
        RunRequest {
            rootfs: rootfs.clone(),
            meta: sh(script),
            mounts,
        },
    )
    .await;
    ok(&o);
    assert!(o.stdout.starts_with("from host\n"), "{}", o.stdout);
    assert!(o.stdout.contains("tmpfs /scratch tmpfs"), "{}", o.stdout);
    assert!(o.stdout.contains("size=1024k"), "{}", o.stdout);
    assert!(
        !o.stdout.contains("WRITABLE"),
        "read-only bind accepted a write"
    );
    assert!(!ro.join("nope").exists());
    assert_eq!(std::fs::read_to_string(rw.join("written")).unwrap(), "w\n");
    assert!(
        !rootfs.join("scratch").exists(),
        "tmpfs content and stub gone"
    );
    assert!(!rootfs.join("mnt").exists(), "bind stubs gone");
    sb.assert_clean();
}

#[tokio::test]
async fn secret_is_readable_by_its_owner_and_gone_after() {
    if !real_parts() {
        return;
    }
    let sb = Sandbox::new().await;
    let rootfs = sb.rootfs("r");
    let mut meta = sh(
        "cat /run/secrets/token; stat -c '%u %g %a' /run/secrets/token; \
                       if echo x > /run/secrets/token 2>/dev/null; then echo WRITABLE; fi",
    );
    meta.user = "user".into();
    let mounts = vec![ExecMount {
        dest: "/run/secrets/token".into(),
        kind: MountKind::Secret(SecretFile {
            data: b"s3cr3t\n".to_vec(),
            uid: 1000,
            gid: 1000,
            mode: 0o400,
        }),
    }];
    let o = run(
        &sb,
        RunRequest {
            rootfs: rootfs.clone(),
            meta,
            mounts,
        },
    )
    .await;
    ok(&o);
    assert_eq!(o.stdout, "s3cr3t\n1000 1000 400\n");
    assert!(!rootfs.join("run").exists(), "secret stub removed");
    sb.assert_clean();
    // No file anywhere under the sandbox holds the secret.
    for e in walk(&sb.base) {
        if e.is_file()
            && !e.starts_with(&rootfs)
            && std::fs::read(&e).is_ok_and(|b| b == b"s3cr3t\n")
        {
            panic!("secret left at {}", e.display());
        }
    }
}

fn walk(p: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![p.to_owned()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let path = e.path();
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out
}

#[tokio::test]
async fn failure_reports_exit_code_and_last_lines() {
    if !real_parts() {
        return;
    }
    let sb = Sandbox::new().await;
    let rootfs = sb.rootfs("r");
    let script = "for i in $(seq 1 30); do echo line$i; done; exit 3";
    let o = run(&sb, req(&rootfs, sh(script))).await;
    match &o.result {
        Err(ExecError::ExitCode { code, tail, args }) => {
            assert_eq!(*code, 3);
            assert_eq!(args[2], script);
            assert_eq!(tail, &["line26", "line27", "line28", "line29", "line30"]);
        }
        other => panic!("expected an exit code error, got {other:?}"),
    }
    assert!(o.result.unwrap_err().to_string().contains("exit code 3"));
    // Stderr is quoted too (the order between the two streams is not defined).
    let o = run(&sb, req(&rootfs, sh("echo only-err >&2; exit 4"))).await;
    match &o.result {
        Err(ExecError::ExitCode { code: 4, tail, .. }) => assert_eq!(tail, &["only-err"]),
        other => panic!("expected exit code 4, got {other:?}"),
    }
    // The same command is a success when 3 is declared valid.
    let mut meta = sh(script);
    meta.valid_exit_codes = vec![0, 3];
    let o = run(&sb, req(&rootfs, meta)).await;
    assert!(matches!(o.result, Ok(3)), "{:?}", o.result);
    // A command that does not exist fails too, with the runtime's message in the tail.
    let o = run(
        &sb,
        req(&rootfs, ExecMeta::new(vec!["/no/such/binary".into()])),
    )
    .await;
    match &o.result {
        Err(ExecError::ExitCode { tail, .. }) => {
            assert!(tail.join("\n").contains("no such file"), "{tail:?}")
        }
        other => panic!("expected an exit code error, got {other:?}"),
    }
    sb.assert_clean();
}

/// Processes whose command line holds `marker`.
fn processes_with(marker: &str) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(cmd) = std::fs::read(e.path().join("cmdline")) {
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            if cmd.contains(marker) {
                out.push(format!("{}: {cmd}", e.file_name().to_string_lossy()));
            }
        }
    }
    out
}

#[tokio::test]
async fn cancellation_kills_and_cleans_up() {
    if !real_parts() {
        return;
    }
    let sb = Sandbox::new().await;
    let rootfs = sb.rootfs("r");
    let secs = format!("{}", 100_000 + std::process::id());
    let cancel = CancellationToken::new();
    let c2 = cancel.clone();
    let mut meta = sh(&format!("echo started; sleep {secs}"));
    meta.user = "user".into();
    let mounts = vec![ExecMount {
        dest: "/run/secrets/x".into(),
        kind: MountKind::Secret(SecretFile {
            data: b"x".to_vec(),
            uid: 0,
            gid: 0,
            mode: 0o400,
        }),
    }];
    let r = RunRequest {
        rootfs: rootfs.clone(),
        meta,
        mounts,
    };
    let marker = format!("sleep {secs}");
    let watcher = {
        let marker = marker.clone();
        tokio::spawn(async move {
            for _ in 0..100 {
                if !processes_with(&marker).is_empty() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            c2.cancel();
        })
    };
    let started = std::time::Instant::now();
    let o = run_with(&sb, r, cancel).await;
    watcher.await.unwrap();
    assert!(
        matches!(o.result, Err(ExecError::Cancelled { .. })),
        "{:?}",
        o.result
    );
    assert!(started.elapsed() < Duration::from_secs(20));
    assert_eq!(o.stdout, "started\n");
    assert!(
        processes_with(&marker).is_empty(),
        "{:?}",
        processes_with(&marker)
    );
    sb.assert_clean();
}

#[tokio::test]
async fn dropping_the_run_future_cleans_up() {
    if !real_parts() {
        return;
    }
    let sb = Sandbox::new().await;
    let rootfs = sb.rootfs("r");
    let secs = format!("{}", 200_000 + std::process::id());
    let marker = format!("sleep {secs}");
    let fut = sb.exec.run(
        req(&rootfs, sh(&format!("sleep {secs}"))),
        cairn_solver::executor::discard_output(),
        CancellationToken::new(),
    );
    let timed = tokio::time::timeout(Duration::from_secs(2), fut).await;
    assert!(timed.is_err(), "sleep finished early: {timed:?}");
    assert!(
        processes_with(&marker).is_empty(),
        "{:?}",
        processes_with(&marker)
    );
    sb.assert_clean();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_runs_at_once() {
    if !real_parts() {
        return;
    }
    let sb = Sandbox::new().await;
    let a = sb.rootfs("a");
    let b = sb.rootfs("b");
    let shared = sb.base.join("shared");
    std::fs::create_dir(&shared).unwrap();
    // Each container announces itself and waits for the other: only overlapping runs pass.
    let rendezvous = |me: &str, other: &str| {
        sh(&format!(
            "touch /shared/{me}; for i in $(seq 1 200); do [ -e /shared/{other} ] && echo met && exit 0; sleep 0.05; done; exit 7"
        ))
    };
    let with_shared = |rootfs: &Path, meta: ExecMeta| RunRequest {
        rootfs: rootfs.to_owned(),
        meta,
        mounts: vec![ExecMount {
            dest: "/shared".into(),
            kind: MountKind::Bind {
                src: shared.clone(),
                readonly: false,
            },
        }],
    };
    let (oa, ob) = tokio::join!(
        run(&sb, with_shared(&a, rendezvous("a", "b"))),
        run(&sb, with_shared(&b, rendezvous("b", "a")))
    );
    ok(&oa);
    ok(&ob);
    assert_eq!((oa.stdout.as_str(), ob.stdout.as_str()), ("met\n", "met\n"));
    sb.assert_clean();
}

#[tokio::test]
async fn a_token_cancelled_before_start_runs_nothing() {
    if !real_parts() {
        return;
    }
    let sb = Sandbox::new().await;
    let rootfs = sb.rootfs("r");
    let cancel = CancellationToken::new();
    cancel.cancel();
    let o = run_with(&sb, req(&rootfs, sh("echo ran > /ran")), cancel).await;
    assert!(
        matches!(o.result, Err(ExecError::Cancelled { .. })),
        "{:?}",
        o.result
    );
    assert!(!rootfs.join("ran").exists());
    assert!(!rootfs.join("proc").exists(), "stubs removed");
    sb.assert_clean();
}

#[tokio::test]
async fn no_new_privileges_by_default_unless_configured_off() {
    if !real_parts() {
        return;
    }
    let sb = Sandbox::new().await;
    let rootfs = sb.rootfs("r");
    let script = "grep NoNewPrivs /proc/self/status; grep CapBnd /proc/self/status";
    let o = run(&sb, req(&rootfs, sh(script))).await;
    ok(&o);
    assert!(o.stdout.contains("NoNewPrivs:\t1"), "{}", o.stdout);
    // The 14 default capabilities, Docker's well-known bounding set.
    assert!(
        o.stdout.contains("CapBnd:\t00000000a80425fb"),
        "{}",
        o.stdout
    );

    let dir = tempfile::tempdir().unwrap();
    let mut cfg = RuncConfig::new(dir.path().join("state"));
    cfg.no_new_privileges = false;
    let strict = RuncExecutor::new(cfg).await.unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let res = strict
        .run(
            req(&rootfs, sh(script)),
            channel_output(tx),
            CancellationToken::new(),
        )
        .await;
    assert!(matches!(res, Ok(s) if s.code == 0), "{res:?}");
    let mut out = Vec::new();
    while let Ok((_, b)) = rx.try_recv() {
        out.extend(b);
    }
    assert!(String::from_utf8_lossy(&out).contains("NoNewPrivs:\t0"));
    sb.assert_clean();
}
