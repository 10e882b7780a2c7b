//! The registry client against a real `docker-registry`: push, resolve through a mirror,
//! platform selection, ranged and verified fetches, chunked uploads, mounts, auth, and
//! `skopeo` as an independent reader of what was pushed.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use cairn_cache::descriptor::{Platform, media_types};
use cairn_cache::reference::Reference;
use cairn_cache::registry::{
    BlobData, BlobVerifier, CredentialStore, Login, PushOutcome, RegistryError, RetryPolicy,
};
use cairn_integration::image::prng_bytes;
use cairn_integration::{
    FlakyProxy, ImageBuilder, LayerBuilder, RegistryOptions, TestImage, TestRegistry, TokenServer,
    busybox_image, push_image, push_image_with, push_index, reference, require_tool, skip_unless,
};
use futures::StreamExt as _;

/// A small image without busybox: one layer holding `content` at `/payload`.
fn payload_image(content: &[u8], platform: Platform) -> TestImage {
    let mut l = LayerBuilder::new("payload");
    l.file("payload", 0o644, content);
    ImageBuilder::new()
        .layer(l.finish())
        .platform(platform)
        .build()
}

#[tokio::test]
async fn push_busybox_then_resolve_short_name_through_mirror() {
    let reg = skip_unless!(TestRegistry::start());
    let image = skip_unless!(busybox_image());
    let pushed = push_image(&reg, &image, "library/busybox:latest").await;
    assert_eq!(&pushed, image.digest());

    let client = reg.client();
    let resolved = client
        .resolve(&Reference::parse("busybox").unwrap(), &Platform::host())
        .await
        .unwrap();
    assert_eq!(resolved.digest, pushed);
    assert_eq!(resolved.manifest.digest, pushed);
    assert_eq!(resolved.manifest.bytes, image.manifest.bytes);
    assert!(resolved.index.is_none());
    assert_eq!(resolved.config, image.config.bytes);
    assert_eq!(resolved.config_descriptor, image.config.descriptor);
    assert_eq!(
        resolved.layers,
        vec![image.layers[0].blob.descriptor.clone()]
    );
    assert_eq!(
        resolved.parsed_config.rootfs.diff_ids,
        vec![image.layers[0].diff_id.clone()]
    );
    assert_eq!(resolved.endpoint, reg.host(), "served by the mirror");
    assert_eq!(
        resolved.reference.to_string(),
        format!("docker.io/library/busybox:latest@{pushed}")
    );

    let head = client
        .head_manifest(&Reference::parse("busybox").unwrap())
        .await
        .unwrap();
    assert_eq!(head, image.manifest.descriptor);
    // Resolving never downloads a layer.
    assert_eq!(reg.blob_downloads(image.layers[0].blob.digest()), 0);
}

#[tokio::test]
async fn index_platform_selection() {
    let reg = skip_unless!(TestRegistry::start());
    let amd = payload_image(b"amd64 payload", Platform::new("linux", "amd64"));
    let arm = payload_image(b"arm64 payload", "linux/arm64/v8".parse().unwrap());
    let index = push_index(&reg, &[&amd, &arm], "multi/app:1").await;

    let client = reg.client();
    let r = reference(&reg, "multi/app:1");
    for (platform, image) in [
        (Platform::new("linux", "amd64"), &amd),
        (Platform::new("linux", "arm64"), &arm),
    ] {
        let got = client.resolve(&r, &platform).await.unwrap();
        assert_eq!(got.digest, index, "the name resolves to the index");
        assert_eq!(
            &got.manifest.digest,
            image.digest(),
            "{}",
            platform.to_spec()
        );
        assert_eq!(got.layers, vec![image.layers[0].blob.descriptor.clone()]);
        assert_eq!(got.index.as_ref().map(|i| &i.digest), Some(&index));
    }
    // By digest works the same.
    let pinned = client
        .resolve(
            &r.with_digest(index.clone()),
            &Platform::new("linux", "arm64"),
        )
        .await
        .unwrap();
    assert_eq!(pinned.manifest.digest, *arm.digest());

    match client.resolve(&r, &Platform::new("linux", "s390x")).await {
        Err(RegistryError::NoMatchingPlatform {
            platform,
            available,
            ..
        }) => {
            assert_eq!(platform, "linux/s390x");
            assert!(
                available.contains("linux/amd64") && available.contains("linux/arm64/v8"),
                "{available}"
            );
        }
        other => panic!("expected NoMatchingPlatform, got {other:?}"),
    }
}

