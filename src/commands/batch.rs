//! `layerport batch PLAN`: many jobs from one plan (the work is in `crate::batch`). Each job's
//! line is printed as it finishes; the summary goes to stderr.

use anyhow::Result;

use crate::batch::{self, BatchSummary};
use crate::context::Context;
use crate::printer::Report;
use crate::settings::BatchSettings;

pub fn run(settings: &BatchSettings, ctx: &Context) -> Result<BatchSummary> {
    batch::run(ctx, settings)
}

impl Report for BatchSummary {
    fn text(&self) -> String {
        String::new()
    }

    /// The jobs' lines are already printed.
    fn streamed(&self) -> bool {
        true
    }

    fn exit_code(&self) -> u8 {
        u8::from(self.failed > 0)
    }
}
