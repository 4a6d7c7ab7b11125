//! A batch plan: named `image`, `migrate` and `zip` jobs with shared defaults, in TOML (or JSON).
//! A job's keys are its command's long options (`-` → `_`) and its positional arguments (`layers`,
//! `function`, `image`); each job is parsed by the command line's own parser and resolved like the
//! single command, so every option means the same in both. The whole plan is refused before any
//! work, naming the file, line and column, the job and the field.

use std::collections::BTreeMap;
use std::path::Path;

use clap::{CommandFactory, Parser};
use serde_json::{Map, Value};

use super::{CommandSettings, Settings};
use crate::cli::Cli;

/// Global options a plan may set in `[defaults]` (they shape the one context all jobs share).
pub const GLOBAL_KEYS: &[&str] = &[
    "plain_http",
    "registry_auth",
    "region",
    "profile",
    "no_cache",
];

/// A job of the plan, resolved like the single command.
#[derive(Debug)]
pub struct Job {
    pub name: String,
    pub kind: String,
    pub settings: CommandSettings,
    /// What it writes (a registry reference, `oci:DIR:TAG`, a file): no two jobs may share it.
    pub output: String,
    /// Images it reads (a zip's image, a base), by the same names as outputs.
    pub reads: Vec<String>,
    /// The jobs (by index) whose outputs it reads: it starts after them.
    pub after: Vec<usize>,
}

/// A plan, checked whole.
#[derive(Debug)]
pub struct Plan {
    pub jobs: Vec<Job>,
    /// `[defaults]`' global options (`region`, `plain_http`...), as the plan gives them.
    pub globals: Map<String, Value>,
}

/// Why a plan was refused, and where.
#[derive(Debug, thiserror::Error)]
#[error("{file}:{line}:{column}: {message}\n  hint: {hint}")]
pub struct PlanError {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub message: String,
    pub hint: String,
}

/// Positional arguments by kind: the plan key and whether it is a list.
fn positional(kind: &str) -> Option<(&'static str, bool)> {
    match kind {
        "image" => Some(("layers", true)),
        "migrate" => Some(("function", false)),
        "zip" => Some(("image", false)),
        _ => None,
    }
}

struct Source<'a> {
    file: String,
    text: &'a str,
    json: bool,
}

impl Source<'_> {
    fn error(&self, offset: usize, message: String, hint: &str) -> PlanError {
        let before = &self.text[..offset.min(self.text.len())];
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        PlanError {
            file: self.file.clone(),
            line,
            column,
            message,
            hint: hint.to_string(),
        }
    }

    /// Where job `index` (named `name`) starts, and where its `key` is, as byte offsets.
    fn locate(&self, index: usize, name: Option<&str>, key: Option<&str>) -> usize {
        let starts: Vec<usize> = if self.json {
            match name {
                Some(n) => self
                    .text
                    .match_indices(&format!("\"{n}\""))
                    .map(|(i, _)| i)
                    .collect(),
                None => Vec::new(),
            }
        } else {
            self.text.match_indices("[[job]]").map(|(i, _)| i).collect()
        };
        let start = if self.json {
            starts.first().copied().unwrap_or(0)
        } else {
            starts.get(index).copied().unwrap_or(0)
        };
        let Some(key) = key else { return start };
        let end = if self.json {
            self.text.len()
        } else {
            starts.get(index + 1).copied().unwrap_or(self.text.len())
        };
        let section = &self.text[start..end];
        let found = section.lines().scan(0, |at, line| {
            let here = *at;
            *at += line.len() + 1;
            Some((here, line))
        });
        for (at, line) in found {
            let t = line.trim_start();
            let matches = if self.json {
                t.starts_with(&format!("\"{key}\""))
            } else {
                t.strip_prefix(key)
                    .is_some_and(|r| r.trim_start().starts_with('='))
            };
            if matches {
                return start + at + (line.len() - t.len());
            }
        }
        start
    }
}

