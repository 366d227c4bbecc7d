//! Cron jobs, triggers and workflows driving real agent turns: the agents'
//! model is the local test LLM server (OpenAI wire format), so each run goes
//! through the whole agent loop and the recorded requests show what the
//! agent was sent.

use std::time::{Duration, Instant};

use talon_test_llm::{Reply, TestLlm};

use crate::harness::{Daemon, json};

/// One model attempt per call, so a scripted error reaches the workflow's
/// error mode instead of being retried by the LLM client; the test's many
/// workflow runs (cost 100 each) are not rate limited.
const CONFIG: &str = "[llm]\nmax_attempts = 1\n[rate_limit]\nexempt_loopback = true\n";

/// Spawns an agent whose model is the test server.
async fn llm_agent(daemon: &Daemon, llm: &TestLlm, name: &str) -> String {
    let manifest = format!(
        "name = \"{name}\"\n[model]\nprovider = \"ollama\"\nmodel = \"qwen3\"\nbase_url = \"{}\"\n",
        llm.openai_url()
    );
    let response = daemon
        .post(
            "/api/agents",
            serde_json::json!({ "manifest_toml": manifest }),
        )
        .await;
    assert_eq!(response.status(), 201, "spawn {name}");
    json(response).await["agent_id"]
        .as_str()
        .unwrap()
        .to_string()
}

/// The text of every message the model was sent in `request`.
fn sent_text(request: &talon_test_llm::RecordedRequest) -> String {
    request.body["messages"].to_string()
}

