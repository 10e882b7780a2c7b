//! The S-expression dump Docker's parser tests compare against, so its fixtures can be
//! reused as they are: `(copy ["--from=a"] "src" "dst")`.

use super::{Args, Dockerfile, Node};

/// Go's `strconv.Quote`.
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c if c.is_control() => {
                if (c as u32) <= 0xffff {
                    out.push_str(&format!("\\u{:04x}", c as u32));
                } else {
                    out.push_str(&format!("\\U{:08x}", c as u32));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

impl Node {
    /// Docker's `Node.Dump()` form of this node (without the surrounding parentheses).
    pub fn dump(&self) -> String {
        let mut s = self.instruction.to_lowercase();
        if !self.flags.is_empty() {
            let flags: Vec<String> = self.flags.iter().map(|f| go_quote(f)).collect();
            s.push_str(&format!(" [{}]", flags.join(" ")));
        }
        match &self.args {
            Args::SubCommand(child) => {
                s.push_str(&format!(" ({})", child.dump()));
            }
            _ => {
                for arg in self.flat_args() {
                    s.push(' ');
                    s.push_str(&go_quote(&arg));
                }
            }
        }
        s.trim().to_string()
    }
}

impl Dockerfile {
    /// One `(node)` per line, as in Docker's parser `result` fixtures.
    pub fn dump(&self) -> String {
        self.nodes
            .iter()
            .map(|n| format!("({})\n", n.dump()))
            .collect()
    }
}
