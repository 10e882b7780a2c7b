//! Parser directives: `# syntax=…`, `# escape=…`, `# check=…` on the first lines.
//!
//! Directives are only recognised before anything else: the first line that is not a
//! directive (an instruction, an ordinary comment, even an empty line) ends the header.
//! Each directive may appear once.

use serde::Serialize;

use crate::error::{Error, ErrorKind};
use crate::position::Range;

/// A recognised directive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Directive {
    /// `syntax`, `escape` or `check`, lower-cased.
    pub name: String,
    /// The value, trimmed.
    pub value: String,
    /// The line it was found on.
    pub range: Range,
}

const KNOWN: [&str; 3] = ["syntax", "escape", "check"];

/// Tracks whether the directive header is still open.
#[derive(Debug, Default)]
pub(crate) struct DirectiveParser {
    line: usize,
    done: bool,
    seen: Vec<Directive>,
}

impl DirectiveParser {
    /// Looks at the next physical line; returns the directive it holds, if any.
    pub(crate) fn parse_line(&mut self, line: &str) -> Result<Option<Directive>, Error> {
        self.line += 1;
        if self.done {
            return Ok(None);
        }
        let Some(rest) = line.strip_prefix('#') else {
            self.done = true;
            return Ok(None);
        };
        let Some((name, value)) = split_directive(rest.trim_start()) else {
            self.done = true;
            return Ok(None);
        };
        let name = name.to_lowercase();
        if !KNOWN.contains(&name.as_str()) {
            self.done = true;
            return Ok(None);
        }
        let range = Range::lines(self.line, self.line);
        if self.seen.iter().any(|d| d.name == name) {
            return Err(Error::new(ErrorKind::DuplicateDirective(name)).at(range));
        }
        let directive = Directive {
            name,
            value: value.to_string(),
            range,
        };
        self.seen.push(directive.clone());
        Ok(Some(directive))
    }

    /// Every directive seen so far.
    pub(crate) fn directives(&self) -> &[Directive] {
        &self.seen
    }
}

/// `name = value` where name is `[a-zA-Z][a-zA-Z0-9]*` and value is non-empty.
fn split_directive(s: &str) -> Option<(&str, &str)> {
    let mut chars = s.char_indices();
    let (_, first) = chars.next()?;
    if !first.is_ascii_alphabetic() {
        return None;
    }
    let name_end = s
        .char_indices()
        .find(|(_, c)| !c.is_ascii_alphanumeric())
        .map_or(s.len(), |(i, _)| i);
    let (name, rest) = s.split_at(name_end);
    let rest = rest.trim_start().strip_prefix('=')?;
    let value = rest.trim();
    if value.is_empty() {
        return None;
    }
    Some((name, value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_only() {
        let mut p = DirectiveParser::default();
        let d = p
            .parse_line("# syntax = docker/dockerfile:1")
            .expect("ok")
            .expect("directive");
        assert_eq!(
            (d.name.as_str(), d.value.as_str()),
            ("syntax", "docker/dockerfile:1")
        );
        assert_eq!(
            p.parse_line("#ESCAPE=`").expect("ok").map(|d| d.value),
            Some("`".into())
        );
        assert!(p.parse_line("# check=skip=all").expect("ok").is_some());
        assert!(p.parse_line("FROM x").expect("ok").is_none());
        assert!(
            p.parse_line("# escape=\\").expect("ok").is_none(),
            "header is closed"
        );
    }

    #[test]
    fn unknown_closes_and_duplicates_fail() {
        let mut p = DirectiveParser::default();
        assert!(p.parse_line("# foo=bar").expect("ok").is_none());
        assert!(p.parse_line("# escape=`").expect("ok").is_none());
        let mut p = DirectiveParser::default();
        p.parse_line("# escape=`").expect("ok");
        let err = p.parse_line("# escape=\\").expect_err("duplicate");
        assert_eq!(*err.kind, ErrorKind::DuplicateDirective("escape".into()));
    }
}
