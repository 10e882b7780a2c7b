//! `.dockerignore`: which build-context paths are never sent to the build.
//!
//! The file format and the matching rules are Docker's (`moby/patternmatcher`): one pattern
//! per line, `#` comments, `!` re-includes, patterns are cleaned paths relative to the
//! context (a leading `/` or `./` is dropped), `*` and `?` stay within one path element,
//! `**` crosses elements, and the last matching pattern decides. A pattern that matches a
//! parent directory excludes everything below it unless a later `!` pattern matches.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use crate::error::{Error, ErrorKind};

/// Reads a `.dockerignore` into the cleaned pattern list that the build context source
/// carries as `local.excludepatterns`.
pub fn read_patterns(content: &str) -> Vec<String> {
    let content = content.strip_prefix('\u{feff}').unwrap_or(content);
    let mut out = Vec::new();
    for line in content.lines() {
        if line.starts_with('#') {
            continue;
        }
        let mut pattern = line.trim();
        if pattern.is_empty() {
            continue;
        }
        let invert = pattern.starts_with('!');
        if invert {
            pattern = pattern[1..].trim();
        }
        let mut cleaned = String::new();
        if !pattern.is_empty() {
            cleaned = cairn_llb::go::clean_path(pattern);
            if cleaned.len() > 1 && cleaned.starts_with('/') {
                cleaned.remove(0);
            }
        }
        out.push(if invert {
            format!("!{cleaned}")
        } else {
            cleaned
        });
    }
    out
}

/// The ignore file for a build: `<Dockerfile name>.dockerignore` next to the Dockerfile if
/// it exists (so several Dockerfiles can share a context), else `.dockerignore` at the
/// context root. Returns the file used and its patterns; no file means no patterns.
pub fn load(context: &Path, dockerfile: &Path) -> Result<Option<(PathBuf, Vec<String>)>, Error> {
    let mut candidates = Vec::new();
    if let Some(name) = dockerfile.file_name() {
        let mut per_file = name.to_os_string();
        per_file.push(".dockerignore");
        candidates.push(dockerfile.with_file_name(per_file));
    }
    candidates.push(context.join(".dockerignore"));
    for path in candidates {
        match std::fs::read_to_string(&path) {
            Ok(content) => return Ok(Some((path, read_patterns(&content)))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                return Err(Error::new(ErrorKind::Io {
                    path,
                    reason: e.to_string(),
                }));
            }
        }
    }
    Ok(None)
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Lit(char),
    /// `?`
    One,
    /// `*`
    Star,
    /// `**` followed by more pattern: nothing, or anything ending in `/`.
    DirStar,
    /// `**` at the end: anything.
    AnyRest,
    /// `[…]`
    Class {
        negated: bool,
        items: Vec<(char, char)>,
    },
}

/// One compiled pattern.
#[derive(Debug, Clone)]
struct Pattern {
    exclusion: bool,
    toks: Vec<Tok>,
}

