//! `batch`: many image, migrate and zip jobs from one plan, in one process sharing one context —
//! one download per layer version, one conversion per distinct layer, one login per registry,
//! mounts instead of re-uploads — `-j` at a time, resumable without a state file (a job whose
//! target records identical inputs is up to date), and shardable across machines by job name.

use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Instant;

use anyhow::Result;
use serde::Serialize;
use tracing::{info, warn};

use crate::context::Context;
use crate::core::digest::Digest;
use crate::migrate::{self, MigrationStatus};
use crate::oci::canonical_json::to_canonical_bytes;
use crate::oci::sink::SinkSpec;
use crate::pipeline;
use crate::pipeline::fingerprint::{INPUTS_ANNOTATION, existing_image, fingerprint};
use crate::settings::plan::Job;
use crate::settings::{BatchSettings, CommandSettings, ImageSettings, ZipSettings};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum JobStatus {
    /// Written locally (an OCI layout, a docker archive, a zip).
    Built,
    Pushed,
    UpToDate,
    Failed,
    NotInShard,
    /// `--dry-run`: would run.
    Planned,
    /// `--fail-fast`: not started after an earlier job failed.
    Skipped,
}

/// One line of the batch's output: a finished job.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JobReport {
    pub name: String,
    pub kind: String,
    pub status: JobStatus,
    /// The image written (`REPO@DIGEST`, `oci:DIR:TAG`) or the zip, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    pub bytes_downloaded: u64,
    pub bytes_uploaded: u64,
    pub seconds: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<JobError>,
}

#[derive(Debug, Serialize)]
pub struct JobError {
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

/// The batch's summary; its lines were printed as the jobs finished.
#[derive(Debug, Serialize)]
pub struct BatchSummary {
    pub jobs: usize,
    pub failed: usize,
}

/// What a job produced when it did not fail.
struct Done {
    status: JobStatus,
    output: Option<String>,
    digest: Option<String>,
    downloaded: u64,
    uploaded: u64,
}

pub fn run(ctx: &Context, settings: &BatchSettings) -> Result<BatchSummary> {
    ctx.share_conversions()?;
    let (mine, others): (Vec<&Job>, Vec<&Job>) = settings
        .jobs
        .iter()
        .partition(|j| settings.shard.is_none_or(|s| s.runs(&j.name)));
    for job in others {
        emit(&report(job, JobStatus::NotInShard, 0.0, None, None))?;
    }
    let runner = Runner::new(ctx, settings, mine.len());
    let schedule = Schedule::new(&settings.jobs, &mine);
    std::thread::scope(|scope| {
        for _ in 0..settings.concurrency.clamp(1, mine.len().max(1)) {
            scope.spawn(|| {
                while let Some((index, blocked_by)) = schedule.next() {
                    let ok = runner.run(&settings.jobs[index], blocked_by);
                    schedule.finish(index, ok);
                }
            });
        }
    });
    let failed = runner.failed.load(Ordering::SeqCst);
    runner.status.finish_and_clear();
    info!(
        "{}: {} job(s) run, {failed} failed, {} not in this shard",
        settings.plan.display(),
        mine.len(),
        settings.jobs.len() - mine.len()
    );
    if let Some(e) = runner
        .output_error
        .lock()
        .expect("no panics while locked")
        .take()
    {
        return Err(e.into());
    }
    Ok(BatchSummary {
        jobs: settings.jobs.len(),
        failed,
    })
}

/// The jobs' shared state while they run.
struct Runner<'a> {
    ctx: &'a Context,
    settings: &'a BatchSettings,
    total: usize,
    done: AtomicUsize,
    failed: AtomicUsize,
    stop: AtomicBool,
    /// Jobs writing the same OCI layout take turns (its index.json is read, changed, written).
    layouts: Mutex<HashMap<PathBuf, Arc<Mutex<()>>>>,
    status: indicatif::ProgressBar,
    output_error: Mutex<Option<std::io::Error>>,
}

