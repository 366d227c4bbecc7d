import { useState } from 'preact/hooks';
import { api } from '../api.js';
import { Badge, ErrorText, Page, Table, useAction, useApi, when } from '../ui.jsx';

function NewJob({ agents, onCreated }) {
  const [form, setForm] = useState({ name: '', agent_id: '', schedule: 'every 15m', prompt: '' });
  const action = useAction();
  const set = (k) => (e) => setForm({ ...form, [k]: e.target.value });
  const agent = form.agent_id || agents[0]?.id || '';
  const submit = (e) => {
    e.preventDefault();
    action.run(async () => {
      const body = { agent_id: agent, schedule: form.schedule, prompt: form.prompt };
      if (form.name.trim()) body.name = form.name.trim();
      await api('/api/cron/jobs', { method: 'POST', body });
      setForm({ ...form, name: '', prompt: '' });
      onCreated();
    });
  };
  return (
    <form class="panel" onSubmit={submit} aria-labelledby="job-title">
      <h2 id="job-title">New cron job</h2>
      <div class="row">
        <div><label for="job-name">Name</label><input id="job-name" value={form.name} onInput={set('name')} /></div>
        <div>
          <label for="job-agent">Agent</label>
          <select id="job-agent" value={agent} onChange={set('agent_id')} required>
            {agents.map((a) => <option key={a.id} value={a.id}>{a.name}</option>)}
          </select>
        </div>
        <div>
          <label for="job-schedule">Schedule</label>
          <input id="job-schedule" value={form.schedule} onInput={set('schedule')} required aria-describedby="job-help" />
        </div>
      </div>
      <p id="job-help" class="muted small">Cron (<code>0 9 * * 1-5</code>, seconds optional), <code>@hourly</code>, or <code>every 15m</code>.</p>
      <label for="job-prompt">Prompt</label>
      <textarea id="job-prompt" rows={2} value={form.prompt} onInput={set('prompt')} required />
      <ErrorText error={action.error} />
      <button type="submit" disabled={action.busy || !agent}>Create job</button>
    </form>
  );
}

const PATTERNS = {
  lifecycle: 'an agent spawned or terminated',
  agent_spawned: 'an agent whose name matches spawned',
  agent_terminated: 'an agent terminated',
  task_posted: 'a task posted',
  all: 'every event',
};

/** A trigger: what it fires on, the agent and its prompt. */
function NewTrigger({ agents, onCreated }) {
  const [form, setForm] = useState({ agent_id: '', kind: 'agent_spawned', name_pattern: '*', assignee: 'any', prompt: 'Something happened: {{event}}', max_fires: '0' });
  const action = useAction();
  const set = (k) => (e) => setForm({ ...form, [k]: e.target.value });
  const agent = form.agent_id || agents[0]?.id || '';
  const pattern = () => {
    if (form.kind === 'agent_spawned') return { agent_spawned: { name_pattern: form.name_pattern.trim() || '*' } };
    if (form.kind === 'task_posted') return { task_posted: { assignee_match: form.assignee } };
    return form.kind;
  };
  const submit = (e) => {
    e.preventDefault();
    action.run(async () => {
      await api('/api/triggers', { method: 'POST', body: { agent_id: agent, pattern: pattern(), prompt_template: form.prompt, max_fires: Number(form.max_fires) || 0 } });
      onCreated();
    });
  };
  return (
    <form class="panel" onSubmit={submit} aria-labelledby="trigger-title">
      <h2 id="trigger-title">New trigger</h2>
      <div class="row">
        <div>
          <label for="trigger-agent">Agent it prompts</label>
          <select id="trigger-agent" value={agent} onChange={set('agent_id')} required>
            {agents.map((a) => <option key={a.id} value={a.id}>{a.name}</option>)}
          </select>
        </div>
        <div>
          <label for="trigger-kind">Fires on</label>
          <select id="trigger-kind" value={form.kind} onChange={set('kind')}>
            {Object.entries(PATTERNS).map(([k, v]) => <option key={k} value={k}>{v}</option>)}
          </select>
        </div>
        {form.kind === 'agent_spawned' && <div><label for="trigger-glob">Name pattern (glob)</label><input id="trigger-glob" value={form.name_pattern} onInput={set('name_pattern')} /></div>}
        {form.kind === 'task_posted' && (
          <div>
            <label for="trigger-assignee">Assigned to</label>
            <select id="trigger-assignee" value={form.assignee} onChange={set('assignee')}><option value="any">anyone</option><option value="self">this agent</option></select>
          </div>
        )}
        <div><label for="trigger-max">Most fires (0: no limit)</label><input id="trigger-max" type="number" min={0} value={form.max_fires} onInput={set('max_fires')} /></div>
      </div>
      <label for="trigger-prompt">Prompt (<code>{'{{event}}'}</code> is the event)</label>
      <textarea id="trigger-prompt" rows={2} value={form.prompt} onInput={set('prompt')} required />
      <ErrorText error={action.error} />
      <button type="submit" disabled={action.busy || !agent}>Create trigger</button>
    </form>
  );
}

