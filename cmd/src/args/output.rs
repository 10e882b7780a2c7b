//! `-o/--output`, parsed with the exporter's own grammar (`cairn_solver::ExportSpec`, with
//! its did-you-mean), so a typo fails at the command line, before any work starts.

use cairn_solver::{ExportSpec, SpecError};

/// One `--output` value: the text as typed (for messages) and what it means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputArg {
    text: String,
    spec: ExportSpec,
}

impl OutputArg {
    pub fn parse(s: &str) -> Result<OutputArg, SpecError> {
        Ok(OutputArg {
            text: s.to_owned(),
            spec: ExportSpec::parse(s)?,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    pub fn spec(&self) -> &ExportSpec {
        &self.spec
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_with_the_exporters_grammar() {
        let o = OutputArg::parse("type=oci,dest=x.tar").unwrap();
        assert_eq!(o.as_str(), "type=oci,dest=x.tar");
        assert!(matches!(o.spec(), ExportSpec::Oci { .. }), "{:?}", o.spec());
        let e = OutputArg::parse("type=lcoal,dest=d")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("\"lcoal\"") && e.contains("did you mean \"local\""),
            "{e}"
        );
        assert!(OutputArg::parse("").is_err());
    }
}
