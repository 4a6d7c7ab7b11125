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
