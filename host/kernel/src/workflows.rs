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
use std::future::Future;
use std::time::Duration;

use chrono::{DateTime, Utc};
use redb::{ReadableDatabase, ReadableTable};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::KernelError;
use crate::store::{self, Store, StoreError, WORKFLOW_RUNS, WORKFLOWS};

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

/// One step of a workflow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// Its name.
    pub name: String,
    /// The agent, by id.
    #[serde(default)]
    pub agent_id: Option<Uuid>,
    /// The agent, by name.
    #[serde(default)]
    pub agent_name: Option<String>,
    /// The prompt template (`{{input}}`, `{{var}}`); unused by `collect`.
    #[serde(default)]
    pub prompt: String,
    /// How it runs.
    #[serde(default)]
    pub mode: StepMode,
    /// Seconds one agent call may take.
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
    /// What a failure does.
    #[serde(default)]
    pub error_mode: ErrorMode,
    /// Retries for `retry`.
    #[serde(default = "default_retries")]
    pub max_retries: u32,
    /// Stores the answer under this name for later templates.
    #[serde(default)]
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
#[serde(deny_unknown_fields)]
pub struct WorkflowInput {
    /// Its name.
    pub name: String,
    /// What it is for.
    #[serde(default)]
    pub description: String,
    /// Its steps.
    pub steps: Vec<Step>,
}

/// A run's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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

/// Runs one agent call: the agent, the prompt; its answer or an error.
pub trait StepRunner: Send + Sync {
    /// Sends `prompt` to `agent`.
    fn call(
        &self,
        agent: Uuid,
        prompt: String,
    ) -> impl Future<Output = Result<String, String>> + Send;
}

/// What a step resolves its agent to (names are looked up when the run starts).
pub type AgentResolver = dyn Fn(&Step) -> Result<Uuid, String> + Send + Sync;

/// Runs `step` once or with retries; returns the answer and the number of calls.
async fn call_with_policy<R: StepRunner>(
    runner: &R,
    step: &Step,
    agent: Uuid,
    prompt: String,
) -> (Result<String, String>, u32) {
    let tries = if step.error_mode == ErrorMode::Retry {
        step.max_retries + 1
    } else {
        1
    };
    let mut last = Err("not run".to_string());
    for attempt in 1..=tries {
        let call = runner.call(agent, prompt.clone());
        last = match tokio::time::timeout(Duration::from_secs(step.timeout_secs), call).await {
            Ok(result) => result,
            Err(_) => Err(format!("timed out after {} s", step.timeout_secs)),
        };
        if last.is_ok() {
            return (last, attempt);
        }
    }
    (last, tries)
}

/// Executes a workflow, awaiting `progress` with a copy of the run after
/// each step (the kernel saves it there).
pub async fn execute<R, P, F>(
    workflow: &Workflow,
    run: &mut WorkflowRun,
    resolve: &AgentResolver,
    runner: &R,
    mut progress: P,
) where
    R: StepRunner,
    P: FnMut(WorkflowRun) -> F,
    F: Future<Output = ()>,
{
    let mut input = run.input.clone();
    let mut fan_outputs: Vec<String> = Vec::new();
    let steps = &workflow.steps;
    let mut i = 0;
    while i < steps.len() {
        // A group of consecutive fan-out steps runs concurrently.
        let group_end = if steps[i].mode == StepMode::FanOut {
            steps[i..]
                .iter()
                .position(|s| s.mode != StepMode::FanOut)
                .map_or(steps.len(), |p| i + p)
        } else {
            i + 1
        };
        let group = &steps[i..group_end];
        let results: Vec<(StepResult, Option<String>)> = if group[0].mode == StepMode::FanOut {
            let calls = group
                .iter()
                .map(|step| run_step(step, &input, &run.vars, resolve, runner));
            futures_join(calls).await
        } else {
            vec![run_step(&group[0], &input, &run.vars, resolve, runner).await]
        };
        let mut failed: Option<String> = None;
        let mut outputs = Vec::new();
        for ((result, output), step) in results.into_iter().zip(group) {
            if result.status == "failed" && step.error_mode != ErrorMode::Skip {
                failed.get_or_insert_with(|| {
                    format!(
                        "step `{}` failed: {}",
                        step.name,
                        result.error.clone().unwrap_or_default()
                    )
                });
            } else {
                run.steps_completed += 1;
            }
            if let (Some(out), Some(var)) = (&output, &step.output_var) {
                run.vars.insert(var.clone(), out.clone());
            }
            if let Some(out) = output {
                outputs.push(out);
            }
            run.step_results.push(result);
        }
        if let Some(error) = failed {
            run.state = RunState::Failed;
            run.error = Some(error);
            run.completed_at = Some(Utc::now());
            progress(run.clone()).await;
            return;
        }
        match group[0].mode {
            StepMode::FanOut => {
                fan_outputs = outputs.clone();
                if !outputs.is_empty() {
                    input = outputs.join(JOIN_SEPARATOR);
                }
            }
            StepMode::Collect => {
                if !fan_outputs.is_empty() {
                    input = std::mem::take(&mut fan_outputs).join(JOIN_SEPARATOR);
                }
                if let Some(r) = run.step_results.last_mut() {
                    r.output = Some(input.clone());
                }
                if let Some(var) = &group[0].output_var {
                    run.vars.insert(var.clone(), input.clone());
                }
            }
            _ => {
                if let Some(out) = outputs.pop() {
                    input = out;
                }
            }
        }
        progress(run.clone()).await;
        i = group_end;
    }
    run.state = RunState::Completed;
    run.output = Some(input);
    run.completed_at = Some(Utc::now());
    progress(run.clone()).await;
}

