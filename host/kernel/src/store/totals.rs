//! Running totals of the turn records: tokens, cost, turns and model calls
//! per agent, per model and over everything, by UTC hour, day and month.
//!
//! They are an index of `turns.v1`, kept by [`super::tables::put_turn_row`]
//! in the transaction that writes the row (the turn's commit and the
//! journal's replay of it alike), so they cannot drift from the rows: a
//! row written again replaces its contribution rather than adding it twice.
//! Budgets and usage read a handful of these rows instead of every turn.
//!
//! Keys are `(scope, bucket)`: the scope is [`ALL`], an agent id, or
//! `model:` followed by the provider, a newline and the model; the bucket is
//! `h2026-12-05T13`, `d2026-12-05` or `m2026-12`, so the buckets of one kind
//! and scope sort by time and a span of days is one range read.

use chrono::{DateTime, NaiveDate, Utc};
use redb::{ReadableTable, TableDefinition, WriteTransaction};
use serde::{Deserialize, Serialize};

use super::StoreError;

/// The totals by `(scope, bucket)`: JSON [`UsageTotals`].
pub(crate) const TURN_TOTALS: TableDefinition<(&str, &str), &[u8]> =
    TableDefinition::new("turn_totals.v1");

const TABLE: &str = "turn_totals.v1";

/// The scope of the totals over every agent.
pub const ALL: &str = "*";

/// Tokens, cost, turns and model calls of a set of turn records.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct UsageTotals {
    /// Prompt tokens.
    pub input_tokens: u64,
    /// Generated tokens.
    pub output_tokens: u64,
    /// USD.
    pub cost_usd: f64,
    /// Turn records (compactions and failed turns included).
    pub turns: u64,
    /// Model calls (the turns' iterations).
    pub requests: u64,
    /// The provider, in a model's scope.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub provider: String,
    /// The model, in a model's scope.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub model: String,
}

impl UsageTotals {
    /// Adds `other`'s counts (not its provider or model).
    pub fn add(&mut self, other: &UsageTotals) {
        self.input_tokens += other.input_tokens;
        self.output_tokens += other.output_tokens;
        self.cost_usd += other.cost_usd;
        self.turns += other.turns;
        self.requests += other.requests;
    }

    fn apply(&mut self, turn: &TurnUsage, sign: i8) {
        let add = |total: &mut u64, n: u64| {
            *total = if sign > 0 {
                total.saturating_add(n)
            } else {
                total.saturating_sub(n)
            }
        };
        add(&mut self.input_tokens, turn.input_tokens);
        add(&mut self.output_tokens, turn.output_tokens);
        add(&mut self.turns, 1);
        add(&mut self.requests, u64::from(turn.iterations));
        self.cost_usd += f64::from(sign) * turn.cost_usd;
        // Sums of the same costs in another order differ in the last bits.
        if self.turns == 0 || self.cost_usd.abs() < 1e-12 {
            self.cost_usd = 0.0;
        }
    }
}

/// What the totals read of a turn row (see `conversation::TurnRecord`).
#[derive(Deserialize)]
struct TurnUsage {
    agent_id: String,
    started_at: DateTime<Utc>,
    #[serde(default)]
    provider: String,
    #[serde(default)]
    model: String,
    #[serde(default)]
    input_tokens: u64,
    #[serde(default)]
    output_tokens: u64,
    #[serde(default)]
    cost_usd: f64,
    #[serde(default)]
    iterations: u32,
}

/// The scope of one model's totals.
pub fn model_scope(provider: &str, model: &str) -> String {
    format!("model:{provider}\n{model}")
}

/// The bucket of one UTC hour.
pub fn hour_bucket(at: DateTime<Utc>) -> String {
    at.format("h%Y-%m-%dT%H").to_string()
}

/// The bucket of one UTC day.
pub fn day_bucket(day: NaiveDate) -> String {
    day.format("d%Y-%m-%d").to_string()
}

/// The bucket of one UTC month.
pub fn month_bucket(at: DateTime<Utc>) -> String {
    at.format("m%Y-%m").to_string()
}

/// The `(scope, bucket)` keys one turn counts in.
fn keys(turn: &TurnUsage) -> Vec<(String, String)> {
    let buckets = [
        hour_bucket(turn.started_at),
        day_bucket(turn.started_at.date_naive()),
        month_bucket(turn.started_at),
    ];
    let scopes = [
        ALL.to_string(),
        turn.agent_id.clone(),
        model_scope(&turn.provider, &turn.model),
    ];
    scopes
        .iter()
        .flat_map(|scope| buckets.iter().map(move |b| (scope.clone(), b.clone())))
        .collect()
}

fn decode_turn(bytes: &[u8]) -> Result<TurnUsage, StoreError> {
    super::decode::<TurnUsage>("turns.v1", bytes)
}

