//! Workflows: named pipelines of agent steps, and their runs.
//!
//! Step modes (the reference's):
//! - `sequential`: the step's agent is sent its rendered prompt; the answer
//!   becomes `{{input}}` for the next step.
//! - `fan_out`: consecutive fan-out steps run concurrently on the same input;
//!   the next step's input is their answers joined.
//! - `collect`: no agent; joins the answers of the preceding fan-out group
//!   (or passes the input through) as the next input.
//! - `conditional`: runs only when its `condition` text appears
//!   (case-insensitively) in the current input; otherwise it is skipped.
//! - `loop`: runs up to `max_iterations` times, each time on its previous
//!   answer, stopping early when the answer contains `until`.
//!
//! Error modes: `fail` ends the run, `skip` records the failure and goes on
//! with the input unchanged, `retry` tries again up to `max_retries` times and
//! then fails. `timeout_secs` bounds each agent call. `{{input}}` is the
//! current input, `{{name}}` the answer a step stored with `output_var: name`.
//!
//! A run is written to the store when it starts and after every step, so its
//! state and each step's result survive a crash; runs a stopped daemon left
//! `running` are marked failed at the next start.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use redb::{ReadableDatabase, ReadableTable};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::KernelError;

mod engine;
mod service;

use crate::store::tables::{WORKFLOW_RUNS, WORKFLOWS};
use crate::store::{self, Store, StoreError};
pub use engine::{AgentResolver, StepRunner, execute};

const TABLE: &str = "workflows.v1";
const RUNS_TABLE: &str = "workflow_runs.v1";

/// Most steps in one workflow.
pub const MAX_STEPS: usize = 100;
/// Longest prompt template of a step, in bytes.
pub const MAX_PROMPT_BYTES: usize = 64 * 1024;
/// Longest workflow input, in bytes.
pub const MAX_INPUT_BYTES: usize = 256 * 1024;
/// Separator between joined fan-out answers.
pub const JOIN_SEPARATOR: &str = "\n\n---\n\n";

/// How a step runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum StepMode {
    /// One after the other.
    #[default]
    Sequential,
    /// Concurrently with the neighbouring fan-out steps.
    FanOut,
    /// Joins the fan-out answers.
    Collect,
    /// Only when `condition` is in the input.
    Conditional,
    /// Repeated until `until` or `max_iterations`.
    Loop,
}

/// What a failing step does to the run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ErrorMode {
    /// The run fails.
    #[default]
    Fail,
    /// The step is recorded as failed and the run goes on.
    Skip,
    /// Try again, up to `max_retries` times.
    Retry,
}

fn default_timeout() -> u64 {
    120
}
fn default_retries() -> u32 {
    3
}
fn default_iterations() -> u32 {
    5
}

/// The pass-the-input-on prompt, LibreFang's default for a step without one.
fn input_prompt() -> String {
    "{{input}}".into()
}

/// One step of a workflow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// Its name.
    #[cfg_attr(feature = "openapi", schema(pattern = "\\S"))]
    pub name: String,
    /// The agent, by id.
    #[serde(default)]
    pub agent_id: Option<Uuid>,
    /// The agent, by name.
    #[serde(default)]
    pub agent_name: Option<String>,
    /// The prompt template (`{{input}}`, `{{var}}`); unused by `collect`.
    /// Default `{{input}}`, as in LibreFang.
    #[serde(default = "input_prompt")]
    pub prompt: String,
    /// How it runs.
    #[serde(default)]
    pub mode: StepMode,
    /// Seconds one agent call may take.
    #[serde(default = "default_timeout")]
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 3600))]
    pub timeout_secs: u64,
    /// What a failure does.
    #[serde(default)]
    pub error_mode: ErrorMode,
    /// Retries for `retry`.
    #[serde(default = "default_retries")]
    #[cfg_attr(feature = "openapi", schema(maximum = 10))]
    pub max_retries: u32,
    /// Stores the answer under this name for later templates.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(pattern = "^[A-Za-z0-9_]+$"))]
    pub output_var: Option<String>,
    /// For `conditional`: text that must appear in the input.
    #[serde(default)]
    pub condition: Option<String>,
    /// For `loop`: most iterations.
    #[serde(default = "default_iterations")]
    pub max_iterations: u32,
    /// For `loop`: stop when the answer contains this.
    #[serde(default)]
    pub until: Option<String>,
}

