import { useState } from 'preact/hooks';
import { api } from '../api.js';
import { Badge, ErrorText, Page, Table, useAction, useApi, when } from '../ui.jsx';

const items = (x) => (Array.isArray(x) ? x : x?.runs || x?.items || []);
// Statuses come in both cases (`ok`, `Completed`).
const tone = (status) => {
  const s = String(status).toLowerCase();
  return ['ok', 'completed', 'approved', 'succeeded'].includes(s) ? 'ok' : ['failed', 'rejected', 'expired', 'error'].includes(s) ? 'bad' : '';
};

/** The steps of a run as a chain of boxes, coloured by status. */
function StepGraph({ run }) {
  const steps = run.step_results || [];
  if (!steps.length) return <span class="muted">no steps yet</span>;
  return (
    <ol class="steps" aria-label={`Steps of run ${run.id}`}>
      {steps.map((s, i) => (
        <li key={i} class={`step ${tone(s.status)}`}>
          <strong>{s.name}</strong> <span class="small">{s.mode}</span> <Badge tone={tone(s.status)}>{s.status}</Badge>
          {s.error && <span class="error small">{s.error}</span>}
        </li>
      ))}
    </ol>
  );
}

/** The newest ten runs of a workflow, each with its steps (one call per run: the list has no step results). */
function Runs({ workflow }) {
  const runs = useApi(`/api/workflows/${workflow.id}/runs`, 5000);
  const newest = runs.data ? items(runs.data).slice().sort((a, b) => (a.started_at < b.started_at ? 1 : -1)).slice(0, 10) : null;
  const details = useApi(newest && newest.length ? newest.map((r) => `/api/workflows/runs/${r.id}`) : null);
  const rows = newest && newest.map((r) => (details.data || []).find((d) => d.id === r.id) || r);
  return (
    <Table
      caption={`Runs of ${workflow.name}`}
      rows={rows}
      rowKey={(r) => r.id}
      empty="No runs yet."
      columns={[
        { label: 'Started', get: (r) => when(r.started_at || r.created_at) },
        { label: 'State', get: (r) => <Badge tone={tone(r.state)}>{r.state}</Badge> },
        { label: 'Steps', get: (r) => <StepGraph run={r} /> },
      ]}
    />
  );
}

export function Workflows() {
  const workflows = useApi('/api/workflows', 5000);
  const action = useAction();
  const [open, setOpen] = useState(null);
  const run = (w) => action.run(async () => {
    const input = prompt(`Input for ${w.name}`, '');
    if (input === null) return;
    await api(`/api/workflows/${w.id}/run`, { method: 'POST', body: { input } });
    setOpen(w.id);
  });
  const list = workflows.data?.items;
  return (
    <Page title="Workflows">
      <p class="muted">Workflows are defined with <code>POST /api/workflows</code>; here they run and their runs are followed step by step.</p>
      <ErrorText error={action.error || workflows.error} />
      <Table
        rows={list}
        rowKey={(w) => w.id}
        empty="No workflows."
        columns={[
          { label: 'Name', get: (w) => w.name },
          { label: 'Description', get: (w) => w.description || '' },
          { label: 'Steps', get: (w) => w.steps },
          { label: 'Actions', get: (w) => (
            <span class="actions">
              <button class="small" onClick={() => run(w)}>Run</button>
              <button class="small" aria-expanded={open === w.id} onClick={() => setOpen(open === w.id ? null : w.id)}>Runs</button>
            </span>
          ) },
        ]}
      />
      {list && open && list.find((w) => w.id === open) && <Runs workflow={list.find((w) => w.id === open)} />}
    </Page>
  );
}

export function Tasks() {
  const data = useApi(['/api/tasks/list', '/api/tasks/status', '/api/goals'], 4000);
  const action = useAction();
  const [title, setTitle] = useState('');
  const [tasks, status, goals] = data.data || [];
  const post = (e) => {
    e.preventDefault();
    action.run(async () => { await api('/api/tasks', { method: 'POST', body: { title, description: '' } }); setTitle(''); data.reload(); });
  };
  return (
    <Page title="Tasks & goals">
      <ErrorText error={action.error || data.error} />
      {status && <p>{['pending', 'running', 'completed', 'failed', 'cancelled'].map((k) => `${status[k] ?? 0} ${k}`).join(' · ')}</p>}
      <form class="panel row" onSubmit={post}>
        <div><label for="task-title">New task</label><input id="task-title" value={title} onInput={(e) => setTitle(e.target.value)} required /></div>
        <button type="submit" disabled={action.busy}>Post task</button>
      </form>
      <h2>Tasks</h2>
      <Table
        rows={tasks?.tasks}
        rowKey={(t) => t.id}
        empty="No tasks."
        columns={[
          { label: 'Title', get: (t) => t.title },
          { label: 'Status', get: (t) => <Badge tone={tone(t.status)}>{t.status}</Badge> },
          { label: 'Assignee', get: (t) => t.assignee || '—' },
          { label: 'Posted', get: (t) => when(t.created_at) },
        ]}
      />
      <h2>Goals</h2>
      <Table
        rows={goals && items(goals)}
        rowKey={(g) => g.id}
        empty="No goals."
        columns={[
          { label: 'Title', get: (g) => g.title },
          { label: 'Status', get: (g) => <Badge tone={tone(g.status)}>{g.status}</Badge> },
          { label: 'Progress', get: (g) => (g.progress !== undefined ? <progress max="100" value={g.progress}>{g.progress}%</progress> : '—') },
        ]}
      />
    </Page>
  );
}

export function Approvals() {
  const approvals = useApi('/api/approvals', 3000);
  const action = useAction();
  const [codes, setCodes] = useState({});
  const decide = (a, verdict) => action.run(async () => {
    const body = verdict === 'approve' && a.second_factor ? { totp_code: codes[a.id] || '' } : {};
    await api(`/api/approvals/${a.id}/${verdict}`, { method: 'POST', body });
    approvals.reload();
  });
  return (
    <Page title="Approvals">
      <ErrorText error={action.error || approvals.error} />
      <Table
        rows={approvals.data?.approvals}
        rowKey={(a) => a.id}
        empty="Nothing waits for a decision."
        columns={[
          { label: 'Asked', get: (a) => when(a.created_at) },
          { label: 'Agent', get: (a) => a.agent_name },
          { label: 'Call', get: (a) => <details><summary><code>{a.tool_name}</code> {a.risk && <Badge>{a.risk}</Badge>}</summary><p>{a.description}</p><pre>{JSON.stringify(a.payload, null, 2)}</pre></details> },
          { label: 'Status', get: (a) => <Badge tone={tone(a.status)}>{a.status}</Badge> },
          { label: 'Decision', get: (a) => (a.status !== 'pending' ? (a.decided_by || '—') : (
            <span class="actions">
              {a.second_factor && (
                <input class="code" inputMode="numeric" autocomplete="one-time-code" aria-label={`TOTP code for ${a.tool_name}`} placeholder="TOTP"
                  value={codes[a.id] || ''} onInput={(e) => setCodes({ ...codes, [a.id]: e.target.value })} />
              )}
              <button class="small" onClick={() => decide(a, 'approve')}>Approve</button>
              <button class="small danger" onClick={() => decide(a, 'reject')}>Reject</button>
            </span>
          )) },
        ]}
      />
    </Page>
  );
}
