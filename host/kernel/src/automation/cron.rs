//! Cron jobs and their runs: the records and their storage.
//!
//! A job drives an agent on a schedule: at each occurrence its prompt is sent
//! to the agent. `/api/cron/jobs` and `/api/schedules` are two views of the
//! same jobs (a schedule is a cron job created through the other door).
//!
//! No double firing across restarts: before a run's action starts, the run
//! record and the job's new anchor (the occurrence being run) are committed in
//! one transaction. A job reloaded after a crash resumes after that
//! occurrence, so it is never run twice; occurrences after it that passed while
//! the daemon was down go by the missed-run policy.

use chrono::{DateTime, Utc};
use redb::{ReadableDatabase, ReadableTable, ReadableTableMetadata};
use serde::{Deserialize, Serialize};
use talon_scheduler::MissedPolicy;
use uuid::Uuid;

use super::delivery::Delivery;
use crate::KernelError;
use crate::store::audit::{self, AuditEntry, AuditEvent};
use crate::store::tables::{CRON_JOBS, CRON_RUNS};
use crate::store::{self, Store, StoreError};

const JOBS_TABLE: &str = "cron_jobs.v1";
const RUNS_TABLE: &str = "cron_runs.v1";

/// Longest prompt accepted, in bytes.
pub const MAX_PROMPT_BYTES: usize = 64 * 1024;
/// Longest job name accepted, in bytes.
pub const MAX_NAME_BYTES: usize = 200;
/// Longest run output kept, in bytes (the rest is cut at a character boundary).
pub const MAX_OUTPUT_BYTES: usize = 16 * 1024;
/// Most jobs one daemon holds.
pub const MAX_JOBS: u64 = 100_000;

/// A stored cron job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CronJob {
    /// Its id.
    pub id: Uuid,
    /// A human-readable name.
    pub name: String,
    /// The agent it drives.
    pub agent_id: Uuid,
    /// The schedule text (cron expression, `every 5m`, `at <time>`).
    pub schedule: String,
    /// IANA time zone cron expressions are evaluated in.
    pub tz: String,
    /// The message sent to the agent at each run.
    pub prompt: String,
    /// Disabled jobs keep their record but do not fire.
    pub enabled: bool,
    /// The job's own missed-run policy; `None` follows the daemon's default.
    pub missed_policy: Option<MissedPolicy>,
    /// The concurrency lane it runs in.
    pub lane: String,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it was last changed through the API.
    pub updated_at: DateTime<Utc>,
    /// Occurrences strictly after this are pending: the last occurrence run,
    /// or when the job was created, enabled or rescheduled.
    pub anchor: DateTime<Utc>,
    /// The occurrence of the last scheduled run.
    pub last_fired_at: Option<DateTime<Utc>>,
    /// Runs started (scheduled and manual).
    pub fire_count: u64,
    /// The newest run.
    pub last_run: Option<CronRun>,
    /// Where each run's answer is delivered, besides the run record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery: Option<Delivery>,
}

/// How a run went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Started, not finished (or interrupted by a crash).
    Running,
    /// The agent answered.
    Ok,
    /// The action failed; `error` says why.
    Error,
    /// Not run: the job's previous run was still going.
    Skipped,
}

/// One run of a job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CronRun {
    /// Its id.
    pub id: Uuid,
    /// Position in the run log.
    pub seq: u64,
    /// The job.
    pub job_id: Uuid,
    /// The job's name when it ran.
    pub job_name: String,
    /// The agent it drove.
    pub agent_id: Uuid,
    /// The occurrence it is for (for a manual run, when it was asked for).
    pub scheduled_at: DateTime<Utc>,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// When it finished.
    pub finished_at: Option<DateTime<Utc>>,
    /// How it went.
    pub status: RunStatus,
    /// The agent's answer, possibly cut to [`MAX_OUTPUT_BYTES`].
    pub output: Option<String>,
    /// What went wrong.
    pub error: Option<String>,
    /// Asked for by hand (`POST /api/schedules/{id}/run`).
    pub manual: bool,
    /// A missed occurrence run late, by the missed-run policy.
    pub catch_up: bool,
    /// Occurrences the missed-run policy dropped just before this one.
    pub skipped_before: u64,
}

/// A run about to start, as the engine hands it over.
#[derive(Debug, Clone)]
pub(crate) struct RunStart {
    pub job_id: Uuid,
    pub scheduled_at: DateTime<Utc>,
    pub started_at: DateTime<Utc>,
    pub manual: bool,
    pub catch_up: bool,
    pub skipped_before: u64,
    pub status: RunStatus,
}