#[tokio::test]
async fn blob_fetch_resumes_with_range() {
    let reg = skip_unless!(TestRegistry::start());
    let image = payload_image(&prng_bytes(7, 3 << 20), Platform::host());
    push_image(&reg, &image, "range/test:1").await;
    let layer = &image.layers[0].blob;
    let r = reference(&reg, "range/test:1");
    let client = reg.client();

    // First attempt: stop after some bytes, as an interrupted download would.
    let mut first = Vec::new();
    let mut s = client
        .fetch_blob(&r, &layer.descriptor, 0, None)
        .await
        .unwrap();
    while first.len() < 100_000 {
        first.extend_from_slice(&s.next().await.unwrap().unwrap());
    }
    drop(s);

    let seen = Arc::new(AtomicU64::new(0));
    let progress = {
        let seen = seen.clone();
        Arc::new(move |done: u64, total: u64| {
            assert!(done <= total);
            seen.store(done, Ordering::SeqCst);
        })
    };
    let offset = first.len() as u64;
    let mut s = client
        .fetch_blob(&r, &layer.descriptor, offset, Some(progress))
        .await
        .unwrap();
    assert_eq!(s.offset, offset);
    assert_eq!(s.endpoint, reg.host());
    let mut verifier = BlobVerifier::new(&layer.descriptor);
    verifier.update(&first).unwrap();
    let mut rest = 0u64;
    while let Some(chunk) = s.next().await {
        let chunk = chunk.unwrap();
        rest += chunk.len() as u64;
        verifier.update(&chunk).unwrap();
    }
    verifier.finish().unwrap();
    assert_eq!(offset + rest, layer.descriptor.size);
    assert_eq!(
        seen.load(Ordering::SeqCst),
        layer.descriptor.size,
        "progress reached the total"
    );
    assert_eq!(reg.blob_downloads(layer.digest()), 2);

    // An offset past the end is refused before any request.
    let past = client
        .fetch_blob(&r, &layer.descriptor, layer.descriptor.size + 1, None)
        .await;
    assert!(
        matches!(past, Err(RegistryError::SizeMismatch { .. })),
        "{past:?}"
    );
}

#[tokio::test]
async fn large_blobs_upload_in_chunks() {
    let reg = skip_unless!(TestRegistry::start());
    let client = reg.client_builder().chunk_size(1 << 20).build().unwrap();
    let data = Bytes::from(prng_bytes(42, (5 << 20) + 123));
    let blob = cairn_integration::Blob::new(
        cairn_cache::descriptor::media_types::OCI_LAYER_GZIP,
        data.clone(),
    );
    let target = reference(&reg, "chunked/blob:1");
    let out = client
        .push_blob(
            &target,
            &blob.descriptor,
            BlobData::Bytes(data.clone()),
            None,
        )
        .await
        .unwrap();
    assert_eq!(out, PushOutcome::UploadedChunked { chunks: 6 });
    let patches = reg
        .requests()
        .iter()
        .filter(|e| e.method == "PATCH" && e.status == 202)
        .count();
    assert_eq!(patches, 6);
    let back = client
        .fetch_blob_bytes(&target, &blob.descriptor, u64::MAX)
        .await
        .unwrap();
    assert_eq!(back, data);

    // The same from a file, into another repository (no mount asked: uploaded again).
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("blob");
    std::fs::write(&path, &data).unwrap();
    let other = reference(&reg, "chunked/file:1");
    let out = client
        .push_blob(&other, &blob.descriptor, BlobData::File(path.clone()), None)
        .await
        .unwrap();
    assert_eq!(out, PushOutcome::UploadedChunked { chunks: 6 });
    assert!(client.blob_exists(&other, blob.digest()).await.unwrap());

    // A file that does not match its descriptor fails locally, naming the blob.
    std::fs::write(&path, prng_bytes(1000, data.len())).unwrap();
    let third = reference(&reg, "chunked/bad:1");
    let err = client
        .push_blob(&third, &blob.descriptor, BlobData::File(path), None)
        .await
        .unwrap_err();
    assert!(matches!(err, RegistryError::DigestMismatch { .. }), "{err}");
    assert!(!client.blob_exists(&third, blob.digest()).await.unwrap());
}

