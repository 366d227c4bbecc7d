import { Bars } from '../charts.jsx';
import { ErrorText, Page, Table, useApi, usd } from '../ui.jsx';

export function Usage() {
  const data = useApi(['/api/usage/summary', '/api/usage/daily', '/api/usage/by-model', '/api/budget', '/api/agents'], 10000);
  const metrics = useApi(data.data ? data.data[4].items.map((a) => `/api/agents/${a.id}/metrics`) : null);
  if (!data.data) return <Page title="Usage"><ErrorText error={data.error} /><p class="muted">Loading…</p></Page>;
  const [summary, daily, byModel, budget, agents] = data.data;
  const names = Object.fromEntries(agents.items.map((a) => [a.id, a.name]));
  const turnTimes = (metrics.data || []).filter((m) => m.turns > 0);
  return (
    <Page title="Usage">
      <ErrorText error={data.error || metrics.error} />
      <dl class="cards">
        <div class="card"><dt>Today</dt><dd>{usd(summary.today.cost_usd)}</dd></div>
        <div class="card"><dt>This month</dt><dd>{usd(summary.month.cost_usd)}</dd></div>
        <div class="card"><dt>Tokens today</dt><dd>{summary.today.input_tokens + summary.today.output_tokens}</dd></div>
        <div class="card"><dt>Budget</dt><dd>{budget.status}{budget.daily_limit_usd ? ` (${usd(budget.daily_limit_usd)}/day)` : ''}</dd></div>
      </dl>
      <div class="charts">
        <Bars title="Cost per day (USD)" data={daily.days.map((d) => ({ label: d.date.slice(5), value: d.cost_usd }))} format={(v) => v.toFixed(3)} />
        <Bars title="Tokens by model (30 days)" data={byModel.models.map((m) => ({ label: m.model, value: m.input_tokens + m.output_tokens }))} />
        <Bars title="Turn time p50 by agent (ms)" data={turnTimes.map((m) => ({ label: names[m.agent_id] || m.agent_id.slice(0, 8), value: m.latency_ms.p50 }))} />
        <Bars title="Turn time p99 by agent (ms)" data={turnTimes.map((m) => ({ label: names[m.agent_id] || m.agent_id.slice(0, 8), value: m.latency_ms.p99 }))} />
      </div>
      <h2>By model</h2>
      <Table
        rows={byModel.models}
        rowKey={(m) => `${m.provider}/${m.model}`}
        empty="No model calls in the last 30 days."
        columns={[
          { label: 'Model', get: (m) => `${m.provider}/${m.model}` },
          { label: 'Requests', get: (m) => m.request_count },
          { label: 'Input tokens', get: (m) => m.input_tokens },
          { label: 'Output tokens', get: (m) => m.output_tokens },
          { label: 'Cost', get: (m) => usd(m.cost_usd) },
        ]}
      />
    </Page>
  );
}
