import { Link } from '../router.jsx';
import { Page, Table, useApi, when, ErrorText } from '../ui.jsx';

function duration(s) {
  const d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600), m = Math.floor((s % 3600) / 60);
  return d ? `${d}d ${h}h` : h ? `${h}h ${m}m` : `${m}m ${s % 60}s`;
}

export function Overview() {
  const { data, error } = useApi(['/api/status', '/api/health/detail', '/api/plugins', '/api/audit/recent?n=8', '/api/usage/summary'], 5000);
  if (!data) return <Page title="Overview"><ErrorText error={error} /><p class="muted">Loading…</p></Page>;
  const [status, health, plugins, audit, usage] = data;
  const cards = [
    ['Status', health.status],
    ['Version', status.version],
    ['Uptime', duration(status.uptime_seconds)],
    ['Agents', `${status.active_agent_count} running / ${status.agent_count}`],
    ['Plugins', plugins.plugins.length],
    ['Memory', `${Math.round(health.memory_rss_bytes / 1048576)} MB`],
    ['Cost today', `$${usage.today.cost_usd.toFixed(4)}`],
    ['Requests today', usage.today.requests],
  ];
  return (
    <Page title="Overview">
      <ErrorText error={error} />
      <dl class="cards">
        {cards.map(([k, v]) => <div class="card" key={k}><dt>{k}</dt><dd>{v}</dd></div>)}
      </dl>
      <h2>Recent activity</h2>
      <Table
        rows={audit.entries}
        rowKey={(e) => e.id}
        columns={[
          { label: 'When', get: (e) => when(e.timestamp) },
          { label: 'Event', get: (e) => e.event_type },
          { label: 'Details', get: (e) => <span class="clip">{e.details}</span> },
        ]}
      />
      <p><Link href="/audit">The whole audit trail</Link></p>
    </Page>
  );
}
