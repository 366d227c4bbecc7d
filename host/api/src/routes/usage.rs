//! Usage and budgets, read from the running totals the kernel keeps with
//! the turn records (never a scan of the records).

use axum::extract::State;
use serde::Deserialize;
use serde_json::json;
use talon_kernel::conversation::UsageSpan;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::error::ApiError;
use crate::extract::{Json, Path, Query};
use crate::state::AppState;

/// Query of `GET /api/usage`.
#[derive(Debug, Deserialize, IntoParams)]
pub struct PeriodQuery {
    /// `hour`, `day` (default), `week` or `month`.
    #[param(pattern = "^(hour|day|week|month)$")]
    pub period: Option<String>,
}

fn span(period: &str) -> Result<UsageSpan, ApiError> {
    Ok(match period {
        "hour" => UsageSpan::Hour,
        "day" => UsageSpan::Days(1),
        "week" => UsageSpan::Days(7),
        "month" => UsageSpan::Days(30),
        other => {
            return Err(ApiError::BadRequest(format!(
                "period must be hour, day, week or month, not `{other}`"
            )));
        }
    })
}

/// Token and cost totals over a period of UTC calendar time: this hour,
/// today, or the last 7 or 30 days (today included).
#[utoipa::path(get, path = "/api/usage", tag = "usage", params(PeriodQuery),
    responses((status = 200, description = "`{period, total_input_tokens, total_output_tokens, total_cost_usd, request_count, active_agents}`", body = Object),
              (status = 400, description = "Unknown period")))]
pub async fn usage(
    State(state): State<AppState>,
    Query(query): Query<PeriodQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let period = query.period.unwrap_or_else(|| "day".into());
    let usage = state
        .kernel
        .conversations()
        .usage(span(&period)?, true)
        .await?;
    let t = &usage.totals;
    Ok(Json(json!({
        "period": period,
        "total_input_tokens": t.input_tokens,
        "total_output_tokens": t.output_tokens,
        "total_cost_usd": t.cost_usd,
        "request_count": t.requests,
        "turn_count": t.turns,
        "active_agents": usage.active_agents,
    })))
}

/// Today's totals (UTC) and the budget standing.
#[utoipa::path(get, path = "/api/usage/summary", tag = "usage",
    responses((status = 200, description = "`{today: {...}, month: {...}, budget: {...}}`", body = Object)))]
pub async fn summary(State(state): State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    let today = state
        .kernel
        .conversations()
        .usage(UsageSpan::Days(1), false)
        .await?
        .totals;
    let spend = state.kernel.conversations().spending(None).await?;
    let budget = state.kernel.config().budget.clone();
    Ok(Json(json!({
        "today": {
            "input_tokens": today.input_tokens,
            "output_tokens": today.output_tokens,
            "cost_usd": spend.today_all,
            "requests": today.requests,
        },
        "month": { "cost_usd": spend.month_all },
        "budget": { "daily_limit_usd": budget.daily_limit_usd, "monthly_limit_usd": budget.monthly_limit_usd },
    })))
}

/// Totals per provider and model over the last 30 UTC days.
#[utoipa::path(get, path = "/api/usage/by-model", tag = "usage",
    responses((status = 200, description = "`{models: [{model, provider, input_tokens, output_tokens, cost_usd, request_count}]}`", body = Object)))]
pub async fn by_model(State(state): State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    let rows = state.kernel.conversations().usage_by_model(30).await?;
    let models: Vec<_> = rows
        .into_iter()
        .filter(|r| r.requests > 0)
        .map(|r| {
            json!({ "model": r.model, "provider": r.provider, "input_tokens": r.input_tokens,
                    "output_tokens": r.output_tokens, "cost_usd": r.cost_usd, "request_count": r.requests })
        })
        .collect();
    Ok(Json(json!({ "models": models })))
}

/// Totals per UTC day over the last 30 days.
#[utoipa::path(get, path = "/api/usage/daily", tag = "usage",
    responses((status = 200, description = "`{days: [{date, input_tokens, output_tokens, cost_usd, requests}]}`", body = Object)))]
pub async fn daily(State(state): State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    let days = state.kernel.conversations().usage_daily(30).await?;
    let days: Vec<_> = days
        .into_iter()
        .filter(|(_, r)| r.requests > 0)
        .map(|(date, r)| {
            json!({ "date": date.to_string(), "input_tokens": r.input_tokens, "output_tokens": r.output_tokens,
                    "cost_usd": r.cost_usd, "requests": r.requests })
        })
        .collect();
    Ok(Json(json!({ "days": days })))
}

fn status(spent: f64, limit: f64) -> &'static str {
    if limit <= 0.0 {
        "ok"
    } else if spent >= limit {
        "exceeded"
    } else if spent >= limit * 0.8 {
        "warning"
    } else {
        "ok"
    }
}

/// The global budget and what has been spent.
#[utoipa::path(get, path = "/api/budget", tag = "usage",
    responses((status = 200, description = "`{daily_limit_usd, monthly_limit_usd, today_spent_usd, month_spent_usd, status}`", body = Object)))]
