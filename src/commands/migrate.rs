//! `layerport migrate FUNCTION --push REF`: a zip function becomes an image function (the work is
//! in `crate::migrate`); prints the pushed image, and the function created or updated.

use anyhow::Result;

use crate::context::Context;
use crate::migrate::{self, Migration, MigrationStatus};
use crate::printer::Report;

pub fn run(options: &migrate::MigrateOptions, ctx: &Context) -> Result<Migration> {
    migrate::run(ctx, options)
}

impl Report for Migration {
    /// The image (`REPOSITORY@DIGEST`), then the function's ARN when one was created; a dry run
    /// prints its plan.
    fn text(&self) -> String {
        if self.status == MigrationStatus::Planned {
            let mut lines = vec![
                format!(
                    "function  {} ({}, {})",
                    self.function, self.runtime, self.handler
                ),
                format!("base      {} ({})", self.base, self.base_digest),
                format!("platform  {}", self.platform),
            ];
            lines.extend(self.layers.iter().map(|l| format!("layer     {l}")));
            if let Some(a) = &self.function_action {
                lines.push(format!("function  {} {}", a.action, a.name));
            }
            return lines.join("\n");
        }
        let mut lines: Vec<String> = self.image.iter().cloned().collect();
        if let Some(arn) = self.function_action.as_ref().and_then(|a| a.arn.clone()) {
            lines.push(arn);
        }
        lines.join("\n")
    }
}
