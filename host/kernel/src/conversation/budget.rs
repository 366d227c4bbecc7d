//! Spending limits: what agents spent today and this month, and the check
//! that refuses a turn (or its next model call) once a limit is reached;
//! usage over time. Both read the running totals the store keeps with the
//! turn records (`store::totals`), never the records themselves, so their
//! cost does not grow with what is stored.

use chrono::{DateTime, NaiveDate, Utc};
use redb::ReadableDatabase;
use uuid::Uuid;

use super::Conversations;
use crate::KernelError;
use crate::agents::AgentRecord;
use crate::store::totals::{self, TURN_TOTALS, UsageTotals};
use crate::store::{self, StoreError};

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

    /// USD spent today and this month (UTC), overall and by one agent:
    /// four rows of the running totals, however many turns were recorded.
    pub async fn spending(&self, agent: Option<Uuid>) -> Result<Spending, KernelError> {
        let now = self.shared.now();
        let store = self.shared.store().clone();
        Ok(store::blocking(move || {
            let tx = store.db()?.begin_read()?;
            let table = tx.open_table(TURN_TOTALS)?;
            let (day, month) = (
                totals::day_bucket(now.date_naive()),
                totals::month_bucket(now),
            );
            let cost = |scope: &str, bucket: &str| -> Result<f64, StoreError> {
                Ok(totals::get(&table, scope, bucket)?.cost_usd)
            };
            let mut spend = Spending {
                today_all: cost(totals::ALL, &day)?,
                month_all: cost(totals::ALL, &month)?,
                ..Spending::default()
            };
            if let Some(agent) = agent {
                let agent = agent.to_string();
                spend.today_agent = cost(&agent, &day)?;
                spend.month_agent = cost(&agent, &month)?;
            }
            Ok(spend)
        })
        .await?)
    }

    /// Usage over a span of UTC calendar time ending now, from the running
    /// totals: what every agent used, and, with `count_agents`, how many
    /// agents made turns (one range read per agent that ever made one).
    pub async fn usage(&self, span: UsageSpan, count_agents: bool) -> Result<Usage, KernelError> {
        let now = self.shared.now();
        let store = self.shared.store().clone();
        Ok(store::blocking(move || {
            let tx = store.db()?.begin_read()?;
            let table = tx.open_table(TURN_TOTALS)?;
            let (first, last) = span.buckets(now);
            let mut usage = Usage::default();
            for (_, totals) in totals::range(&table, totals::ALL, &first, &last)? {
                usage.totals.add(&totals);
            }
            if count_agents {
                let (low, high) = totals::AGENT_SCOPES;
                usage.active_agents =
                    totals::scopes_between(&table, low, high, &first, &last)?.len();
            }
            Ok(usage)
        })
        .await?)
    }

    /// Usage per UTC day over the last `days` days (today included), days
    /// without turns left out.
    pub async fn usage_daily(
        &self,
        days: u32,
    ) -> Result<Vec<(NaiveDate, UsageTotals)>, KernelError> {
        let now = self.shared.now();
        let store = self.shared.store().clone();
        Ok(store::blocking(move || {
            let tx = store.db()?.begin_read()?;
            let table = tx.open_table(TURN_TOTALS)?;
            let (first, last) = UsageSpan::Days(days).buckets(now);
            let mut out = Vec::new();
            for (bucket, totals) in totals::range(&table, totals::ALL, &first, &last)? {
                let day = NaiveDate::parse_from_str(&bucket[1..], "%Y-%m-%d").map_err(|e| {
                    StoreError::Corrupt {
                        table: "turn_totals.v1",
                        message: format!("bucket `{bucket}`: {e}"),
                    }
                })?;
                out.push((day, totals));
            }
            Ok(out)
        })
        .await?)
    }

    /// Usage per provider and model over the last `days` UTC days (today
    /// included); each entry names its provider and model.
    pub async fn usage_by_model(&self, days: u32) -> Result<Vec<UsageTotals>, KernelError> {
        let now = self.shared.now();
        let store = self.shared.store().clone();
        Ok(store::blocking(move || {
            let tx = store.db()?.begin_read()?;
            let table = tx.open_table(TURN_TOTALS)?;
            let (first, last) = UsageSpan::Days(days).buckets(now);
            let (low, high) = totals::MODEL_SCOPES;
            let mut out = Vec::new();
            for (_, buckets) in totals::scopes_between(&table, low, high, &first, &last)? {
                let mut sum = UsageTotals::default();
                for (_, totals) in &buckets {
                    sum.add(totals);
                    sum.provider.clone_from(&totals.provider);
                    sum.model.clone_from(&totals.model);
                }
                out.push(sum);
            }
            Ok(out)
        })
        .await?)
    }
}

/// A span of UTC calendar time ending now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UsageSpan {
    /// The current hour.
    Hour,
    /// The last n days, today included (1 is today).
    Days(u32),
}

impl UsageSpan {
    /// The first and last bucket of the span.
    fn buckets(self, now: DateTime<Utc>) -> (String, String) {
        match self {
            UsageSpan::Hour => (totals::hour_bucket(now), totals::hour_bucket(now)),
            UsageSpan::Days(n) => {
                let today = now.date_naive();
                let back = chrono::Days::new(u64::from(n.max(1)) - 1);
                let first = today.checked_sub_days(back).unwrap_or(today);
                (totals::day_bucket(first), totals::day_bucket(today))
            }
        }
    }
}

/// What was used over a span.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Usage {
    /// Over every agent.
    pub totals: UsageTotals,
    /// Agents with at least one turn in the span (0 unless counted).
    pub active_agents: usize,
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
