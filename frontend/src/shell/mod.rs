//! Shell-word processing as Docker's Dockerfile lexer does it: quotes, escapes, `$VAR` and
//! `${VAR…}` expansion, and word splitting after expansion.
//!
//! This is not a shell: there is no command substitution, globbing or arithmetic. The
//! behaviour (including its quirks) is what Dockerfiles in the wild were written against,
//! so it is matched case for case; the tables in `tests.rs` hold the cases.

mod pattern;

use std::collections::{BTreeMap, BTreeSet};

pub use pattern::{Pattern, PatternError};

/// Variables visible to an expansion.
pub trait EnvGetter {
    /// The value of `key`, if set (possibly to the empty string).
    fn get(&self, key: &str) -> Option<String>;
    /// All keys, in definition order.
    fn keys(&self) -> Vec<String>;
}

/// An ordered list of `KEY=VALUE` pairs; a later definition of a key replaces the earlier
/// value but keeps its position, as in an image's `Env`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EnvList {
    entries: Vec<(String, String)>,
}

impl EnvList {
    /// An empty list.
    pub fn new() -> Self {
        Self::default()
    }

    /// Builds a list from `KEY=VALUE` strings (a string without `=` sets an empty value).
    pub fn from_pairs<I, S>(pairs: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut list = Self::new();
        for pair in pairs {
            let pair = pair.as_ref();
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            list.set(k, v);
        }
        list
    }

    /// Sets `key` to `value`, replacing an earlier value in place.
    pub fn set(&mut self, key: &str, value: &str) {
        if let Some(entry) = self.entries.iter_mut().find(|(k, _)| k == key) {
            entry.1 = value.to_string();
        } else {
            self.entries.push((key.to_string(), value.to_string()));
        }
    }

    /// Removes `key` if present.
    pub fn remove(&mut self, key: &str) {
        self.entries.retain(|(k, _)| k != key);
    }

    /// The entries, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// `KEY=VALUE` strings, in order.
    pub fn to_pairs(&self) -> Vec<String> {
        self.entries
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect()
    }

    /// True when nothing is set.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl EnvGetter for EnvList {
    fn get(&self, key: &str) -> Option<String> {
        self.entries
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
    }

    fn keys(&self) -> Vec<String> {
        self.entries.iter().map(|(k, _)| k.clone()).collect()
    }
}

impl EnvGetter for BTreeMap<String, String> {
    fn get(&self, key: &str) -> Option<String> {
        BTreeMap::get(self, key).cloned()
    }

    fn keys(&self) -> Vec<String> {
        BTreeMap::keys(self).cloned().collect()
    }
}

/// No variables at all.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoEnv;

impl EnvGetter for NoEnv {
    fn get(&self, _key: &str) -> Option<String> {
        None
    }

    fn keys(&self) -> Vec<String> {
        Vec::new()
    }
}

/// Why a word could not be processed. The message matches Docker's where one exists.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShellError {
    #[error("unexpected end of statement while looking for matching {0}")]
    UnexpectedEnd(char),
    #[error("unexpected end of statement while looking for matching single-quote")]
    UnterminatedSingleQuote,
    #[error("unexpected end of statement while looking for matching double-quote")]
    UnterminatedDoubleQuote,
    #[error("syntax error: missing '}}'")]
    MissingBrace,
    #[error("syntax error: missing '/' in ${{}}")]
    MissingSlash,
    #[error("syntax error: bad substitution")]
    BadSubstitution,
    #[error("unsupported modifier ({0}) in substitution")]
    UnsupportedModifier(String),
    #[error("{name}: {message}")]
    Required { name: String, message: String },
    #[error("substitutions nested more than {0} deep")]
    TooDeep(usize),
    #[error("invalid pattern ({pattern}) in substitution: {source}")]
    InvalidPattern {
        pattern: String,
        #[source]
        source: PatternError,
    },
}

/// A processing error together with the word it happened in.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("failed to process {word:?}: {kind}")]
pub struct WordError {
    /// The word as written.
    pub word: String,
    /// What went wrong.
    #[source]
    pub kind: ShellError,
}

/// The outcome of processing one word.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Processed {
    /// The word after quote removal and expansion, spaces kept.
    pub result: String,
    /// The words after splitting on unquoted white space.
    pub words: Vec<String>,
    /// Variables that were referenced and set.
    pub matched: BTreeSet<String>,
    /// Variables that were referenced but not set.
    pub unmatched: BTreeSet<String>,
}