#[tokio::test]
async fn cross_repo_mount_sends_no_bytes() {
    let reg = skip_unless!(TestRegistry::start());
    let image = payload_image(&prng_bytes(9, 200_000), Platform::host());
    push_image(&reg, &image, "team/base:1").await;
    let client = reg.client();
    let layer = &image.layers[0].blob;
    let uploads_before = reg.blob_upload_requests();

    let target = reference(&reg, "team/app:1");
    let out = client
        .push_blob(
            &target,
            &layer.descriptor,
            BlobData::Bytes(layer.bytes.clone()),
            Some("team/base"),
        )
        .await
        .unwrap();
    assert_eq!(out, PushOutcome::Mounted);
    assert_eq!(
        reg.blob_upload_requests(),
        uploads_before,
        "a mount uploads nothing"
    );
    assert!(client.blob_exists(&target, layer.digest()).await.unwrap());
    assert_eq!(reg.blob_downloads(layer.digest()), 0);

    // Mounting from a repository without the blob falls back to uploading.
    let fallback = reference(&reg, "team/other:1");
    let out = client
        .push_blob(
            &fallback,
            &layer.descriptor,
            BlobData::Bytes(layer.bytes.clone()),
            Some("team/nothing-here"),
        )
        .await
        .unwrap();
    assert_eq!(out, PushOutcome::Uploaded);
    let puts = reg
        .requests()
        .into_iter()
        .filter(|e| e.is_blob_upload(Some(layer.digest())))
        .count();
    assert_eq!(puts, 2, "the first push and the fallback upload");
}

#[tokio::test]
async fn existing_blobs_are_not_uploaded_again() {
    let reg = skip_unless!(TestRegistry::start());
    let image = payload_image(b"same bytes", Platform::host());
    let client = reg.client();
    let target = reference(&reg, "dedup/img:1");
    let (_, first) = push_image_with(&client, &target, &image).await.unwrap();
    assert!(
        first.iter().all(|o| *o == PushOutcome::Uploaded),
        "{first:?}"
    );
    let uploads = reg.blob_upload_requests();
    let (digest, second) = push_image_with(&client, &target.with_tag("2").unwrap(), &image)
        .await
        .unwrap();
    assert!(
        second.iter().all(|o| *o == PushOutcome::AlreadyExists),
        "{second:?}"
    );
    assert_eq!(reg.blob_upload_requests(), uploads);
    assert_eq!(&digest, image.digest());
}

