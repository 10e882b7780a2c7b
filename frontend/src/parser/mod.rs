//! The Dockerfile parser: bytes to a list of instruction nodes, each with its flags,
//! arguments, heredocs, preceding comments and source range.
//!
//! The rules are Docker's: instruction names are case-insensitive; the escape character at
//! the end of a line continues it; comment lines inside a continuation are dropped; empty
//! continuation lines are dropped with a warning; parser directives are only read at the
//! very top; heredocs (`<<EOF`) follow the instruction line for `RUN`, `COPY` and `ADD`.
//! Nothing is expanded here: variables are the converter's business.

mod directives;
mod dump;
mod heredoc;
mod line;

use serde::Serialize;

pub use cairn_llb::go::go_quote;
pub use directives::Directive;
pub use heredoc::{Heredoc, parse_heredoc_word};

use crate::error::{Error, ErrorKind};
use crate::position::{Position, Range};
use crate::shell::{Lex, NoEnv};
use directives::DirectiveParser;

/// The arguments of an instruction, in the shape its line parser produced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Args {
    /// Words or a single string (most instructions).
    List(Vec<String>),
    /// `KEY=VALUE` pairs (`ENV`, `LABEL`).
    KeyValues(Vec<KeyValue>),
    /// The wrapped instruction of `ONBUILD`.
    SubCommand(Box<Node>),
}

/// One `KEY=VALUE` (or legacy `KEY VALUE`) pair, quotes still in place.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyValue {
    pub key: String,
    pub value: String,
    /// False for the legacy `ENV KEY VALUE` form.
    pub has_equals: bool,
}

/// One instruction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Node {
    /// The instruction name as written (`run`, `RUN`, …).
    pub instruction: String,
    /// `--name[=value]` flags, quotes removed.
    pub flags: Vec<String>,
    pub args: Args,
    /// Exec (JSON) form.
    pub json: bool,
    pub heredocs: Vec<Heredoc>,
    /// The logical line, continuations joined.
    pub original: String,
    /// From the instruction's first character to the end of its last line (heredoc bodies
    /// included).
    pub range: Range,
    /// Comment lines directly above the instruction.
    pub comments: Vec<String>,
}

impl Node {
    /// The instruction name, lower-cased.
    pub fn keyword(&self) -> String {
        self.instruction.to_lowercase()
    }

    /// Arguments flattened as Docker's instruction parser sees them: key/value pairs become
    /// `key, value, "="|""` triples; `ONBUILD` yields the wrapped instruction then its args.
    pub fn flat_args(&self) -> Vec<String> {
        match &self.args {
            Args::List(v) => v.clone(),
            Args::KeyValues(kvs) => kvs
                .iter()
                .flat_map(|kv| {
                    [
                        kv.key.clone(),
                        kv.value.clone(),
                        if kv.has_equals {
                            "=".into()
                        } else {
                            String::new()
                        },
                    ]
                })
                .collect(),
            Args::SubCommand(child) => {
                let mut out = vec![child.instruction.clone()];
                out.extend(child.flat_args());
                out
            }
        }
    }

    /// Only `RUN`, `COPY`, `ADD` (also under `ONBUILD`) in shell form may carry heredocs.
    fn can_contain_heredoc(&self) -> bool {
        let node = match &self.args {
            Args::SubCommand(child) if self.keyword() == "onbuild" => child.as_ref(),
            _ => self,
        };
        matches!(node.keyword().as_str(), "run" | "copy" | "add") && !node.json
    }
}

/// A non-fatal finding of the parser.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Warning {
    pub message: String,
    pub range: Range,
}

/// A parsed Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Dockerfile {
    /// The name given to [`parse`], for messages and source maps.
    pub file: String,
    pub nodes: Vec<Node>,
    /// `\` or `` ` ``.
    pub escape: char,
    pub directives: Vec<Directive>,
    pub warnings: Vec<Warning>,
}

impl Dockerfile {
    /// The directive named `name` (lower case), if present.
    pub fn directive(&self, name: &str) -> Option<&str> {
        self.directives
            .iter()
            .find(|d| d.name == name)
            .map(|d| d.value.as_str())
    }
}

