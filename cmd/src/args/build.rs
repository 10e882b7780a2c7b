//! `cairn build [flags] CONTEXT`: the flags of `docker buildx build` that cairn supports.

use std::num::NonZeroUsize;
use std::path::PathBuf;

use super::{BuildArg, CacheSpec, OutputArg, ProgressMode, Secret, Tag};

/// Build an image from a Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
#[command(after_help = "Examples:\n  \
    cairn build -t app:dev .\n  \
    cairn build -f docker/Dockerfile --target runtime -o type=oci,dest=app.tar .\n  \
    cairn build --build-arg VERSION=1.2 --secret id=npm,src=$HOME/.npmrc -o type=image,name=registry.example/app,push=true .")]
pub struct BuildArgs {
    /// The Dockerfile (default: CONTEXT/Dockerfile).
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub file: Option<PathBuf>,

    /// The stage to build (default: the last one).
    #[arg(long, value_name = "STAGE")]
    pub target: Option<String>,

    /// Set a build-time ARG; KEY alone takes the value from the environment.
    #[arg(long = "build-arg", value_name = "KEY=VALUE", value_parser = BuildArg::parse)]
    pub build_args: Vec<BuildArg>,

    /// Name the image (repeatable), e.g. `app:1.0`.
    #[arg(short = 't', long = "tag", value_name = "NAME[:TAG]", value_parser = Tag::parse)]
    pub tags: Vec<Tag>,

    /// Where the result goes: type=local,dest=DIR | type=tar,dest=FILE | type=oci,dest=FILE
    /// | type=docker,dest=FILE[,name=N] | type=image,name=N[,push=true]; `-` is a tar on stdout.
    #[arg(short = 'o', long = "output", value_name = "SPEC", value_parser = OutputArg::parse)]
    pub outputs: Vec<OutputArg>,

    #[command(flatten)]
    pub common: CommonSolveFlags,

    /// Expose a secret to `RUN --mount=type=secret`: id=ID,src=PATH or id=ID,env=VAR.
    #[arg(long = "secret", value_name = "id=ID,src=PATH", value_parser = Secret::parse)]
    pub secrets: Vec<Secret>,

    /// The build context directory.
    #[arg(value_name = "CONTEXT")]
    pub context: PathBuf,
}

