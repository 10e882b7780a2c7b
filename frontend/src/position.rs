//! Source positions: where in a Dockerfile a node, flag or error sits.

use serde::Serialize;

/// A point in a source file. Lines and columns count from 1; columns count characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize)]
pub struct Position {
    pub line: usize,
    pub column: usize,
}

/// A span from `start` to `end` (end column inclusive of the last character).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize)]
pub struct Range {
    pub start: Position,
    pub end: Position,
}

impl Range {
    /// A span covering whole lines, used where only lines are known (as in BuildKit).
    pub fn lines(start: usize, end: usize) -> Self {
        Self {
            start: Position {
                line: start,
                column: 1,
            },
            end: Position {
                line: end,
                column: 1,
            },
        }
    }

    /// A span on one line, from `column` over `len` characters.
    pub fn on_line(line: usize, column: usize, len: usize) -> Self {
        Self {
            start: Position { line, column },
            end: Position {
                line,
                column: column + len.saturating_sub(1),
            },
        }
    }
}

/// Where `needle` sits inside `text`, a one-line instruction starting at `range.start`; the
/// whole `range` when it cannot be placed (absent, or the instruction spans lines).
pub fn span_of(text: &str, range: Range, needle: &str) -> Range {
    match text.find(needle) {
        Some(byte) if range.start.line == range.end.line && !needle.is_empty() => {
            let col = range.start.column + text[..byte].chars().count();
            Range::on_line(range.start.line, col, needle.chars().count())
        }
        _ => range,
    }
}

impl std::fmt::Display for Range {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.start.line, self.start.column)
    }
}