/// Reads and checks `path`. `json` when it ends in `.json` (or starts with `{`).
pub fn load(path: &Path) -> Result<Plan, PlanError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| PlanError {
        file: file.clone(),
        line: 1,
        column: 1,
        message: format!("cannot read the plan: {e}"),
        hint: "give the path of a TOML (or JSON) plan file".into(),
    })?;
    let json = path.extension().is_some_and(|e| e == "json") || text.trim_start().starts_with('{');
    let source = Source {
        file,
        text: &text,
        json,
    };
    let doc = parse(&source)?;
    check(&source, doc)
}

fn parse(source: &Source) -> Result<Map<String, Value>, PlanError> {
    let hint = "fix the syntax (TOML: `[[job]]` tables of `key = value`; JSON: {\"job\": [...]})";
    let value: Value = if source.json {
        serde_json::from_str(source.text).map_err(|e| {
            let offset = offset_of(source.text, e.line(), e.column());
            source.error(offset, format!("not valid JSON: {e}"), hint)
        })?
    } else {
        let table: toml::Table = toml::from_str(source.text).map_err(|e| {
            let offset = e.span().map_or(0, |s| s.start);
            source.error(offset, format!("not valid TOML: {}", e.message()), hint)
        })?;
        serde_json::to_value(table).expect("TOML values are JSON values")
    };
    match value {
        Value::Object(map) => Ok(map),
        _ => Err(source.error(0, "the plan is not a table".into(), hint)),
    }
}

fn offset_of(text: &str, line: usize, column: usize) -> usize {
    let start: usize = text
        .lines()
        .take(line.saturating_sub(1))
        .map(|l| l.len() + 1)
        .sum();
    start + column.saturating_sub(1)
}