impl<'a> Runner<'a> {
    fn new(ctx: &'a Context, settings: &'a BatchSettings, total: usize) -> Self {
        Runner {
            ctx,
            settings,
            total,
            done: AtomicUsize::new(0),
            failed: AtomicUsize::new(0),
            stop: AtomicBool::new(false),
            layouts: Mutex::new(HashMap::new()),
            status: ctx.printer().progress().status_line(),
            output_error: Mutex::new(None),
        }
    }

    /// Runs `job` (unless stopped, or an image it reads failed) and prints its line; true when it
    /// succeeded.
    fn run(&self, job: &Job, blocked_by: Option<&str>) -> bool {
        let started = Instant::now();
        let line = if let Some(other) = blocked_by {
            let e = anyhow::anyhow!(
                "not run: it reads {}, which job `{other}` did not write",
                job.reads.join(", ")
            );
            self.failed.fetch_add(1, Ordering::SeqCst);
            report(job, JobStatus::Skipped, 0.0, None, Some(&e))
        } else if self.stop.load(Ordering::SeqCst) {
            report(job, JobStatus::Skipped, 0.0, None, None)
        } else if self.settings.dry_run && !job.after.is_empty() {
            // What it reads is another job's output, which a dry run does not write.
            let planned = Done {
                status: JobStatus::Planned,
                output: Some(job.output.clone()),
                digest: None,
                downloaded: 0,
                uploaded: 0,
            };
            report(job, JobStatus::Planned, 0.0, Some(planned), None)
        } else {
            self.status.set_message(self.progress(&job.name));
            let outcome =
                self.with_layout_turn(job, || run_job(self.ctx, job, self.settings.dry_run));
            let seconds = started.elapsed().as_secs_f64();
            match outcome {
                Ok(done) => report(job, done.status, seconds, Some(done), None),
                Err(e) => {
                    self.failed.fetch_add(1, Ordering::SeqCst);
                    if self.settings.fail_fast {
                        self.stop.store(true, Ordering::SeqCst);
                    }
                    warn!("job {} failed: {e:#}", job.name);
                    report(job, JobStatus::Failed, seconds, None, Some(&e))
                }
            }
        };
        self.done.fetch_add(1, Ordering::SeqCst);
        self.status.set_message(self.progress(&job.name));
        let ok = matches!(
            line.status,
            JobStatus::Built | JobStatus::Pushed | JobStatus::UpToDate | JobStatus::Planned
        );
        if let Err(e) = emit(&line) {
            let _ = self
                .output_error
                .lock()
                .map(|mut slot| slot.get_or_insert(e).kind());
            self.stop.store(true, Ordering::SeqCst);
        }
        ok
    }

    fn progress(&self, latest: &str) -> String {
        format!(
            "jobs {}/{} done, {} failed — {latest}",
            self.done.load(Ordering::SeqCst),
            self.total,
            self.failed.load(Ordering::SeqCst)
        )
    }

    fn with_layout_turn<T>(&self, job: &Job, work: impl FnOnce() -> T) -> T {
        let dir = match &job.settings {
            CommandSettings::Image(s) => match &s.output {
                SinkSpec::OciLayout { dir, .. } => Some(dir.clone()),
                _ => None,
            },
            _ => None,
        };
        let Some(dir) = dir else { return work() };
        let turn = {
            let mut layouts = self.layouts.lock().expect("no panics while locked");
            Arc::clone(layouts.entry(dir).or_default())
        };
        let _mine = turn.lock().expect("no panics while locked");
        work()
    }
}

/// Hands out jobs whose inputs are ready: a job that reads another job's image starts after it.
struct Schedule<'a> {
    jobs: &'a [Job],
    state: Mutex<ScheduleState>,
    wake: Condvar,
}

