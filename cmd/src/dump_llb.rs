//! `cairn debug dump-llb [--dot] FILE|-`.

use std::io::{Read, Write};
use std::path::PathBuf;

use anyhow::Context;
use cairn_llb::{Definition, dump};

#[derive(Debug, clap::Args)]
pub struct DumpLlbArgs {
    /// Print a Graphviz graph instead of JSON lines.
    #[arg(long)]
    pub dot: bool,
    /// A marshalled pb.Definition; `-` or nothing reads stdin.
    #[arg(value_name = "DEFINITION")]
    pub file: Option<PathBuf>,
}

pub fn run(args: &DumpLlbArgs) -> anyhow::Result<()> {
    let (bytes, name) = match &args.file {
        Some(path) if path.as_os_str() != "-" => (
            std::fs::read(path).with_context(|| format!("reading {}", path.display()))?,
            path.display().to_string(),
        ),
        _ => {
            let mut buf = Vec::new();
            std::io::stdin()
                .read_to_end(&mut buf)
                .context("reading the definition from stdin")?;
            (buf, "stdin".to_owned())
        }
    };
    // Like buildctl, dump whatever decodes: a graph that would fail validation is still
    // worth looking at.
    let def = Definition::decode(&bytes).with_context(|| format!("decoding LLB from {name}"))?;
    let out = if args.dot {
        dump::dot(&def)
    } else {
        dump::json(&def)
    };
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(out.as_bytes())
        .context("writing to stdout")?;
    stdout.flush().context("writing to stdout")?;
    Ok(())
}
