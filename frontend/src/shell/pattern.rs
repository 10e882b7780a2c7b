//! Shell patterns for `${VAR#pat}`, `${VAR%pat}` and `${VAR/pat/repl}`.
//!
//! Docker turns these patterns into Go regular expressions and relies on the regexp
//! engine's leftmost-first semantics. A backtracking matcher that tries wildcard lengths in
//! the same order (shortest first for `#`/`%`, longest first for `##`/`%%` and `/`) yields the
//! same matches without a regex engine; failed states are memoised so it stays polynomial.

use std::collections::HashSet;

/// One element of a pattern: a literal character, `?` or `*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    Literal(char),
    AnyChar,
    AnyString,
}

/// Why a pattern was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    /// The character after the backslash, or an empty string at the end of the pattern.
    #[error("invalid escape '\\{0}'")]
    InvalidEscape(String),
    /// Matching recurses once per element, so very long patterns are refused.
    #[error("pattern longer than {0} elements")]
    TooLong(usize),
}

/// Longer than any real `${VAR#pattern}`.
const MAX_TOKENS: usize = 1000;

/// A compiled shell pattern.
#[derive(Debug, Clone)]
pub struct Pattern {
    tokens: Vec<Token>,
}

impl Pattern {
    /// Compiles `pattern`. A backslash makes `*`, `?` and `\` literal; before `}` or `/` it is
    /// dropped (those had to be escaped to stay inside `${}`); anything else is an error.
    pub fn new(pattern: &str) -> Result<Self, PatternError> {
        let chars: Vec<char> = pattern.chars().collect();
        let mut tokens = Vec::with_capacity(chars.len());
        let mut i = 0;
        while i < chars.len() {
            let ch = chars[i];
            i += 1;
            match ch {
                '*' => tokens.push(Token::AnyString),
                '?' => tokens.push(Token::AnyChar),
                '\\' => match chars.get(i) {
                    Some('}') | Some('/') => {}
                    Some(&next @ ('*' | '?' | '\\')) => {
                        tokens.push(Token::Literal(next));
                        i += 1;
                    }
                    Some(other) => {
                        return Err(PatternError::InvalidEscape(other.to_string()));
                    }
                    None => {
                        return Err(PatternError::InvalidEscape(String::new()));
                    }
                },
                other => tokens.push(Token::Literal(other)),
            }
        }
        if tokens.len() > MAX_TOKENS {
            return Err(PatternError::TooLong(MAX_TOKENS));
        }
        Ok(Self { tokens })
    }

    /// The same pattern read from the end, used to trim suffixes by trimming prefixes of the
    /// reversed value.
    fn reversed(&self) -> Self {
        let mut tokens = self.tokens.clone();
        tokens.reverse();
        Self { tokens }
    }

    /// Where a match that starts at `start` ends, trying `*` lengths longest first when
    /// `greedy`, shortest first otherwise (the order a backtracking regex engine uses).
    fn match_at(&self, value: &[char], start: usize, greedy: bool) -> Option<usize> {
        let mut failed = HashSet::new();
        self.match_from(value, 0, start, greedy, &mut failed)
    }

    fn match_from(
        &self,
        value: &[char],
        tok: usize,
        pos: usize,
        greedy: bool,
        failed: &mut HashSet<(usize, usize)>,
    ) -> Option<usize> {
        if failed.contains(&(tok, pos)) {
            return None;
        }
        let result = match self.tokens.get(tok) {
            None => Some(pos),
            Some(Token::Literal(c)) => match value.get(pos) {
                Some(v) if v == c => self.match_from(value, tok + 1, pos + 1, greedy, failed),
                _ => None,
            },
            Some(Token::AnyChar) => {
                if pos < value.len() {
                    self.match_from(value, tok + 1, pos + 1, greedy, failed)
                } else {
                    None
                }
            }
            Some(Token::AnyString) => {
                let mut found = None;
                if greedy {
                    for end in (pos..=value.len()).rev() {
                        found = self.match_from(value, tok + 1, end, greedy, failed);
                        if found.is_some() {
                            break;
                        }
                    }
                } else {
                    for end in pos..=value.len() {
                        found = self.match_from(value, tok + 1, end, greedy, failed);
                        if found.is_some() {
                            break;
                        }
                    }
                }
                found
            }
        };
        if result.is_none() {
            failed.insert((tok, pos));
        }
        result
    }

    /// `${VAR#pat}` / `${VAR##pat}`.
    pub fn trim_prefix(&self, value: &str, greedy: bool) -> String {
        let chars: Vec<char> = value.chars().collect();
        match self.match_at(&chars, 0, greedy) {
            Some(end) => chars[end..].iter().collect(),
            None => value.to_string(),
        }
    }