struct ScheduleState {
    /// Jobs of this shard not started yet, in plan order.
    waiting: Vec<usize>,
    running: Vec<usize>,
    /// Finished jobs, and whether each succeeded.
    finished: HashMap<usize, bool>,
}

impl<'a> Schedule<'a> {
    fn new(jobs: &'a [Job], mine: &[&Job]) -> Self {
        let waiting = jobs
            .iter()
            .enumerate()
            .filter(|(_, j)| mine.iter().any(|m| std::ptr::eq(*m, *j)))
            .map(|(i, _)| i)
            .collect();
        Schedule {
            jobs,
            state: Mutex::new(ScheduleState {
                waiting,
                running: Vec::new(),
                finished: HashMap::new(),
            }),
            wake: Condvar::new(),
        }
    }

    /// The next job to run (and the job it needed that failed, if any); `None` when all started.
    fn next(&self) -> Option<(usize, Option<&'a str>)> {
        let mut state = self.state.lock().expect("no panics while locked");
        loop {
            if state.waiting.is_empty() {
                return None;
            }
            let in_shard = |d: &usize| {
                state.waiting.contains(d)
                    || state.running.contains(d)
                    || state.finished.contains_key(d)
            };
            let pick = state.waiting.iter().position(|&i| {
                self.jobs[i]
                    .after
                    .iter()
                    .all(|d| !in_shard(d) || state.finished.contains_key(d))
            });
            if let Some(p) = pick {
                let index = state.waiting.remove(p);
                state.running.push(index);
                let failed = self.jobs[index]
                    .after
                    .iter()
                    .find(|d| state.finished.get(d) == Some(&false))
                    .map(|&d| self.jobs[d].name.as_str());
                return Some((index, failed));
            }
            state = self.wake.wait(state).expect("no panics while locked");
        }
    }

    fn finish(&self, index: usize, ok: bool) {
        let mut state = self.state.lock().expect("no panics while locked");
        state.running.retain(|&r| r != index);
        state.finished.insert(index, ok);
        self.wake.notify_all();
    }
}

fn run_job(ctx: &Context, job: &Job, dry_run: bool) -> Result<Done> {
    match &job.settings {
        CommandSettings::Image(s) => image_job(ctx, s, dry_run),
        CommandSettings::Migrate(options) => {
            let options = migrate::MigrateOptions {
                dry_run: options.dry_run || dry_run,
                ..options.clone()
            };
            let m = migrate::run(ctx, &options)?;
            let status = match m.status {
                MigrationStatus::Planned => JobStatus::Planned,
                MigrationStatus::UpToDate => JobStatus::UpToDate,
                MigrationStatus::Pushed => JobStatus::Pushed,
            };
            let digest = m
                .image
                .as_deref()
                .and_then(|i| i.rsplit_once('@'))
                .map(|(_, d)| d.to_string());
            Ok(Done {
                status,
                output: m.image,
                digest,
                downloaded: m.bytes_downloaded,
                uploaded: m.bytes_uploaded,
            })
        }
        CommandSettings::Zip(s) => zip_job(ctx, s, dry_run),
        other => anyhow::bail!("a plan cannot hold {other:?}"),
    }
}

/// The extended attribute a batch zip job records its inputs in (no state file: the zip itself).
const ZIP_INPUTS_XATTR: &str = "user.layerport.inputs";

