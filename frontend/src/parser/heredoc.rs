//! Heredoc markers (`<<EOF`, `<<-EOF`, `<<"EOF"`, `3<<EOF`) and their bodies.

use serde::Serialize;

use crate::error::{Error, ErrorKind};
use crate::shell::{Lex, NoEnv};

/// One heredoc attached to an instruction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Heredoc {
    /// The terminator word, quotes removed.
    pub name: String,
    /// The file descriptor written before `<<` (0 when absent).
    pub fd: u32,
    /// False when any part of the terminator was quoted: the body is then taken literally.
    pub expand: bool,
    /// `<<-`: leading tabs are stripped from body lines and the terminator.
    pub chomp: bool,
    /// The body, each line with its line ending.
    pub content: String,
}

impl Heredoc {
    /// The body with leading tabs removed from every line when `chomp` is set.
    pub fn chomped_content(&self) -> String {
        if !self.chomp {
            return self.content.clone();
        }
        self.content
            .split_inclusive('\n')
            .map(|l| l.trim_start_matches('\t'))
            .collect()
    }
}

/// Parses a word such as `<<EOF` or `2<<-"END"`. Returns `None` when the word is not a
/// heredoc marker (including `<<` followed by several words).
pub fn parse_heredoc_word(word: &str) -> Result<Option<Heredoc>, Error> {
    let digits_end = word
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(word.len());
    let (digits, rest) = word.split_at(digits_end);
    let Some(rest) = rest.strip_prefix("<<") else {
        return Ok(None);
    };
    let (chomp, rest) = match rest.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, rest),
    };
    let rest = rest.trim_start_matches(['\t', '\n', '\u{c}', '\r', ' ']);
    if rest.contains('<') || rest.is_empty() {
        return Ok(None);
    }
    let fd = if digits.is_empty() {
        0
    } else {
        digits.parse().unwrap_or(0)
    };

    let mut lex = Lex::new('\\');
    lex.skip_unset_env = true;
    let words = lex
        .process_words(rest, &NoEnv)
        .map_err(|e| Error::new(ErrorKind::Expansion(e)))?;
    let [name] = words.as_slice() else {
        return Ok(None);
    };
    lex.raw_quotes = true;
    let raw = lex
        .process_words(rest, &NoEnv)
        .map_err(|e| Error::new(ErrorKind::Expansion(e)))?;
    if raw.len() != words.len() {
        return Err(Error::new(ErrorKind::Arguments(format!(
            "internal lexing of heredoc produced inconsistent results: {rest}"
        ))));
    }
    let quotes = |s: &str| s.chars().filter(|c| *c == '\'' || *c == '"').count();
    let expand = quotes(name) == quotes(&raw[0]);
    Ok(Some(Heredoc {
        name: name.clone(),
        fd,
        expand,
        chomp,
        content: String::new(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(word: &str) -> Option<(String, u32, bool, bool)> {
        parse_heredoc_word(word)
            .expect("parses")
            .map(|h| (h.name, h.fd, h.expand, h.chomp))
    }

    #[test]
    fn markers() {
        assert_eq!(doc("<<EOF"), Some(("EOF".into(), 0, true, false)));
        assert_eq!(doc("<<-EOF"), Some(("EOF".into(), 0, true, true)));
        assert_eq!(doc("<<'EOF'"), Some(("EOF".into(), 0, false, false)));
        assert_eq!(doc("<<\"E\"OF"), Some(("EOF".into(), 0, false, false)));
        assert_eq!(doc("3<<EOF"), Some(("EOF".into(), 3, true, false)));
        assert_eq!(doc("<< EOF"), Some(("EOF".into(), 0, true, false)));
        assert_eq!(doc("<<"), None);
        assert_eq!(doc("<<<EOF"), None);
        assert_eq!(doc("echo"), None);
        assert_eq!(doc("<<EOF EOF2"), None);
    }

    #[test]
    fn chomp_strips_tabs() {
        let h = Heredoc {
            name: "E".into(),
            fd: 0,
            expand: true,
            chomp: true,
            content: "\ta\n\t\tb\n c\n".into(),
        };
        assert_eq!(h.chomped_content(), "a\nb\n c\n");
    }
}
