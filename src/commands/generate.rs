//! `layerport completions SHELL` and `layerport man [COMMAND]`: shell completion scripts and man
//! pages generated from the clap definitions, so they always match the command line.

use anyhow::Result;
use clap::CommandFactory;
use serde::Serialize;

use crate::cli::Cli;
use crate::core::error::LayerError;
use crate::printer::Report;

/// Generated text (a script or a roff page), printed as it is.
#[derive(Debug, Serialize)]
pub struct Generated {
    /// `bash`, `zsh`, … or `man`.
    pub kind: String,
    /// The file name it is usually installed as.
    pub file_name: String,
    pub content: String,
}

impl Report for Generated {
    fn text(&self) -> String {
        // The printer ends the output with a newline.
        self.content.trim_end_matches('\n').to_string()
    }
}

pub fn completions(shell: clap_complete::Shell) -> Result<Generated> {
    let mut command = Cli::command();
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut command, "layerport", &mut out);
    Ok(Generated {
        kind: shell.to_string(),
        file_name: clap_complete::Generator::file_name(&shell, "layerport"),
        content: String::from_utf8(out)?,
    })
}

/// The main page (with the list of commands), or one command's page (`layerport-image(1)`).
pub fn man(command: Option<&str>) -> Result<Generated> {
    // No `help` command in the pages: it has no page of its own (`layerport help` still works).
    let mut root = Cli::command().disable_help_subcommand(true);
    // Propagates the global options into every command, so each page lists them.
    root.build();
    let page = match command {
        None => root,
        Some(name) => root.find_subcommand(name).cloned().ok_or_else(|| {
            let names: Vec<String> = Cli::command()
                .get_subcommands()
                .map(|c| c.get_name().to_string())
                .collect();
            LayerError::Usage(format!(
                "man: there is no command {name:?}\n  hint: give one of {}, or nothing for the main page",
                names.join(", ")
            ))
        })?,
    };
    let man = clap_mangen::Man::new(page.clone())
        .source(format!("layerport {}", env!("CARGO_PKG_VERSION")));
    let file_name = man.get_filename();
    let mut out = Vec::new();
    // Man::render would fill the examples like prose (joining and justifying the lines of a
    // command); the sections are rendered one by one and the examples kept as written.
    man.render_title(&mut out)?;
    man.render_name_section(&mut out)?;
    man.render_synopsis_section(&mut out)?;
    man.render_description_section(&mut out)?;
    if page.get_arguments().any(|a| !a.is_hide_set()) {
        man.render_options_section(&mut out)?;
    }
    if page.get_subcommands().any(|c| !c.is_hide_set()) {
        man.render_subcommands_section(&mut out)?;
    }
    if let Some(examples) = page.get_after_help() {
        out.extend(examples_section(&examples.to_string()).into_bytes());
    }
    if page.get_version().is_some() {
        man.render_version_section(&mut out)?;
    }
    Ok(Generated {
        kind: "man".into(),
        file_name,
        content: String::from_utf8(out)?,
    })
}

/// The `Examples:` text as an EXAMPLES section, line for line (no fill), escaped for roff.
fn examples_section(text: &str) -> String {
    let body = text.strip_prefix("Examples:\n").unwrap_or(text);
    let mut out = String::from(".SH EXAMPLES\n.nf\n");
    for line in body.lines() {
        let escaped = line.replace('\\', "\\e").replace('-', "\\-");
        // A line starting with `.` or `'` would be read as a request.
        if escaped.starts_with(['.', '\'']) {
            out.push_str("\\&");
        }
        out.push_str(&escaped);
        out.push('\n');
    }
    out.push_str(".fi\n");
    out
}
