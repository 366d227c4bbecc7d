import { useState } from 'preact/hooks';
import { api } from '../api.js';
import { Link } from '../router.jsx';
import { Badge, ErrorText, Page, Table, useAction, useApi, when } from '../ui.jsx';

function CreateAgent({ onCreated }) {
  const templates = useApi('/api/templates');
  const [mode, setMode] = useState('template');
  const [template, setTemplate] = useState('');
  const [name, setName] = useState('');
  const [manifest, setManifest] = useState('name = "my-agent"\n\n[model]\nprovider = "openai"\nmodel = "gpt-4o-mini"\n');
  const action = useAction();
  const list = templates.data?.templates || [];
  const chosen = template || list[0]?.name || '';
  const submit = (e) => {
    e.preventDefault();
    const body = mode === 'template' ? { template: chosen, ...(name.trim() ? { name: name.trim() } : {}) } : { manifest_toml: manifest };
    action.run(async () => {
      const made = await api('/api/agents', { method: 'POST', body });
      setName('');
      onCreated(made);
    });
  };
  return (
    <form class="panel" onSubmit={submit} aria-labelledby="create-title">
      <h2 id="create-title">New agent</h2>
      <fieldset class="choice">
        <legend>From</legend>
        <label><input type="radio" name="from" checked={mode === 'template'} onChange={() => setMode('template')} /> a template</label>
        <label><input type="radio" name="from" checked={mode === 'manifest'} onChange={() => setMode('manifest')} /> a manifest</label>
      </fieldset>
      {mode === 'template' ? (
        <div class="row">
          <div>
            <label for="template">Template</label>
            <select id="template" value={chosen} onChange={(e) => setTemplate(e.target.value)}>
              {list.map((t) => <option key={t.name} value={t.name}>{t.name} — {t.model.provider}/{t.model.model}</option>)}
            </select>
          </div>
          <div>
            <label for="agent-name">Name</label>
            <input id="agent-name" value={name} onInput={(e) => setName(e.target.value)} placeholder="the template's name" />
          </div>
        </div>
      ) : (
        <div>
          <label for="manifest">Manifest (TOML)</label>
          <textarea id="manifest" rows={9} spellcheck={false} value={manifest} aria-invalid={action.error ? 'true' : undefined}
            aria-describedby={action.error ? 'create-error' : undefined} onInput={(e) => setManifest(e.target.value)} />
        </div>
      )}
      <ErrorText error={action.error} id="create-error" />
      <button type="submit" disabled={action.busy}>Create</button>
    </form>
  );
}


/** Model, identity and tools of one agent, each saved by its own API call. */
function EditAgent({ agent, onDone }) {
  const data = useApi([`/api/agents/${agent.id}`, `/api/agents/${agent.id}/tools`, '/api/tools']);
  const action = useAction();
  const [form, setForm] = useState(null);
  if (data.data && !form) {
    const [full, tools] = data.data;
    setForm({
      provider: full.model.provider, model: full.model.model,
      emoji: full.identity?.emoji || '', vibe: full.identity?.vibe || '', color: full.identity?.color || '',
      tools: tools.capabilities_tools,
      system_prompt: full.system_prompt || '',
      prompt0: full.system_prompt || '',
    });
  }
  if (!form) return <ErrorText error={data.error} />;
  const names = [...new Set([...data.data[1].available, ...form.tools, ...data.data[2].tools.map((t) => t.name)])].sort();
  const set = (k) => (e) => setForm({ ...form, [k]: e.target.value });
  const toggle = (name) => setForm({ ...form, tools: form.tools.includes(name) ? form.tools.filter((t) => t !== name) : [...form.tools, name] });
  const submit = (e) => {
    e.preventDefault();
    action.run(async () => {
      const base = `/api/agents/${agent.id}`;
      await api(`${base}/model`, { method: 'PUT', body: { model: form.model.trim(), provider: form.provider.trim() } });
      const identity = {};
      for (const k of ['emoji', 'vibe', 'color']) if (form[k].trim()) identity[k] = form[k].trim();
      await api(`${base}/identity`, { method: 'PATCH', body: identity });
      await api(`${base}/tools`, { method: 'PUT', body: { tools: form.tools } });
      if (form.system_prompt !== form.prompt0) await api(`${base}/config`, { method: 'PATCH', body: { system_prompt: form.system_prompt } });
      onDone(`Saved ${agent.name}.`);
    });
  };
  return (
    <form class="panel" onSubmit={submit} aria-labelledby="edit-title">
      <h2 id="edit-title">Edit {agent.name}</h2>
      <div class="row">
        <div><label for="edit-provider">Provider</label><input id="edit-provider" value={form.provider} onInput={set('provider')} required /></div>
        <div><label for="edit-model">Model</label><input id="edit-model" value={form.model} onInput={set('model')} required /></div>
        <div><label for="edit-emoji">Emoji</label><input id="edit-emoji" value={form.emoji} onInput={set('emoji')} /></div>
        <div><label for="edit-vibe">Vibe</label><input id="edit-vibe" value={form.vibe} onInput={set('vibe')} /></div>
      </div>
      <label for="edit-prompt">System prompt</label>
      <textarea id="edit-prompt" rows={6} value={form.system_prompt} onInput={set('system_prompt')} />
      <fieldset class="tools">
        <legend>Tools it may call</legend>
        {names.map((n) => (
          <label key={n}><input type="checkbox" checked={form.tools.includes(n)} onChange={() => toggle(n)} /> {n}</label>
        ))}
      </fieldset>
      <ErrorText error={action.error} />
      <span class="actions">
        <button type="submit" disabled={action.busy}>Save</button>
        <button type="button" class="link" onClick={() => onDone('')}>Cancel</button>
      </span>
    </form>
  );
}