/// The lexer and its options (the same knobs as Docker's `shell.Lex`).
#[derive(Debug, Clone, Copy)]
pub struct Lex {
    /// `\` by default, `` ` `` with `# escape=`` ` ``.
    pub escape: char,
    /// Keep quote characters in the output.
    pub raw_quotes: bool,
    /// Keep escape characters in the output.
    pub raw_escapes: bool,
    /// Treat quotes as ordinary characters.
    pub skip_process_quotes: bool,
    /// Leave references to unset variables as written.
    pub skip_unset_env: bool,
}

impl Lex {
    /// A lexer with the given escape character and default options.
    pub fn new(escape: char) -> Self {
        Self {
            escape,
            raw_quotes: false,
            raw_escapes: false,
            skip_process_quotes: false,
            skip_unset_env: false,
        }
    }

    /// Expands one word, keeping spaces (`ProcessWord`).
    pub fn process_word(&self, word: &str, env: &dyn EnvGetter) -> Result<Processed, WordError> {
        let mut w = Word::new(self, word, env);
        match w.process_stop_on(None, self.raw_escapes) {
            Ok((result, words)) => Ok(Processed {
                result,
                words,
                matched: w.matched,
                unmatched: w.unmatched,
            }),
            Err(kind) => Err(WordError {
                word: word.to_string(),
                kind,
            }),
        }
    }

    /// Expands and splits into words (`ProcessWords`).
    pub fn process_words(&self, word: &str, env: &dyn EnvGetter) -> Result<Vec<String>, WordError> {
        self.process_word(word, env).map(|p| p.words)
    }
}

/// Accumulates split words. Docker shares one buffer between nested `${…}` scans, so the
/// half-built word before a `${VAR:-…}` is dropped in `words` (not in the result string);
/// `buf` lives in [`Word`] to keep that behaviour.
#[derive(Default)]
struct Words {
    words: Vec<String>,
    in_word: bool,
}

struct Word<'a> {
    lex: &'a Lex,
    chars: Vec<char>,
    pos: usize,
    env: &'a dyn EnvGetter,
    raw_escapes: bool,
    buf: String,
    matched: BTreeSet<String>,
    unmatched: BTreeSet<String>,
    /// Nesting of `${…}` being scanned, bounded so input cannot exhaust the stack.
    depth: usize,
}

/// Deeper `${a:-${b:-…}}` nesting than any real Dockerfile uses.
const MAX_DEPTH: usize = 100;

