//! Commands: wire the user's inputs, the conversion core and the outputs together.

mod fetch;
mod image;
mod inspect;

use std::io::Write;

use anyhow::Result;
use serde_json::Value;

use crate::cli::{Cli, Command};
use crate::error::LayerError;
use crate::inputs::{LayerRef, LocalLayer, local_zip};

pub fn run(cli: Cli) -> Result<()> {
    match &cli.command {
        Command::Image(args) => image::run(&cli.global, args),
        Command::Fetch(args) => fetch::run(&cli.global, args),
        Command::Inspect(args) => inspect::run(&cli.global, args),
    }
}

/// Exit code for an error: 2 for usage errors (bad flags, malformed ARN), 1 otherwise.
pub fn exit_code(err: &anyhow::Error) -> u8 {
    match err.downcast_ref::<LayerError>() {
        Some(LayerError::Usage(_)) => 2,
        _ => 1,
    }
}

/// The error and its causes, each once (our messages already include their I/O cause).
pub fn render_error(err: &anyhow::Error) -> String {
    let mut text = err.to_string();
    for cause in err.chain().skip(1) {
        let c = cause.to_string();
        if !text.contains(&c) {
            text.push_str(&format!("\n  caused by: {c}"));
        }
    }
    text
}

/// Parses every LAYER argument first (so a malformed ARN fails before any work), then resolves them
/// to verified local zips, in command-line order.
fn resolve_layers(args: &[String]) -> Result<Vec<LocalLayer>> {
    let refs: Vec<LayerRef> = args
        .iter()
        .map(|a| LayerRef::parse(a))
        .collect::<Result<_, _>>()?;
    let mut out = Vec::with_capacity(refs.len());
    for r in refs {
        match r {
            LayerRef::Zip(path) => out.push(local_zip(&path)?),
            LayerRef::Arn(arn) => {
                return Err(LayerError::Usage(format!(
                    "{arn}: fetching layers by ARN is not available in this build\n  hint: download the layer zip and pass its path"
                ))
                .into());
            }
        }
    }
    Ok(out)
}

/// Writes one JSON document to stdout.
fn print_json(value: &Value) -> Result<()> {
    let mut stdout = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut stdout, value)?;
    writeln!(stdout)?;
    Ok(())
}

fn print_line(line: &str) -> Result<()> {
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{line}")?;
    Ok(())
}

/// `SOURCE_DATE_EPOCH`, when set to a whole number of seconds.
fn source_date_epoch() -> Result<Option<u64>> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(v) if v.trim().is_empty() => Ok(None),
        Ok(v) => v.trim().parse().map(Some).map_err(|_| {
            LayerError::Usage(format!(
                "SOURCE_DATE_EPOCH={v:?} is not a whole number of seconds since 1970"
            ))
            .into()
        }),
        Err(_) => Ok(None),
    }
}