/// A stored workflow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Workflow {
    /// Its id.
    pub id: Uuid,
    /// Its name.
    pub name: String,
    /// What it is for.
    pub description: String,
    /// Its steps, in order.
    pub steps: Vec<Step>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it was last changed.
    pub updated_at: DateTime<Utc>,
}

/// Body of creating or replacing a workflow.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct WorkflowInput {
    /// Its name.
    #[cfg_attr(feature = "openapi", schema(pattern = "\\S", max_length = 200))]
    pub name: String,
    /// What it is for.
    #[serde(default)]
    pub description: String,
    /// Its steps.
    #[cfg_attr(feature = "openapi", schema(min_items = 1, max_items = 100))]
    pub steps: Vec<Step>,
}

/// A run's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum RunState {
    /// Going.
    Running,
    /// Every step done or skipped.
    Completed,
    /// A step failed under `fail` (or `retry` ran out), or the daemon stopped.
    Failed,
}

/// What one step did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StepResult {
    /// The step's name.
    pub name: String,
    /// Its mode.
    pub mode: StepMode,
    /// The agent that ran it.
    pub agent_id: Option<Uuid>,
    /// `ok`, `skipped` (condition false, or failed under `skip`) or `failed`.
    pub status: String,
    /// The prompt as sent (the last one, for loops and retries).
    pub prompt: Option<String>,
    /// The answer.
    pub output: Option<String>,
    /// What went wrong.
    pub error: Option<String>,
    /// Agent calls made (retries and loop iterations count).
    pub attempts: u32,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// When it ended.
    pub finished_at: DateTime<Utc>,
}

/// A run of a workflow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WorkflowRun {
    /// Its id.
    pub id: Uuid,
    /// The workflow.
    pub workflow_id: Uuid,
    /// The workflow's name.
    pub workflow_name: String,
    /// The input it was given.
    pub input: String,
    /// Where it is.
    pub state: RunState,
    /// Each step's result so far.
    pub step_results: Vec<StepResult>,
    /// Steps done (ok or skipped).
    pub steps_completed: usize,
    /// Variables stored by `output_var`.
    pub vars: BTreeMap<String, String>,
    /// The final answer.
    pub output: Option<String>,
    /// Why it failed.
    pub error: Option<String>,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// When it ended.
    pub completed_at: Option<DateTime<Utc>>,
}

/// Replaces `{{input}}` and `{{var}}` placeholders.
pub fn render(template: &str, input: &str, vars: &BTreeMap<String, String>) -> String {
    let mut out = template.replace("{{input}}", input);
    for (name, value) in vars {
        out = out.replace(&format!("{{{{{name}}}}}"), value);
    }
    out
}

/// Checks a definition; the message names the step and field at fault.
pub fn validate(input: &WorkflowInput) -> Result<(), KernelError> {
    let bad = |m: String| Err(KernelError::Invalid(m));
    if input.name.trim().is_empty() || input.name.len() > 200 {
        return bad("name must be 1-200 bytes".into());
    }
    if input.steps.is_empty() || input.steps.len() > MAX_STEPS {
        return bad(format!("a workflow has 1-{MAX_STEPS} steps"));
    }
    for (i, s) in input.steps.iter().enumerate() {
        let at = format!("steps[{i}] (`{}`)", s.name);
        if s.name.trim().is_empty() {
            return bad(format!("steps[{i}]: name must not be empty"));
        }
        if s.mode != StepMode::Collect {
            if s.agent_id.is_none() && s.agent_name.as_deref().is_none_or(str::is_empty) {
                return bad(format!("{at}: agent_id or agent_name is required"));
            }
            if s.prompt.trim().is_empty() {
                return bad(format!("{at}: prompt must not be empty"));
            }
        }
        if s.prompt.len() > MAX_PROMPT_BYTES {
            return bad(format!(
                "{at}: prompt is longer than {MAX_PROMPT_BYTES} bytes"
            ));
        }
        if !(1..=3600).contains(&s.timeout_secs) {
            return bad(format!("{at}: timeout_secs must be 1-3600"));
        }
        if s.max_retries > 10 {
            return bad(format!("{at}: max_retries must be at most 10"));
        }
        if s.mode == StepMode::Conditional && s.condition.as_deref().is_none_or(str::is_empty) {
            return bad(format!("{at}: a conditional step needs a condition"));
        }
        if s.mode == StepMode::Loop && !(1..=100).contains(&s.max_iterations) {
            return bad(format!("{at}: max_iterations must be 1-100"));
        }
        if let Some(var) = &s.output_var
            && (var.is_empty()
                || !var.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                || var == "input")
        {
            return bad(format!(
                "{at}: output_var must be letters, digits or _ (and not `input`)"
            ));
        }
    }
    Ok(())
}