    /// `${VAR%pat}` / `${VAR%%pat}`.
    pub fn trim_suffix(&self, value: &str, greedy: bool) -> String {
        let mut chars: Vec<char> = value.chars().collect();
        chars.reverse();
        let rev = self.reversed();
        let kept: Vec<char> = match rev.match_at(&chars, 0, greedy) {
            Some(end) => chars[end..].to_vec(),
            None => chars,
        };
        kept.iter().rev().collect()
    }

    fn find(&self, value: &[char], from: usize) -> Option<(usize, usize)> {
        (from..=value.len())
            .find_map(|start| self.match_at(value, start, true).map(|end| (start, end)))
    }

    /// `${VAR/pat/repl}`: the leftmost match, replaced once.
    pub fn replace_first(&self, value: &str, replacement: &str) -> String {
        let chars: Vec<char> = value.chars().collect();
        match self.find(&chars, 0) {
            Some((start, end)) => {
                let mut out: String = chars[..start].iter().collect();
                out.push_str(replacement);
                out.extend(&chars[end..]);
                out
            }
            None => value.to_string(),
        }
    }

    /// `${VAR//pat/repl}`: every non-overlapping match, with Go's rule that an empty match
    /// right after a previous match is not replaced again.
    pub fn replace_all(&self, value: &str, replacement: &str) -> String {
        let chars: Vec<char> = value.chars().collect();
        let mut out = String::new();
        let mut search = 0;
        let mut last_end = 0;
        while search <= chars.len() {
            let Some((start, end)) = self.find(&chars, search) else {
                break;
            };
            out.extend(&chars[last_end..start]);
            if end > last_end || start == 0 {
                out.push_str(replacement);
            }
            last_end = end;
            search = if search + 1 > end { search + 1 } else { end };
        }
        if last_end <= chars.len() {
            out.extend(&chars[last_end..]);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_are_checked() {
        assert!(Pattern::new("\\").is_err());
        assert!(Pattern::new("\\x").is_err());
        assert!(Pattern::new("\\\\\\").is_err());
        assert!(Pattern::new("\\*\\?\\\\").is_ok());
    }

    /// `(pattern, value, shortest prefix cut, longest prefix cut, shortest suffix cut,
    /// longest suffix cut)`.
    #[test]
    fn prefix_and_suffix() {
        let cases: &[(&str, &str, &str, &str, &str, &str)] = &[
            (
                "*/",
                "/opt/app/bin",
                "opt/app/bin",
                "bin",
                "/opt/app/bin",
                "/opt/app/bin",
            ),
            ("/*", "/opt/app/bin", "opt/app/bin", "", "/opt/app", ""),
            ("?", "abc", "bc", "bc", "ab", "ab"),
            ("a*", "banana", "banana", "banana", "banan", "b"),
            ("*a", "banana", "nana", "", "banan", ""),
            ("\\*", "*x*", "x*", "x*", "*x", "*x"),
            ("\\?*", "?q?", "q?", "", "?q", ""),
            ("x", "abc", "abc", "abc", "abc", "abc"),
            ("", "abc", "abc", "abc", "abc", "abc"),
            ("é?", "éte", "e", "e", "éte", "éte"),
        ];
        for (pat, value, short_pre, long_pre, short_suf, long_suf) in cases {
            let p = Pattern::new(pat).expect("valid");
            let got = (
                p.trim_prefix(value, false),
                p.trim_prefix(value, true),
                p.trim_suffix(value, false),
                p.trim_suffix(value, true),
            );
            let want = (
                short_pre.to_string(),
                long_pre.to_string(),
                short_suf.to_string(),
                long_suf.to_string(),
            );
            assert_eq!(got, want, "{pat:?} on {value:?}");
        }
    }

    #[test]
    fn replace() {
        let p = Pattern::new("o?").expect("valid");
        assert_eq!(p.replace_first("foo boot", "0"), "f0 boot");
        assert_eq!(p.replace_all("foo boot", "0"), "f0 b0t");
        let star = Pattern::new("b*t").expect("valid");
        assert_eq!(star.replace_first("bat bit", "X"), "X", "`*` is greedy");
        let empty = Pattern::new("").expect("valid");
        assert_eq!(empty.replace_first("abc", "-"), "-abc");
        let none = Pattern::new("z").expect("valid");
        assert_eq!(none.replace_all("abc", "-"), "abc");
    }
}
