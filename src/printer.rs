//! The one place output is written: data on stdout — a command's report as text, or as one JSON
//! document under `--json` — and progress bars for people on stderr, only on a terminal.

use std::io::Write;

use serde::Serialize;

use crate::progress::Progress;

/// A command's result: serialisable for `--json`, with the text form scripts read by default.
pub trait Report: Serialize {
    /// The data printed on stdout without `--json` (one value per line, no decoration).
    fn text(&self) -> String;

    /// Printed already, as it went (a batch's job lines): nothing more on stdout.
    fn streamed(&self) -> bool {
        false
    }

    /// The exit code once printed: 0, or 1 when the report itself is a failure (`check` errors).
    fn exit_code(&self) -> u8 {
        0
    }
}

pub struct Printer {
    json: bool,
    progress: Progress,
}

impl Printer {
    pub fn new(json: bool, quiet: bool) -> Self {
        Printer {
            json,
            progress: Progress::for_terminal(quiet || json),
        }
    }

    pub fn json(&self) -> bool {
        self.json
    }

    /// Progress bars for transfers (hidden unless stderr is a terminal).
    pub fn progress(&self) -> &Progress {
        &self.progress
    }

    /// Prints `report` on stdout as text or JSON; returns its exit code.
    pub fn print(&self, report: &impl Report) -> std::io::Result<u8> {
        if report.streamed() {
            return Ok(report.exit_code());
        }
        let mut stdout = std::io::stdout().lock();
        if self.json {
            serde_json::to_writer_pretty(&mut stdout, report)?;
        } else {
            stdout.write_all(report.text().as_bytes())?;
        }
        writeln!(stdout)?;
        stdout.flush()?;
        Ok(report.exit_code())
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

/// What `--json` prints on stdout for an error (the text still goes to stderr):
/// `{"error": {"message": ..., "kind": ...}, "hint": ...}`. `kind` is `usage` (exit 2) or
/// `failure` (exit 1); the hint is the message's own `hint:` line, when it has one.
pub fn error_document(text: &str, kind: &str) -> serde_json::Value {
    let (message, hint) = match text.rsplit_once("\n  hint: ") {
        Some((message, hint)) => (message, Some(hint.trim())),
        None => (text, None),
    };
    serde_json::json!({
        "error": {"message": message.trim_end(), "kind": kind},
        "hint": hint,
    })
}

/// Prints [`error_document`] on stdout (a closed stdout is not worth another error).
pub fn print_error_document(text: &str, kind: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = serde_json::to_writer_pretty(&mut stdout, &error_document(text, kind));
    let _ = writeln!(stdout);
    let _ = stdout.flush();
}

/// A byte count for people: `262144000 bytes (250 MiB)`.
pub fn bytes(n: u64) -> String {
    format!("{n} bytes ({})", human_size(n))
}

/// `364 B`, `78.2 KiB`, `250 MiB`, `10 GiB`: binary units, one decimal where it says something.
pub fn human_size(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        return format!("{n} B");
    }
    let text = format!("{value:.1}");
    let text = text.strip_suffix(".0").unwrap_or(&text);
    format!("{text} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_documents_split_off_the_hint() {
        let doc = error_document("x.zip: cannot read\n  hint: give a zip", "failure");
        assert_eq!(doc["error"]["message"], "x.zip: cannot read");
        assert_eq!(doc["error"]["kind"], "failure");
        assert_eq!(doc["hint"], "give a zip");
        assert!(error_document("plain", "usage")["hint"].is_null());
    }

    #[test]
    fn human_sizes() {
        assert_eq!(bytes(262_144_000), "262144000 bytes (250 MiB)");
        assert_eq!(human_size(364), "364 B");
        assert_eq!(human_size(80_072), "78.2 KiB");
        assert_eq!(human_size(10 * 1024 * 1024 * 1024), "10 GiB");
        assert_eq!(human_size(1023), "1023 B");
        assert_eq!(human_size(1024), "1 KiB");
    }
}
