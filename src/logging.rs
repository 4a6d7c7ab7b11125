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
        // On a terminal, colour codes sit between a field's name and its value: redact the plain
        // text, and keep the colours only when there was nothing to remove.
        let shown = if text.contains('\x1b') {
            let plain = strip_ansi(&text);
            let redacted = redact::log_text(&plain);
            if redacted == plain {
                text.into_owned()
            } else {
                redacted
            }
        } else {
            redact::log_text(&text)
        };
        io::stderr().lock().write_all(shown.as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        io::stderr().flush()
    }
}

/// Removes ANSI colour sequences (`ESC [ … letter`).
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            if chars.next() == Some('[') {
                for c in chars.by_ref() {
                    if c.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_codes_do_not_hide_a_secret_from_redaction() {
        let coloured = "\x1b[3maccess_key_id\x1b[0m\x1b[2m=\x1b[0mAKIDCOLOUREDSECRET1 done";
        let plain = strip_ansi(coloured);
        assert_eq!(plain, "access_key_id=AKIDCOLOUREDSECRET1 done");
        assert!(!redact::log_text(&plain).contains("AKIDCOLOUREDSECRET1"));
    }
}
