//! Entry point: parse the command line, set up logging, run, and map the outcome to an exit code.
//! With `--json`, an error is also a JSON document on stdout, so a script always gets one.

use std::io::{self, Write};
use std::process::ExitCode;

use clap::Parser;
use clap::error::ErrorKind;
use layerport::cli::Cli;
use layerport::printer::print_error_document;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => return parse_error(err),
    };
    let json = cli.global.json;
    layerport::logging::init(cli.global.quiet, cli.global.verbose);
    match layerport::run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            if is_broken_pipe(&err) {
                return ExitCode::SUCCESS;
            }
            let text = layerport::commands::render_error(&err);
            let code = layerport::commands::exit_code(&err);
            let _ = writeln!(io::stderr(), "error: {text}");
            if json {
                print_error_document(&text, if code == 2 { "usage" } else { "failure" });
            }
            ExitCode::from(code)
        }
    }
}

/// clap's own message on stderr (help and version on stdout, exit 0), and with `--json` anywhere
/// on the command line, the error document too: the command line did not parse, so `--json` is
/// looked for by hand.
fn parse_error(err: clap::Error) -> ExitCode {
    let json = std::env::args_os().skip(1).any(|a| a == "--json");
    let is_error = !matches!(
        err.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    );
    if json && is_error {
        let rendered = err.to_string();
        // The message runs to the first blank line (a list of missing arguments follows its
        // first line, indented).
        let message = rendered
            .lines()
            .take_while(|l| !l.trim().is_empty())
            .map(str::trim)
            .collect::<Vec<_>>()
            .join(" ")
            .trim_start_matches("error: ")
            .to_string();
        let tips: Vec<&str> = rendered
            .lines()
            .filter_map(|l| l.trim().strip_prefix("tip: "))
            .collect();
        let usage = rendered
            .lines()
            .find_map(|l| l.strip_prefix("Usage: "))
            .map(|u| format!("usage: {u}; `--help` says more"))
            .unwrap_or_else(|| "`layerport --help` lists the commands and options".into());
        let hint = if tips.is_empty() {
            usage
        } else {
            tips.join("; ")
        };
        print_error_document(&format!("{message}\n  hint: {hint}"), "usage");
    }
    let _ = err.print();
    ExitCode::from(u8::try_from(err.exit_code()).unwrap_or(2))
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<io::Error>()
            .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
    })
}
