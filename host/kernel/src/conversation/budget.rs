//! Spending limits: what agents spent today and this month, and the check
//! that refuses a turn (or its next model call) once a limit is reached.

use chrono::{Datelike, TimeZone, Utc};
use uuid::Uuid;

use super::Conversations;
use super::sessions;
use crate::KernelError;
use crate::agents::AgentRecord;
use crate::store;

impl Conversations {
    /// Refuses a turn (or its next model call) once a daily or monthly
    /// limit, global or the agent's own, is reached. `pending` is what the
    /// running turn has spent but not yet recorded.
    pub(crate) async fn check_budget(
        &self,
        agent: &AgentRecord,
        pending: f64,
    ) -> Result<(), KernelError> {
        let global = self.shared.config().budget.clone();
        let own = agent.budget;
        let limits = [
            global.daily_limit_usd,
            global.monthly_limit_usd,
            own.daily_limit_usd,
            own.monthly_limit_usd,
        ];
        if limits.iter().all(|l| *l <= 0.0) {
            return Ok(());
        }
        let spend = self.spending(Some(agent.id)).await?;
        let checks = [
            (
                global.daily_limit_usd,
                spend.today_all + pending,
                "global daily",
            ),
            (
                global.monthly_limit_usd,
                spend.month_all + pending,
                "global monthly",
            ),
            (
                own.daily_limit_usd,
                spend.today_agent + pending,
                "agent's daily",
            ),
            (
                own.monthly_limit_usd,
                spend.month_agent + pending,
                "agent's monthly",
            ),
        ];
        for (limit, spent, which) in checks {
            if limit > 0.0 && spent >= limit {
                return Err(KernelError::BudgetExceeded(format!(
                    "the {which} budget of ${limit:.4} is used up (${spent:.4} spent); raise it with PUT /api/budget"
                )));
            }
        }
        Ok(())
    }

    /// USD spent today and this month (UTC), overall and by one agent.
    pub async fn spending(&self, agent: Option<Uuid>) -> Result<Spending, KernelError> {
        let now = self.shared.now();
        let month_start = Utc
            .with_ymd_and_hms(now.year(), now.month(), 1, 0, 0, 0)
            .single()
            .unwrap_or(now);
        let day_start = now
            .date_naive()
            .and_hms_opt(0, 0, 0)
            .map_or(now, |d| Utc.from_utc_datetime(&d));
        let store = self.shared.store().clone();
        let turns = store::blocking(move || sessions::turns_since(&store, month_start)).await?;
        let mut spend = Spending::default();
        for turn in turns {
            let today = turn.started_at >= day_start;
            let mine = Some(turn.agent_id) == agent;
            spend.month_all += turn.cost_usd;
            if today {
                spend.today_all += turn.cost_usd;
            }
            if mine {
                spend.month_agent += turn.cost_usd;
                if today {
                    spend.today_agent += turn.cost_usd;
                }
            }
        }
        Ok(spend)
    }
}

/// What has been spent, in USD.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct Spending {
    /// By all agents today (UTC).
    pub today_all: f64,
    /// By all agents this month (UTC).
    pub month_all: f64,
    /// By the agent asked about, today.
    pub today_agent: f64,
    /// By the agent asked about, this month.
    pub month_agent: f64,
}
