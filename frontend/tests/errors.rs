//! How errors read: file, line, column, the offending line, a caret, and a suggestion for
//! near spellings. Snapshots live in `tests/snapshots/`.

use cairn_frontend::convert::{
    ConvertOptions, ImageResolver, ResolveError, ResolvedImage, convert,
};
use cairn_llb::pb::Platform;

struct Resolver;

impl ImageResolver for Resolver {
    fn resolve(
        &self,
        reference: &str,
        _platform: &Platform,
    ) -> Result<ResolvedImage, ResolveError> {
        if reference.contains("/library/builder:") || reference.contains("nosuchimage") {
            return Err(Box::from(format!("pull access denied for {reference}")));
        }
        let config = r#"{"architecture":"amd64","os":"linux","config":{},"rootfs":{"type":"layers","diff_ids":["sha256:11"]}}"#;
        Ok(ResolvedImage {
            reference: None,
            digest: None,
            config: config.as_bytes().to_vec(),
        })
    }
}

fn render(src: &str) -> String {
    render_with(src, ConvertOptions::default())
}

fn render_with(src: &str, opts: ConvertOptions) -> String {
    let opts = ConvertOptions {
        target_platform: Some(Platform::new("linux", "amd64")),
        ..opts
    };
    match convert(src, &opts, &Resolver) {
        Ok(_) => panic!("expected an error for:\n{src}"),
        Err(e) => e.render(src),
    }
}

#[test]
fn unknown_instruction() {
    insta::assert_snapshot!(render("FROM busybox\nRUNN echo hi\n"));
}

#[test]
fn unknown_flag() {
    insta::assert_snapshot!(render("FROM busybox\nCOPY --chmown=1000 a /b\n"));
}

#[test]
fn bad_flag_value() {
    insta::assert_snapshot!(render("FROM busybox\nRUN --network=hots curl x\n"));
}

#[test]
fn instruction_before_from() {
    insta::assert_snapshot!(render("# comment\nRUN echo hi\nFROM busybox\n"));
}

#[test]
fn undefined_stage_in_from() {
    insta::assert_snapshot!(render(
        "FROM busybox AS buildr\nRUN true\nFROM busybox\nCOPY --from=builder /out /out\n"
    ));
}

#[test]
fn stage_index_out_of_range() {
    insta::assert_snapshot!(render("FROM busybox\nCOPY --from=3 /a /b\n"));
}

#[test]
fn unterminated_heredoc() {
    insta::assert_snapshot!(render("FROM busybox\nRUN <<EOF\necho hi\n"));
}

#[test]
fn heredoc_as_destination() {
    insta::assert_snapshot!(render("FROM busybox\nCOPY a <<EOF\nx\nEOF\n"));
}

#[test]
fn json_with_non_strings() {
    insta::assert_snapshot!(render("FROM busybox\nCMD [\"a\", 1]\n"));
}

#[test]
fn unterminated_variable() {
    insta::assert_snapshot!(render("FROM busybox\nENV A=${B\n"));
}

#[test]
fn required_variable() {
    insta::assert_snapshot!(render("FROM busybox\nWORKDIR ${APP_DIR:?set APP_DIR}\n"));
}

#[test]
fn bad_mount_type() {
    insta::assert_snapshot!(render(
        "FROM busybox\nRUN --mount=type=cahce,target=/c make\n"
    ));
}

#[test]
fn missing_target() {
    let opts = ConvertOptions {
        target: Some("tset".into()),
        ..ConvertOptions::default()
    };
    insta::assert_snapshot!(render_with("FROM busybox AS test\nRUN true\n", opts));
}

#[test]
fn unresolvable_image() {
    insta::assert_snapshot!(render("FROM nosuchimage:1\n"));
}

#[test]
fn empty_and_comment_only() {
    insta::assert_snapshot!(render("# only a comment\n\n"));
}

#[test]
fn invalid_escape_directive() {
    insta::assert_snapshot!(render("# escape=x\nFROM busybox\n"));
}

#[test]
fn missing_from() {
    insta::assert_snapshot!(render("ARG VERSION=1\n"));
}

#[test]
fn bad_stage_name() {
    insta::assert_snapshot!(render("FROM busybox AS 1st\n"));
}

#[test]
fn circular_stages() {
    insta::assert_snapshot!(render(
        "FROM busybox AS a\nCOPY --from=b /x /x\nFROM a AS b\n"
    ));
}

#[test]
fn copy_from_later_stage() {
    let opts = ConvertOptions {
        target: Some("a".into()),
        ..ConvertOptions::default()
    };
    insta::assert_snapshot!(render_with(
        "FROM busybox AS a\nCOPY --from=b /x /x\nFROM busybox AS b\nRUN x\n",
        opts
    ));
}
