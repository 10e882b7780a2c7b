//! Canonical JSON: object keys sorted by bytes, no whitespace. Written by hand rather than
//! through `serde_json::Map`, whose order depends on whether some crate in the build turned
//! on `preserve_order`; a digest must not depend on feature unification.

use serde_json::Value;

/// The canonical encoding of `value`: the same value always gives the same bytes.
pub fn canonical_json(value: &Value) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    write_value(value, &mut out);
    out
}

fn write_value(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push(b'{');
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_string(k, out);
                out.push(b':');
                write_value(v, out);
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(v, out);
            }
            out.push(b']');
        }
        Value::String(s) => write_string(s, out),
        // Scalars have one serde_json spelling each.
        other => out.extend_from_slice(other.to_string().as_bytes()),
    }
}

fn write_string(s: &str, out: &mut Vec<u8>) {
    out.extend_from_slice(Value::String(s.to_owned()).to_string().as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_sorted_at_every_depth_and_strings_escaped() {
        let v: Value =
            serde_json::from_str(r#"{"b":{"z":1,"a":[true,null,"x\"y"]},"a":2.5,"é":"\n"}"#)
                .unwrap();
        assert_eq!(
            String::from_utf8(canonical_json(&v)).unwrap(),
            r#"{"a":2.5,"b":{"a":[true,null,"x\"y"],"z":1},"é":"\n"}"#
        );
    }

    #[test]
    fn same_value_from_differently_ordered_input_gives_same_bytes() {
        let a: Value = serde_json::from_str(r#"{"x":1,"y":{"p":1,"q":2}}"#).unwrap();
        let b: Value = serde_json::from_str(r#"{"y":{"q":2,"p":1},"x":1}"#).unwrap();
        assert_eq!(canonical_json(&a), canonical_json(&b));
    }
}
