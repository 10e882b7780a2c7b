//! `-o/--output`. The grammar belongs to the exporter (`cairn_cache::export::ExportSpec`,
//! with its did-you-mean), which `cmd` cannot name directly: DESIGN.md keeps `cmd` off the
//! cache crate. Until the solver re-exports that parser, the value is kept as typed text
//! and only the checks that need no grammar happen here.

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputArg(pub String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OutputArgError {
    #[error("output spec is empty (expected e.g. type=local,dest=DIR or type=oci,dest=FILE)")]
    Empty,
}

impl OutputArg {
    pub fn parse(s: &str) -> Result<OutputArg, OutputArgError> {
        if s.trim().is_empty() {
            return Err(OutputArgError::Empty);
        }
        Ok(OutputArg(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_text_rejects_empty() {
        assert_eq!(
            OutputArg::parse("type=oci,dest=x.tar").unwrap().as_str(),
            "type=oci,dest=x.tar"
        );
        assert_eq!(OutputArg::parse("  "), Err(OutputArgError::Empty));
    }
}