/// Moves the totals by one turn row: `old` (the row it replaces) out, `new` in.
pub(super) fn update_in(
    tx: &WriteTransaction,
    old: Option<&[u8]>,
    new: Option<&[u8]>,
) -> Result<(), StoreError> {
    let old = old.map(decode_turn).transpose()?;
    let new = new.map(decode_turn).transpose()?;
    let mut table = tx.open_table(TURN_TOTALS)?;
    for (turn, sign) in [(old, -1), (new, 1)] {
        let Some(turn) = turn else { continue };
        for (scope, bucket) in keys(&turn) {
            let key = (scope.as_str(), bucket.as_str());
            let mut totals: UsageTotals = match table.get(key)? {
                Some(v) => super::decode(TABLE, v.value())?,
                None => UsageTotals::default(),
            };
            totals.apply(&turn, sign);
            if totals.turns == 0 {
                table.remove(key)?;
                continue;
            }
            if scope.starts_with(MODEL_SCOPES.0) {
                totals.provider.clone_from(&turn.provider);
                totals.model.clone_from(&turn.model);
            }
            table.insert(key, super::encode(TABLE, &totals)?.as_slice())?;
        }
    }
    Ok(())
}

/// Removes every bucket of one scope (an agent's, when it is removed: what
/// it spent stays in [`ALL`] and its models' totals).
pub(crate) fn remove_scope_in(tx: &WriteTransaction, scope: &str) -> Result<(), StoreError> {
    let mut table = tx.open_table(TURN_TOTALS)?;
    // Buckets start with a lowercase letter: "~" sorts after all of them.
    table.retain_in((scope, "")..(scope, "~"), |_, _| false)?;
    Ok(())
}

/// One bucket of one scope.
pub(crate) fn get(
    table: &impl ReadableTable<(&'static str, &'static str), &'static [u8]>,
    scope: &str,
    bucket: &str,
) -> Result<UsageTotals, StoreError> {
    Ok(match table.get((scope, bucket))? {
        Some(v) => super::decode(TABLE, v.value())?,
        None => UsageTotals::default(),
    })
}

/// The buckets of one scope from `first` to `last` (both of one kind), in order.
pub(crate) fn range(
    table: &impl ReadableTable<(&'static str, &'static str), &'static [u8]>,
    scope: &str,
    first: &str,
    last: &str,
) -> Result<Vec<(String, UsageTotals)>, StoreError> {
    let mut out = Vec::new();
    for entry in table.range((scope, first)..=(scope, last))? {
        let (key, value) = entry?;
        out.push((
            key.value().1.to_string(),
            super::decode(TABLE, value.value())?,
        ));
    }
    Ok(out)
}

/// Buckets of one scope, in order.
pub type Buckets = Vec<(String, UsageTotals)>;

/// Every scope from `low` (included) to `high` (excluded), with its
/// buckets from `first` to `last` (both of one kind): one range read per
/// scope, whatever the other buckets hold.
pub(crate) fn scopes_between(
    table: &impl ReadableTable<(&'static str, &'static str), &'static [u8]>,
    low: &str,
    high: &str,
    first: &str,
    last: &str,
) -> Result<Vec<(String, Buckets)>, StoreError> {
    let mut out = Vec::new();
    let mut from = low.to_string();
    loop {
        let scope = match table.range((from.as_str(), "")..)?.next() {
            Some(entry) => entry?.0.value().0.to_string(),
            None => break,
        };
        if scope.as_str() >= high {
            break;
        }
        let buckets = range(table, &scope, first, last)?;
        if !buckets.is_empty() {
            out.push((scope.clone(), buckets));
        }
        // The smallest string after every bucket of this scope.
        from = format!("{scope}\u{0}");
    }
    Ok(out)
}

/// The scopes of the agents: their ids sort between these two (hex digits
/// and hyphens), after [`ALL`] and before every model's scope.
pub const AGENT_SCOPES: (&str, &str) = ("0", "g");

/// The scopes of the models.
pub const MODEL_SCOPES: (&str, &str) = ("model:", "model;");

/// Builds the totals from every turn row (the migration that creates
/// them): summed in memory, then written once per key, since a store may
/// hold millions of rows.
pub(crate) fn rebuild_in(tx: &WriteTransaction) -> Result<(), StoreError> {
    let mut sums: std::collections::BTreeMap<(String, String), UsageTotals> = Default::default();
    {
        let turns = tx.open_table(super::tables::TURNS)?;
        for entry in turns.iter()? {
            let (_, value) = entry?;
            let turn = decode_turn(value.value())?;
            for key in keys(&turn) {
                let totals = sums.entry(key).or_default();
                totals.apply(&turn, 1);
                // Kept only in a model's scope, below.
                if totals.model.is_empty() {
                    totals.provider.clone_from(&turn.provider);
                    totals.model.clone_from(&turn.model);
                }
            }
        }
    }
    tx.delete_table(TURN_TOTALS)?;
    // Created even when there is nothing to add: readers open it.
    let mut table = tx.open_table(TURN_TOTALS)?;
    for ((scope, bucket), mut totals) in sums {
        if !scope.starts_with(MODEL_SCOPES.0) {
            totals.provider.clear();
            totals.model.clear();
        }
        table.insert(
            (scope.as_str(), bucket.as_str()),
            super::encode(TABLE, &totals)?.as_slice(),
        )?;
    }
    Ok(())
}