pub async fn budget(State(state): State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    let budget = state.kernel.config().budget.clone();
    let spend = state.kernel.conversations().spending(None).await?;
    let worst = [
        status(spend.today_all, budget.daily_limit_usd),
        status(spend.month_all, budget.monthly_limit_usd),
    ]
    .into_iter()
    .max_by_key(|s| match *s {
        "exceeded" => 2,
        "warning" => 1,
        _ => 0,
    })
    .unwrap_or("ok");
    Ok(Json(json!({
        "daily_limit_usd": budget.daily_limit_usd,
        "monthly_limit_usd": budget.monthly_limit_usd,
        "today_spent_usd": spend.today_all,
        "month_spent_usd": spend.month_all,
        "status": worst,
    })))
}

/// Body of the budget updates; 0 removes a limit.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BudgetUpdate {
    /// USD per UTC day.
    #[schema(minimum = 0.0)]
    pub daily_limit_usd: Option<f64>,
    /// USD per UTC month.
    #[schema(minimum = 0.0)]
    pub monthly_limit_usd: Option<f64>,
}

fn check_limit(value: Option<f64>) -> Result<(), ApiError> {
    match value {
        Some(v) if !v.is_finite() || v < 0.0 => Err(ApiError::BadRequest(
            "limits must be finite and not negative (0 removes a limit)".into(),
        )),
        _ => Ok(()),
    }
}

/// Sets the global limits (written to `config.toml`); a body with neither
/// limit changes nothing and answers the budget as it is.
#[utoipa::path(put, path = "/api/budget", tag = "usage", request_body = BudgetUpdate,
    responses((status = 200, description = "The budget as `GET /api/budget` shows it", body = Object),
              (status = 400, description = "Negative limits")))]
pub async fn set_budget(
    State(state): State<AppState>,
    Json(body): Json<BudgetUpdate>,
) -> Result<Json<serde_json::Value>, ApiError> {
    check_limit(body.daily_limit_usd)?;
    check_limit(body.monthly_limit_usd)?;
    if let Some(v) = body.daily_limit_usd {
        state
            .kernel
            .set_config("budget.daily_limit_usd".into(), json!(v))
            .await?;
    }
    if let Some(v) = body.monthly_limit_usd {
        state
            .kernel
            .set_config("budget.monthly_limit_usd".into(), json!(v))
            .await?;
    }
    budget(State(state)).await
}

/// Agents ranked by what they spent this UTC month.
#[utoipa::path(get, path = "/api/budget/agents", tag = "usage",
    responses((status = 200, description = "`[{agent_id, agent_name, total_cost_usd, today_cost_usd}]`", body = [Object])))]
pub async fn agents(State(state): State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    let names: Vec<(Uuid, String)> = state
        .kernel
        .agents()
        .list()
        .await?
        .into_iter()
        .map(|a| (a.id, a.manifest.name))
        .collect();
    let mut rows = Vec::with_capacity(names.len());
    for (id, name) in names {
        let spend = state.kernel.conversations().spending(Some(id)).await?;
        rows.push((
            spend.month_agent,
            json!({ "agent_id": id, "agent_name": name, "total_cost_usd": spend.month_agent, "today_cost_usd": spend.today_agent }),
        ));
    }
    rows.sort_by(|a, b| b.0.total_cmp(&a.0));
    Ok(Json(json!(
        rows.into_iter().map(|(_, v)| v).collect::<Vec<_>>()
    )))
}

/// One agent's limits and spending.
#[utoipa::path(get, path = "/api/budget/agents/{id}", tag = "usage", params(("id" = Uuid, Path, description = "Agent id")),
    responses((status = 200, description = "`{agent_id, daily_limit_usd, monthly_limit_usd, today_spent_usd, month_spent_usd, status}`", body = Object),
              (status = 404, description = "No such agent")))]
pub async fn agent(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let record = state.kernel.agents().get(id).await?;
    let spend = state.kernel.conversations().spending(Some(id)).await?;
    let b = record.budget;
    let worst = if status(spend.today_agent, b.daily_limit_usd) == "exceeded"
        || status(spend.month_agent, b.monthly_limit_usd) == "exceeded"
    {
        "exceeded"
    } else {
        "ok"
    };
    Ok(Json(json!({
        "agent_id": id,
        "agent_name": record.manifest.name,
        "daily_limit_usd": b.daily_limit_usd,
        "monthly_limit_usd": b.monthly_limit_usd,
        "today_spent_usd": spend.today_agent,
        "month_spent_usd": spend.month_agent,
        "status": worst,
    })))
}

/// Sets one agent's limits.
#[utoipa::path(put, path = "/api/budget/agents/{id}", tag = "usage", request_body = BudgetUpdate,
    params(("id" = Uuid, Path, description = "Agent id")),
    responses((status = 200, description = "The agent's budget", body = Object),
              (status = 400, description = "Negative limits"), (status = 404, description = "No such agent")))]
pub async fn set_agent(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
    Json(body): Json<BudgetUpdate>,
) -> Result<Json<serde_json::Value>, ApiError> {
    check_limit(body.daily_limit_usd)?;
    check_limit(body.monthly_limit_usd)?;
    let current = state.kernel.agents().get(id).await?.budget;
    let budget = talon_kernel::agents::AgentBudget {
        daily_limit_usd: body.daily_limit_usd.unwrap_or(current.daily_limit_usd),
        monthly_limit_usd: body.monthly_limit_usd.unwrap_or(current.monthly_limit_usd),
    };
    state.kernel.agents().set_budget(id, budget).await?;
    agent(State(state), Path(id)).await
}
