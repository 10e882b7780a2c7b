//! Typed values of the `build` and `solve` flags. Each flag's value is parsed and
//! validated when the command line is read, so a typo fails with exit code 2 and a message
//! saying what was expected, before any work starts.

pub(crate) mod build;
mod build_arg;
mod cache_spec;
mod fields;
mod output;
mod progress_mode;
mod secret;
mod solve;
mod tag;

pub use build::{BuildArgs, CommonSolveFlags};
pub use build_arg::{BuildArg, BuildArgError};
pub use cache_spec::{CacheSpec, CacheSpecError};
pub use output::OutputArg;
pub use progress_mode::{ProgressMode, RenderMode};
pub use secret::{Secret, SecretError, SecretSource};
pub use solve::SolveArgs;
pub use tag::{Tag, TagError};

#[cfg(test)]
mod no_panic {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Whatever a user types, the parsers answer with a value or an error.
        #[test]
        fn parsers_never_panic(s in "\\PC{0,40}", t in "[a-z=,\"/:@.A-Z ]{0,30}") {
            for input in [s.as_str(), t.as_str()] {
                let _ = BuildArg::parse(input);
                let _ = Tag::parse(input);
                let _ = Secret::parse(input);
                let _ = CacheSpec::parse_import(input);
                let _ = CacheSpec::parse_export(input);
                let _ = OutputArg::parse(input);
                let _ = crate::units::parse_size(input);
                let _ = crate::units::parse_duration(input);
                let _ = crate::config::Config::parse(input, std::path::Path::new("x.toml"));
            }
        }
    }
}
