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
    let man =
        clap_mangen::Man::new(page).source(format!("layerport {}", env!("CARGO_PKG_VERSION")));
    let file_name = man.get_filename();
    let mut out = Vec::new();
    man.render(&mut out)?;
    Ok(Generated {
        kind: "man".into(),
        file_name,
        content: String::from_utf8(out)?,
    })
}
