//! The workflows API of the automation domain: definitions, runs (each
//! step an agent turn through [`Automation::agent_turn`]), and recovery of
//! runs a stopped daemon left running.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::*;
use crate::automation::Automation;
use crate::store::audit::AuditEvent;

/// Steps call agents through the kernel's agent turn.
struct AgentRunner<'a>(&'a std::sync::Arc<Automation>);

impl StepRunner for AgentRunner<'_> {
    fn call(
        &self,
        agent: Uuid,
        prompt: String,
    ) -> impl Future<Output = Result<String, String>> + Send {
        self.0.agent_turn(agent, prompt, false)
    }

    fn now(&self) -> DateTime<Utc> {
        self.0.shared.now()
    }
}

impl Automation {
    /// Creates a workflow.
    pub async fn workflow_create(&self, input: WorkflowInput) -> Result<Workflow, KernelError> {
        validate(&input)?;
        let now = self.shared.now();
        let w = Workflow {
            id: Uuid::new_v4(),
            name: input.name,
            description: input.description,
            steps: input.steps,
            created_at: now,
            updated_at: now,
        };
        let store = self.shared.store().clone();
        let stored = w.clone();
        store::blocking(move || put(&store, &stored)).await?;
        self.shared
            .audit(AuditEvent::new(
                "workflow_created",
                format!("workflow {} `{}`", w.id, w.name),
            ))
            .await?;
        Ok(w)
    }

    /// Every workflow, oldest first.
    pub async fn workflows(&self) -> Result<Vec<Workflow>, KernelError> {
        let store = self.shared.store().clone();
        Ok(store::blocking(move || list(&store)).await?)
    }

    /// One workflow, or `NotFound`.
    pub async fn workflow(&self, id: Uuid) -> Result<Workflow, KernelError> {
        let store = self.shared.store().clone();
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
        w.updated_at = self.shared.now();
        let store = self.shared.store().clone();
        let stored = w.clone();
        store::blocking(move || put(&store, &stored)).await?;
        self.shared
            .audit(AuditEvent::new(
                "workflow_updated",
                format!("workflow {id}"),
            ))
            .await?;
        Ok(w)
    }

    /// Deletes a workflow (its runs stay); false when it did not exist.
    pub async fn workflow_delete(&self, id: Uuid) -> Result<bool, KernelError> {
        let store = self.shared.store().clone();
        let existed = store::blocking(move || remove(&store, id)).await?;
        if existed {
            self.shared
                .audit(AuditEvent::new(
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
            .agents
            .list()
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
            started_at: self.shared.now(),
            completed_at: None,
        };
        let store = self.shared.store().clone();
        let first = run.clone();
        store::blocking(move || put_run(&store, &first)).await?;
        // Progress is saved after every step, off the async workers; a
        // failed save is logged and the final save below reports the error.
        let store = self.shared.store().clone();
        execute(&w, &mut run, &resolve, &AgentRunner(self), |r| {
            let store = store.clone();
            async move {
                let id = r.id;
                if let Err(e) = store::blocking(move || put_run(&store, &r)).await {
                    tracing::error!(run_id = %id, error = %e, "cannot save workflow progress");
                }
            }
        })
        .await;
        let store = self.shared.store().clone();
        let last = run.clone();
        store::blocking(move || put_run(&store, &last)).await?;
        Ok(run)
    }

    /// Runs of a workflow, newest first.
    pub async fn workflow_runs(&self, id: Uuid) -> Result<Vec<WorkflowRun>, KernelError> {
        self.workflow(id).await?;
        let store = self.shared.store().clone();
        Ok(store::blocking(move || runs(&store, Some(id))).await?)
    }

    /// One run, or `NotFound`.
    pub async fn workflow_run_get(&self, run: Uuid) -> Result<WorkflowRun, KernelError> {
        let store = self.shared.store().clone();
        store::blocking(move || get_run(&store, run))
            .await?
            .ok_or_else(|| KernelError::NotFound(format!("workflow run {run} not found")))
    }

    /// Marks runs a previous daemon left running as failed.
    pub(crate) async fn workflows_recover(&self) -> Result<usize, KernelError> {
        let store = self.shared.store().clone();
        Ok(store::blocking(move || mark_interrupted(&store)).await?)
    }
}
