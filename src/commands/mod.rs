//! Commands: the command line resolved into `Settings`, one `Context` for the run, and one file
//! per command that takes both and returns a typed report for the printer.

mod batch;
mod check;
mod fetch;
mod generate;
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
    let code = match &settings.command {
        // Generated text needs no AWS, registry or runtime.
        CommandSettings::Completions(shell) => {
            printer(&settings).print(&generate::completions(*shell)?)?
        }
        CommandSettings::Man(command) => {
            printer(&settings).print(&generate::man(command.as_deref())?)?
        }
        command => run_command(command, &Context::new(&settings.global)?)?,
    };
    Ok(code)
}

fn run_command(command: &CommandSettings, ctx: &Context) -> Result<u8> {
    let printer = ctx.printer();
    let code = match command {
        CommandSettings::Image(s) => printer.print(&image::run(s, ctx)?)?,
        CommandSettings::Fetch(s) => printer.print(&fetch::run(s, ctx)?)?,
        CommandSettings::Zip(s) => printer.print(&zip::run(s, ctx)?)?,
        CommandSettings::Inspect(s) => printer.print(&inspect::run(s, ctx)?)?,
        CommandSettings::Check(s) => printer.print(&check::run(s, ctx)?)?,
        CommandSettings::Migrate(s) => printer.print(&migrate::run(s, ctx)?)?,
        CommandSettings::Batch(s) => printer.print(&batch::run(s, ctx)?)?,
        CommandSettings::Completions(_) | CommandSettings::Man(_) => {
            anyhow::bail!("generated text is printed without a context")
        }
    };
    Ok(code)
}

fn printer(settings: &Settings) -> crate::printer::Printer {
    crate::printer::Printer::new(settings.global.json, settings.global.quiet)
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