#[tokio::test]
async fn basic_auth_with_htpasswd() {
    let login = Login {
        username: "cairn".into(),
        password: "s3cret-pw".into(),
    };
    let reg = skip_unless!(TestRegistry::start_with(RegistryOptions {
        basic_auth: Some(login.clone()),
        ..RegistryOptions::default()
    }));
    let image = payload_image(b"private", Platform::host());
    let target = reference(&reg, "private/img:1");

    let anonymous = reg
        .client_builder()
        .credentials(CredentialStore::anonymous())
        .build()
        .unwrap();
    match anonymous.resolve(&target, &Platform::host()).await {
        Err(RegistryError::Unauthorized { host, .. }) => assert_eq!(host, reg.host()),
        other => panic!("expected Unauthorized, got {other:?}"),
    }

    // Credentials from a Docker config file, as users have them.
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("config.json");
    let auth = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD
            .encode(format!("{}:{}", login.username, login.password))
    };
    std::fs::write(
        &cfg,
        format!(r#"{{"auths":{{"{}":{{"auth":"{auth}"}}}}}}"#, reg.host()),
    )
    .unwrap();
    let client = reg
        .client_builder()
        .credentials(CredentialStore::anonymous().with_docker_config(&cfg))
        .build()
        .unwrap();
    let (digest, _) = push_image_with(&client, &target, &image).await.unwrap();
    let got = client.resolve(&target, &Platform::host()).await.unwrap();
    assert_eq!(got.digest, digest);

    let wrong = reg
        .client_builder()
        .credentials(CredentialStore::anonymous().with_login(
            &reg.host(),
            Login {
                username: "cairn".into(),
                password: "wrong".into(),
            },
        ))
        .build()
        .unwrap();
    let err = wrong.resolve(&target, &Platform::host()).await.unwrap_err();
    assert!(matches!(err, RegistryError::Unauthorized { .. }), "{err}");
}

#[tokio::test]
async fn corrupted_blobs_in_registry_storage_are_detected() {
    let reg = skip_unless!(TestRegistry::start());
    let image = payload_image(&prng_bytes(3, 50_000), Platform::host());
    push_image(&reg, &image, "corrupt/img:1").await;
    let r = reference(&reg, "corrupt/img:1");
    let client = reg.client();

    // Same size, different bytes: only the digest can tell.
    let layer = &image.layers[0].blob;
    let path = reg.blob_path(layer.digest());
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[100] ^= 0xff;
    std::fs::write(&path, &bytes).unwrap();
    let mut s = client
        .fetch_blob(&r, &layer.descriptor, 0, None)
        .await
        .unwrap();
    let mut v = BlobVerifier::new(&layer.descriptor);
    while let Some(c) = s.next().await {
        v.update(&c.unwrap()).unwrap();
    }
    match v.finish() {
        Err(RegistryError::DigestMismatch {
            expected, actual, ..
        }) => {
            assert_eq!(&expected, layer.digest());
            assert_eq!(actual, cairn_llb::Digest::of_bytes(&bytes));
        }
        other => panic!("expected a digest mismatch, got {other:?}"),
    }

    // A corrupted config fails resolve itself.
    let cpath = reg.blob_path(image.config.digest());
    let mut cbytes = std::fs::read(&cpath).unwrap();
    cbytes[0] = b' ';
    std::fs::write(&cpath, &cbytes).unwrap();
    let err = client.resolve(&r, &Platform::host()).await.unwrap_err();
    match &err {
        RegistryError::DigestMismatch { what, expected, .. } => {
            assert_eq!(expected, image.config.digest());
            assert!(what.contains(image.config.digest().as_str()), "{err}");
        }
        other => panic!("expected a digest mismatch, got {other:?}"),
    }
}

#[tokio::test]
async fn missing_images_and_unreachable_mirrors() {
    let reg = skip_unless!(TestRegistry::start());
    let image = payload_image(b"mirror fallback", Platform::host());
    push_image(&reg, &image, "fall/back:1").await;
    // A dead mirror first: the client moves on to the origin.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut cfg = reg.registry_config();
    cfg.hosts.get_mut(&reg.host()).unwrap().mirrors = vec![format!("http://127.0.0.1:{dead}")];
    let client = cairn_cache::registry::RegistryClient::builder(cfg)
        .credentials(CredentialStore::anonymous())
        .retry(RetryPolicy {
            attempts: 1,
            ..RetryPolicy::default()
        })
        .build()
        .unwrap();
    let got = client
        .resolve(&reference(&reg, "fall/back:1"), &Platform::host())
        .await
        .unwrap();
    assert_eq!(got.digest, *image.digest());
    assert_eq!(got.endpoint, reg.host());

    let err = client
        .resolve(&reference(&reg, "fall/missing:1"), &Platform::host())
        .await
        .unwrap_err();
    assert!(matches!(err, RegistryError::NotFound { .. }), "{err}");
    assert!(err.to_string().contains("fall/missing"), "{err}");
}

