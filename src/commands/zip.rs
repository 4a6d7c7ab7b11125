//! `layerport zip IMAGE -o FILE`: the command around the pipeline's image-to-zip work.

use anyhow::Result;

use crate::context::Context;
use crate::pipeline::zip::{self, ZipReport};
use crate::printer::Report;
use crate::settings::ZipSettings;

impl Report for ZipReport {
    /// The published layer version's ARN, else the zip's path.
    fn text(&self) -> String {
        match &self.published {
            Some(p) => p.layer_version_arn.clone(),
            None => self.zip.clone(),
        }
    }

    /// With `-o -` stdout carried the zip itself: nothing else may follow it there.
    fn streamed(&self) -> bool {
        self.zip == "-"
    }
}

pub fn run(settings: &ZipSettings, ctx: &Context) -> Result<ZipReport> {
    zip::run(settings, ctx)
}