impl Pattern {
    fn compile(raw: &str) -> Result<Self, Error> {
        let (exclusion, body) = match raw.strip_prefix('!') {
            Some(rest) => (true, rest),
            None => (false, raw),
        };
        if body.is_empty() {
            return Err(Error::new(ErrorKind::IgnorePattern {
                pattern: raw.to_string(),
                reason: "illegal exclusion pattern: \"!\"".into(),
            }));
        }
        let cleaned = cairn_llb::go::clean_path(body);
        let chars: Vec<char> = cleaned.chars().collect();
        let mut toks = Vec::new();
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            i += 1;
            match c {
                '*' if chars.get(i) == Some(&'*') => {
                    i += 1;
                    if chars.get(i) == Some(&'/') {
                        i += 1;
                    }
                    toks.push(if i >= chars.len() {
                        Tok::AnyRest
                    } else {
                        Tok::DirStar
                    });
                }
                '*' => toks.push(Tok::Star),
                '?' => toks.push(Tok::One),
                '\\' => match chars.get(i) {
                    Some(&n) => {
                        toks.push(Tok::Lit(n));
                        i += 1;
                    }
                    None => toks.push(Tok::Lit('\\')),
                },
                '[' => {
                    let mut negated = false;
                    if matches!(chars.get(i), Some('^') | Some('!')) {
                        negated = true;
                        i += 1;
                    }
                    let mut items = Vec::new();
                    let mut closed = false;
                    while i < chars.len() {
                        let mut a = chars[i];
                        i += 1;
                        if a == ']' && !items.is_empty() {
                            closed = true;
                            break;
                        }
                        if a == '\\' && i < chars.len() {
                            a = chars[i];
                            i += 1;
                        }
                        if chars.get(i) == Some(&'-') && chars.get(i + 1).is_some_and(|c| *c != ']')
                        {
                            let b = chars[i + 1];
                            i += 2;
                            items.push((a, b));
                        } else {
                            items.push((a, a));
                        }
                    }
                    if !closed {
                        return Err(Error::new(ErrorKind::IgnorePattern {
                            pattern: raw.to_string(),
                            reason: "unterminated character class".into(),
                        }));
                    }
                    toks.push(Tok::Class { negated, items });
                }
                c => toks.push(Tok::Lit(c)),
            }
        }
        // Matching recurses once per element; no real pattern comes near this.
        if toks.len() > 4096 {
            return Err(Error::new(ErrorKind::IgnorePattern {
                pattern: raw.chars().take(40).collect(),
                reason: "pattern longer than 4096 elements".into(),
            }));
        }
        Ok(Self { exclusion, toks })
    }

    fn matches(&self, path: &str) -> bool {
        let chars: Vec<char> = path.chars().collect();
        let mut failed = HashSet::new();
        self.match_from(&chars, 0, 0, &mut failed)
    }

    fn match_from(
        &self,
        s: &[char],
        t: usize,
        p: usize,
        failed: &mut HashSet<(usize, usize)>,
    ) -> bool {
        if failed.contains(&(t, p)) {
            return false;
        }
        let ok = match self.toks.get(t) {
            None => p == s.len(),
            Some(Tok::Lit(c)) => s.get(p) == Some(c) && self.match_from(s, t + 1, p + 1, failed),
            Some(Tok::One) => {
                s.get(p).is_some_and(|c| *c != '/') && self.match_from(s, t + 1, p + 1, failed)
            }
            Some(Tok::Class { negated, items }) => {
                s.get(p).is_some_and(|c| {
                    let inside = items.iter().any(|(a, b)| a <= c && c <= b);
                    inside != *negated && *c != '/'
                }) && self.match_from(s, t + 1, p + 1, failed)
            }
            Some(Tok::Star) => {
                let mut end = p;
                loop {
                    if self.match_from(s, t + 1, end, failed) {
                        break true;
                    }
                    if end >= s.len() || s[end] == '/' {
                        break false;
                    }
                    end += 1;
                }
            }
            Some(Tok::AnyRest) => true,
            Some(Tok::DirStar) => {
                self.match_from(s, t + 1, p, failed)
                    || (p..s.len()).any(|i| s[i] == '/' && self.match_from(s, t + 1, i + 1, failed))
            }
        };
        if !ok {
            failed.insert((t, p));
        }
        ok
    }
}

/// Docker's matcher over a pattern list.
#[derive(Debug, Clone)]
pub struct Matcher {
    patterns: Vec<Pattern>,
}

impl Matcher {
    /// Compiles patterns as returned by [`read_patterns`].
    pub fn new(patterns: &[String]) -> Result<Self, Error> {
        let patterns = patterns
            .iter()
            .map(|p| Pattern::compile(p))
            .collect::<Result<_, _>>()?;
        Ok(Self { patterns })
    }

