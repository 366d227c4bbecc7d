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

const MODES = ['sequential', 'fan_out', 'collect', 'conditional', 'loop'];
const newStep = (n) => ({ name: `step-${n}`, agent_id: '', prompt: '{{input}}', mode: 'sequential', error_mode: 'fail', output_var: '', condition: '', until: '', max_iterations: 5 });

/** One step's fields; the mode shows the fields it uses. */
function StepFields({ step, index, agents, onChange, onRemove }) {
  const id = (k) => `wf-${index}-${k}`;
  const set = (k) => (e) => onChange({ ...step, [k]: e.target.value });
  return (
    <fieldset class="config">
      <legend>Step {index + 1}</legend>
      <div class="row">
        <div><label for={id('name')}>Name</label><input id={id('name')} value={step.name} onInput={set('name')} required /></div>
        <div>
          <label for={id('agent')}>Agent</label>
          <select id={id('agent')} value={step.agent_id} onChange={set('agent_id')} required={step.mode !== 'collect'}>
            <option value="">—</option>
            {agents.map((a) => <option key={a.id} value={a.id}>{a.name}</option>)}
          </select>
        </div>
        <div>
          <label for={id('mode')}>Mode</label>
          <select id={id('mode')} value={step.mode} onChange={set('mode')}>{MODES.map((m) => <option key={m} value={m}>{m}</option>)}</select>
        </div>
        <div>
          <label for={id('error')}>On failure</label>
          <select id={id('error')} value={step.error_mode} onChange={set('error_mode')}>
            <option value="fail">fail the run</option><option value="skip">skip the step</option><option value="retry">retry</option>
          </select>
        </div>
        <div><label for={id('var')}>Save answer as</label><input id={id('var')} value={step.output_var} pattern="[A-Za-z0-9_]*" onInput={set('output_var')} /></div>
        {step.mode === 'conditional' && <div><label for={id('cond')}>Runs when the input contains</label><input id={id('cond')} value={step.condition} onInput={set('condition')} required /></div>}
        {step.mode === 'loop' && <div><label for={id('until')}>Until the answer contains</label><input id={id('until')} value={step.until} onInput={set('until')} /></div>}
        {step.mode === 'loop' && <div><label for={id('iter')}>At most (iterations)</label><input id={id('iter')} type="number" min={1} value={step.max_iterations} onInput={set('max_iterations')} /></div>}
      </div>
      <label for={id('prompt')}>Prompt (<code>{'{{input}}'}</code>, <code>{'{{var}}'}</code>)</label>
      <textarea id={id('prompt')} rows={2} value={step.prompt} onInput={set('prompt')} />
      <button type="button" class="small danger" onClick={onRemove} aria-label={`Remove step ${index + 1}`}>Remove step</button>
    </fieldset>
  );
}

/** Defines a workflow (POST) or changes one (PUT), step by step. */
function WorkflowForm({ workflow, onDone }) {
  const agents = useApi('/api/agents');
  const [name, setName] = useState(workflow?.name || '');
  const [description, setDescription] = useState(workflow?.description || '');
  const [steps, setSteps] = useState(() => (workflow?.steps?.length
    ? workflow.steps.map((s) => ({ ...newStep(0), ...s, agent_id: s.agent_id || '', output_var: s.output_var || '', condition: s.condition || '', until: s.until || '' }))
    : [newStep(1)]));
  const action = useAction();
  const list = agents.data?.items || [];
  const submit = (e) => {
    e.preventDefault();
    const body = {
      name: name.trim(),
      description,
      steps: steps.map((s) => {
        const step = { name: s.name.trim(), prompt: s.prompt, mode: s.mode, error_mode: s.error_mode };
        if (s.agent_id) step.agent_id = s.agent_id;
        if (s.output_var.trim()) step.output_var = s.output_var.trim();
        if (s.mode === 'conditional') step.condition = s.condition;
        if (s.mode === 'loop') {
          step.max_iterations = Number(s.max_iterations) || 1;
          if (s.until.trim()) step.until = s.until;
        }
        return step;
      }),
    };
    action.run(async () => {
      await api(workflow ? `/api/workflows/${workflow.id}` : '/api/workflows', { method: workflow ? 'PUT' : 'POST', body });
      onDone(`${workflow ? 'Saved' : 'Created'} ${body.name}.`);
    });
  };
  return (
    <form class="panel" onSubmit={submit} aria-labelledby="wf-title">
      <h2 id="wf-title">{workflow ? `Edit ${workflow.name}` : 'New workflow'}</h2>
      <div class="row">
        <div><label for="wf-name">Name</label><input id="wf-name" value={name} onInput={(e) => setName(e.target.value)} required /></div>
        <div><label for="wf-description">Description</label><input id="wf-description" value={description} onInput={(e) => setDescription(e.target.value)} /></div>
      </div>
      {steps.map((s, i) => (
        <StepFields key={i} step={s} index={i} agents={list}
          onChange={(v) => setSteps(steps.map((x, j) => (j === i ? v : x)))}
          onRemove={() => setSteps(steps.filter((_, j) => j !== i))} />
      ))}
      <button type="button" class="small" onClick={() => setSteps([...steps, newStep(steps.length + 1)])}>Add a step</button>
      <ErrorText error={action.error || agents.error} id="wf-error" />
      <span class="actions">
        <button type="submit" disabled={action.busy}>{workflow ? 'Save' : 'Create'}</button>
        {workflow && <button type="button" class="link" onClick={() => onDone('')}>Cancel</button>}
      </span>
    </form>
  );
}

export function Workflows() {
  const workflows = useApi('/api/workflows', 5000);
  const action = useAction();
  const [open, setOpen] = useState(null);
  const [editing, setEditing] = useState(null);
  const [notice, setNotice] = useState('');
  const edit = (w) => action.run(async () => setEditing(await api(`/api/workflows/${w.id}`)));
  const remove = (w) => {
    if (confirm(`Delete ${w.name}?`)) action.run(async () => { await api(`/api/workflows/${w.id}`, { method: 'DELETE' }); setNotice(`Deleted ${w.name}.`); workflows.reload(); });
  };
  const done = (text) => { setEditing(null); if (text) setNotice(text); workflows.reload(); };
  const run = (w) => action.run(async () => {
    const input = prompt(`Input for ${w.name}`, '');
    if (input === null) return;
    await api(`/api/workflows/${w.id}/run`, { method: 'POST', body: { input } });
    setOpen(w.id);
  });
  const list = workflows.data?.items;
  return (
    <Page title="Workflows">
      {editing ? <WorkflowForm key={editing.id} workflow={editing} onDone={done} /> : <WorkflowForm key="new" onDone={done} />}
      <p class="notice" role="status">{notice}</p>
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
              <button class="small" onClick={() => run(w)} aria-label={`Run ${w.name}`}>Run</button>
              <button class="small" onClick={() => edit(w)} aria-label={`Edit ${w.name}`}>Edit</button>
              <button class="small" aria-expanded={open === w.id} onClick={() => setOpen(open === w.id ? null : w.id)} aria-label={`Runs of ${w.name}`}>Runs</button>
              <button class="small danger" onClick={() => remove(w)} aria-label={`Delete ${w.name}`}>Delete</button>
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