/// A zip job: up to date when the zip records the same image (by manifest digest) and options.
fn zip_job(ctx: &Context, settings: &ZipSettings, dry_run: bool) -> Result<Done> {
    let store = pipeline::open_image(ctx, &settings.image)?;
    let image = crate::oci::resolve::resolve(store.as_ref(), settings.platform.as_ref())?;
    let inputs = Digest::of(&to_canonical_bytes(&serde_json::json!({
        "kind": "layerport zip 1",
        "image": image.manifest_digest,
        "path": settings.path,
        "time": format!("{:?}", settings.time),
        "publish": settings.publish.as_ref().map(|p| format!("{p:?}")),
    })));
    let output = settings.output.display().to_string();
    let recorded = xattr::get(&settings.output, ZIP_INPUTS_XATTR)
        .ok()
        .flatten();
    if recorded.as_deref() == Some(inputs.as_str().as_bytes()) {
        return Ok(Done {
            status: JobStatus::UpToDate,
            output: Some(output),
            digest: None,
            downloaded: 0,
            uploaded: 0,
        });
    }
    if dry_run {
        return Ok(Done {
            status: JobStatus::Planned,
            output: Some(output),
            digest: None,
            downloaded: 0,
            uploaded: 0,
        });
    }
    let z = crate::pipeline::zip::run(settings, ctx)?;
    if let Err(e) = xattr::set(
        &settings.output,
        ZIP_INPUTS_XATTR,
        inputs.as_str().as_bytes(),
    ) {
        tracing::debug!("{output}: cannot record its inputs ({e}); the next run makes it again");
    }
    Ok(Done {
        status: JobStatus::Built,
        output: Some(z.zip.clone()),
        digest: Some(format!("sha256:{}", z.sha256)),
        downloaded: 0,
        uploaded: 0,
    })
}

/// An image job: up to date when its target records the same inputs; built otherwise.
fn image_job(ctx: &Context, settings: &ImageSettings, dry_run: bool) -> Result<Done> {
    let (inputs, mut request) = fingerprint(ctx, &settings.request)?;
    if let Some(existing) = existing_image(ctx, &settings.output, &inputs)? {
        let digest = existing.rsplit_once('@').map(|(_, d)| d.to_string());
        return Ok(Done {
            status: JobStatus::UpToDate,
            output: Some(existing),
            digest,
            downloaded: 0,
            uploaded: 0,
        });
    }
    if dry_run {
        return Ok(Done {
            status: JobStatus::Planned,
            output: Some(settings.output.to_string()),
            digest: None,
            downloaded: 0,
            uploaded: 0,
        });
    }
    request
        .extras
        .annotations
        .insert(INPUTS_ANNOTATION.into(), inputs.to_string());
    let sink = pipeline::open_sink(ctx, &settings.output, settings.create_repository)?;
    let outcome = pipeline::run(ctx, &request, sink)?;
    let status = match settings.output {
        SinkSpec::Registry(_) => JobStatus::Pushed,
        _ => JobStatus::Built,
    };
    Ok(Done {
        status,
        output: Some(outcome.written.reference.clone()),
        digest: Some(outcome.image.manifest_digest.to_string()),
        downloaded: outcome.downloaded,
        uploaded: outcome.uploaded(),
    })
}

fn report(
    job: &Job,
    status: JobStatus,
    seconds: f64,
    done: Option<Done>,
    error: Option<&anyhow::Error>,
) -> JobReport {
    let (output, digest, downloaded, uploaded) = done.map_or((None, None, 0, 0), |d| {
        (d.output, d.digest, d.downloaded, d.uploaded)
    });
    JobReport {
        name: job.name.clone(),
        kind: job.kind.clone(),
        status,
        output,
        digest,
        bytes_downloaded: downloaded,
        bytes_uploaded: uploaded,
        seconds: (seconds * 1000.0).round() / 1000.0,
        error: error.map(|e| {
            let text = crate::printer::render_error(e);
            let (message, hint) = match text.split_once("\n  hint: ") {
                Some((m, h)) => (m.to_string(), Some(h.to_string())),
                None => (text, None),
            };
            JobError { message, hint }
        }),
    }
}

/// One JSON line on stdout, as soon as the job is done.
fn emit(line: &JobReport) -> std::io::Result<()> {
    let mut stdout = std::io::stdout().lock();
    serde_json::to_writer(&mut stdout, line)?;
    writeln!(stdout)?;
    stdout.flush()
}