fn check(source: &Source, mut doc: Map<String, Value>) -> Result<Plan, PlanError> {
    for key in doc.keys() {
        if key != "defaults" && key != "job" {
            let at = source.text.find(key.as_str()).unwrap_or(0);
            return Err(source.error(
                at,
                format!("unknown top-level key `{key}`"),
                "a plan has [defaults] and [[job]] entries only",
            ));
        }
    }
    let defaults = match doc.remove("defaults") {
        None => Map::new(),
        Some(Value::Object(d)) => d,
        Some(_) => {
            return Err(source.error(
                0,
                "`defaults` is not a table".into(),
                "write [defaults] with key = value lines",
            ));
        }
    };
    let jobs = match doc.remove("job") {
        Some(Value::Array(jobs)) if !jobs.is_empty() => jobs,
        _ => {
            return Err(source.error(
                0,
                "the plan has no jobs".into(),
                "add [[job]] tables with name, kind and the command's options",
            ));
        }
    };
    let globals = defaults
        .iter()
        .filter(|(k, _)| GLOBAL_KEYS.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let mut seen: BTreeMap<String, (String, usize)> = BTreeMap::new();
    let mut outputs: BTreeMap<String, String> = BTreeMap::new();
    let mut out = Vec::with_capacity(jobs.len());
    for (index, job) in jobs.iter().enumerate() {
        let job = resolve_job(source, index, job, &defaults)?;
        if let Some((_, first)) = seen.insert(job.name.clone(), (job.kind.clone(), index)) {
            let at = source.locate(index, Some(&job.name), Some("name"));
            return Err(source.error(
                at,
                format!(
                    "job name `{}` is used twice (jobs {} and {})",
                    job.name,
                    first + 1,
                    index + 1
                ),
                "give every job its own name (it is also the sharding key)",
            ));
        }
        if let Some(other) = outputs.insert(job.output.clone(), job.name.clone()) {
            let at = source.locate(index, Some(&job.name), None);
            return Err(source.error(
                at,
                format!(
                    "jobs `{other}` and `{}` both write {}",
                    job.name, job.output
                ),
                "give each job its own output",
            ));
        }
        out.push(job);
    }
    order(source, &mut out)?;
    Ok(Plan { jobs: out, globals })
}

fn resolve_job(
    source: &Source,
    index: usize,
    job: &Value,
    defaults: &Map<String, Value>,
) -> Result<Job, PlanError> {
    let Value::Object(fields) = job else {
        return Err(source.error(
            source.locate(index, None, None),
            format!("job {} is not a table", index + 1),
            "write each job as a [[job]] table",
        ));
    };
    let given = fields
        .get("name")
        .and_then(Value::as_str)
        .map(str::to_string);
    let at = |key: Option<&str>| source.locate(index, given.as_deref(), key);
    let label = given.clone().unwrap_or_else(|| format!("#{}", index + 1));
    let name = given.clone().ok_or_else(|| {
        source.error(
            at(None),
            format!("job {label} has no name"),
            "add name = \"...\" (unique)",
        )
    })?;
    let kind = fields
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    if positional(&kind).is_none() {
        return Err(source.error(
            at(Some("kind")),
            format!("job `{name}`: kind {kind:?} is not image, migrate or zip"),
            "set kind = \"image\", \"migrate\" or \"zip\"",
        ));
    }
    for key in fields.keys() {
        if GLOBAL_KEYS.contains(&key.as_str()) {
            return Err(source.error(at(Some(key)), format!("job `{name}`: `{key}` is a global option"), "put it in [defaults] (or on the batch command line): all jobs share one connection setup"));
        }
    }
    let known = options_of(&kind);
    let (pos_key, _) = positional(&kind).expect("checked");
    if let Some(key) = fields.keys().find(|k| {
        !matches!(k.as_str(), "name" | "kind")
            && k.as_str() != pos_key
            && !known.contains(&k.replace('_', "-"))
    }) {
        return Err(source.error(
            at(Some(key)),
            format!("job `{name}`: unknown field `{key}`"),
            &format!("see `layerport {kind} --help` for its options; keys are the long options with `_` for `-`"),
        ));
    }
    let argv = job_argv(&kind, fields, defaults);
    let cli = Cli::try_parse_from(&argv).map_err(|e| {
        let (message, key) = clap_message(&e, pos_key);
        source.error(at(key.as_deref()), format!("job `{name}`: {message}"), &format!("see `layerport {kind} --help` for its options; keys are the long options with `_` for `-`"))
    })?;
    let settings = Settings::from_cli(&cli).map_err(|e| {
        source.error(
            at(None),
            format!("job `{name}`: {e}"),
            "fix this job's options",
        )
    })?;
    if super::writes_to_stdout(&settings.command) {
        return Err(source.error(
            at(None),
            format!("job `{name}`: writes to stdout (`-`), which a plan's jobs share"),
            "give this job an output file",
        ));
    }
    let output = output_of(&settings.command);
    let reads = reads_of(&settings.command);
    Ok(Job {
        name,
        kind,
        settings: settings.command,
        output,
        reads,
        after: Vec::new(),
    })
}

/// The job's command line: `layerport KIND POSITIONAL... --option=value...`, the job's own keys
/// over `[defaults]` (whose keys that the kind does not take are left out).
fn job_argv(kind: &str, fields: &Map<String, Value>, defaults: &Map<String, Value>) -> Vec<String> {
    let (pos_key, _) = positional(kind).expect("checked");
    let known = options_of(kind);
    let mut merged: BTreeMap<&str, &Value> = defaults
        .iter()
        .filter(|(k, _)| known.contains(&k.replace('_', "-")) || k.as_str() == pos_key)
        .filter(|(k, _)| !GLOBAL_KEYS.contains(&k.as_str()))
        .map(|(k, v)| (k.as_str(), v))
        .collect();
    for (k, v) in fields {
        if k != "name" && k != "kind" {
            merged.insert(k.as_str(), v);
        }
    }
    let mut argv = vec!["layerport".to_string(), kind.to_string()];
    if let Some(v) = merged.remove(pos_key) {
        match v {
            Value::Array(items) => argv.extend(items.iter().map(scalar)),
            other => argv.push(scalar(other)),
        }
    }
    for (k, v) in merged {
        argv.extend(option_args(k, v));
    }
    argv
}

fn option_args(key: &str, value: &Value) -> Vec<String> {
    let flag = format!("--{}", key.replace('_', "-"));
    match value {
        Value::Bool(true) => vec![flag],
        Value::Bool(false) | Value::Null => Vec::new(),
        Value::Array(items) => items
            .iter()
            .map(|i| format!("{flag}={}", scalar(i)))
            .collect(),
        other => vec![format!("{flag}={}", scalar(other))],
    }
}

fn scalar(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The long options of a subcommand.
fn options_of(kind: &str) -> Vec<String> {
    let command = Cli::command();
    command
        .find_subcommand(kind)
        .map(|c| {
            c.get_arguments()
                .filter_map(|a| a.get_long().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// clap's first line, with options named as plan keys, and the key it is about.
fn clap_message(err: &clap::Error, positional_key: &str) -> (String, Option<String>) {
    let text = err.to_string();
    let first = text
        .lines()
        .next()
        .unwrap_or("")
        .trim_start_matches("error: ")
        .to_string();
    let key = first
        .split('\'')
        .nth(1)
        .and_then(|arg| arg.strip_prefix("--"))
        .map(|a| a.split(['=', ' ']).next().unwrap_or(a).replace('-', "_"));
    let message = match err.kind() {
        clap::error::ErrorKind::UnknownArgument => match &key {
            Some(k) => format!("unknown field `{k}`"),
            None => first,
        },
        clap::error::ErrorKind::MissingRequiredArgument => {
            let missing: Vec<String> = text
                .lines()
                .skip(1)
                .map(str::trim)
                .filter(|l| l.starts_with('-') || l.starts_with('<'))
                .map(|l| {
                    l.split('|')
                        .map(|alt| match alt.strip_prefix("--") {
                            Some(opt) => opt.split(' ').next().unwrap_or(opt).replace('-', "_"),
                            None => positional_key.to_string(),
                        })
                        .collect::<Vec<_>>()
                        .join(" or ")
                })
                .collect();
            format!("missing {}", missing.join(", "))
        }
        _ => first.replace("--", ""),
    };
    (message, key)
}

/// Links each job to the jobs whose outputs it reads; refuses a cycle.
fn order(source: &Source, jobs: &mut [Job]) -> Result<(), PlanError> {
    let by_output: BTreeMap<String, usize> = jobs
        .iter()
        .enumerate()
        .map(|(i, j)| (j.output.clone(), i))
        .collect();
    for job in jobs.iter_mut() {
        job.after = job
            .reads
            .iter()
            .filter_map(|r| by_output.get(r).copied())
            .collect();
    }
    // Kahn's algorithm: what cannot be ordered is in a cycle.
    let mut remaining: Vec<usize> = jobs.iter().map(|j| j.after.len()).collect();
    let mut ready: Vec<usize> = (0..jobs.len()).filter(|&i| remaining[i] == 0).collect();
    let mut ordered = 0;
    while let Some(done) = ready.pop() {
        ordered += 1;
        for (i, job) in jobs.iter().enumerate() {
            if job.after.contains(&done) {
                remaining[i] -= 1;
                if remaining[i] == 0 {
                    ready.push(i);
                }
            }
        }
    }
    if ordered < jobs.len() {
        let stuck = remaining.iter().position(|&r| r > 0).unwrap_or(0);
        let at = source.locate(stuck, Some(&jobs[stuck].name), None);
        return Err(source.error(
            at,
            format!(
                "job `{}` depends on itself through the outputs it reads",
                jobs[stuck].name
            ),
            "break the cycle: a job cannot read an image that it (or a job after it) writes",
        ));
    }
    Ok(())
}

/// What a job reads that another job may write.
fn reads_of(settings: &CommandSettings) -> Vec<String> {
    match settings {
        CommandSettings::Image(s) => s.request.base.iter().map(|b| b.to_string()).collect(),
        CommandSettings::Migrate(m) => m.base.iter().map(|b| b.to_string()).collect(),
        CommandSettings::Zip(z) => vec![z.image.to_string()],
        _ => Vec::new(),
    }
}

/// What a job writes.
fn output_of(settings: &CommandSettings) -> String {
    match settings {
        CommandSettings::Image(s) => s.output.to_string(),
        CommandSettings::Migrate(m) => m.target.to_string(),
        CommandSettings::Zip(z) => z.output.display().to_string(),
        CommandSettings::Fetch(f) => f.dest.display().to_string(),
        other => format!("{other:?}"),
    }
}
