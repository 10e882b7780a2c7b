//! Writes a small build definition to stdout, as BuildKit's Go client would marshal it:
//! `FROM busybox`, a `RUN`, and a `COPY` of a file from the build context. Pipe it into
//! `cairn debug dump-llb -` to read it.

use std::io::Write;

use cairn_llb::builder::{CopyOptions, FileActions, LocalOptions, image, local};

fn main() -> std::io::Result<()> {
    let base = image("docker.io/library/busybox:latest");
    let ran = base
        .run(["/bin/sh", "-c", "echo hello > /hello"])
        .custom_name("RUN echo hello > /hello")
        .root();
    let context = local(
        "context",
        LocalOptions {
            shared_key_hint: Some("context".into()),
            ..Default::default()
        },
    );
    let copied = ran
        .file(FileActions::new().copy(
            &context,
            "/greeting.txt",
            "/greeting.txt",
            CopyOptions {
                follow_symlinks: true,
                create_dest_path: true,
                ..Default::default()
            },
        ))
        .custom_name("COPY greeting.txt /greeting.txt");
    std::io::stdout().write_all(&copied.marshal().to_bytes())
}