/// Cuts `text` to at most `max` bytes at a character boundary.
pub(crate) fn truncate(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

/// Reads a job inside a transaction (the guard is released before returning,
/// so the table can be written next).
fn read_job<T: ReadableTable<&'static str, &'static [u8]>>(
    table: &T,
    key: &str,
) -> Result<Option<CronJob>, StoreError> {
    table
        .get(key)?
        .map(|v| store::decode(JOBS_TABLE, v.value()))
        .transpose()
}

pub(crate) fn get(store: &Store, id: Uuid) -> Result<Option<CronJob>, StoreError> {
    let tx = store.db()?.begin_read()?;
    let table = tx.open_table(CRON_JOBS)?;
    table
        .get(id.to_string().as_str())?
        .map(|v| store::decode(JOBS_TABLE, v.value()))
        .transpose()
}

pub(crate) fn list(store: &Store) -> Result<Vec<CronJob>, StoreError> {
    let tx = store.db()?.begin_read()?;
    let table = tx.open_table(CRON_JOBS)?;
    let mut jobs: Vec<CronJob> = Vec::new();
    for item in table.iter()? {
        let (_, v) = item?;
        jobs.push(store::decode(JOBS_TABLE, v.value())?);
    }
    jobs.sort_by_key(|j| (j.created_at, j.id));
    Ok(jobs)
}

/// Stores a new job with its audit entry, in one transaction.
pub(crate) fn insert(store: &Store, job: &CronJob) -> Result<AuditEntry, KernelError> {
    let tx = store.db()?.begin_write()?;
    let entry = {
        let mut table = tx.open_table(CRON_JOBS).map_err(StoreError::from)?;
        if table.len().map_err(StoreError::from)? >= MAX_JOBS {
            return Err(KernelError::Conflict(format!(
                "too many cron jobs (the limit is {MAX_JOBS})"
            )));
        }
        let bytes = store::encode(JOBS_TABLE, job)?;
        table
            .insert(job.id.to_string().as_str(), bytes.as_slice())
            .map_err(StoreError::from)?;
        audit::append_in(
            &tx,
            store.now(),
            AuditEvent::new(
                "cron_job_created",
                format!(
                    "job {} `{}`: {} ({})",
                    job.id, job.name, job.schedule, job.tz
                ),
            )
            .agent(job.agent_id),
        )?
    };
    tx.commit().map_err(StoreError::from)?;
    Ok(entry)
}

/// Reads, changes and writes a job in one transaction, so a concurrent run
/// cannot lose its anchor to an edit (or the reverse). `change` returns the
/// audit event to record with it, if any. `None` when the job does not exist.
pub(crate) fn modify<F>(
    store: &Store,
    id: Uuid,
    change: F,
) -> Result<Option<(CronJob, Option<AuditEntry>)>, KernelError>
where
    F: FnOnce(&mut CronJob) -> Result<Option<AuditEvent>, KernelError>,
{
    let tx = store.db()?.begin_write()?;
    let result = {
        let mut table = tx.open_table(CRON_JOBS).map_err(StoreError::from)?;
        let key = id.to_string();
        let Some(mut job) = read_job(&table, &key)? else {
            return Ok(None);
        };
        let event = change(&mut job)?;
        let bytes = store::encode(JOBS_TABLE, &job)?;
        table
            .insert(key.as_str(), bytes.as_slice())
            .map_err(StoreError::from)?;
        let entry = event
            .map(|e| audit::append_in(&tx, store.now(), e))
            .transpose()?;
        (job, entry)
    };
    tx.commit().map_err(StoreError::from)?;
    Ok(Some(result))
}

/// Removes a job (its runs stay in the log); the audit entry when it existed.
pub(crate) fn remove(store: &Store, id: Uuid) -> Result<Option<AuditEntry>, StoreError> {
    let tx = store.db()?.begin_write()?;
    let entry = {
        let mut table = tx.open_table(CRON_JOBS)?;
        let removed = table.remove(id.to_string().as_str())?;
        match removed {
            Some(v) => {
                let job: CronJob = store::decode(JOBS_TABLE, v.value())?;
                drop(v);
                Some(audit::append_in(
                    &tx,
                    store.now(),
                    AuditEvent::new("cron_job_deleted", format!("job {} `{}`", job.id, job.name))
                        .agent(job.agent_id),
                )?)
            }
            None => None,
        }
    };
    tx.commit()?;
    Ok(entry)
}

/// Records a run as started, and for a scheduled run moves the job's anchor to
/// its occurrence, in one committed transaction, before anything is done.
/// `None` when the job is gone, or disabled and this is not a manual run.
pub(crate) fn begin_run(
    store: &Store,
    start: &RunStart,
    keep: u64,
) -> Result<Option<(CronJob, CronRun)>, StoreError> {
    let tx = store.db()?.begin_write()?;
    let result = {
        let mut jobs = tx.open_table(CRON_JOBS)?;
        let key = start.job_id.to_string();
        let Some(mut job) = read_job(&jobs, &key)? else {
            return Ok(None);
        };
        if !job.enabled && !start.manual {
            return Ok(None);
        }
        let mut runs = tx.open_table(CRON_RUNS)?;
        let seq = runs.last()?.map(|(k, _)| k.value() + 1).unwrap_or(1);
        let finished = start.status != RunStatus::Running;
        let run = CronRun {
            id: Uuid::new_v4(),
            seq,
            job_id: job.id,
            job_name: job.name.clone(),
            agent_id: job.agent_id,
            scheduled_at: start.scheduled_at,
            started_at: start.started_at,
            finished_at: finished.then_some(start.started_at),
            status: start.status,
            output: None,
            error: (start.status == RunStatus::Skipped)
                .then(|| "the previous run was still going".to_string()),
            manual: start.manual,
            catch_up: start.catch_up,
            skipped_before: start.skipped_before,
        };
        if !start.manual {
            job.anchor = job.anchor.max(start.scheduled_at);
            job.last_fired_at = Some(start.scheduled_at);
        }
        if start.status == RunStatus::Running {
            job.fire_count += 1;
        }
        job.last_run = Some(run.clone());
        runs.insert(seq, store::encode(RUNS_TABLE, &run)?.as_slice())?;
        jobs.insert(key.as_str(), store::encode(JOBS_TABLE, &job)?.as_slice())?;
        // Keep the log bounded: drop the oldest beyond `keep`.
        let len = runs.len()?;
        if len > keep {
            let cut = seq.saturating_sub(keep);
            runs.retain_in(..=cut, |_, _| false)?;
        }
        (job, run)
    };
    tx.commit()?;
    Ok(Some(result))
}

/// Records how a run ended, on the run and as the job's last run.
pub(crate) fn finish_run(store: &Store, run: &CronRun) -> Result<(), StoreError> {
    let tx = store.db()?.begin_write()?;
    {
        let mut runs = tx.open_table(CRON_RUNS)?;
        // A run pruned from the log meanwhile is not re-added.
        if runs.get(run.seq)?.is_some() {
            runs.insert(run.seq, store::encode(RUNS_TABLE, run)?.as_slice())?;
        }
        let mut jobs = tx.open_table(CRON_JOBS)?;
        let key = run.job_id.to_string();
        if let Some(mut job) = read_job(&jobs, &key)?
            && job.last_run.as_ref().is_some_and(|r| r.id == run.id)
        {
            job.last_run = Some(run.clone());
            jobs.insert(key.as_str(), store::encode(JOBS_TABLE, &job)?.as_slice())?;
        }
    }
    tx.commit()?;
    Ok(())
}

/// Runs newest first, optionally of one job; and how many match.
pub(crate) fn runs(
    store: &Store,
    job: Option<Uuid>,
    offset: usize,
    limit: usize,
) -> Result<(Vec<CronRun>, usize), StoreError> {
    let tx = store.db()?.begin_read()?;
    let table = tx.open_table(CRON_RUNS)?;
    let mut items = Vec::new();
    let mut total = 0usize;
    for item in table.iter()?.rev() {
        let (_, v) = item?;
        let run: CronRun = store::decode(RUNS_TABLE, v.value())?;
        if job.is_some_and(|j| j != run.job_id) {
            continue;
        }
        if total >= offset && items.len() < limit {
            items.push(run);
        }
        total += 1;
    }
    Ok((items, total))
}

/// Marks runs left `running` by a stopped daemon as failed; returns how many.
pub(crate) fn mark_interrupted(store: &Store) -> Result<usize, StoreError> {
    let tx = store.db()?.begin_write()?;
    let mut count = 0;
    {
        let mut runs = tx.open_table(CRON_RUNS)?;
        let mut stale: Vec<CronRun> = Vec::new();
        for item in runs.iter()? {
            let (_, v) = item?;
            let run: CronRun = store::decode(RUNS_TABLE, v.value())?;
            if run.status == RunStatus::Running {
                stale.push(run);
            }
        }
        let mut jobs = tx.open_table(CRON_JOBS)?;
        for mut run in stale {
            run.status = RunStatus::Error;
            run.error = Some("interrupted: the daemon stopped during this run".into());
            runs.insert(run.seq, store::encode(RUNS_TABLE, &run)?.as_slice())?;
            let key = run.job_id.to_string();
            if let Some(mut job) = read_job(&jobs, &key)?
                && job.last_run.as_ref().is_some_and(|r| r.id == run.id)
            {
                job.last_run = Some(run.clone());
                jobs.insert(key.as_str(), store::encode(JOBS_TABLE, &job)?.as_slice())?;
            }
            count += 1;
        }
    }
    tx.commit()?;
    Ok(count)
}
