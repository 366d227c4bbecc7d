//! The kernel's side of the scheduler: cron jobs and schedules as the API
//! sees them, the engine that fires them, and what a firing does.
//!
//! The store is the source of truth; the engine holds what is enabled. Every
//! change is committed first and then applied to the engine, under one lock so
//! two concurrent edits reach the engine in the order they were committed.

use std::sync::{Arc, Weak};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use talon_scheduler::clock::BoxFuture;
use talon_scheduler::{Dispatcher, Engine, Firing, Job, Lanes, MissedPolicy, Schedule};
use uuid::Uuid;

use super::Automation;
use super::cron::{self, CronJob, CronRun, RunStart, RunStatus};
use super::delivery::Delivery;
use crate::KernelError;
use crate::events::Event;
use crate::shared::blocking_kernel;
use crate::store;
use crate::store::audit::AuditEvent;

/// A schedule as an API body gives it: text, or LibreFang's structured form.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(untagged)]
pub enum ScheduleInput {
    /// `"0 9 * * 1-5"`, `"every 5m"`, `"at 2026-01-01T09:00:00Z"`.
    Text(String),
    /// `{"kind": "cron", "expr": ..., "tz": ...}`, `{"kind": "every", "every_secs": 300}`,
    /// `{"kind": "at", "at": "2026-01-01T09:00:00Z"}`.
    Structured(StructuredSchedule),
}

/// The structured schedule form.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum StructuredSchedule {
    /// A cron expression, optionally in a time zone.
    Cron {
        /// The expression.
        expr: String,
        /// IANA time zone.
        tz: Option<String>,
    },
    /// A fixed interval.
    Every {
        /// Seconds between runs.
        every_secs: u64,
    },
    /// Once.
    At {
        /// When.
        at: DateTime<Utc>,
    },
}

impl ScheduleInput {
    /// The schedule text and the time zone it carries, if any.
    fn into_text(self) -> (String, Option<String>) {
        match self {
            ScheduleInput::Text(t) => (t, None),
            ScheduleInput::Structured(StructuredSchedule::Cron { expr, tz }) => (expr, tz),
            ScheduleInput::Structured(StructuredSchedule::Every { every_secs }) => {
                (format!("every {every_secs}s"), None)
            }
            ScheduleInput::Structured(StructuredSchedule::At { at }) => {
                (format!("at {}", at.to_rfc3339()), None)
            }
        }
    }
}

/// [`MissedPolicy`]'s values, for the OpenAPI document (talon-scheduler
/// has no schemas of its own).
#[cfg(feature = "openapi")]
#[derive(utoipa::ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code)] // only its schema is used
pub enum MissedPolicyName {
    /// Skip the missed runs.
    Skip,
    /// Run once for all of them (the default).
    RunOnce,
    /// Run each of them.
    RunAll,
}

/// Body of creating or updating a cron job or schedule. On update, omitted
/// fields are left as they are.
#[derive(Debug, Clone, Default, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CronJobInput {
    /// Human-readable name (default: `job-` and the id's first 8 digits).
    pub name: Option<String>,
    /// The agent to drive.
    pub agent_id: Option<Uuid>,
    /// When: cron expression (5 or 6 fields), `every 5m`, `at <RFC 3339>`.
    /// `/api/schedules` bodies call it `cron`.
    #[serde(alias = "cron")]
    pub schedule: Option<ScheduleInput>,
    /// IANA time zone for cron expressions (default UTC).
    pub tz: Option<String>,
    /// The message sent to the agent (also accepted as `message`).
    #[serde(alias = "message")]
    #[cfg_attr(feature = "openapi", schema(pattern = "\\S"))]
    pub prompt: Option<String>,
    /// Whether it fires (default true).
    pub enabled: Option<bool>,
    /// `skip`, `run_once` or `run_all` (default: the daemon's `scheduler.missed_policy`).
    #[cfg_attr(feature = "openapi", schema(value_type = Option<MissedPolicyName>))]
    pub missed_policy: Option<MissedPolicy>,
    /// Concurrency lane (default `default`).
    pub lane: Option<String>,
    /// LibreFang's form of the prompt: `{"kind": "agent_turn", "message": ...}`.
    pub action: Option<CronActionInput>,
    /// Where each run's answer is delivered: `{"kind": "channel", "channel":
    /// <configured channel>, "to": <chat>}`, or `{"kind": "none"}` (the
    /// default; on update, clears it).
    pub delivery: Option<Delivery>,
}

