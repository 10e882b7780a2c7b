//! Splitting one logical line into instruction, flags and arguments, with the per-instruction
//! argument rules Docker uses (JSON or shell form, `KEY=VALUE` lists, whitespace lists).

use crate::error::{Error, ErrorKind};

use super::{Args, KeyValue};

/// Docker's `[\t\v\f\r ]+`.
fn is_sep(c: char) -> bool {
    matches!(c, '\t' | '\u{b}' | '\u{c}' | '\r' | ' ')
}

/// Splits on runs of separators (like Go's `regexp.Split(s, -1)`: leading/trailing separators
/// give empty fields).
fn split_ws(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_sep = false;
    for c in s.chars() {
        if is_sep(c) {
            if !in_sep {
                out.push(std::mem::take(&mut cur));
                in_sep = true;
            }
        } else {
            in_sep = false;
            cur.push(c);
        }
    }
    out.push(cur);
    out
}

/// Splits off the first field (`regexp.Split(s, 2)`).
fn split_ws_once(s: &str) -> (String, Option<String>) {
    match s.find(is_sep) {
        Some(i) => {
            let rest = s[i..].trim_start_matches(is_sep);
            (s[..i].to_string(), Some(rest.to_string()))
        }
        None => (s.to_string(), None),
    }
}

/// Instruction, flags (each `--name[=value]`, quotes removed) and the rest of the line.
pub(crate) fn split_command(line: &str, escape: char) -> (String, Vec<String>, String) {
    let (cmd, rest) = split_ws_once(line.trim());
    match rest {
        Some(rest) => {
            let (args, flags) = extract_flags(&rest, escape);
            (cmd, flags, args.trim().to_string())
        }
        None => (cmd, Vec::new(), String::new()),
    }
}

/// Reads leading `--flag` words; a lone `--` ends the flags.
fn extract_flags(line: &str, escape: char) -> (String, Vec<String>) {
    #[derive(PartialEq)]
    enum Phase {
        Spaces,
        Word,
        Quote,
    }
    let bytes: Vec<char> = line.chars().collect();
    let byte_offset = |idx: usize| bytes[..idx].iter().map(|c| c.len_utf8()).sum::<usize>();
    let mut words = Vec::new();
    let mut phase = Phase::Spaces;
    let mut word = String::new();
    let mut quote = '\0';
    let mut blank_ok = false;
    let mut pos = 0;
    while pos <= bytes.len() {
        let ch = bytes.get(pos).copied();
        if phase == Phase::Spaces {
            let Some(c) = ch else { break };
            if c.is_whitespace() {
                pos += 1;
                continue;
            }
            if c != '-' || bytes.get(pos + 1) != Some(&'-') {
                return (line[byte_offset(pos)..].to_string(), words);
            }
            phase = Phase::Word;
        }
        let Some(c) = ch else {
            if word != "--" && (blank_ok || !word.is_empty()) {
                words.push(std::mem::take(&mut word));
            }
            break;
        };
        if phase == Phase::Word {
            if c.is_whitespace() {
                phase = Phase::Spaces;
                if word == "--" {
                    return (line[byte_offset(pos)..].to_string(), words);
                }
                if blank_ok || !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
                word.clear();
                blank_ok = false;
                pos += 1;
                continue;
            }
            if c == '\'' || c == '"' {
                quote = c;
                blank_ok = true;
                phase = Phase::Quote;
                pos += 1;
                continue;
            }
            let mut c = c;
            if c == escape {
                if pos + 1 == bytes.len() {
                    pos += 1;
                    continue;
                }
                pos += 1;
                c = bytes[pos];
            }
            word.push(c);
            pos += 1;
            continue;
        }
        // Inside quotes.
        if c == quote {
            phase = Phase::Word;
            pos += 1;
            continue;
        }
        let mut c = c;
        if c == escape {
            if pos + 1 == bytes.len() {
                phase = Phase::Word;
                pos += 1;
                continue;
            }
            pos += 1;
            c = bytes[pos];
        }
        word.push(c);
        pos += 1;
    }
    (String::new(), words)
}

