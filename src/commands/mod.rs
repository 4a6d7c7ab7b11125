//! Commands: the command line resolved into `Settings`, one `Context` for the run, and one file
//! per command that takes both and returns a typed report for the printer.

mod batch;
mod check;
mod fetch;
mod image;
mod inspect;
mod migrate;
mod zip;

use anyhow::Result;

use crate::cli::Cli;
use crate::context::Context;
use crate::core::error::LayerError;
use crate::settings::{CommandSettings, Settings};

/// Runs the parsed command line: resolve, run the command, print its report; returns the exit code.
pub fn run(cli: Cli) -> Result<u8> {
    let settings = Settings::from_cli(&cli)?;
    let ctx = Context::new(&settings.global)?;
    let printer = ctx.printer();
    let code = match &settings.command {
        CommandSettings::Image(s) => printer.print(&image::run(s, &ctx)?)?,
        CommandSettings::Fetch(s) => printer.print(&fetch::run(s, &ctx)?)?,
        CommandSettings::Zip(s) => printer.print(&zip::run(s, &ctx)?)?,
        CommandSettings::Inspect(s) => printer.print(&inspect::run(s, &ctx)?)?,
        CommandSettings::Check(s) => printer.print(&check::run(s, &ctx)?)?,
        CommandSettings::Migrate(s) => printer.print(&migrate::run(s, &ctx)?)?,
        CommandSettings::Batch(s) => printer.print(&batch::run(s, &ctx)?)?,
    };
    Ok(code)
}

/// Exit code for an error: 2 for usage errors (bad flags, malformed ARN), 1 otherwise.
pub fn exit_code(err: &anyhow::Error) -> u8 {
    let usage = err.chain().any(|cause| {
        matches!(
            cause.downcast_ref::<LayerError>(),
            Some(LayerError::Usage(_))
        )
    });
    if usage { 2 } else { 1 }
}

pub use crate::printer::render_error;