/// Runs futures concurrently and returns their results in order.
async fn futures_join<F, T>(futures: impl Iterator<Item = F>) -> Vec<T>
where
    F: Future<Output = T>,
{
    let pinned: Vec<_> = futures.map(Box::pin).collect();
    let mut slots: Vec<Option<T>> = pinned.iter().map(|_| None).collect();
    let mut pending: Vec<(usize, std::pin::Pin<Box<F>>)> = pinned.into_iter().enumerate().collect();
    std::future::poll_fn(|cx| {
        pending.retain_mut(|(i, f)| match f.as_mut().poll(cx) {
            std::task::Poll::Ready(v) => {
                slots[*i] = Some(v);
                false
            }
            std::task::Poll::Pending => true,
        });
        if pending.is_empty() {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await;
    slots.into_iter().flatten().collect()
}

/// Runs one step (all its iterations or retries); its result and answer.
async fn run_step<R: StepRunner>(
    step: &Step,
    input: &str,
    vars: &BTreeMap<String, String>,
    resolve: &AgentResolver,
    runner: &R,
) -> (StepResult, Option<String>) {
    let started_at = Utc::now();
    let mut result = StepResult {
        name: step.name.clone(),
        mode: step.mode,
        agent_id: None,
        status: "ok".into(),
        prompt: None,
        output: None,
        error: None,
        attempts: 0,
        started_at,
        finished_at: started_at,
    };
    let finish = |mut r: StepResult, output: Option<String>| {
        r.finished_at = Utc::now();
        r.output = output.clone();
        (r, output)
    };
    // A step that cannot run or whose calls all failed: skipped or failed by its error mode.
    let fail = |mut r: StepResult, error: String| {
        r.status = if step.error_mode == ErrorMode::Skip {
            "skipped"
        } else {
            "failed"
        }
        .into();
        r.error = Some(error);
        finish(r, None)
    };
    if step.mode == StepMode::Collect {
        return finish(result, None);
    }
    if step.mode == StepMode::Conditional {
        let condition = step.condition.clone().unwrap_or_default().to_lowercase();
        if !input.to_lowercase().contains(&condition) {
            result.status = "skipped".into();
            result.error = Some(format!("condition `{condition}` not met"));
            return finish(result, None);
        }
    }
    let agent = match resolve(step) {
        Ok(a) => a,
        Err(e) => {
            return fail(result, e);
        }
    };
    result.agent_id = Some(agent);
    let iterations = if step.mode == StepMode::Loop {
        step.max_iterations
    } else {
        1
    };
    let mut current = input.to_string();
    let mut answer = None;
    for _ in 0..iterations {
        let prompt = render(&step.prompt, &current, vars);
        result.prompt = Some(prompt.clone());
        let (outcome, calls) = call_with_policy(runner, step, agent, prompt).await;
        result.attempts += calls;
        match outcome {
            Ok(out) => {
                let done = step.until.as_deref().is_some_and(|u| {
                    !u.is_empty() && out.to_lowercase().contains(&u.to_lowercase())
                });
                current = out.clone();
                answer = Some(out);
                if done {
                    break;
                }
            }
            Err(e) => {
                return fail(result, e);
            }
        }
    }
    finish(result, answer)
}

pub(crate) fn list(store: &Store) -> Result<Vec<Workflow>, StoreError> {
    let tx = store.db().begin_read()?;
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
    let tx = store.db().begin_read()?;
    let table = tx.open_table(WORKFLOWS)?;
    table
        .get(id.to_string().as_str())?
        .map(|v| store::decode(TABLE, v.value()))
        .transpose()
}

pub(crate) fn put(store: &Store, w: &Workflow) -> Result<(), StoreError> {
    let tx = store.db().begin_write()?;
    tx.open_table(WORKFLOWS)?.insert(
        w.id.to_string().as_str(),
        store::encode(TABLE, w)?.as_slice(),
    )?;
    tx.commit()?;
    Ok(())
}

pub(crate) fn remove(store: &Store, id: Uuid) -> Result<bool, StoreError> {
    let tx = store.db().begin_write()?;
    let existed = tx
        .open_table(WORKFLOWS)?
        .remove(id.to_string().as_str())?
        .is_some();
    tx.commit()?;
    Ok(existed)
}

pub(crate) fn put_run(store: &Store, run: &WorkflowRun) -> Result<(), StoreError> {
    let tx = store.db().begin_write()?;
    tx.open_table(WORKFLOW_RUNS)?.insert(
        run.id.to_string().as_str(),
        store::encode(RUNS_TABLE, run)?.as_slice(),
    )?;
    tx.commit()?;
    Ok(())
}

pub(crate) fn get_run(store: &Store, id: Uuid) -> Result<Option<WorkflowRun>, StoreError> {
    let tx = store.db().begin_read()?;
    let table = tx.open_table(WORKFLOW_RUNS)?;
    table
        .get(id.to_string().as_str())?
        .map(|v| store::decode(RUNS_TABLE, v.value()))
        .transpose()
}

/// Runs of a workflow (or all), newest first.
pub(crate) fn runs(store: &Store, workflow: Option<Uuid>) -> Result<Vec<WorkflowRun>, StoreError> {
    let tx = store.db().begin_read()?;
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
        run.completed_at = Some(Utc::now());
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

mod kernel_side {
    use std::collections::{BTreeMap, HashMap};
    use std::future::Future;

    use chrono::Utc;
    use uuid::Uuid;

    use super::*;
    use crate::Kernel;
    use crate::audit::AuditEvent;

    /// Steps call agents through the kernel's agent turn.
    struct KernelRunner<'a>(&'a std::sync::Arc<Kernel>);

    impl StepRunner for KernelRunner<'_> {
        fn call(
            &self,
            agent: Uuid,
            prompt: String,
        ) -> impl Future<Output = Result<String, String>> + Send {
            self.0.agent_turn(agent, prompt, false)
        }
    }

    impl Kernel {
        /// Creates a workflow.
        pub async fn workflow_create(&self, input: WorkflowInput) -> Result<Workflow, KernelError> {
            validate(&input)?;
            let now = Utc::now();
            let w = Workflow {
                id: Uuid::new_v4(),
                name: input.name,
                description: input.description,
                steps: input.steps,
                created_at: now,
                updated_at: now,
            };
            let store = self.store.clone();
            let stored = w.clone();
            store::blocking(move || put(&store, &stored)).await?;
            self.audit(AuditEvent::new(
                "workflow_created",
                format!("workflow {} `{}`", w.id, w.name),
            ))
            .await?;
            Ok(w)
        }

        /// Every workflow, oldest first.
        pub async fn workflows(&self) -> Result<Vec<Workflow>, KernelError> {
            let store = self.store.clone();
            Ok(store::blocking(move || list(&store)).await?)
        }

        /// One workflow, or `NotFound`.
        pub async fn workflow(&self, id: Uuid) -> Result<Workflow, KernelError> {
            let store = self.store.clone();
            store::blocking(move || get(&store, id))
                .await?
                .ok_or_else(|| KernelError::NotFound(format!("workflow {id} not found")))
        }

        /// Replaces a workflow's definition.
        pub async fn workflow_update(
            &self,
            id: Uuid,
            input: WorkflowInput,
        ) -> Result<Workflow, KernelError> {
            validate(&input)?;
            let mut w = self.workflow(id).await?;
            w.name = input.name;
            w.description = input.description;
            w.steps = input.steps;
            w.updated_at = Utc::now();
            let store = self.store.clone();
            let stored = w.clone();
            store::blocking(move || put(&store, &stored)).await?;
            self.audit(AuditEvent::new(
                "workflow_updated",
                format!("workflow {id}"),
            ))
            .await?;
            Ok(w)
        }

        /// Deletes a workflow (its runs stay); false when it did not exist.
        pub async fn workflow_delete(&self, id: Uuid) -> Result<bool, KernelError> {
            let store = self.store.clone();
            let existed = store::blocking(move || remove(&store, id)).await?;
            if existed {
                self.audit(AuditEvent::new(
                    "workflow_deleted",
                    format!("workflow {id}"),
                ))
                .await?;
            }
            Ok(existed)
        }

        /// Runs a workflow to its end and returns the run; it is on disk from
        /// the start and after every step.
        pub async fn workflow_run(
            self: &std::sync::Arc<Self>,
            id: Uuid,
            input: String,
        ) -> Result<WorkflowRun, KernelError> {
            if input.len() > MAX_INPUT_BYTES {
                return Err(KernelError::Invalid(format!(
                    "input is longer than {MAX_INPUT_BYTES} bytes"
                )));
            }
            let w = self.workflow(id).await?;
            let names: HashMap<String, Uuid> = self
                .agents()
                .await?
                .into_iter()
                .map(|a| (a.name().to_string(), a.id))
                .collect();
            let ids: std::collections::HashSet<Uuid> = names.values().copied().collect();
            let resolve = move |step: &Step| -> Result<Uuid, String> {
                match (&step.agent_id, &step.agent_name) {
                    (Some(id), _) if ids.contains(id) => Ok(*id),
                    (Some(id), _) => Err(format!("agent {id} not found")),
                    (None, Some(name)) => names
                        .get(name)
                        .copied()
                        .ok_or_else(|| format!("no agent named `{name}`")),
                    (None, None) => Err("no agent".into()),
                }
            };
            let mut run = WorkflowRun {
                id: Uuid::new_v4(),
                workflow_id: w.id,
                workflow_name: w.name.clone(),
                input,
                state: RunState::Running,
                step_results: Vec::new(),
                steps_completed: 0,
                vars: BTreeMap::new(),
                output: None,
                error: None,
                started_at: Utc::now(),
                completed_at: None,
            };
            let store = self.store.clone();
            let first = run.clone();
            store::blocking(move || put_run(&store, &first)).await?;
            // Progress is saved after every step, off the async workers; a
            // failed save is logged and the final save below reports the error.
            let store = self.store.clone();
            execute(&w, &mut run, &resolve, &KernelRunner(self), |r| {
                let store = store.clone();
                async move {
                    let id = r.id;
                    if let Err(e) = store::blocking(move || put_run(&store, &r)).await {
                        tracing::error!(run_id = %id, error = %e, "cannot save workflow progress");
                    }
                }
            })
            .await;
            let store = self.store.clone();
            let last = run.clone();
            store::blocking(move || put_run(&store, &last)).await?;
            Ok(run)
        }

        /// Runs of a workflow, newest first.
        pub async fn workflow_runs(&self, id: Uuid) -> Result<Vec<WorkflowRun>, KernelError> {
            self.workflow(id).await?;
            let store = self.store.clone();
            Ok(store::blocking(move || runs(&store, Some(id))).await?)
        }

        /// One run, or `NotFound`.
        pub async fn workflow_run_get(&self, run: Uuid) -> Result<WorkflowRun, KernelError> {
            let store = self.store.clone();
            store::blocking(move || get_run(&store, run))
                .await?
                .ok_or_else(|| KernelError::NotFound(format!("workflow run {run} not found")))
        }

        /// Marks runs a previous daemon left running as failed.
        pub(crate) async fn workflows_recover(&self) -> Result<usize, KernelError> {
            let store = self.store.clone();
            Ok(store::blocking(move || mark_interrupted(&store)).await?)
        }
    }
}