/// Words of `ENV`/`LABEL`/`ARG` lines: quotes and escapes are kept for later expansion.
pub(crate) fn parse_words(rest: &str, escape: char) -> Vec<String> {
    #[derive(PartialEq)]
    enum Phase {
        Spaces,
        Word,
        Quote,
    }
    let chars: Vec<char> = rest.chars().collect();
    let mut words = Vec::new();
    let mut phase = Phase::Spaces;
    let mut quote = '\0';
    let mut blank_ok = false;
    let mut word = String::new();
    let mut pos = 0;
    while pos <= chars.len() {
        let ch = chars.get(pos).copied();
        if phase == Phase::Spaces {
            let Some(c) = ch else { break };
            if c.is_whitespace() {
                pos += 1;
                continue;
            }
            phase = Phase::Word;
        }
        let Some(c) = ch else {
            if blank_ok || !word.is_empty() {
                words.push(std::mem::take(&mut word));
            }
            break;
        };
        if phase == Phase::Word {
            if c.is_whitespace() {
                phase = Phase::Spaces;
                if blank_ok || !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
                blank_ok = false;
                pos += 1;
                continue;
            }
            if c == '\'' || c == '"' {
                quote = c;
                blank_ok = true;
                phase = Phase::Quote;
            }
            let mut c = c;
            if c == escape {
                if pos + 1 == chars.len() {
                    pos += 1;
                    continue;
                }
                word.push(c);
                pos += 1;
                c = chars[pos];
            }
            word.push(c);
            pos += 1;
            continue;
        }
        // Inside quotes.
        if c == quote {
            phase = Phase::Word;
        }
        let mut c = c;
        if c == escape && quote != '\'' {
            if pos + 1 == chars.len() {
                phase = Phase::Word;
                pos += 1;
                continue;
            }
            pos += 1;
            word.push(c);
            c = chars[pos];
        }
        word.push(c);
        pos += 1;
    }
    words
}

/// `ENV`/`LABEL`: `KEY VALUE` (legacy, one pair) or `KEY=VALUE …`.
pub(crate) fn parse_name_val(rest: &str, instruction: &str, escape: char) -> Result<Args, Error> {
    let words = parse_words(rest, escape);
    let Some(first) = words.first() else {
        return Ok(Args::KeyValues(Vec::new()));
    };
    if !first.contains('=') {
        let parts = split_ws(rest);
        let mut it = rest.splitn(2, is_sep);
        let key = it.next().unwrap_or_default();
        let value = it.next().map(|v| v.trim_start_matches(is_sep));
        return match (parts.len() >= 2, value) {
            (true, Some(value)) => Ok(Args::KeyValues(vec![KeyValue {
                key: key.to_string(),
                value: value.to_string(),
                has_equals: false,
            }])),
            _ => Err(Error::new(ErrorKind::Arguments(format!(
                "{instruction} must have two arguments"
            )))),
        };
    }
    let mut pairs = Vec::with_capacity(words.len());
    for word in words {
        let Some((k, v)) = word.split_once('=') else {
            return Err(Error::new(ErrorKind::Arguments(format!(
                "Syntax error - can't find = in {word:?}. Must be of the form: name=value"
            ))));
        };
        pairs.push(KeyValue {
            key: k.to_string(),
            value: v.to_string(),
            has_equals: true,
        });
    }
    Ok(Args::KeyValues(pairs))
}

/// Whitespace-separated words, no quote handling (`FROM`, `EXPOSE`, shell-form `COPY`).
pub(crate) fn parse_whitespace_list(rest: &str) -> Args {
    if rest.is_empty() {
        return Args::List(Vec::new());
    }
    Args::List(split_ws(rest))
}

/// The whole rest as one argument (`USER`, `WORKDIR`, …).
pub(crate) fn parse_string(rest: &str) -> Args {
    if rest.is_empty() {
        Args::List(Vec::new())
    } else {
        Args::List(vec![rest.to_string()])
    }
}