pub(crate) fn list(store: &Store) -> Result<Vec<Workflow>, StoreError> {
    let tx = store.db()?.begin_read()?;
    let table = tx.open_table(WORKFLOWS)?;
    let mut out: Vec<Workflow> = Vec::new();
    for item in table.iter()? {
        let (_, v) = item?;
        out.push(store::decode(TABLE, v.value())?);
    }
    out.sort_by_key(|w| (w.created_at, w.id));
    Ok(out)
}

pub(crate) fn get(store: &Store, id: Uuid) -> Result<Option<Workflow>, StoreError> {
    let tx = store.db()?.begin_read()?;
    let table = tx.open_table(WORKFLOWS)?;
    table
        .get(id.to_string().as_str())?
        .map(|v| store::decode(TABLE, v.value()))
        .transpose()
}

pub(crate) fn put(store: &Store, w: &Workflow) -> Result<(), StoreError> {
    let tx = store.db()?.begin_write()?;
    tx.open_table(WORKFLOWS)?.insert(
        w.id.to_string().as_str(),
        store::encode(TABLE, w)?.as_slice(),
    )?;
    tx.commit()?;
    Ok(())
}

pub(crate) fn remove(store: &Store, id: Uuid) -> Result<bool, StoreError> {
    let tx = store.db()?.begin_write()?;
    let existed = tx
        .open_table(WORKFLOWS)?
        .remove(id.to_string().as_str())?
        .is_some();
    tx.commit()?;
    Ok(existed)
}

pub(crate) fn put_run(store: &Store, run: &WorkflowRun) -> Result<(), StoreError> {
    let tx = store.db()?.begin_write()?;
    tx.open_table(WORKFLOW_RUNS)?.insert(
        run.id.to_string().as_str(),
        store::encode(RUNS_TABLE, run)?.as_slice(),
    )?;
    tx.commit()?;
    Ok(())
}

pub(crate) fn get_run(store: &Store, id: Uuid) -> Result<Option<WorkflowRun>, StoreError> {
    let tx = store.db()?.begin_read()?;
    let table = tx.open_table(WORKFLOW_RUNS)?;
    table
        .get(id.to_string().as_str())?
        .map(|v| store::decode(RUNS_TABLE, v.value()))
        .transpose()
}

/// Runs of a workflow (or all), newest first.
pub(crate) fn runs(store: &Store, workflow: Option<Uuid>) -> Result<Vec<WorkflowRun>, StoreError> {
    let tx = store.db()?.begin_read()?;
    let table = tx.open_table(WORKFLOW_RUNS)?;
    let mut out: Vec<WorkflowRun> = Vec::new();
    for item in table.iter()? {
        let (_, v) = item?;
        let run: WorkflowRun = store::decode(RUNS_TABLE, v.value())?;
        if workflow.is_none_or(|w| w == run.workflow_id) {
            out.push(run);
        }
    }
    out.sort_by_key(|r| std::cmp::Reverse(r.started_at));
    Ok(out)
}