#[tokio::test]
async fn skopeo_reads_the_pushed_image() {
    let reg = skip_unless!(TestRegistry::start());
    let image = skip_unless!(busybox_image());
    let skopeo = skip_unless!(require_tool("skopeo", "skopeo"));
    let digest = push_image(&reg, &image, "library/busybox:latest").await;
    let url = format!("docker://{}/library/busybox:latest", reg.host());
    let run = |raw: bool| {
        let mut c = std::process::Command::new(&skopeo);
        c.args(["inspect", "--tls-verify=false"]);
        if raw {
            c.arg("--raw");
        }
        let out = c.arg(&url).output().unwrap();
        assert!(
            out.status.success(),
            "skopeo: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    };
    let info: serde_json::Value = serde_json::from_slice(&run(false)).unwrap();
    assert_eq!(info["Digest"], digest.as_str());
    assert_eq!(info["Architecture"], Platform::host().architecture);
    assert_eq!(info["Os"], "linux");
    assert_eq!(info["Layers"][0], image.layers[0].blob.digest().as_str());
    assert_eq!(
        run(true),
        image.manifest.bytes.to_vec(),
        "skopeo sees our exact manifest bytes"
    );
}

#[tokio::test]
async fn bearer_token_flow_with_scoped_tokens() {
    let tokens = skip_unless!(TokenServer::start(None));
    let reg = skip_unless!(TestRegistry::start_with(RegistryOptions {
        extra_yaml: Some(tokens.registry_yaml()),
        ..RegistryOptions::default()
    }));
    let image = payload_image(&prng_bytes(11, 10_000), Platform::host());
    let client = reg.client();
    let target = reference(&reg, "bearer/base:1");
    let (digest, _) = push_image_with(&client, &target, &image).await.unwrap();
    let push_scope = "repository:bearer/base:pull,push".to_owned();
    let asked: Vec<Vec<String>> = tokens.requests().into_iter().map(|r| r.scopes).collect();
    assert_eq!(
        asked,
        vec![vec![push_scope.clone()]],
        "one token, reused for every push request"
    );
    assert_eq!(
        tokens.requests()[0].service.as_deref(),
        Some(cairn_integration::token::SERVICE)
    );

    // Pulling needs a pull-scoped token, fetched once and then cached.
    let got = client.resolve(&target, &Platform::host()).await.unwrap();
    assert_eq!(got.digest, digest);
    client.resolve(&target, &Platform::host()).await.unwrap();
    let pulls = tokens
        .requests()
        .iter()
        .filter(|r| r.scopes == ["repository:bearer/base:pull"])
        .count();
    assert_eq!(pulls, 1);

    // A mount asks for both repositories in one token.
    let layer = &image.layers[0].blob;
    let app = reference(&reg, "bearer/app:1");
    let out = client
        .push_blob(
            &app,
            &layer.descriptor,
            BlobData::Bytes(layer.bytes.clone()),
            Some("bearer/base"),
        )
        .await
        .unwrap();
    assert_eq!(out, PushOutcome::Mounted);
    assert!(
        tokens.requests().iter().any(|r| r.scopes
            == [
                "repository:bearer/app:pull,push",
                "repository:bearer/base:pull"
            ]),
        "{:?}",
        tokens.requests()
    );
}

#[tokio::test]
async fn bearer_token_service_requiring_a_login() {
    let login = Login {
        username: "tok".into(),
        password: "en-pw".into(),
    };
    let tokens = skip_unless!(TokenServer::start(Some(login.clone())));
    let reg = skip_unless!(TestRegistry::start_with(RegistryOptions {
        extra_yaml: Some(tokens.registry_yaml()),
        ..RegistryOptions::default()
    }));
    let target = reference(&reg, "locked/img:1");
    let anonymous = reg.client();
    let err = anonymous
        .resolve(&target, &Platform::host())
        .await
        .unwrap_err();
    assert!(matches!(err, RegistryError::Unauthorized { .. }), "{err}");
    assert!(err.to_string().contains("token endpoint"), "{err}");

    let client = reg
        .client_builder()
        .credentials(CredentialStore::anonymous().with_login(&reg.host(), login.clone()))
        .build()
        .unwrap();
    let image = payload_image(b"locked", Platform::host());
    let (digest, _) = push_image_with(&client, &target, &image).await.unwrap();
    assert_eq!(
        client
            .resolve(&target, &Platform::host())
            .await
            .unwrap()
            .digest,
        digest
    );
    let last = tokens.requests().pop().unwrap();
    assert_eq!(
        last.authorization.as_deref(),
        Some(login.basic_header().as_str())
    );
    assert_eq!(last.status, 200);
}

#[tokio::test]
async fn docker_schema2_manifest_list() {
    let reg = skip_unless!(TestRegistry::start());
    let docker = |content: &[u8], platform: Platform| {
        let mut l = LayerBuilder::new("payload");
        l.file("payload", 0o644, content);
        ImageBuilder::new()
            .layer(l.finish())
            .platform(platform)
            .docker_media_types()
            .build()
    };
    let amd = docker(b"docker amd64", Platform::new("linux", "amd64"));
    let arm = docker(b"docker arm64", "linux/arm64/v8".parse().unwrap());
    let list = push_index(&reg, &[&amd, &arm], "docker/list:1").await;
    let client = reg.client();
    let r = reference(&reg, "docker/list:1");
    let got = client
        .resolve(&r, &Platform::new("linux", "arm64"))
        .await
        .unwrap();
    assert_eq!(got.digest, list);
    assert_eq!(
        got.index.as_ref().map(|i| i.media_type.as_str()),
        Some(media_types::DOCKER_MANIFEST_LIST)
    );
    assert_eq!(got.manifest.media_type, media_types::DOCKER_MANIFEST);
    assert_eq!(&got.manifest.digest, arm.digest());
    assert_eq!(got.config_descriptor.media_type, media_types::DOCKER_CONFIG);
    assert_eq!(got.layers[0].media_type, media_types::DOCKER_LAYER_GZIP);
    let head = client.head_manifest(&r).await.unwrap();
    assert_eq!(
        (head.digest, head.media_type.as_str()),
        (list, media_types::DOCKER_MANIFEST_LIST)
    );
}

#[test]
fn cairn_toml_parses_into_the_mirror_config() {
    let reg = skip_unless!(TestRegistry::start());
    #[derive(serde::Deserialize)]
    struct File {
        registry: cairn_cache::registry::RegistryConfig,
    }
    let parsed: File = toml::from_str(&reg.cairn_toml()).unwrap();
    assert_eq!(parsed.registry, reg.docker_hub_mirror_config());
    let eps = parsed.registry.pull_endpoints("docker.io").unwrap();
    assert_eq!(eps[0].base.as_str(), format!("{}/", reg.url()));
}

#[tokio::test]
async fn transient_server_errors_are_retried() {
    let reg = skip_unless!(TestRegistry::start());
    let image = payload_image(b"retry me", Platform::host());
    push_image(&reg, &image, "retry/img:1").await;
    let client_for = |proxy: &FlakyProxy, attempts: u32| {
        let mut cfg = cairn_cache::registry::RegistryConfig::default();
        cfg.hosts.insert(
            proxy.host(),
            cairn_cache::registry::HostConfig {
                http: true,
                ..Default::default()
            },
        );
        cairn_cache::registry::RegistryClient::builder(cfg)
            .credentials(CredentialStore::anonymous())
            .retry(RetryPolicy {
                attempts,
                base_delay: std::time::Duration::from_millis(10),
                max_delay: std::time::Duration::from_millis(50),
            })
            .build()
            .unwrap()
    };
    let name =
        |proxy: &FlakyProxy| Reference::parse(&format!("{}/retry/img:1", proxy.host())).unwrap();

    for status in [503, 429] {
        let proxy = FlakyProxy::start(reg.port(), 2, status);
        let got = client_for(&proxy, 3)
            .resolve(&name(&proxy), &Platform::host())
            .await
            .unwrap();
        assert_eq!(got.digest, *image.digest());
        assert_eq!(proxy.faults_served(), 2, "two failures, then success");
    }

    let proxy = FlakyProxy::start(reg.port(), 5, 503);
    let err = client_for(&proxy, 2)
        .resolve(&name(&proxy), &Platform::host())
        .await
        .unwrap_err();
    match &err {
        RegistryError::ServerError { status, url, .. } => {
            assert_eq!(*status, 503);
            assert!(url.contains("/v2/retry/img/manifests/1"), "{url}");
        }
        other => panic!("expected a 503 ServerError, got {other:?}"),
    }
    assert_eq!(
        proxy.faults_served(),
        2,
        "gave up after the configured attempts"
    );
}

/// An independent toolchain (skopeo → OCI layout → umoci unpack) reads the pushed
/// busybox image, and the unpacked root file system works under `chroot`.
#[tokio::test]
async fn busybox_image_unpacks_with_umoci_and_runs() {
    let reg = skip_unless!(TestRegistry::start());
    let image = skip_unless!(busybox_image());
    let skopeo = skip_unless!(require_tool("skopeo", "skopeo"));
    let umoci = skip_unless!(require_tool("umoci", "umoci"));
    let chroot = skip_unless!(require_tool("chroot", "coreutils"));
    push_image(&reg, &image, "library/busybox:latest").await;
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("layout");
    let run = |cmd: &mut std::process::Command| {
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "{cmd:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    run(std::process::Command::new(&skopeo)
        .args(["copy", "--src-tls-verify=false"])
        .arg(format!("docker://{}/library/busybox:latest", reg.host()))
        .arg(format!("oci:{}:latest", layout.display())));
    let bundle = dir.path().join("bundle");
    run(std::process::Command::new(&umoci)
        .args(["unpack", "--image"])
        .arg(format!("{}:latest", layout.display()))
        .arg(&bundle));
    let rootfs = bundle.join("rootfs");
    assert_eq!(
        std::fs::read_link(rootfs.join("bin/sh")).unwrap(),
        std::path::Path::new("/bin/busybox")
    );
    let tmp_mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(rootfs.join("tmp")).unwrap().permissions(),
    );
    assert_eq!(tmp_mode & 0o7777, 0o1777);
    let out = run(std::process::Command::new(&chroot).arg(&rootfs).args([
        "/bin/sh",
        "-c",
        "id -un; grep ^user: /etc/passwd | cut -d: -f3; ls -d /home/user",
    ]));
    assert_eq!(out, "root\n1000\n/home/user\n");
}

#[tokio::test]
async fn a_mirror_answer_beats_an_unreachable_origin() {
    let reg = skip_unless!(TestRegistry::start());
    let image = payload_image(b"only on the mirror", Platform::host());
    push_image(&reg, &image, "mirrored/img:1").await;
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let origin = format!("127.0.0.1:{dead}");
    let mut cfg = reg.registry_config();
    cfg.hosts.insert(
        origin.clone(),
        cairn_cache::registry::HostConfig {
            mirrors: vec![reg.host()],
            http: true,
            ..Default::default()
        },
    );
    let client = cairn_cache::registry::RegistryClient::builder(cfg)
        .credentials(CredentialStore::anonymous())
        .retry(RetryPolicy {
            attempts: 1,
            ..RetryPolicy::default()
        })
        .build()
        .unwrap();
    let found = Reference::parse(&format!("{origin}/mirrored/img:1")).unwrap();
    let got = client.resolve(&found, &Platform::host()).await.unwrap();
    assert_eq!(
        (got.digest, got.endpoint),
        (image.digest().clone(), reg.host())
    );
    let missing = Reference::parse(&format!("{origin}/mirrored/none:1")).unwrap();
    let err = client
        .resolve(&missing, &Platform::host())
        .await
        .unwrap_err();
    assert!(
        matches!(err, RegistryError::NotFound { .. }),
        "the mirror's 404, not the origin's refusal: {err}"
    );
}

#[tokio::test]
async fn https_registry_needs_insecure_for_a_self_signed_certificate() {
    let reg = skip_unless!(TestRegistry::start_with(RegistryOptions {
        tls: true,
        ..RegistryOptions::default()
    }));
    assert!(reg.url().starts_with("https://"));
    let image = payload_image(b"over tls", Platform::host());
    // `registry_config()` marks the host `insecure`: the self-signed certificate passes.
    let digest = push_image(&reg, &image, "tls/img:1").await;
    let got = reg
        .client()
        .resolve(&reference(&reg, "tls/img:1"), &Platform::host())
        .await
        .unwrap();
    assert_eq!(got.digest, digest);
    assert!(
        reg.requests()
            .iter()
            .any(|e| e.method == "PUT" && e.uri.contains("/manifests/1"))
    );

    // Without `insecure`, certificate verification refuses the connection.
    // An entry for the host (even empty) means HTTPS, also on loopback.
    let mut cfg = cairn_cache::registry::RegistryConfig::default();
    cfg.hosts.insert(reg.host(), Default::default());
    let strict = cairn_cache::registry::RegistryClient::builder(cfg)
        .credentials(CredentialStore::anonymous())
        .retry(RetryPolicy {
            attempts: 1,
            ..RetryPolicy::default()
        })
        .build()
        .unwrap();
    let err = strict
        .resolve(&reference(&reg, "tls/img:1"), &Platform::host())
        .await
        .unwrap_err();
    match &err {
        RegistryError::Http { url, source } => {
            assert!(url.starts_with("https://127.0.0.1:"), "{url}");
            let chain = format!("{source:?}").to_lowercase();
            assert!(chain.contains("certificate"), "{chain}");
        }
        other => panic!("expected a TLS failure, got {other:?}"),
    }
}

#[tokio::test]
async fn identity_tokens_use_the_oauth2_refresh_grant() {
    let token = Login::identity_token("refresh-abc");
    let tokens = skip_unless!(TokenServer::start(Some(token.clone())));
    let reg = skip_unless!(TestRegistry::start_with(RegistryOptions {
        extra_yaml: Some(tokens.registry_yaml()),
        ..RegistryOptions::default()
    }));
    // As `docker login` leaves it for some registries: an `identitytoken`, no password.
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("config.json");
    std::fs::write(
        &cfg,
        format!(
            r#"{{"auths":{{"{}":{{"auth":"","identitytoken":"refresh-abc"}}}}}}"#,
            reg.host()
        ),
    )
    .unwrap();
    let client = reg
        .client_builder()
        .credentials(CredentialStore::anonymous().with_docker_config(&cfg))
        .build()
        .unwrap();
    let target = reference(&reg, "oauth/img:1");
    let image = payload_image(b"oauth", Platform::host());
    let (digest, _) = push_image_with(&client, &target, &image).await.unwrap();
    assert_eq!(
        client
            .resolve(&target, &Platform::host())
            .await
            .unwrap()
            .digest,
        digest
    );
    let reqs = tokens.requests();
    assert!(!reqs.is_empty());
    for r in &reqs {
        assert_eq!(r.method, "POST");
        assert_eq!(r.refresh_token.as_deref(), Some("refresh-abc"));
        assert_eq!(
            r.authorization, None,
            "the refresh token is never sent as Basic auth"
        );
        assert_eq!(r.status, 200);
    }
    assert!(
        reqs.iter()
            .any(|r| r.scopes == ["repository:oauth/img:pull,push"]),
        "{reqs:?}"
    );
}
