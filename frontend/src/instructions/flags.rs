//! Instruction flags (`--from=…`, `--link`, `--mount=…`): declared per instruction, checked
//! strictly. An undeclared flag is an error that names it and suggests a near spelling.

use std::collections::BTreeMap;

use crate::error::{Error, ErrorKind};
use crate::parser::Node;
use crate::position::Range;
use crate::suggest;

/// How a flag takes its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// `--link`, `--link=true|false`.
    Bool,
    /// `--from=x`, once.
    String,
    /// `--mount=…`, repeatable.
    Strings,
}

/// The flags one instruction accepts.
pub(crate) struct Flags<'a> {
    node: &'a Node,
    specs: Vec<(&'static str, Kind)>,
    values: BTreeMap<&'static str, Vec<String>>,
}

impl<'a> Flags<'a> {
    pub(crate) fn new(node: &'a Node) -> Self {
        Self {
            node,
            specs: Vec::new(),
            values: BTreeMap::new(),
        }
    }

    pub(crate) fn declare(mut self, name: &'static str, kind: Kind) -> Self {
        self.specs.push((name, kind));
        self
    }

    fn range_of(&self, flag: &str) -> Range {
        crate::position::span_of(&self.node.original, self.node.range, flag)
    }

    /// Checks every flag of the node against the declarations.
    pub(crate) fn parse(mut self) -> Result<Parsed, Error> {
        for raw in &self.node.flags {
            if raw == "--" {
                break;
            }
            let Some(body) = raw.strip_prefix("--") else {
                return Err(Error::new(ErrorKind::FlagSyntax(raw.clone())).at(self.range_of(raw)));
            };
            let (name, value) = match body.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (body, None),
            };
            let Some(&(spec_name, kind)) = self.specs.iter().find(|(n, _)| *n == name) else {
                let suggestion = suggest::closest(name, self.specs.iter().map(|(n, _)| *n), true);
                return Err(Error::new(ErrorKind::UnknownFlag {
                    flag: name.to_string(),
                })
                .at(self.range_of(raw))
                .suggest(suggestion.map(|s| format!("--{s}"))));
            };
            let seen = self.values.contains_key(spec_name);
            if seen && kind != Kind::Strings {
                return Err(
                    Error::new(ErrorKind::DuplicateFlag(name.to_string())).at(self.range_of(raw))
                );
            }
            let stored = match kind {
                Kind::Bool => match value {
                    Some("") => {
                        return Err(Error::new(ErrorKind::FlagMissingValue(name.to_string()))
                            .at(self.range_of(raw)));
                    }
                    None => "true".to_string(),
                    Some(v) => match v.to_lowercase().as_str() {
                        "true" => "true".to_string(),
                        "false" => "false".to_string(),
                        _ => {
                            return Err(Error::new(ErrorKind::FlagNotBool {
                                flag: name.to_string(),
                                value: v.to_string(),
                            })
                            .at(self.range_of(raw)));
                        }
                    },
                },
                Kind::String | Kind::Strings => match value {
                    Some(v) => v.to_string(),
                    None => {
                        return Err(Error::new(ErrorKind::FlagMissingValue(name.to_string()))
                            .at(self.range_of(raw)));
                    }
                },
            };
            self.values.entry(spec_name).or_default().push(stored);
        }
        Ok(Parsed {
            values: self.values,
        })
    }
}

/// Flag values after checking.
#[derive(Debug, Default)]
pub(crate) struct Parsed {
    values: BTreeMap<&'static str, Vec<String>>,
}

impl Parsed {
    pub(crate) fn string(&self, name: &str) -> Option<String> {
        self.values.get(name).and_then(|v| v.last().cloned())
    }

    pub(crate) fn strings(&self, name: &str) -> Vec<String> {
        self.values.get(name).cloned().unwrap_or_default()
    }

    /// `Some` only when the flag was given.
    pub(crate) fn bool(&self, name: &str) -> Option<bool> {
        self.string(name).map(|v| v == "true")
    }
}