export function Schedules() {
  const data = useApi(['/api/cron/jobs', '/api/cron/runs?limit=20', '/api/triggers', '/api/agents'], 3000);
  const action = useAction();
  const [jobs, runs, triggers, agents] = data.data || [];
  const names = Object.fromEntries((agents?.items || []).map((a) => [a.id, a.name]));
  const toggle = (j) => action.run(async () => { await api(`/api/cron/jobs/${j.id}/enable`, { method: 'PUT', body: { enabled: !j.enabled } }); data.reload(); });
  const remove = (j) => action.run(async () => { await api(`/api/cron/jobs/${j.id}`, { method: 'DELETE' }); data.reload(); });
  return (
    <Page title="Schedules">
      {agents && <NewJob agents={agents.items} onCreated={data.reload} />}
      <ErrorText error={action.error || data.error} />
      <h2>Cron jobs</h2>
      <Table
        rows={jobs?.jobs}
        rowKey={(j) => j.id}
        empty="No jobs."
        columns={[
          { label: 'Name', get: (j) => j.name || j.id.slice(0, 8) },
          { label: 'Agent', get: (j) => names[j.agent_id] || j.agent_id },
          { label: 'Schedule', get: (j) => <code>{j.schedule}</code> },
          { label: 'Next run', get: (j) => (j.enabled ? when(j.next_run) : '—') },
          { label: 'Fired', get: (j) => j.fire_count },
          { label: 'Actions', get: (j) => (
            <span class="actions">
              <button class="small" onClick={() => toggle(j)} aria-label={`${j.enabled ? 'Pause' : 'Resume'} ${j.name || 'job'}`}>{j.enabled ? 'Pause' : 'Resume'}</button>
              <button class="small danger" onClick={() => remove(j)} aria-label={`Delete ${j.name || 'job'}`}>Delete</button>
            </span>
          ) },
        ]}
      />
      <h2>Recent runs</h2>
      <Table
        caption="Recent runs"
        rows={runs?.items}
        rowKey={(r) => r.id}
        empty="No runs yet."
        columns={[
          { label: 'Job', get: (r) => r.job_name || r.job_id.slice(0, 8) },
          { label: 'Scheduled', get: (r) => when(r.scheduled_at) },
          { label: 'Status', get: (r) => <Badge tone={r.status === 'ok' ? 'ok' : r.status === 'error' ? 'bad' : ''}>{r.status}</Badge> },
          { label: 'Output', get: (r) => <span class="clip">{r.error || r.output || ''}</span> },
        ]}
      />
      <h2>Triggers</h2>
      {agents && <NewTrigger agents={agents.items} onCreated={data.reload} />}
      <Table
        rows={triggers?.triggers}
        rowKey={(t) => t.id}
        empty="No triggers."
        columns={[
          { label: 'Agent', get: (t) => names[t.agent_id] || t.agent_id },
          { label: 'Pattern', get: (t) => <code>{JSON.stringify(t.pattern)}</code> },
          { label: 'Enabled', get: (t) => String(t.enabled) },
          { label: 'Fires', get: (t) => t.fire_count ?? '—' },
        ]}
      />
    </Page>
  );
}
