//! Path patterns: Go's `filepath.Match` (wildcard sources of `COPY`, `rm`) and moby's
//! `patternmatcher` (include/exclude patterns, `.dockerignore` syntax with `**` and `!`).

/// Why a pattern is malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed path pattern {pattern:?}")]
pub struct BadPattern {
    pub pattern: String,
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Lit(char),
    /// `*`: any run of characters except `/`.
    Star,
    /// `?`: one character except `/`.
    One,
    /// `[...]`: one character (not `/`) in (or, negated, not in) the ranges.
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
    /// `**`: any run of characters including `/` (patternmatcher only).
    AnyPath,
    /// `**/`: nothing, or any run of characters ending in `/` (patternmatcher only).
    AnyDirs,
}

fn tokenize(pattern: &str, double_star: bool) -> Result<Vec<Tok>, BadPattern> {
    let bad = || BadPattern {
        pattern: pattern.to_owned(),
    };
    let chars: Vec<char> = pattern.chars().collect();
    let mut toks = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '*' => {
                if double_star && chars.get(i + 1) == Some(&'*') {
                    i += 2;
                    if chars.get(i) == Some(&'/') {
                        i += 1;
                        toks.push(Tok::AnyDirs);
                    } else {
                        toks.push(Tok::AnyPath);
                    }
                    continue;
                }
                toks.push(Tok::Star);
            }
            '?' => toks.push(Tok::One),
            '\\' => {
                i += 1;
                toks.push(Tok::Lit(*chars.get(i).ok_or_else(bad)?));
            }
            '[' => {
                i += 1;
                let negated = chars.get(i) == Some(&'^');
                if negated {
                    i += 1;
                }
                let mut ranges = Vec::new();
                loop {
                    let mut lo = *chars.get(i).ok_or_else(bad)?;
                    if lo == ']' && !ranges.is_empty() {
                        break;
                    }
                    if lo == ']' || lo == '-' {
                        return Err(bad());
                    }
                    if lo == '\\' {
                        i += 1;
                        lo = *chars.get(i).ok_or_else(bad)?;
                    }
                    i += 1;
                    let mut hi = lo;
                    if chars.get(i) == Some(&'-') {
                        i += 1;
                        hi = *chars.get(i).ok_or_else(bad)?;
                        if hi == ']' {
                            return Err(bad());
                        }
                        if hi == '\\' {
                            i += 1;
                            hi = *chars.get(i).ok_or_else(bad)?;
                        }
                        i += 1;
                    }
                    ranges.push((lo, hi));
                }
                toks.push(Tok::Class { negated, ranges });
            }
            c => toks.push(Tok::Lit(c)),
        }
        i += 1;
    }
    Ok(toks)
}

fn match_toks(toks: &[Tok], name: &[char]) -> bool {
    let Some((first, rest)) = toks.split_first() else {
        return name.is_empty();
    };
    match first {
        Tok::Lit(c) => name.first() == Some(c) && match_toks(rest, &name[1..]),
        Tok::One => name.first().is_some_and(|c| *c != '/') && match_toks(rest, &name[1..]),
        Tok::Class { negated, ranges } => {
            name.first().is_some_and(|c| {
                *c != '/' && (ranges.iter().any(|(lo, hi)| lo <= c && c <= hi) != *negated)
            }) && match_toks(rest, &name[1..])
        }
        Tok::Star => {
            for i in 0..=name.len() {
                if match_toks(rest, &name[i..]) {
                    return true;
                }
                if name.get(i) == Some(&'/') {
                    break;
                }
            }
            false
        }
        Tok::AnyPath => (0..=name.len()).any(|i| match_toks(rest, &name[i..])),
        Tok::AnyDirs => {
            match_toks(rest, name)
                || (1..=name.len()).any(|i| name[i - 1] == '/' && match_toks(rest, &name[i..]))
        }
    }
}

/// Go's `filepath.Match`: `*`, `?`, `[a-z]`, `[^a]`, `\` escapes; wildcards never match `/`.
pub fn glob_match(pattern: &str, name: &str) -> Result<bool, BadPattern> {
    let toks = tokenize(pattern, false)?;
    let name: Vec<char> = name.chars().collect();
    Ok(match_toks(&toks, &name))
}

/// Whether a path component has wildcard characters (an escaped one does not count).
pub fn has_wildcards(component: &str) -> bool {
    let mut chars = component.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                chars.next();
            }
            '*' | '?' | '[' => return true,
            _ => {}
        }
    }
    false
}

