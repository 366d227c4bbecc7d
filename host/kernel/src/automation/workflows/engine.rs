//! Running a workflow: its steps in their modes, with error handling,
//! retries and timeouts, independent of how an agent is called
//! ([`StepRunner`]) and of where the run is saved (the `save` callback).

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::*;

/// Runs one agent call: the agent, the prompt; its answer or an error.
pub trait StepRunner: Send + Sync {
    /// Sends `prompt` to `agent`.
    fn call(
        &self,
        agent: Uuid,
        prompt: String,
    ) -> impl Future<Output = Result<String, String>> + Send;

    /// Now, for the run's and its steps' timestamps. The kernel's runner
    /// answers with the kernel's clock; a runner of its own (a test's) keeps
    /// wall time.
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
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
            run.completed_at = Some(runner.now());
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
    run.completed_at = Some(runner.now());
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
    let started_at = runner.now();
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
        r.finished_at = runner.now();
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