/** What an agent sent through channels, newest first. */
function Deliveries({ agent }) {
  const list = useApi(`/api/agents/${agent.id}/deliveries`, 5000);
  return (
    <>
      <ErrorText error={list.error} />
      <Table
        caption={`Deliveries of ${agent.name}`}
        rows={list.data?.receipts}
        rowKey={(d) => d.message_id}
        empty={`${agent.name} has sent nothing through a channel.`}
        columns={[
          { label: 'Queued', get: (d) => when(d.timestamp) },
          { label: 'Channel', get: (d) => d.channel },
          { label: 'To', get: (d) => d.recipient },
          { label: 'Status', get: (d) => <Badge tone={d.status === 'sent' ? 'ok' : d.status === 'dead' ? 'bad' : ''}>{d.status}</Badge> },
          { label: 'Text', get: (d) => <span class="clip">{d.text}</span> },
          { label: 'Error', get: (d) => <span class="clip">{d.error || ''}</span> },
        ]}
      />
    </>
  );
}

export function Agents() {
  const [q, setQ] = useState('');
  const [status, setStatus] = useState('');
  const params = new URLSearchParams();
  if (q) params.set('q', q);
  if (status) params.set('status', status);
  const agents = useApi(`/api/agents?${params}`, 5000);
  const action = useAction();
  const [notice, setNotice] = useState('');
  const [editing, setEditing] = useState(null);
  const [sent, setSent] = useState(null);
  const act = (fn, done) => action.run(async () => { await fn(); setNotice(done); agents.reload(); });
  const clone = (a) => {
    const newName = prompt(`Name of the copy of ${a.name}`, `${a.name}-copy`);
    if (newName) act(() => api(`/api/agents/${a.id}/clone`, { method: 'POST', body: { new_name: newName } }), `Cloned ${a.name} as ${newName}.`);
  };
  const remove = (a) => {
    if (confirm(`Delete ${a.name}? Its sessions and files go too.`)) act(() => api(`/api/agents/${a.id}`, { method: 'DELETE' }), `Deleted ${a.name}.`);
  };
  return (
    <Page title="Agents">
      {editing && <EditAgent key={editing.id} agent={editing} onDone={(text) => { setEditing(null); setNotice(text); agents.reload(); }} />}
      <CreateAgent onCreated={(made) => { setNotice(`Created ${made.name}.`); agents.reload(); }} />
      <div class="filters" role="search">
        <label for="agent-q">Search</label>
        <input id="agent-q" type="search" value={q} onInput={(e) => setQ(e.target.value)} />
        <label for="agent-status">Status</label>
        <select id="agent-status" value={status} onChange={(e) => setStatus(e.target.value)}>
          <option value="">any</option><option value="running">running</option><option value="stopped">stopped</option>
        </select>
      </div>
      <p class="notice" role="status">{notice}</p>
      <ErrorText error={action.error || agents.error} />
      <Table
        caption="Agents"
        rows={agents.data?.items}
        rowKey={(a) => a.id}
        empty="No agents yet: create one above."
        columns={[
          { label: 'Name', get: (a) => <Link href={`/chat?agent=${a.id}`}>{a.name}</Link> },
          { label: 'State', get: (a) => <Badge tone={a.state === 'Running' ? 'ok' : ''}>{a.state}</Badge> },
          { label: 'Model', get: (a) => `${a.model_provider}/${a.model_name}` },
          { label: 'Last active', get: (a) => when(a.last_active) },
          { label: 'Actions', get: (a) => (
            <span class="actions">
              <button class="small" onClick={() => act(() => api(`/api/agents/${a.id}/stop`, { method: 'POST' }), `Stopped ${a.name}'s turns.`)} aria-label={`Stop ${a.name}'s turns`}>Stop</button>
              <button class="small" onClick={() => setEditing(a)} aria-label={`Edit ${a.name}`}>Edit</button>
              <button class="small" aria-expanded={sent?.id === a.id} onClick={() => setSent(sent?.id === a.id ? null : a)} aria-label={`Deliveries of ${a.name}`}>Deliveries</button>
              <button class="small" onClick={() => clone(a)} aria-label={`Clone ${a.name}`}>Clone</button>
              <button class="small danger" onClick={() => remove(a)} aria-label={`Delete ${a.name}`}>Delete</button>
            </span>
          ) },
        ]}
      />
      {sent && <Deliveries key={sent.id} agent={sent} />}
    </Page>
  );
}