/// One physical line.
struct RawLine<'a> {
    /// With its line ending.
    text: &'a str,
    /// 1-based.
    number: usize,
}

fn trim_newline(s: &str) -> &str {
    s.trim_end_matches(['\r', '\n'])
}

fn is_comment(s: &str) -> bool {
    s.trim_start().starts_with('#')
}

/// Removes a trailing continuation (escape char, then only blanks) unless the escape char is
/// itself escaped; returns the line and whether it ended the instruction.
fn trim_continuation(line: &str, escape: char) -> (String, bool) {
    let body = line.trim_end_matches([' ', '\t']);
    if let Some(before) = body.strip_suffix(escape) {
        if before.is_empty() {
            return (String::new(), false);
        }
        if !before.ends_with(escape) {
            return (before.to_string(), false);
        }
    }
    (line.to_string(), true)
}

/// Instruction name, flags and arguments of one logical line.
fn node_from_line(line: &str, escape: char, comments: Vec<String>) -> Result<Node, Error> {
    node_from_line_at(line, escape, comments, 0)
}

/// `depth` counts enclosing `ONBUILD`s: only one level is parsed (a trigger may not be
/// `ONBUILD` itself, which the instruction layer reports), so nesting cannot recurse
/// without bound.
fn node_from_line_at(
    line: &str,
    escape: char,
    comments: Vec<String>,
    depth: usize,
) -> Result<Node, Error> {
    let (cmd, flags, rest) = line::split_command(line, escape);
    let keyword = cmd.to_lowercase();
    let (args, json) = match keyword.as_str() {
        "add" | "copy" | "volume" => line::parse_maybe_json_to_list(&rest)?,
        "arg" => (Args::List(line::parse_words(&rest, escape)), false),
        "cmd" | "entrypoint" | "run" | "shell" => line::parse_maybe_json(&rest)?,
        "env" => (line::parse_name_val(&rest, "ENV", escape)?, false),
        "label" => (line::parse_name_val(&rest, "LABEL", escape)?, false),
        "expose" | "from" => (line::parse_whitespace_list(&rest), false),
        "healthcheck" => line::parse_health_config(&rest)?,
        "maintainer" | "stopsignal" | "user" | "workdir" => (line::parse_string(&rest), false),
        "onbuild" => {
            if rest.is_empty() || depth > 0 {
                (Args::List(Vec::new()), false)
            } else {
                (
                    Args::SubCommand(Box::new(node_from_line_at(
                        &rest,
                        escape,
                        Vec::new(),
                        depth + 1,
                    )?)),
                    false,
                )
            }
        }
        // Unknown instructions parse; the instruction layer names them with a suggestion.
        _ => (Args::List(Vec::new()), false),
    };
    Ok(Node {
        instruction: cmd,
        flags,
        args,
        json,
        heredocs: Vec::new(),
        original: line.to_string(),
        range: Range::default(),
        comments,
    })
}

/// The heredoc markers on an instruction line, in order.
fn heredocs_from_line(line: &str) -> Result<Vec<Heredoc>, Error> {
    let mut lex = Lex::new('\\');
    lex.raw_quotes = true;
    lex.raw_escapes = true;
    lex.skip_unset_env = true;
    let words = lex.process_words(line, &NoEnv).unwrap_or_default();
    let mut docs = Vec::new();
    for word in words {
        if let Some(doc) = parse_heredoc_word(&word)? {
            docs.push(doc);
        }
    }
    Ok(docs)
}

/// Parses a Dockerfile. `file` names it in error messages.
pub fn parse(source: &str, file: &str) -> Result<Dockerfile, Error> {
    let mut df = parse_inner(source).map_err(|e| e.in_file(file))?;
    df.file = file.to_string();
    Ok(df)
}

