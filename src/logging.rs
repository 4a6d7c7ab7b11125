//! stderr logging for people: plain `warning:`-style lines, colour only on a terminal.

use std::io::IsTerminal;

use tracing::Level;

pub fn init(quiet: bool, verbose: u8) {
    let level = match (quiet, verbose) {
        (true, _) => Level::ERROR,
        (false, 0) => Level::INFO,
        (false, 1) => Level::DEBUG,
        (false, _) => Level::TRACE,
    };
    // Only our own crate logs at debug/trace; the SDK and HTTP stacks stay at warn unless asked.
    let directive = if verbose >= 2 {
        format!("warn,layerport={level}")
    } else {
        format!("error,layerport={level}")
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("LAYERPORT_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(directive));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .without_time()
        .with_target(false)
        .try_init();
}
