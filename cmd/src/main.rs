//! The `cairn` binary: parse the command line (clap exits 2 on usage errors), run the
//! command on a tokio runtime with Ctrl-C wired to cancellation, and map the outcome to
//! an exit code (see `cairn::exit`).

use std::process::ExitCode;

use clap::Parser;

use cairn::exit::{Exit, outcome};

fn main() -> ExitCode {
    let cli = cairn::cli::Cli::parse();
    cairn::cli::init_logging(cli.debug);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting the async runtime: {e}");
            return Exit::Failure.into();
        }
    };
    let exit = runtime.block_on(async {
        let cancel = match cairn::signal::cancel_on_signal() {
            Ok(token) => token,
            Err(e) => {
                eprintln!("error: installing the Ctrl-C handler: {e}");
                return Exit::Failure;
            }
        };
        tracing::debug!("Ctrl-C handler installed");
        let result = cairn::cli::run(cli, cancel.clone()).await;
        outcome(result, cancel.is_cancelled(), &mut std::io::stderr())
    });
    // Dropping the runtime's tasks runs their clean-up (unmounts, container kills), so
    // wait for that; blocking work abandoned after an interrupt holds the exit only so long.
    runtime.shutdown_timeout(std::time::Duration::from_secs(10));
    exit.into()
}