fn parse_inner(source: &str) -> Result<Dockerfile, Error> {
    let source = source.strip_prefix('\u{feff}').unwrap_or(source);
    let lines: Vec<RawLine<'_>> = source
        .split_inclusive('\n')
        .enumerate()
        .map(|(i, text)| RawLine {
            text,
            number: i + 1,
        })
        .collect();
    let mut directives = DirectiveParser::default();
    let mut escape = '\\';
    let mut nodes = Vec::new();
    let mut warnings = Vec::new();
    let mut comments: Vec<String> = Vec::new();
    let mut idx = 0;

    // Runs the directive parser on a physical line and strips comments (as Docker does for
    // every line, continuation lines included).
    let mut process = |text: &str,
                       strip_left: bool,
                       escape: &mut char|
     -> Result<(String, bool), Error> {
        let mut t = trim_newline(text);
        if strip_left {
            t = t.trim_start();
        }
        let directive = directives.parse_line(t)?;
        let mut found = false;
        if let Some(d) = directive {
            found = true;
            if d.name == "escape" {
                match d.value.as_str() {
                    "\\" => *escape = '\\',
                    "`" => *escape = '`',
                    other => {
                        return Err(Error::new(ErrorKind::InvalidEscapeToken(other.to_string()))
                            .at(d.range));
                    }
                }
            }
        }
        Ok((
            if is_comment(t) {
                String::new()
            } else {
                t.to_string()
            },
            found,
        ))
    };

    while idx < lines.len() {
        let first = &lines[idx];
        idx += 1;
        if is_comment(first.text) {
            let comment = first
                .text
                .trim_start()
                .get(1..)
                .unwrap_or("")
                .trim()
                .to_string();
            if comment.is_empty() {
                comments.clear();
            } else {
                comments.push(comment);
            }
        }
        let (text, is_directive) = process(first.text, true, &mut escape)?;
        if is_directive {
            comments.pop();
        }
        let start_line = first.number;
        let start_col = trim_newline(first.text)
            .chars()
            .take_while(|c| c.is_whitespace())
            .count()
            + 1;
        let (mut buf, mut done) = trim_continuation(&text, escape);
        if done && buf.is_empty() {
            continue;
        }
        let mut last = first;
        let mut empty_continuation = false;
        while !done && idx < lines.len() {
            let next = &lines[idx];
            idx += 1;
            last = next;
            let (text, _) = process(next.text, false, &mut escape)?;
            if is_comment(next.text) {
                continue;
            }
            if text.trim_start().is_empty() {
                empty_continuation = true;
                continue;
            }
            let (part, end) = trim_continuation(&text, escape);
            buf.push_str(&part);
            done = end;
        }
        let mut end = Position {
            line: last.number,
            column: trim_newline(last.text).chars().count().max(1),
        };
        let node_range = |end: Position| Range {
            start: Position {
                line: start_line,
                column: start_col,
            },
            end,
        };
        if empty_continuation {
            warnings.push(Warning {
                message: format!("Empty continuation line found in: {buf}"),
                range: Range::lines(last.number, last.number),
            });
        }
        let mut node = node_from_line(&buf, escape, std::mem::take(&mut comments))
            .map_err(|e| e.at(node_range(end)))?;

        if node.can_contain_heredoc() && buf.contains("<<") {
            let docs = heredocs_from_line(&buf).map_err(|e| e.at(node_range(end)))?;
            for mut doc in docs {
                let mut content = String::new();
                let mut terminated = false;
                while idx < lines.len() {
                    let body = &lines[idx];
                    idx += 1;
                    end = Position {
                        line: body.number,
                        column: trim_newline(body.text).chars().count().max(1),
                    };
                    let mut candidate = trim_newline(body.text);
                    if doc.chomp {
                        candidate = candidate.trim_start_matches('\t');
                    }
                    if candidate == doc.name {
                        terminated = true;
                        break;
                    }
                    content.push_str(body.text);
                }
                if !terminated {
                    return Err(
                        Error::new(ErrorKind::UnterminatedHeredoc(doc.name)).at(node_range(end))
                    );
                }
                doc.content = content;
                node.heredocs.push(doc);
            }
        }
        node.range = node_range(end);
        nodes.push(node);
    }

    if nodes.is_empty() {
        let last = lines.len().max(1);
        return Err(Error::new(ErrorKind::NoInstructions).at(Range::lines(last, last)));
    }
    Ok(Dockerfile {
        file: String::new(),
        nodes,
        escape,
        directives: directives.directives().to_vec(),
        warnings,
    })
}

#[cfg(test)]
mod tests;