    /// True when `path` (relative to the context, `/`-separated) is excluded, either itself
    /// or through one of its parent directories.
    pub fn excludes(&self, path: &str) -> bool {
        let file = cairn_llb::go::clean_path(path.trim_start_matches('/'));
        let parent = match file.rfind('/') {
            Some(i) => &file[..i],
            None => ".",
        };
        let parent_dirs: Vec<&str> = parent.split('/').collect();
        let mut matched = false;
        for pattern in &self.patterns {
            if pattern.exclusion != matched {
                continue;
            }
            let mut hit = pattern.matches(&file);
            if !hit && parent != "." {
                hit = (1..=parent_dirs.len()).any(|i| pattern.matches(&parent_dirs[..i].join("/")));
            }
            if hit {
                matched = !pattern.exclusion;
            }
        }
        matched
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_and_cleans() {
        let src = "\u{feff}# comment\n\n /abs/path \n./rel\n!keep/../keep\n  # not a comment after trim? \nsub//dir/\n!\n";
        assert_eq!(
            read_patterns(src),
            [
                "abs/path",
                "rel",
                "!keep",
                "# not a comment after trim?",
                "sub/dir",
                "!"
            ]
        );
    }

    fn m(patterns: &[&str]) -> Matcher {
        let v: Vec<String> = patterns.iter().map(|s| s.to_string()).collect();
        Matcher::new(&v).expect("valid patterns")
    }

    #[test]
    fn per_dockerfile_file_wins() {
        let ctx = tempfile::tempdir().expect("tempdir");
        let df = ctx.path().join("build/app.Dockerfile");
        std::fs::create_dir_all(ctx.path().join("build")).expect("mkdir");
        assert_eq!(load(ctx.path(), &df).expect("no files"), None);
        std::fs::write(ctx.path().join(".dockerignore"), "a\n").expect("write");
        let (path, patterns) = load(ctx.path(), &df).expect("reads").expect("root file");
        assert_eq!(
            (path, patterns),
            (ctx.path().join(".dockerignore"), vec!["a".to_string()])
        );
        std::fs::write(ctx.path().join("build/app.Dockerfile.dockerignore"), "b\n").expect("write");
        let (_, patterns) = load(ctx.path(), &df).expect("reads").expect("per-file");
        assert_eq!(patterns, ["b"]);
        std::fs::create_dir(ctx.path().join("build/x.Dockerfile.dockerignore")).expect("mkdir");
        let err =
            load(ctx.path(), &ctx.path().join("build/x.Dockerfile")).expect_err("a directory");
        assert!(matches!(*err.kind, ErrorKind::Io { .. }), "{err}");
    }

    #[test]
    fn docker_semantics() {
        let ig = m(&[
            "*.md",
            "!README.md",
            "build",
            "**/*.tmp",
            "docs/**",
            "!docs/keep.txt",
        ]);
        assert!(ig.excludes("a.md"));
        assert!(
            !ig.excludes("README.md"),
            "re-included by a later exception"
        );
        assert!(!ig.excludes("sub/a.md"), "* stays in one element");
        assert!(ig.excludes("build/out/x.o"), "excluded through its parent");
        assert!(
            ig.excludes("x.tmp") && ig.excludes("a/b/c.tmp"),
            "** matches zero or more dirs"
        );
        assert!(ig.excludes("docs/a/b.txt"));
        assert!(!ig.excludes("docs/keep.txt"));
        assert!(!ig.excludes("src/main.rs"));
        let last_wins = m(&["!a.txt", "*.txt"]);
        assert!(last_wins.excludes("a.txt"));
        let class = m(&["file[0-9].txt", "?.log"]);
        assert!(class.excludes("file3.txt") && !class.excludes("filex.txt"));
        assert!(class.excludes("a.log") && !class.excludes("ab.log"));
        assert!(Matcher::new(&["!".to_string()]).is_err());
        assert!(Matcher::new(&["[a-".to_string()]).is_err());
    }
}