/// Polls `path` until `done` holds (at most 60 s).
async fn poll(
    daemon: &Daemon,
    path: &str,
    done: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let body = json(daemon.get(path).await).await;
        if done(&body) {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "{path} never got there: {body}\nlog:\n{}",
            daemon.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_cron_job_fires_an_agent_turn_through_the_model() {
    let llm = TestLlm::start().await;
    llm.push(Reply::text("Digest: nothing happened overnight."));
    let daemon = Daemon::start_with_config(CONFIG).await;
    let agent = llm_agent(&daemon, &llm, "digest").await;
    let at = (chrono::Utc::now() + chrono::TimeDelta::seconds(2)).to_rfc3339();
    let job = json(
        daemon
            .post(
                "/api/cron/jobs",
                serde_json::json!({"name": "digest", "agent_id": agent, "schedule": format!("at {at}"),
                                   "prompt": "Prepare the daily digest."}),
            )
            .await,
    )
    .await;
    let id = job["id"].as_str().unwrap().to_string();
    let status = poll(&daemon, &format!("/api/cron/jobs/{id}/status"), |j| {
        j["last_run"]["status"] == "ok" || j["last_run"]["status"] == "error"
    })
    .await;
    assert_eq!(status["last_run"]["status"], "ok", "{status}");
    assert_eq!(
        status["last_run"]["output"],
        "Digest: nothing happened overnight."
    );
    assert!(status["next_run"].is_null(), "a one-shot job is finished");
    let requests = llm.requests();
    assert_eq!(requests.len(), 1);
    assert!(sent_text(&requests[0]).contains("Prepare the daily digest."));
    let runs = json(daemon.get(&format!("/api/cron/runs?job_id={id}")).await).await;
    assert_eq!(runs["total"], 1);
}

#[tokio::test]
async fn a_trigger_on_agent_spawn_sends_the_rendered_prompt_to_its_agent() {
    let llm = TestLlm::start().await;
    llm.push(Reply::text("Reviewed: web-1 looks fine."));
    let daemon = Daemon::start_with_config(CONFIG).await;
    let reviewer = llm_agent(&daemon, &llm, "reviewer").await;
    let created = json(
        daemon
            .post(
                "/api/triggers",
                serde_json::json!({"agent_id": reviewer, "pattern": {"agent_spawned": {"name_pattern": "web-*"}},
                                   "prompt_template": "Review the new agent: {{event}}", "cooldown_secs": 0}),
            )
            .await,
    )
    .await;
    let id = created["trigger_id"].as_str().unwrap().to_string();
    let web = daemon.spawn_agent("web-1").await;
    let fires = poll(&daemon, &format!("/api/triggers/{id}/fires"), |f| {
        f["items"][0]["status"] == "ok" || f["items"][0]["status"] == "error"
    })
    .await;
    let fire = &fires["items"][0];
    assert_eq!(fire["status"], "ok", "{fires}");
    assert_eq!(fire["response"], "Reviewed: web-1 looks fine.");
    assert_eq!(fire["agent_id"], reviewer.as_str());
    let sent = sent_text(&llm.requests()[0]);
    assert!(
        sent.contains("Review the new agent: Agent 'web-1'"),
        "{sent}"
    );
    assert!(sent.contains(&web));
}

/// Creates a workflow and runs it; returns the run answer.
async fn run_workflow(daemon: &Daemon, steps: serde_json::Value, input: &str) -> serde_json::Value {
    let created = daemon
        .post(
            "/api/workflows",
            serde_json::json!({"name": "wf", "description": "test", "steps": steps}),
        )
        .await;
    assert_eq!(created.status(), 201);
    let id = json(created).await["workflow_id"]
        .as_str()
        .unwrap()
        .to_string();
    json(
        daemon
            .post(
                &format!("/api/workflows/{id}/run"),
                serde_json::json!({"input": input}),
            )
            .await,
    )
    .await
}

#[tokio::test]
async fn workflows_of_each_mode_run_through_the_model_and_are_recorded() {
    let llm = TestLlm::start().await;
    let daemon = Daemon::start_with_config(CONFIG).await;
    llm_agent(&daemon, &llm, "writer").await;
    llm_agent(&daemon, &llm, "critic").await;

    // sequential, with output_var.
    llm.push_all([
        Reply::text("analysis: two bugs"),
        Reply::text("summary done"),
    ]);
    let r = run_workflow(
        &daemon,
        serde_json::json!([
            {"name": "analyze", "agent_name": "writer", "prompt": "Analyze: {{input}}", "output_var": "analysis"},
            {"name": "summarize", "agent_name": "critic", "prompt": "Summarize {{input}} (was: {{analysis}})"},
        ]),
        "fn main() {}",
    )
    .await;
    assert_eq!(r["status"], "completed", "{r}");
    assert_eq!(r["output"], "summary done");
    let sent = llm.requests();
    assert!(sent_text(&sent[0]).contains("Analyze: fn main() {}"));
    assert!(sent_text(&sent[1]).contains("Summarize analysis: two bugs (was: analysis: two bugs)"));
    let run_id = r["run_id"].as_str().unwrap().to_string();
    let stored = json(daemon.get(&format!("/api/workflows/runs/{run_id}")).await).await;
    assert_eq!(stored["state"], "Completed");
    assert_eq!(stored["step_results"].as_array().unwrap().len(), 2);
    assert_eq!(stored["step_results"][0]["output"], "analysis: two bugs");

    // fan_out + collect.
    llm.clear_requests();
    llm.push_all([Reply::text("left view"), Reply::text("right view")]);
    let r = run_workflow(
        &daemon,
        serde_json::json!([
            {"name": "a", "agent_name": "writer", "prompt": "A on {{input}}", "mode": "fan_out"},
            {"name": "b", "agent_name": "critic", "prompt": "B on {{input}}", "mode": "fan_out"},
            {"name": "join", "mode": "collect", "output_var": "both"},
        ]),
        "topic",
    )
    .await;
    assert_eq!(r["status"], "completed", "{r}");
    let out = r["output"].as_str().unwrap();
    assert!(
        out.contains("left view") && out.contains("right view") && out.contains("---"),
        "{out}"
    );
    assert_eq!(llm.requests().len(), 2);

    // conditional.
    llm.clear_requests();
    llm.push_all([Reply::text("status: URGENT"), Reply::text("escalated")]);
    let r = run_workflow(
        &daemon,
        serde_json::json!([
            {"name": "triage", "agent_name": "writer", "prompt": "Triage {{input}}"},
            {"name": "escalate", "agent_name": "critic", "prompt": "Escalate {{input}}", "mode": "conditional", "condition": "urgent"},
            {"name": "relax", "agent_name": "critic", "prompt": "Relax {{input}}", "mode": "conditional", "condition": "calm"},
        ]),
        "ticket",
    )
    .await;
    assert_eq!(r["status"], "completed", "{r}");
    assert_eq!(r["output"], "escalated");
    assert_eq!(r["steps"][2]["status"], "skipped");
    assert_eq!(llm.requests().len(), 2);

    // loop until.
    llm.clear_requests();
    llm.push_all([
        Reply::text("draft 1"),
        Reply::text("draft 2"),
        Reply::text("FINAL draft"),
    ]);
    let r = run_workflow(
        &daemon,
        serde_json::json!([
            {"name": "refine", "agent_name": "writer", "prompt": "Improve: {{input}}", "mode": "loop", "until": "final", "max_iterations": 5},
        ]),
        "draft 0",
    )
    .await;
    assert_eq!(r["output"], "FINAL draft", "{r}");
    assert_eq!(r["steps"][0]["attempts"], 3);
    assert!(sent_text(&llm.requests()[2]).contains("Improve: draft 2"));

    // error modes: retry recovers, skip goes on, fail stops.
    llm.clear_requests();
    llm.push_all([Reply::error(400, "bad request"), Reply::text("recovered")]);
    let r = run_workflow(
        &daemon,
        serde_json::json!([
            {"name": "flaky", "agent_name": "writer", "prompt": "Try {{input}}", "error_mode": "retry", "max_retries": 2},
        ]),
        "x",
    )
    .await;
    assert_eq!(r["status"], "completed", "{r}");
    assert_eq!(r["output"], "recovered");
    assert_eq!(r["steps"][0]["attempts"], 2);

    llm.push_all([Reply::error(400, "bad request"), Reply::text("after skip")]);
    let r = run_workflow(
        &daemon,
        serde_json::json!([
            {"name": "optional", "agent_name": "writer", "prompt": "Try {{input}}", "error_mode": "skip"},
            {"name": "next", "agent_name": "critic", "prompt": "Go on with {{input}}"},
        ]),
        "x",
    )
    .await;
    assert_eq!(r["status"], "completed", "{r}");
    assert_eq!(r["steps"][0]["status"], "skipped");
    assert_eq!(r["output"], "after skip");

    llm.push(Reply::error(400, "bad request"));
    let r = run_workflow(
        &daemon,
        serde_json::json!([
            {"name": "strict", "agent_name": "writer", "prompt": "Try {{input}}"},
            {"name": "never", "agent_name": "critic", "prompt": "unreached"},
        ]),
        "x",
    )
    .await;
    assert_eq!(r["status"], "failed", "{r}");
    assert!(r["error"].as_str().unwrap().contains("`strict`"));
    assert_eq!(r["steps"].as_array().unwrap().len(), 1);

    // timeout_secs bounds a step.
    llm.push(Reply::text("too late").with_delay(Duration::from_secs(4)));
    let r = run_workflow(
        &daemon,
        serde_json::json!([
            {"name": "slow", "agent_name": "writer", "prompt": "Slow {{input}}", "timeout_secs": 1},
        ]),
        "x",
    )
    .await;
    assert_eq!(r["status"], "failed", "{r}");
    assert!(
        r["steps"][0]["error"]
            .as_str()
            .unwrap()
            .contains("timed out")
    );
}