impl<'a> Word<'a> {
    fn new(lex: &'a Lex, word: &str, env: &'a dyn EnvGetter) -> Self {
        Self {
            lex,
            chars: word.chars().collect(),
            pos: 0,
            env,
            raw_escapes: lex.raw_escapes,
            buf: String::new(),
            matched: BTreeSet::new(),
            unmatched: BTreeSet::new(),
            depth: 0,
        }
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<char> {
        let ch = self.peek();
        if ch.is_some() {
            self.pos += 1;
        }
        ch
    }

    fn add_char(&mut self, words: &mut Words, ch: char) {
        if ch.is_whitespace() {
            if words.in_word && !self.buf.is_empty() {
                words.words.push(std::mem::take(&mut self.buf));
                words.in_word = false;
            }
        } else {
            self.add_raw_char(words, ch);
        }
    }

    fn add_raw_char(&mut self, words: &mut Words, ch: char) {
        self.buf.push(ch);
        words.in_word = true;
    }

    fn add_string(&mut self, words: &mut Words, s: &str) {
        for ch in s.chars() {
            self.add_char(words, ch);
        }
    }

    fn add_raw_string(&mut self, words: &mut Words, s: &str) {
        self.buf.push_str(s);
        words.in_word = true;
    }

    fn finish_words(&mut self, mut words: Words) -> Vec<String> {
        if !self.buf.is_empty() {
            words.words.push(std::mem::take(&mut self.buf));
        }
        words.words
    }

    fn process_stop_on(
        &mut self,
        stop: Option<char>,
        raw_escapes: bool,
    ) -> Result<(String, Vec<String>), ShellError> {
        if self.depth >= MAX_DEPTH {
            return Err(ShellError::TooDeep(MAX_DEPTH));
        }
        self.depth += 1;
        let saved = self.raw_escapes;
        self.raw_escapes = raw_escapes;
        let out = self.process_stop_on_inner(stop);
        self.raw_escapes = saved;
        self.depth -= 1;
        out
    }

    fn process_stop_on_inner(
        &mut self,
        stop: Option<char>,
    ) -> Result<(String, Vec<String>), ShellError> {
        let mut result = String::new();
        self.buf.clear();
        let mut words = Words::default();
        while let Some(ch) = self.peek() {
            if Some(ch) == stop {
                self.next();
                let words = self.finish_words(words);
                return Ok((result, words));
            }
            let quotes = !self.lex.skip_process_quotes;
            match ch {
                '$' => {
                    let tmp = self.process_dollar()?;
                    result.push_str(&tmp);
                    self.add_string(&mut words, &tmp);
                }
                '<' => {
                    let tmp = self.process_possible_heredoc();
                    result.push_str(&tmp);
                    self.add_raw_string(&mut words, &tmp);
                }
                '\'' if quotes => {
                    let tmp = self.process_single_quote()?;
                    result.push_str(&tmp);
                    self.add_raw_string(&mut words, &tmp);
                }
                '"' if quotes => {
                    let tmp = self.process_double_quote()?;
                    result.push_str(&tmp);
                    self.add_raw_string(&mut words, &tmp);
                }
                _ => {
                    self.next();
                    if ch == self.lex.escape {
                        if self.raw_escapes {
                            self.add_raw_char(&mut words, ch);
                            result.push(ch);
                        }
                        let Some(escaped) = self.next() else {
                            break;
                        };
                        self.add_raw_char(&mut words, escaped);
                        result.push(escaped);
                    } else {
                        self.add_char(&mut words, ch);
                        result.push(ch);
                    }
                }
            }
        }
        if let Some(stop) = stop {
            return Err(ShellError::UnexpectedEnd(stop));
        }
        let words = self.finish_words(words);
        Ok((result, words))
    }

    fn process_single_quote(&mut self) -> Result<String, ShellError> {
        let mut result = String::new();
        let open = self.next();
        if self.lex.raw_quotes {
            result.extend(open);
        }
        loop {
            match self.next() {
                None => return Err(ShellError::UnterminatedSingleQuote),
                Some('\'') => {
                    if self.lex.raw_quotes {
                        result.push('\'');
                    }
                    return Ok(result);
                }
                Some(ch) => result.push(ch),
            }
        }
    }

    fn process_double_quote(&mut self) -> Result<String, ShellError> {
        let mut result = String::new();
        let open = self.next();
        if self.lex.raw_quotes {
            result.extend(open);
        }
        loop {
            match self.peek() {
                None => return Err(ShellError::UnterminatedDoubleQuote),
                Some('"') => {
                    self.next();
                    if self.lex.raw_quotes {
                        result.push('"');
                    }
                    return Ok(result);
                }
                Some('$') => {
                    let value = self.process_dollar()?;
                    result.push_str(&value);
                }
                Some(_) => {
                    let Some(mut ch) = self.next() else {
                        return Err(ShellError::UnterminatedDoubleQuote);
                    };
                    if ch == self.lex.escape {
                        if self.raw_escapes {
                            result.push(ch);
                        }
                        match self.peek() {
                            None => continue,
                            Some(next) if next == '"' || next == '$' || next == self.lex.escape => {
                                self.next();
                                ch = next;
                            }
                            Some(_) => {}
                        }
                    }
                    result.push(ch);
                }
            }
        }
    }

    fn get_env(&mut self, name: &str) -> Option<String> {
        match self.env.get(name) {
            Some(v) => {
                self.matched.insert(name.to_string());
                Some(v)
            }
            None => {
                self.unmatched.insert(name.to_string());
                None
            }
        }
    }

    fn process_dollar(&mut self) -> Result<String, ShellError> {
        self.next();
        if self.peek() != Some('{') {
            let name = self.process_name();
            if name.is_empty() {
                return Ok("$".to_string());
            }
            return Ok(match self.get_env(&name) {
                Some(v) => v,
                None if self.lex.skip_unset_env => format!("${name}"),
                None => String::new(),
            });
        }
        self.next();
        match self.peek() {
            None => return Err(ShellError::MissingBrace),
            Some('{' | '}' | ':') => return Err(ShellError::BadSubstitution),
            Some(_) => {}
        }
        let name = self.process_name();
        let ch = self.next();
        if ch.is_none() {
            // Docker reports an "unsupported modifier" of EOF here; a missing brace is
            // what actually went wrong.
            return Err(ShellError::MissingBrace);
        }
        let mut modifier: String = ch.map(String::from).unwrap_or_default();
        match ch {
            Some('}') => Ok(match self.get_env(&name) {
                Some(v) => v,
                None if self.lex.skip_unset_env => format!("${{{name}}}"),
                None => String::new(),
            }),
            Some(first @ (':' | '+' | '-' | '?' | '#' | '%')) => {
                let null_is_unset = first == ':';
                let op = if null_is_unset {
                    let op = self.next();
                    modifier.extend(op);
                    op
                } else {
                    Some(first)
                };
                let raw = matches!(op, Some('#' | '%'));
                if null_is_unset && raw {
                    return Err(ShellError::UnsupportedModifier(modifier));
                }
                let mut word = self.scan_modifier_word(raw)?;
                let value = self.get_env(&name);
                if self.lex.skip_unset_env && value.is_none() {
                    return Ok(format!("${{{name}{modifier}{word}}}"));
                }
                let unset = match &value {
                    None => true,
                    Some(v) => null_is_unset && v.is_empty(),
                };
                match op {
                    Some('-') => Ok(if unset {
                        word
                    } else {
                        value.unwrap_or_default()
                    }),
                    Some('+') => Ok(if unset { String::new() } else { word }),
                    Some('?') => match value {
                        None => Err(ShellError::Required {
                            name,
                            message: if word.is_empty() {
                                "is not allowed to be unset".into()
                            } else {
                                word
                            },
                        }),
                        Some(v) if null_is_unset && v.is_empty() => Err(ShellError::Required {
                            name,
                            message: if word.is_empty() {
                                "is not allowed to be empty".into()
                            } else {
                                word
                            },
                        }),
                        Some(v) => Ok(v),
                    },
                    Some(op @ ('%' | '#')) => {
                        let mut greedy = false;
                        if word.starts_with(op) {
                            greedy = true;
                            word.remove(0);
                        }
                        let pattern =
                            Pattern::new(&word).map_err(|source| ShellError::InvalidPattern {
                                pattern: word.clone(),
                                source,
                            })?;
                        let value = value.unwrap_or_default();
                        Ok(if op == '%' {
                            pattern.trim_suffix(&value, greedy)
                        } else {
                            pattern.trim_prefix(&value, greedy)
                        })
                    }
                    _ => Err(ShellError::UnsupportedModifier(modifier)),
                }
            }
            Some('/') => {
                let replace_all = self.peek() == Some('/');
                if replace_all {
                    self.next();
                }
                let pattern = match self.process_stop_on(Some('/'), true) {
                    Ok((p, _)) => p,
                    Err(e) => {
                        return Err(if self.peek().is_none() {
                            ShellError::MissingSlash
                        } else {
                            e
                        });
                    }
                };
                let replacement = match self.process_stop_on(Some('}'), true) {
                    Ok((r, _)) => r,
                    Err(e) => {
                        return Err(if self.peek().is_none() {
                            ShellError::MissingBrace
                        } else {
                            e
                        });
                    }
                };
                let value = self.get_env(&name);
                let Some(value) = value else {
                    if self.lex.skip_unset_env {
                        return Ok(format!("${{{name}/{pattern}/{replacement}}}"));
                    }
                    return Ok(String::new());
                };
                let compiled =
                    Pattern::new(&pattern).map_err(|source| ShellError::InvalidPattern {
                        pattern: pattern.clone(),
                        source,
                    })?;
                Ok(if replace_all {
                    compiled.replace_all(&value, &replacement)
                } else {
                    compiled.replace_first(&value, &replacement)
                })
            }
            _ => Err(ShellError::UnsupportedModifier(modifier)),
        }
    }

    /// Reads the word of `${VAR<op>word}` up to the closing brace.
    fn scan_modifier_word(&mut self, raw: bool) -> Result<String, ShellError> {
        match self.process_stop_on(Some('}'), raw) {
            Ok((word, _)) => Ok(word),
            Err(e) => Err(if self.peek().is_none() {
                ShellError::MissingBrace
            } else {
                e
            }),
        }
    }

    fn process_name(&mut self) -> String {
        let mut name = String::new();
        while let Some(ch) = self.peek() {
            if name.is_empty() && ch.is_numeric() {
                while let Some(d) = self.peek() {
                    if !d.is_numeric() {
                        break;
                    }
                    self.next();
                    name.push(d);
                }
                return name;
            }
            if name.is_empty() && matches!(ch, '@' | '*' | '#' | '?' | '-' | '$' | '!' | '0') {
                self.next();
                return ch.to_string();
            }
            if !ch.is_alphanumeric() && ch != '_' {
                break;
            }
            self.next();
            name.push(ch);
        }
        name
    }

    fn process_possible_heredoc(&mut self) -> String {
        self.next();
        if self.peek() != Some('<') {
            return "<".to_string();
        }
        self.next();
        let mut out = "<<".to_string();
        while let Some(ch @ ('\t' | '\r' | ' ')) = self.peek() {
            out.push(ch);
            self.next();
        }
        out
    }
}

#[cfg(test)]
mod tests;