/// The outcome of trying the JSON (exec) form.
pub(crate) enum JsonForm {
    Strings(Vec<String>),
    NotJson,
}

/// `["a", "b"]`. A JSON array holding something other than strings is an error; anything
/// that is not a JSON array at all falls back to the shell form.
pub(crate) fn parse_json(rest: &str) -> Result<JsonForm, Error> {
    let trimmed = rest.trim_start();
    if !trimmed.starts_with('[') {
        return Ok(JsonForm::NotJson);
    }
    let Ok(value) = serde_json::from_str::<serde_json::Value>(trimmed) else {
        return Ok(JsonForm::NotJson);
    };
    let serde_json::Value::Array(items) = value else {
        return Ok(JsonForm::NotJson);
    };
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        match item {
            serde_json::Value::String(s) => out.push(s),
            _ => return Err(Error::new(ErrorKind::JsonNotStrings)),
        }
    }
    Ok(JsonForm::Strings(out))
}

/// `RUN`/`CMD`/`ENTRYPOINT`/`SHELL`: JSON form, else the whole rest as one argument.
pub(crate) fn parse_maybe_json(rest: &str) -> Result<(Args, bool), Error> {
    if rest.is_empty() {
        return Ok((Args::List(Vec::new()), false));
    }
    match parse_json(rest)? {
        JsonForm::Strings(v) => Ok((Args::List(v), true)),
        JsonForm::NotJson => Ok((Args::List(vec![rest.to_string()]), false)),
    }
}

/// `COPY`/`ADD`/`VOLUME`: JSON form, else whitespace-separated words.
pub(crate) fn parse_maybe_json_to_list(rest: &str) -> Result<(Args, bool), Error> {
    match parse_json(rest)? {
        JsonForm::Strings(v) => Ok((Args::List(v), true)),
        JsonForm::NotJson => Ok((parse_whitespace_list(rest), false)),
    }
}

/// `HEALTHCHECK TYPE cmd…`: the type, then the command in JSON or shell form.
pub(crate) fn parse_health_config(rest: &str) -> Result<(Args, bool), Error> {
    let sep = rest.find(char::is_whitespace).unwrap_or(rest.len());
    if sep == 0 {
        return Ok((Args::List(Vec::new()), false));
    }
    let typ = &rest[..sep];
    let cmd = rest[sep..].trim_start();
    let (args, json) = parse_maybe_json(cmd)?;
    let mut list = vec![typ.to_string()];
    if let Args::List(v) = args {
        list.extend(v);
    }
    Ok((Args::List(list), json))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_are_extracted() {
        let (cmd, flags, args) = split_command("COPY --from=a --chown=\"x y\" src dst", '\\');
        assert_eq!(cmd, "COPY");
        assert_eq!(flags, ["--from=a", "--chown=x y"]);
        assert_eq!(args, "src dst");
        let (_, flags, args) = split_command("COPY -- --weird dst", '\\');
        assert!(flags.is_empty());
        assert_eq!(args, "--weird dst");
    }

    #[test]
    fn json_forms() {
        assert!(
            matches!(parse_json("[\"a\", \"b\"]"), Ok(JsonForm::Strings(v)) if v == ["a", "b"])
        );
        assert!(matches!(parse_json("['a']"), Ok(JsonForm::NotJson)));
        assert!(matches!(parse_json("echo [x"), Ok(JsonForm::NotJson)));
        assert!(parse_json("[1, 2]").is_err());
    }

    #[test]
    fn name_values() {
        let Ok(Args::KeyValues(kv)) = parse_name_val("a b c", "ENV", '\\') else {
            panic!("legacy form");
        };
        assert_eq!(
            (kv[0].key.as_str(), kv[0].value.as_str(), kv[0].has_equals),
            ("a", "b c", false)
        );
        assert!(parse_name_val("a", "ENV", '\\').is_err());
        assert!(parse_name_val("a=1 b", "ENV", '\\').is_err());
    }
}
