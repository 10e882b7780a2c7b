//! The S-expression dump Docker's parser tests compare against, so its fixtures can be
//! reused as they are: `(copy ["--from=a"] "src" "dst")`.

use super::{Args, Dockerfile, Node};

impl Node {
    /// Docker's `Node.Dump()` form of this node (without the surrounding parentheses).
    pub fn dump(&self) -> String {
        let mut s = self.instruction.to_lowercase();
        if !self.flags.is_empty() {
            let flags: Vec<String> = self
                .flags
                .iter()
                .map(|f| cairn_llb::go::go_quote(f))
                .collect();
            s.push_str(&format!(" [{}]", flags.join(" ")));
        }
        match &self.args {
            Args::SubCommand(child) => {
                s.push_str(&format!(" ({})", child.dump()));
            }
            _ => {
                for arg in self.flat_args() {
                    s.push(' ');
                    s.push_str(&cairn_llb::go::go_quote(&arg));
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
