//! stderr logging for people: plain `warning:`-style lines, colour only on a terminal — and every
//! line, the AWS SDK's and HTTP stack's included, passed through redaction first.

use std::io::{self, IsTerminal, Write};

use tracing::Level;
use tracing_subscriber::fmt::MakeWriter;

use crate::net::redact;

/// Credentials the environment may hold: their values are removed from any log line.
const SECRET_ENV: &[&str] = &[
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN",
];

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
    for var in SECRET_ENV {
        if let Ok(value) = std::env::var(var) {
            redact::register_secret(&value);
        }
    }
    let filter = tracing_subscriber::EnvFilter::try_from_env("LAYERPORT_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(directive));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(RedactingStderr)
        .with_ansi(std::io::stderr().is_terminal())
        .without_time()
        .with_target(false)
        .try_init();
}

/// Hands the formatter a writer that redacts: the formatter writes each event whole, in one call.
struct RedactingStderr;

impl<'a> MakeWriter<'a> for RedactingStderr {
    type Writer = RedactingWriter;

    fn make_writer(&'a self) -> Self::Writer {
        RedactingWriter
    }
}

struct RedactingWriter;

impl Write for RedactingWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        io::stderr()
            .lock()
            .write_all(redact::log_text(&text).as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        io::stderr().flush()
    }
}