/// What a job does, in LibreFang's tagged form. Talon's jobs run one kind of
/// action, a turn of their agent; other kinds are refused by name.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum CronActionInput {
    /// Send `message` to the job's agent.
    AgentTurn {
        /// The message (the job's prompt).
        #[cfg_attr(feature = "openapi", schema(pattern = "\\S"))]
        message: String,
    },
}

impl CronJobInput {
    /// The prompt, given as `prompt` (or `message`) or as LibreFang's `action`.
    fn take_prompt(&mut self) -> Result<Option<String>, KernelError> {
        match (self.prompt.take(), self.action.take()) {
            (Some(_), Some(_)) => Err(KernelError::Invalid(
                "give the prompt once: as `prompt` (or `message`) or as `action`".into(),
            )),
            (Some(prompt), None) => Ok(Some(prompt)),
            (None, Some(CronActionInput::AgentTurn { message })) => Ok(Some(message)),
            (None, None) => Ok(None),
        }
    }
}

/// A job and when it fires next.
#[derive(Debug, Clone, Serialize)]
pub struct CronJobView {
    /// The stored job.
    #[serde(flatten)]
    pub job: CronJob,
    /// The next scheduled run; `null` when disabled or finished.
    pub next_run: Option<DateTime<Utc>>,
    /// The missed-run policy in force (the job's, or the daemon's default).
    pub effective_missed_policy: MissedPolicy,
}

/// Hands the engine's firings to the kernel.
struct CronDispatcher {
    kernel: Weak<Automation>,
}

impl Dispatcher for CronDispatcher {
    fn fire(&self, firing: Firing) -> BoxFuture<()> {
        let kernel = self.kernel.clone();
        Box::pin(async move {
            if let Some(kernel) = kernel.upgrade() {
                kernel.cron_fire(firing, RunStatus::Running).await;
            }
        })
    }

    fn overlapped(&self, firing: Firing) {
        let kernel = self.kernel.clone();
        tokio::spawn(async move {
            if let Some(kernel) = kernel.upgrade() {
                kernel.cron_fire(firing, RunStatus::Skipped).await;
            }
        });
    }
}

fn validate_text(what: &str, text: &str, max: usize, allow_empty: bool) -> Result<(), KernelError> {
    if !allow_empty && text.trim().is_empty() {
        return Err(KernelError::Invalid(format!("{what} must not be empty")));
    }
    if text.len() > max {
        return Err(KernelError::Invalid(format!(
            "{what} is {} bytes; the limit is {max}",
            text.len()
        )));
    }
    Ok(())
}

impl Automation {
    fn missed_default(&self) -> MissedPolicy {
        self.shared.config().scheduler.missed_policy
    }

    fn engine(&self) -> Option<&Engine> {
        self.scheduler.get()
    }

