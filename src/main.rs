//! Entry point: parse the command line, set up logging, run, and map the outcome to an exit code.

use std::io::{self, Write};
use std::process::ExitCode;

use clap::Parser;
use layerport::cli::Cli;

fn main() -> ExitCode {
    let cli = Cli::parse();
    layerport::logging::init(cli.global.quiet, cli.global.verbose);
    match layerport::run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            if is_broken_pipe(&err) {
                return ExitCode::SUCCESS;
            }
            let _ = writeln!(
                io::stderr(),
                "error: {}",
                layerport::commands::render_error(&err)
            );
            ExitCode::from(layerport::commands::exit_code(&err))
        }
    }
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<io::Error>()
            .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
    })
}
