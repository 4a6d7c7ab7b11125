//! Commands: wire the user's inputs, the conversion core and the outputs together.

mod fetch;
mod image;
mod inspect;
mod registries;
mod zip;

use std::io::Write;

use anyhow::Result;
use serde_json::Value;

use std::sync::Arc;

use crate::arn::LayerArn;
use crate::aws::{AwsSettings, LambdaClients, load_sdk_config};
use crate::cache::ZipCache;
use crate::cli::{Cli, Command, GlobalArgs};
use crate::error::LayerError;
use crate::fetch_arn::ArnFetcher;
use crate::inputs::{LayerRef, LocalLayer, local_zip};

pub fn run(cli: Cli) -> Result<()> {
    match &cli.command {
        Command::Image(args) => image::run(&cli.global, args),
        Command::Fetch(args) => fetch::run(&cli.global, args),
        Command::Zip(args) => zip::run(&cli.global, args),
        Command::Inspect(args) => inspect::run(&cli.global, args),
    }
}

/// Exit code for an error: 2 for usage errors (bad flags, malformed ARN), 1 otherwise.
pub fn exit_code(err: &anyhow::Error) -> u8 {
    match err.downcast_ref::<LayerError>() {
        Some(LayerError::Usage(_)) => 2,
        _ => 1,
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

/// The resolved LAYER arguments; keeps download scratch space alive while the layers are used.
pub(crate) struct ResolvedLayers {
    pub layers: Vec<LocalLayer>,
    _fetcher: Option<Arc<ArnFetcher>>,
}

/// Parses every LAYER argument first (so a malformed ARN fails before any call), then resolves them
/// to verified local zips, in command-line order; ARNs are fetched concurrently.
pub(crate) fn resolve_layers(global: &GlobalArgs, args: &[String]) -> Result<ResolvedLayers> {
    let refs: Vec<LayerRef> = args
        .iter()
        .map(|a| LayerRef::parse(a))
        .collect::<Result<_, _>>()?;
    let arns: Vec<LayerArn> = refs
        .iter()
        .filter_map(|r| match r {
            LayerRef::Arn(a) => Some(a.clone()),
            LayerRef::Zip(_) => None,
        })
        .collect();
    let mut fetched = Vec::new().into_iter();
    let mut fetcher = None;
    if !arns.is_empty() {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        let settings = AwsSettings {
            profile: global.profile.clone(),
            region: global.region.clone(),
        };
        let cache = if global.no_cache {
            None
        } else {
            ZipCache::from_env()
        };
        let f = runtime.block_on(async {
            let config = load_sdk_config(&settings).await;
            ArnFetcher::new(LambdaClients::new(config), cache).map(Arc::new)
        })?;
        fetched = runtime
            .block_on(Arc::clone(&f).fetch_all(arns))?
            .into_iter();
        fetcher = Some(f);
    }
    let mut layers = Vec::with_capacity(refs.len());
    for r in refs {
        match r {
            LayerRef::Zip(path) => layers.push(local_zip(&path)?),
            LayerRef::Arn(_) => layers.push(fetched.next().expect("one result per ARN")),
        }
    }
    Ok(ResolvedLayers {
        layers,
        _fetcher: fetcher,
    })
}

/// Writes one JSON document to stdout.
fn print_json(value: &Value) -> Result<()> {
    let mut stdout = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut stdout, value)?;
    writeln!(stdout)?;
    Ok(())
}

fn print_line(line: &str) -> Result<()> {
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{line}")?;
    Ok(())
}

/// `SOURCE_DATE_EPOCH`, when set to a whole number of seconds.
fn source_date_epoch() -> Result<Option<u64>> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(v) if v.trim().is_empty() => Ok(None),
        Ok(v) => v.trim().parse().map(Some).map_err(|_| {
            LayerError::Usage(format!(
                "SOURCE_DATE_EPOCH={v:?} is not a whole number of seconds since 1970"
            ))
            .into()
        }),
        Err(_) => Ok(None),
    }
}