/// Marks runs a stopped daemon left running as failed.
pub(crate) fn mark_interrupted(store: &Store) -> Result<usize, StoreError> {
    let stale: Vec<WorkflowRun> = runs(store, None)?
        .into_iter()
        .filter(|r| r.state == RunState::Running)
        .collect();
    for mut run in stale.iter().cloned() {
        run.state = RunState::Failed;
        run.error = Some("interrupted: the daemon stopped during this run".into());
        run.completed_at = Some(store.now());
        put_run(store, &run)?;
    }
    Ok(stale.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// Answers by rule, deterministically: the code under test is the
    /// orchestration, not the agent.
    struct Scripted {
        calls: Mutex<Vec<(Uuid, String)>>,
        fail_first: Mutex<u32>,
    }

    impl StepRunner for Scripted {
        fn call(
            &self,
            agent: Uuid,
            prompt: String,
        ) -> impl Future<Output = Result<String, String>> + Send {
            self.calls.lock().unwrap().push((agent, prompt.clone()));
            let fail = {
                let mut f = self.fail_first.lock().unwrap();
                if *f > 0 {
                    *f -= 1;
                    true
                } else {
                    false
                }
            };
            async move {
                if prompt.contains("BREAK") || fail {
                    Err("agent failed".to_string())
                } else if let Some(n) = prompt.strip_prefix("count ") {
                    Ok(format!("{}", n.trim().parse::<u32>().unwrap_or(0) + 1))
                } else {
                    Ok(format!("<{prompt}>"))
                }
            }
        }
    }

    fn runner(fail_first: u32) -> Scripted {
        Scripted {
            calls: Mutex::new(Vec::new()),
            fail_first: Mutex::new(fail_first),
        }
    }

    fn step(name: &str, mode: StepMode, prompt: &str) -> Step {
        serde_json::from_value(serde_json::json!({
            "name": name, "agent_name": "a", "prompt": prompt,
            "mode": serde_json::to_value(mode).unwrap(),
        }))
        .unwrap()
    }

    async fn go(steps: Vec<Step>, input: &str, r: &Scripted) -> WorkflowRun {
        let w = Workflow {
            id: Uuid::new_v4(),
            name: "w".into(),
            description: String::new(),
            steps,
            created_at: Utc::now(),
            updated_at: Utc::now(),
        };
        validate(&WorkflowInput {
            name: w.name.clone(),
            description: String::new(),
            steps: w.steps.clone(),
        })
        .unwrap();
        let mut run = WorkflowRun {
            id: Uuid::new_v4(),
            workflow_id: w.id,
            workflow_name: w.name.clone(),
            input: input.into(),
            state: RunState::Running,
            step_results: vec![],
            steps_completed: 0,
            vars: BTreeMap::new(),
            output: None,
            error: None,
            started_at: Utc::now(),
            completed_at: None,
        };
        let resolve = |_: &Step| -> Result<Uuid, String> { Ok(Uuid::nil()) };
        let mut saves = 0;
        execute(&w, &mut run, &resolve, r, |_| {
            saves += 1;
            async {}
        })
        .await;
        assert!(saves >= 1, "progress is saved");
        run
    }

    #[tokio::test]
    async fn sequential_steps_chain_and_store_vars() {
        let r = runner(0);
        let mut first = step("a", StepMode::Sequential, "one {{input}}");
        first.output_var = Some("first".into());
        let run = go(
            vec![
                first,
                step("b", StepMode::Sequential, "two {{input}} / {{first}}"),
            ],
            "x",
            &r,
        )
        .await;
        assert_eq!(run.state, RunState::Completed);
        assert_eq!(run.output.as_deref(), Some("<two <one x> / <one x>>"));
        assert_eq!(run.steps_completed, 2);
    }

    #[tokio::test]
    async fn fan_out_then_collect_joins_answers() {
        let r = runner(0);
        let run = go(
            vec![
                step("a", StepMode::FanOut, "a {{input}}"),
                step("b", StepMode::FanOut, "b {{input}}"),
                Step {
                    agent_name: None,
                    prompt: String::new(),
                    ..step("c", StepMode::Collect, "")
                },
                step("d", StepMode::Sequential, "sum: {{input}}"),
            ],
            "x",
            &r,
        )
        .await;
        assert_eq!(run.state, RunState::Completed);
        assert_eq!(
            run.output.as_deref(),
            Some(format!("<sum: <a x>{JOIN_SEPARATOR}<b x>>").as_str())
        );
    }

    #[tokio::test]
    async fn conditional_runs_only_when_its_condition_holds() {
        let r = runner(0);
        let mut yes = step("yes", StepMode::Conditional, "yes {{input}}");
        yes.condition = Some("URGENT".into());
        let mut no = step("no", StepMode::Conditional, "no {{input}}");
        no.condition = Some("calm".into());
        let run = go(vec![yes, no], "this is urgent", &r).await;
        assert_eq!(run.output.as_deref(), Some("<yes this is urgent>"));
        assert_eq!(run.step_results[1].status, "skipped");
    }

    #[tokio::test]
    async fn loop_stops_at_until_or_max_iterations() {
        let r = runner(0);
        let mut l = step("count", StepMode::Loop, "count {{input}}");
        l.until = Some("3".into());
        let run = go(vec![l], "0", &r).await;
        assert_eq!(run.output.as_deref(), Some("3"));
        assert_eq!(run.step_results[0].attempts, 3);
        let mut capped = step("count", StepMode::Loop, "count {{input}}");
        capped.max_iterations = 2;
        let run = go(vec![capped], "0", &r).await;
        assert_eq!(run.output.as_deref(), Some("2"));
    }

    #[tokio::test]
    async fn error_modes_fail_skip_and_retry() {
        let r = runner(0);
        let run = go(
            vec![
                step("bad", StepMode::Sequential, "BREAK"),
                step("after", StepMode::Sequential, "after"),
            ],
            "x",
            &r,
        )
        .await;
        assert_eq!(run.state, RunState::Failed);
        assert_eq!(run.step_results.len(), 1);
        assert!(run.error.unwrap().contains("`bad`"));

        let mut skip = step("bad", StepMode::Sequential, "BREAK");
        skip.error_mode = ErrorMode::Skip;
        let run = go(
            vec![skip, step("after", StepMode::Sequential, "after {{input}}")],
            "x",
            &r,
        )
        .await;
        assert_eq!(run.state, RunState::Completed);
        assert_eq!(run.step_results[0].status, "skipped");
        assert_eq!(run.output.as_deref(), Some("<after x>"));

        let r = runner(2);
        let mut retry = step("flaky", StepMode::Sequential, "ok {{input}}");
        retry.error_mode = ErrorMode::Retry;
        retry.max_retries = 2;
        let run = go(vec![retry.clone()], "x", &r).await;
        assert_eq!(run.state, RunState::Completed);
        assert_eq!(run.step_results[0].attempts, 3);
        let r = runner(5);
        let run = go(vec![retry], "x", &r).await;
        assert_eq!(run.state, RunState::Failed);
    }

    #[test]
    fn definitions_are_checked() {
        let w = |steps: serde_json::Value| -> Result<(), KernelError> {
            let input: WorkflowInput =
                serde_json::from_value(serde_json::json!({"name": "w", "steps": steps}))
                    .map_err(|e| KernelError::Invalid(e.to_string()))?;
            validate(&input)
        };
        assert!(w(serde_json::json!([])).is_err());
        assert!(
            w(serde_json::json!([{"name": "a", "prompt": "p"}])).is_err(),
            "no agent"
        );
        assert!(w(serde_json::json!([{"name": "a", "agent_name": "x", "prompt": "p", "mode": "conditional"}])).is_err());
        assert!(w(serde_json::json!([{"name": "a", "agent_name": "x", "prompt": "p", "mode": "teleport"}])).is_err());
        assert!(w(serde_json::json!([{"name": "a", "agent_name": "x", "prompt": "p", "timeout_secs": 0}])).is_err());
        assert!(w(serde_json::json!([{"name": "a", "agent_name": "x", "prompt": "p"}])).is_ok());
    }
}
