//! Human-readable dumps of a definition, shaped like `buildctl debug dump-llb`: one JSON
//! object per op (`{"Op":…,"Digest":…,"OpMetadata":…}`, as Go's `encoding/json` writes
//! BuildKit's structs), or a Graphviz graph.

use std::fmt::Write as _;

use serde::Serialize;

use crate::Digest;
use crate::definition::{Definition, LoadedOp};
use crate::pb::{self, FileActionKind, OpKind, OpMetadata};

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct DumpLine<'a> {
    op: &'a pb::Op,
    digest: &'a Digest,
    op_metadata: &'a OpMetadata,
}

/// The JSON line (with its trailing newline) for one op, as `buildctl debug dump-llb`
/// prints it. Ops without a metadata entry get an empty one, as in Go.
pub fn json_line(op: &LoadedOp, metadata: Option<&OpMetadata>) -> String {
    let empty = OpMetadata::default();
    let line = DumpLine {
        op: op.op(),
        digest: op.digest(),
        op_metadata: metadata.unwrap_or(&empty),
    };
    // Serializing plain data with string keys cannot fail.
    let json = serde_json::to_string(&line).unwrap_or_default();
    let mut out = go_json_escape(&json);
    out.push('\n');
    out
}

/// Every op of `def`, in `def` order, one JSON object per line.
pub fn json(def: &Definition) -> String {
    def.ops()
        .iter()
        .map(|op| json_line(op, def.metadata(op.digest())))
        .collect()
}

/// Go's `encoding/json` additionally escapes `<`, `>`, `&`, U+2028 and U+2029 (HTML
/// safety). In serde_json's output those characters occur only inside strings, so a
/// textual replacement is exact.
pub(crate) fn go_json_escape(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    for c in json.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out
}

/// A Graphviz digraph of `def`: one node per op (labelled like BuildKit's dump), one
/// edge per input, labelled with the mount point for non-root exec mounts.
pub fn dot(def: &Definition) -> String {
    let mut out = String::from("digraph {\n");
    for op in def.ops() {
        let (label, shape) = node_attr(op);
        let _ = writeln!(
            out,
            "  {} [label={} shape={}];",
            crate::go::go_quote(op.digest().as_str()),
            crate::go::go_quote(&label),
            crate::go::go_quote(shape)
        );
    }
    for op in def.ops() {
        for (i, input) in op.op().inputs.iter().enumerate() {
            let mut label = "";
            if let Some(OpKind::Exec(e)) = &op.op().op {
                for m in &e.mounts {
                    if m.input == i as i64 && m.dest != "/" {
                        label = &m.dest;
                    }
                }
            }
            let _ = writeln!(
                out,
                "  {} -> {} [label={}];",
                crate::go::go_quote(&input.digest),
                crate::go::go_quote(op.digest().as_str()),
                crate::go::go_quote(label)
            );
        }
    }
    out.push_str("}\n");
    out
}

fn node_attr(op: &LoadedOp) -> (String, &'static str) {
    match &op.op().op {
        Some(OpKind::Source(s)) => (s.identifier.clone(), "ellipse"),
        Some(OpKind::Exec(e)) => (
            e.meta
                .as_ref()
                .map(|m| m.args.join(" "))
                .unwrap_or_default(),
            "box",
        ),
        Some(OpKind::Build(_)) => ("build".to_owned(), "box3d"),
        Some(OpKind::Merge(_)) => ("merge".to_owned(), "invtriangle"),
        Some(OpKind::Diff(_)) => ("diff".to_owned(), "doublecircle"),
        Some(OpKind::Passthrough(_)) => ("passthrough".to_owned(), "cds"),
        Some(OpKind::File(f)) => {
            let names: Vec<String> = f
                .actions
                .iter()
                .map(|a| match &a.action {
                    Some(FileActionKind::Copy(c)) => {
                        format!("copy{{src={}, dest={}}}", c.src, c.dest)
                    }
                    Some(FileActionKind::Mkfile(m)) => format!("mkfile{{path={}}}", m.path),
                    Some(FileActionKind::Mkdir(m)) => format!("mkdir{{path={}}}", m.path),
                    Some(FileActionKind::Rm(r)) => format!("rm{{path={}}}", r.path),
                    Some(FileActionKind::Symlink(s)) => {
                        format!("symlink{{oldpath={}, newpath={}}}", s.oldpath, s.newpath)
                    }
                    None => String::new(),
                })
                .collect();
            (names.join(","), "note")
        }
        None => (op.digest().to_string(), "plaintext"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_escapes_html_characters() {
        assert_eq!(
            go_json_escape(r#"{"a":"x > y && z < w"}"#),
            r#"{"a":"x \u003e y \u0026\u0026 z \u003c w"}"#
        );
    }

    #[test]
    fn go_quote_escapes_like_strconv_quote() {
        assert_eq!(
            crate::go::go_quote("a\"b\\c\nd\u{1}"),
            "\"a\\\"b\\\\c\\nd\\x01\""
        );
        assert_eq!(crate::go::go_quote("héllo"), "\"héllo\"");
    }
}

#[cfg(test)]
mod go_shape_tests {
    use crate::pb::{self, UserOptKind};

    fn json<T: serde::Serialize>(v: &T) -> String {
        serde_json::to_string(v).unwrap()
    }

    #[test]
    fn user_opt_omits_zero_ids_like_go() {
        assert_eq!(
            json(&pb::UserOpt {
                user: Some(UserOptKind::ById(0))
            }),
            r#"{"User":{}}"#
        );
        assert_eq!(
            json(&pb::UserOpt {
                user: Some(UserOptKind::ById(7))
            }),
            r#"{"User":{"byID":7}}"#
        );
        let named = UserOptKind::ByName(pb::NamedUserOpt {
            name: "app".into(),
            input: 0,
        });
        assert_eq!(
            json(&pb::UserOpt { user: Some(named) }),
            r#"{"User":{"byName":{"name":"app","input":0}}}"#
        );
        assert_eq!(json(&pb::UserOpt { user: None }), r#"{"User":null}"#);
    }

    #[test]
    fn nested_definitions_print_ops_as_base64_and_empty_caps_as_null() {
        let def = pb::Definition {
            def: vec![vec![0xff]],
            ..Default::default()
        };
        assert_eq!(json(&def), r#"{"def":["/w=="],"metadata":null}"#);
        assert_eq!(json(&pb::OpMetadata::default()), r#"{"caps":null}"#);
    }
}
