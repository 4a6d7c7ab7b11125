//! Commands: wire the user's inputs, the conversion core and the outputs together.

mod fetch;
mod image;
mod inspect;
mod registries;
mod zip;

use std::io::Write;

use anyhow::{Context, Result};
use serde_json::Value;

use std::sync::Arc;

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
    let refs = parse_layers(args)?;
    let count = refs.len();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let (tx, rx) = std::sync::mpsc::channel();
    let fetcher = start_layers(global, refs, runtime.handle(), move |i, r| {
        let _ = tx.send((i, r));
    })?;
    let mut results: Vec<Option<LocalLayer>> = (0..count).map(|_| None).collect();
    for _ in 0..count {
        let (i, r) = rx.recv().context("a download task stopped")?;
        results[i] = Some(r?);
    }
    Ok(ResolvedLayers {
        layers: results
            .into_iter()
            .map(|r| r.expect("every layer reported"))
            .collect(),
        _fetcher: fetcher,
    })
}

/// Parses LAYER arguments (ARNs or zip paths) without touching the network or the files.
pub(crate) fn parse_layers(args: &[String]) -> Result<Vec<LayerRef>> {
    Ok(args
        .iter()
        .map(|a| LayerRef::parse(a))
        .collect::<Result<_, _>>()?)
}

/// Starts resolving LAYER arguments: local zips at once, ARNs downloaded concurrently on `handle`.
/// `ready` gets each argument's index and result as soon as it is a verified local zip, in any
/// order. The returned fetcher owns the downloads' scratch space: keep it while using the layers.
pub(crate) fn start_layers(
    global: &GlobalArgs,
    refs: Vec<LayerRef>,
    handle: &tokio::runtime::Handle,
    ready: impl Fn(usize, Result<LocalLayer>) + Send + Sync + 'static,
) -> Result<Option<Arc<ArnFetcher>>> {
    let mut arns = Vec::new();
    let mut zips = Vec::new();
    for (i, r) in refs.into_iter().enumerate() {
        match r {
            LayerRef::Arn(a) => arns.push((i, a)),
            LayerRef::Zip(path) => zips.push((i, path)),
        }
    }
    let mut fetcher = None;
    if !arns.is_empty() {
        let settings = AwsSettings {
            profile: global.profile.clone(),
            region: global.region.clone(),
        };
        let cache = if global.no_cache {
            None
        } else {
            ZipCache::from_env()
        };
        let f = handle.block_on(async {
            let config = load_sdk_config(&settings).await;
            ArnFetcher::new(LambdaClients::new(config), cache).map(Arc::new)
        })?;
        fetcher = Some(Arc::clone(&f));
    }
    let ready = Arc::new(ready);
    for (i, path) in zips {
        ready(i, local_zip(&path).map_err(Into::into));
    }
    if let Some(f) = &fetcher {
        let ready = Arc::clone(&ready);
        Arc::clone(f).fetch_each(arns, handle, move |i, r| ready(i, r));
    }
    Ok(fetcher)
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