    /// The engine's view of a stored job.
    fn engine_job(&self, job: &CronJob) -> Option<Job> {
        let schedule = match Schedule::parse(&job.schedule, Some(&job.tz)) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(job_id = %job.id, error = %e, "stored cron job has an invalid schedule; not scheduled");
                return None;
            }
        };
        Some(Job {
            id: job.id,
            schedule,
            origin: job.created_at,
            anchor: job.anchor,
            missed: job.missed_policy.unwrap_or_else(|| self.missed_default()),
            lane: job.lane.clone(),
        })
    }

    /// Puts an enabled job into the engine (or takes a disabled one out).
    fn apply_to_engine(&self, job: &CronJob) {
        let Some(engine) = self.engine() else { return };
        if !job.enabled {
            engine.remove(job.id);
            return;
        }
        let Some(mut ej) = self.engine_job(job) else {
            engine.remove(job.id);
            return;
        };
        if !engine.lanes().contains(&ej.lane) {
            tracing::warn!(job_id = %job.id, lane = %ej.lane, "lane no longer configured; using the default lane");
            ej.lane = talon_scheduler::lanes::DEFAULT_LANE.to_string();
        }
        if let Err(e) = engine.upsert(ej) {
            tracing::error!(job_id = %job.id, error = %e, "cannot schedule cron job");
        }
    }

    fn view(&self, job: CronJob) -> CronJobView {
        let next_run = self.engine().and_then(|e| e.next_run(job.id));
        let effective_missed_policy = job.missed_policy.unwrap_or_else(|| self.missed_default());
        CronJobView {
            job,
            next_run,
            effective_missed_policy,
        }
    }

    /// Starts the scheduler: builds the engine with the configured lanes, marks
    /// runs a previous daemon left unfinished, and schedules every enabled job
    /// (runs missed while the daemon was down go by each job's policy).
    /// Returns how many jobs are scheduled.
    pub async fn start_scheduler(self: &Arc<Self>) -> Result<usize, KernelError> {
        let config = self.shared.config();
        let lanes = Lanes::new(config.scheduler.lanes.iter().map(|(k, v)| (k.clone(), *v)));
        let engine = Engine::start(
            self.shared.clock().clone(),
            Arc::new(CronDispatcher {
                kernel: Arc::downgrade(self),
            }),
            lanes,
            Duration::from_secs(config.scheduler.grace_secs),
        );
        if self.scheduler.set(engine).is_err() {
            return Err(KernelError::Conflict(
                "the scheduler is already running".into(),
            ));
        }
        let store = self.shared.store().clone();
        let interrupted = crate::error::unless_disk_full(
            store::blocking(move || cron::mark_interrupted(&store))
                .await
                .map_err(KernelError::from),
            "recording interrupted cron runs",
        )?;
        if interrupted > 0 {
            tracing::warn!(
                interrupted,
                "cron runs interrupted by the last stop recorded as errors"
            );
        }
        let store = self.shared.store().clone();
        let jobs = store::blocking(move || cron::list(&store)).await?;
        {
            let _guard = self.cron_edit.lock().await;
            for job in &jobs {
                self.apply_to_engine(job);
            }
        }
        let interrupted = crate::error::unless_disk_full(
            self.workflows_recover().await,
            "recording interrupted workflow runs",
        )?;
        if interrupted > 0 {
            tracing::warn!(
                interrupted,
                "workflow runs interrupted by the last stop recorded as failed"
            );
        }
        let triggers = self.start_triggers().await?;
        tracing::info!(triggers, "triggers subscribed to the event bus");
        Ok(self.engine().map(|e| e.len()).unwrap_or(0))
    }

    /// Creates a cron job; it is on disk and scheduled when this returns.
    pub async fn cron_create(&self, mut input: CronJobInput) -> Result<CronJobView, KernelError> {
        let prompt = input.take_prompt()?.ok_or_else(|| {
            KernelError::Invalid("prompt (or message, or action.message) is required".into())
        })?;
        let agent_id = input
            .agent_id
            .ok_or_else(|| KernelError::Invalid("agent_id is required".into()))?;
        let (schedule, carried_tz) = input
            .schedule
            .ok_or_else(|| KernelError::Invalid("schedule (or cron) is required".into()))?
            .into_text();
        let id = Uuid::new_v4();
        let now = self.shared.now();
        let job = CronJob {
            id,
            name: input
                .name
                .unwrap_or_else(|| format!("job-{}", &id.simple().to_string()[..8])),
            agent_id,
            schedule,
            tz: input.tz.or(carried_tz).unwrap_or_else(|| "UTC".into()),
            prompt,
            enabled: input.enabled.unwrap_or(true),
            missed_policy: input.missed_policy,
            lane: input
                .lane
                .unwrap_or_else(|| talon_scheduler::lanes::DEFAULT_LANE.into()),
            created_at: now,
            updated_at: now,
            anchor: now,
            last_fired_at: None,
            fire_count: 0,
            last_run: None,
            delivery: input.delivery.and_then(Delivery::normalized),
        };
        self.validate_job(&job, true).await?;
        let _guard = self.cron_edit.lock().await;
        let store = self.shared.store().clone();
        let stored = job.clone();
        let entry = blocking_kernel(move || cron::insert(&store, &stored)).await?;
        self.shared.events().publish(Event::Audit(entry));
        self.apply_to_engine(&job);
        tracing::info!(job_id = %job.id, schedule = %job.schedule, "cron job created");
        Ok(self.view(job))
    }

    /// Checks a job before it is stored.
    /// `rescheduled`: the job's schedule counts from now, so it must have a next run.
    async fn validate_job(&self, job: &CronJob, rescheduled: bool) -> Result<(), KernelError> {
        validate_text("name", &job.name, cron::MAX_NAME_BYTES, false)?;
        if job.name.chars().any(char::is_control) {
            return Err(KernelError::Invalid(
                "name must not contain control characters".into(),
            ));
        }
        validate_text("prompt", &job.prompt, cron::MAX_PROMPT_BYTES, false)?;
        let schedule = Schedule::parse(&job.schedule, Some(&job.tz))
            .map_err(|e| KernelError::Invalid(e.to_string()))?;
        if rescheduled && job.enabled && schedule.next_after(job.anchor, job.created_at).is_none() {
            return Err(KernelError::Invalid(format!(
                "schedule `{}` never fires after now",
                job.schedule
            )));
        }
        if !self.shared.config().scheduler.lanes.contains_key(&job.lane)
            && job.lane != talon_scheduler::lanes::DEFAULT_LANE
        {
            return Err(KernelError::Invalid(format!(
                "unknown lane `{}`; lanes are configured under [scheduler.lanes]",
                job.lane
            )));
        }
        self.agents.get(job.agent_id).await?;
        if let Some(delivery) = &job.delivery {
            delivery.check(&self.channels)?;
        }
        Ok(())
    }

    /// Every job, optionally of one agent, oldest first.
    pub async fn cron_jobs(&self, agent: Option<Uuid>) -> Result<Vec<CronJobView>, KernelError> {
        let store = self.shared.store().clone();
        let jobs = store::blocking(move || cron::list(&store)).await?;
        Ok(jobs
            .into_iter()
            .filter(|j| agent.is_none_or(|a| a == j.agent_id))
            .map(|j| self.view(j))
            .collect())
    }

    /// One job, or `NotFound`.
    pub async fn cron_job(&self, id: Uuid) -> Result<CronJobView, KernelError> {
        let store = self.shared.store().clone();
        let job = store::blocking(move || cron::get(&store, id))
            .await?
            .ok_or_else(|| KernelError::NotFound(format!("cron job {id} not found")))?;
        Ok(self.view(job))
    }

    /// Changes the fields given; a new schedule, time zone or a re-enable
    /// counts from now (what passed meanwhile is not "missed").
    pub async fn cron_update(
        &self,
        id: Uuid,
        mut input: CronJobInput,
    ) -> Result<CronJobView, KernelError> {
        let new_prompt = input.take_prompt()?;
        let _guard = self.cron_edit.lock().await;
        let mut job = self.cron_job(id).await?.job;
        let now = self.shared.now();
        let mut changed: Vec<&str> = Vec::new();
        let mut reanchor = false;
        if let Some(name) = input.name {
            job.name = name;
            changed.push("name");
        }
        if let Some(agent) = input.agent_id {
            job.agent_id = agent;
            changed.push("agent_id");
        }
        if let Some(schedule) = input.schedule {
            let (text, tz) = schedule.into_text();
            job.schedule = text;
            if let Some(tz) = tz {
                job.tz = tz;
            }
            reanchor = true;
            changed.push("schedule");
        }
        if let Some(tz) = input.tz {
            job.tz = tz;
            reanchor = true;
            changed.push("tz");
        }
        if let Some(prompt) = new_prompt {
            job.prompt = prompt;
            changed.push("prompt");
        }
        if let Some(enabled) = input.enabled {
            reanchor |= enabled && !job.enabled;
            job.enabled = enabled;
            changed.push("enabled");
        }
        if let Some(policy) = input.missed_policy {
            job.missed_policy = Some(policy);
            changed.push("missed_policy");
        }
        if let Some(lane) = input.lane {
            job.lane = lane;
            changed.push("lane");
        }
        if let Some(delivery) = input.delivery {
            job.delivery = delivery.normalized();
            changed.push("delivery");
        }
        if reanchor {
            job.anchor = now;
        }
        job.updated_at = now;
        self.validate_job(&job, reanchor).await?;
        let details = format!("job {id}: changed {}", changed.join(", "));
        let store = self.shared.store().clone();
        let agent_id = job.agent_id;
        let updated = blocking_kernel(move || {
            cron::modify(&store, id, move |stored| {
                // Keep what runs wrote meanwhile (anchor unless re-anchored, counters, last run).
                let (anchor, last_fired_at, fire_count, last_run) = (
                    stored.anchor,
                    stored.last_fired_at,
                    stored.fire_count,
                    stored.last_run.clone(),
                );
                *stored = CronJob {
                    anchor: if reanchor {
                        job.anchor
                    } else {
                        anchor.max(job.anchor)
                    },
                    last_fired_at,
                    fire_count,
                    last_run,
                    ..job
                };
                Ok(Some(
                    AuditEvent::new("cron_job_updated", details).agent(agent_id),
                ))
            })
        })
        .await?
        .ok_or_else(|| KernelError::NotFound(format!("cron job {id} not found")))?;
        let (job, entry) = updated;
        if let Some(entry) = entry {
            self.shared.events().publish(Event::Audit(entry));
        }
        self.apply_to_engine(&job);
        Ok(self.view(job))
    }

    /// Enables or disables a job.
    pub async fn cron_set_enabled(
        &self,
        id: Uuid,
        enabled: bool,
    ) -> Result<CronJobView, KernelError> {
        self.cron_update(
            id,
            CronJobInput {
                enabled: Some(enabled),
                ..Default::default()
            },
        )
        .await
    }

    /// Deletes a job (its past runs stay in the log); false when it did not exist.
    pub async fn cron_delete(&self, id: Uuid) -> Result<bool, KernelError> {
        let _guard = self.cron_edit.lock().await;
        let store = self.shared.store().clone();
        let entry = store::blocking(move || cron::remove(&store, id)).await?;
        if let Some(engine) = self.engine() {
            engine.remove(id);
        }
        Ok(match entry {
            Some(entry) => {
                self.shared.events().publish(Event::Audit(entry));
                true
            }
            None => false,
        })
    }

    /// Runs, newest first, optionally of one job; and how many there are.
    pub async fn cron_runs(
        &self,
        job: Option<Uuid>,
        offset: usize,
        limit: usize,
    ) -> Result<(Vec<CronRun>, usize), KernelError> {
        let store = self.shared.store().clone();
        Ok(store::blocking(move || cron::runs(&store, job, offset, limit)).await?)
    }

    /// Runs a job once now, whatever its schedule (and even when disabled),
    /// in its lane. The run is recorded before this returns; it goes on in
    /// the background.
    pub async fn cron_run_now(self: &Arc<Self>, id: Uuid) -> Result<CronRun, KernelError> {
        let now = self.shared.now();
        let start = RunStart {
            job_id: id,
            scheduled_at: now,
            started_at: now,
            manual: true,
            catch_up: false,
            skipped_before: 0,
            status: RunStatus::Running,
        };
        let (job, run) = self
            .cron_begin(start)
            .await?
            .ok_or_else(|| KernelError::NotFound(format!("cron job {id} not found")))?;
        let kernel = self.clone();
        let returned = run.clone();
        tokio::spawn(async move {
            let lanes = kernel.engine().map(|e| e.lanes().clone());
            let _permit = match &lanes {
                Some(l) => l.acquire(&job.lane).await,
                None => None,
            };
            kernel.cron_finish(job, run).await;
        });
        Ok(returned)
    }

    /// Records the start of a run durably and announces it.
    async fn cron_begin(&self, start: RunStart) -> Result<Option<(CronJob, CronRun)>, KernelError> {
        let keep = self.shared.config().scheduler.max_runs_kept.max(1);
        let store = self.shared.store().clone();
        let begun = store::blocking(move || cron::begin_run(&store, &start, keep)).await?;
        if let Some((job, run)) = &begun {
            self.shared.events().publish(Event::ScheduleFired {
                job_id: job.id.to_string(),
                run_id: run.id.to_string(),
                agent_id: job.agent_id.to_string(),
                scheduled_at: run.scheduled_at,
                at: run.started_at,
            });
        }
        Ok(begun)
    }

    /// What a firing does: record it, act, record how it went.
    async fn cron_fire(self: &Arc<Self>, firing: Firing, status: RunStatus) {
        let start = RunStart {
            job_id: firing.job_id,
            scheduled_at: firing.scheduled_at,
            started_at: self.shared.now(),
            manual: firing.manual,
            catch_up: firing.catch_up,
            skipped_before: firing.skipped,
            status,
        };
        match self.cron_begin(start).await {
            Ok(Some((job, run))) if status == RunStatus::Running => {
                self.cron_finish(job, run).await
            }
            Ok(_) => {}
            Err(e) => {
                // Nothing was run: without a durable record the action must not happen.
                tracing::error!(job_id = %firing.job_id, error = %e, "cannot record a cron run; not running it");
            }
        }
    }

    async fn cron_finish(self: &Arc<Self>, job: CronJob, mut run: CronRun) {
        let result = self.cron_action(&job).await;
        run.finished_at = Some(self.shared.now());
        match result {
            Ok(output) => {
                run.status = RunStatus::Ok;
                if let Some(delivery) = &job.delivery {
                    let origin = format!("cron:{}", job.id);
                    let sent = delivery
                        .send(&self.channels, job.agent_id, &output, &origin)
                        .await;
                    if let Err(e) = sent {
                        run.status = RunStatus::Error;
                        run.error =
                            Some(format!("the agent answered, but the delivery failed: {e}"));
                    }
                }
                run.output = Some(cron::truncate(output, cron::MAX_OUTPUT_BYTES));
            }
            Err(error) => {
                run.status = RunStatus::Error;
                run.error = Some(cron::truncate(error, cron::MAX_OUTPUT_BYTES));
            }
        }
        let store = self.shared.store().clone();
        let stored = run.clone();
        if let Err(e) = store::blocking(move || cron::finish_run(&store, &stored)).await {
            tracing::error!(run_id = %run.id, error = %e, "cannot record the end of a cron run");
        }
        self.shared.events().publish(Event::ScheduleRunFinished {
            job_id: job.id.to_string(),
            run_id: run.id.to_string(),
            status: if run.status == RunStatus::Ok {
                "ok"
            } else {
                "error"
            }
            .to_string(),
            at: run.finished_at.unwrap_or_else(Utc::now),
        });
    }

    /// The action of a job: its prompt, sent to its agent as a message; the
    /// agent's answer, or what went wrong.
    async fn cron_action(self: &Arc<Self>, job: &CronJob) -> Result<String, String> {
        self.agent_turn(job.agent_id, job.prompt.clone(), false)
            .await
    }

    /// The lanes' figures, when the scheduler runs.
    pub fn scheduler_lanes(&self) -> Vec<talon_scheduler::LaneStats> {
        self.engine().map(|e| e.lanes().stats()).unwrap_or_default()
    }
}