#[derive(Debug, Clone)]
struct Pattern {
    toks: Vec<Tok>,
    exclusion: bool,
}

/// A list of `.dockerignore`-style patterns; later patterns override earlier ones, and
/// `!pattern` re-includes what an earlier pattern matched.
#[derive(Debug, Clone)]
pub struct PatternMatcher {
    patterns: Vec<Pattern>,
    has_exclusions: bool,
}

impl PatternMatcher {
    pub fn new(patterns: &[String]) -> Result<PatternMatcher, BadPattern> {
        let mut out = Vec::new();
        for p in patterns {
            let mut s = p.trim();
            if s.is_empty() {
                continue;
            }
            let exclusion = s.starts_with('!');
            if exclusion {
                s = s[1..].trim();
                if s.is_empty() {
                    return Err(BadPattern { pattern: p.clone() });
                }
            }
            let cleaned = clean_rel(s);
            out.push(Pattern {
                toks: tokenize(&cleaned, true)?,
                exclusion,
            });
        }
        let has_exclusions = out.iter().any(|p| p.exclusion);
        Ok(PatternMatcher {
            patterns: out,
            has_exclusions,
        })
    }

    /// Whether some pattern starts with `!`.
    pub fn has_exclusions(&self) -> bool {
        self.has_exclusions
    }

    /// Whether `path` (relative, `/`-separated) is matched, by itself or through one of
    /// its parent directories (so `foo` matches `foo/bar/baz`).
    pub fn matches_or_parent(&self, path: &str) -> bool {
        let path = clean_rel(path);
        let chars: Vec<char> = path.chars().collect();
        let parents: Vec<usize> = chars
            .iter()
            .enumerate()
            .filter(|(_, c)| **c == '/')
            .map(|(i, _)| i)
            .collect();
        let mut matched = false;
        for p in &self.patterns {
            if p.exclusion != matched {
                // This pattern cannot change the outcome.
                continue;
            }
            let hit = match_toks(&p.toks, &chars)
                || parents
                    .iter()
                    .any(|end| match_toks(&p.toks, &chars[..*end]));
            if hit {
                matched = !p.exclusion;
            }
        }
        matched
    }
}

/// `filepath.Clean` of a relative pattern or path, with any leading `/` removed.
fn clean_rel(p: &str) -> String {
    let abs = super::root::clean_abs(p);
    abs.trim_start_matches('/').to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_matches_like_go_filepath_match() {
        let ok = |p: &str, n: &str| glob_match(p, n).expect("valid pattern");
        assert!(ok("*.txt", "a.txt"));
        assert!(!ok("*.txt", "dir/a.txt"));
        assert!(ok("*/a.txt", "dir/a.txt"));
        assert!(ok("a?c", "abc"));
        assert!(!ok("a?c", "a/c"));
        assert!(ok("[a-c]x", "bx"));
        assert!(!ok("[^a-c]x", "bx"));
        assert!(ok("\\*", "*"));
        assert!(!ok("\\*", "a"));
        assert!(glob_match("[", "a").is_err());
        assert!(glob_match("a\\", "a").is_err());
        assert!(has_wildcards("a*"));
        assert!(!has_wildcards("a\\*"));
    }

    #[test]
    fn patternmatcher_double_star_parents_and_exclusions() {
        let m = |ps: &[&str], path: &str| {
            let ps: Vec<String> = ps.iter().map(|s| (*s).to_owned()).collect();
            PatternMatcher::new(&ps)
                .expect("valid")
                .matches_or_parent(path)
        };
        assert!(m(&["**/*.go"], "a/b/c.go"));
        assert!(m(&["**/*.go"], "c.go"));
        assert!(!m(&["*.go"], "a/c.go"));
        assert!(m(&["foo"], "foo/bar/baz"));
        assert!(m(&["foo/**"], "foo/bar"));
        assert!(m(&["a/**/b"], "a/b"));
        assert!(m(&["a/**/b"], "a/x/y/b"));
        assert!(!m(&["a/**/b"], "a/x/c"));
        assert!(!m(&["docs", "!docs/keep.md"], "docs/keep.md"));
        assert!(m(&["docs", "!docs/keep.md"], "docs/other.md"));
        assert!(m(&["/abs/./x/"], "abs/x"));
        assert!(PatternMatcher::new(&["!".to_owned()]).is_err());
    }
}