/// Flags `build` and `solve` share.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct CommonSolveFlags {
    /// How progress is shown on stderr.
    #[arg(long, value_enum, default_value_t = ProgressMode::Auto, value_name = "MODE")]
    pub progress: ProgressMode,

    /// Run every step again instead of using cached results.
    #[arg(long = "no-cache")]
    pub no_cache: bool,

    /// Write the result's metadata (image digest, names) as JSON to FILE.
    #[arg(long = "metadata-file", value_name = "FILE")]
    pub metadata_file: Option<PathBuf>,

    /// At most N steps run at once (default: from the config, else the number of CPUs).
    #[arg(long = "max-parallelism", value_name = "N")]
    pub max_parallelism: Option<NonZeroUsize>,

    /// Import build cache (repeatable): type=registry,ref=NAME | type=local,src=DIR | NAME.
    #[arg(long = "cache-from", value_name = "SPEC", value_parser = CacheSpec::parse_import)]
    pub cache_from: Vec<CacheSpec>,

    /// Export build cache: type=registry,ref=NAME[,mode=max] | type=local,dest=DIR | type=inline.
    #[arg(long = "cache-to", value_name = "SPEC", value_parser = CacheSpec::parse_export)]
    pub cache_to: Vec<CacheSpec>,
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::args::{ProgressMode, SecretSource};
    use clap::{CommandFactory, FromArgMatches};

    /// The real top-level command, `build` and `solve` included.
    pub(crate) fn parse(args: &[&str]) -> Result<clap::ArgMatches, clap::Error> {
        crate::cli::Cli::command()
            .try_get_matches_from(std::iter::once("cairn").chain(args.iter().copied()))
    }

    fn build(args: &[&str]) -> Result<BuildArgs, clap::Error> {
        let mut full = vec!["build"];
        full.extend_from_slice(args);
        let m = parse(&full)?;
        let (_, sub) = m.subcommand().expect("build subcommand");
        BuildArgs::from_arg_matches(sub)
    }

    #[test]
    fn parses_every_flag() {
        let a = build(&[
            "-f",
            "d/Dockerfile",
            "--target",
            "rt",
            "--build-arg",
            "A=1",
            "--build-arg",
            "B",
            "-t",
            "app:1",
            "-t",
            "app:latest",
            "-o",
            "type=oci,dest=x.tar",
            "--progress",
            "plain",
            "--no-cache",
            "--secret",
            "id=s,src=f",
            "--cache-from",
            "r/c",
            "--cache-to",
            "type=local,dest=c",
            "--metadata-file",
            "m.json",
            "--max-parallelism",
            "3",
            "ctx",
        ])
        .unwrap();
        assert_eq!(a.file, Some(PathBuf::from("d/Dockerfile")));
        assert_eq!(a.target.as_deref(), Some("rt"));
        assert_eq!(a.build_args.len(), 2);
        assert_eq!(a.build_args[1].value, None);
        assert_eq!(a.tags, [Tag("app:1".into()), Tag("app:latest".into())]);
        assert_eq!(a.outputs[0].as_str(), "type=oci,dest=x.tar");
        assert_eq!(a.common.progress, ProgressMode::Plain);
        assert!(a.common.no_cache);
        assert_eq!(a.secrets[0].source, SecretSource::File("f".into()));
        assert_eq!(a.common.cache_from[0].attrs["ref"], "r/c");
        assert_eq!(a.common.cache_to[0].kind, "local");
        assert_eq!(a.common.metadata_file, Some(PathBuf::from("m.json")));
        assert_eq!(a.common.max_parallelism.map(NonZeroUsize::get), Some(3));
        assert_eq!(a.context, PathBuf::from("ctx"));
    }

    #[test]
    fn defaults_are_buildx_defaults() {
        let a = build(&["."]).unwrap();
        assert_eq!(a.common.progress, ProgressMode::Auto);
        assert!(!a.common.no_cache && a.tags.is_empty() && a.outputs.is_empty());
        assert_eq!(
            build(&["--progress=rawjson", "."]).unwrap().common.progress,
            ProgressMode::Rawjson
        );
        assert_eq!(
            build(&["--progress=quiet", "."]).unwrap().common.progress,
            ProgressMode::Quiet
        );
    }

    #[test]
    fn bad_values_are_usage_errors_that_say_what_was_expected() {
        let e = build(&["--progress=fancy", "."]).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        let msg = e.render().to_string();
        assert!(
            msg.contains("invalid value 'fancy' for '--progress <MODE>'"),
            "{msg}"
        );
        assert!(
            msg.contains("[possible values: auto, tty, plain, rawjson, quiet]"),
            "{msg}"
        );

        let e = build(&["--secret", "id=a,scr=x", "."]).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(
            e.render().to_string().contains("did you mean \"src\"?"),
            "{}",
            e.render()
        );

        let e = build(&["--build-arg", "=1", "."]).unwrap_err();
        assert!(
            e.render().to_string().contains("expected KEY=VALUE"),
            "{}",
            e.render()
        );
        let e = build(&["--max-parallelism", "0", "."]).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        let e = build(&["--cache-to", "type=registy,ref=a", "."]).unwrap_err();
        assert!(
            e.render().to_string().contains("did you mean \"registry\""),
            "{}",
            e.render()
        );
        let e = build(&["-t", "App", "."]).unwrap_err();
        assert!(
            e.render().to_string().contains("must be lowercase"),
            "{}",
            e.render()
        );
        let e = build(&[]).unwrap_err();
        assert_eq!(e.kind(), clap::error::ErrorKind::MissingRequiredArgument);
        assert!(e.render().to_string().contains("<CONTEXT>"));
        let e = build(&["--no-such-flag", "."]).unwrap_err();
        assert_eq!(e.kind(), clap::error::ErrorKind::UnknownArgument);
    }

    #[test]
    fn help_lists_flags_with_their_shapes() {
        let e = build(&["--help"]).unwrap_err();
        assert_eq!(e.kind(), clap::error::ErrorKind::DisplayHelp);
        let help = e.render().to_string();
        for want in [
            "-f, --file <FILE>",
            "--build-arg <KEY=VALUE>",
            "-t, --tag <NAME[:TAG]>",
            "-o, --output <SPEC>",
            "--progress <MODE>",
            "--secret <id=ID,src=PATH>",
            "--cache-from <SPEC>",
            "--max-parallelism <N>",
            "<CONTEXT>",
            "Examples:",
            "--root <DIR>",
        ] {
            assert!(help.contains(want), "missing {want:?} in:\n{help}");
        }
    }
}
