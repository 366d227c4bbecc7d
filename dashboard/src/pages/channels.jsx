// Channels: configured chat platforms with their status, a configure form
// made from the component's JSON Schema, tests and dead letters.
import { useState } from 'preact/hooks';
import { api } from '../api.js';
import { Badge, ErrorText, Page, Table, useAction, useApi, when } from '../ui.jsx';
import { SchemaFields, fromForm, schemaParts, toForm } from '../schema_form.jsx';

const path = (name) => `/api/channels/${encodeURIComponent(name)}`;
const stateTone = (s) => (s === 'connected' ? 'ok' : ['restarting', 'disconnected', 'not_started'].includes(s) ? 'bad' : '');

function Bindings({ bindings, agents, onChange }) {
  const set = (i, k, v) => onChange(bindings.map((b, j) => (j === i ? { ...b, [k]: v } : b)));
  return (
    <fieldset class="bindings">
      <legend>Bindings (per chat or sender; the more specific wins)</legend>
      {bindings.map((b, i) => (
        <div class="row" key={i}>
          <div><label for={`b-chat-${i}`}>Chat</label><input id={`b-chat-${i}`} value={b.chat_id || ''} onInput={(e) => set(i, 'chat_id', e.target.value)} /></div>
          <div><label for={`b-sender-${i}`}>Sender</label><input id={`b-sender-${i}`} value={b.sender_id || ''} onInput={(e) => set(i, 'sender_id', e.target.value)} /></div>
          <div>
            <label for={`b-agent-${i}`}>Agent</label>
            <select id={`b-agent-${i}`} value={b.agent_id || ''} onChange={(e) => set(i, 'agent_id', e.target.value)} required>
              <option value="">—</option>
              {agents.map((a) => <option key={a.id} value={a.id}>{a.name}</option>)}
            </select>
          </div>
          <div><button type="button" class="small danger" aria-label={`Remove binding ${i + 1}`} onClick={() => onChange(bindings.filter((_, j) => j !== i))}>Remove</button></div>
        </div>
      ))}
      <button type="button" class="small" onClick={() => onChange([...bindings, { chat_id: '', sender_id: '', agent_id: '' }])}>Add a binding</button>
    </fieldset>
  );
}

/** Configures a new channel, or edits `channel`, from its plugin's schema. */
function Configure({ kinds, agents, channel, onDone }) {
  const [plugin, setPlugin] = useState(channel?.plugin || kinds[0]?.plugin || '');
  const kind = kinds.find((k) => k.plugin === plugin);
  const { props } = schemaParts(kind?.config_schema);
  const [name, setName] = useState(channel?.name || '');
  const [agent, setAgent] = useState(channel?.agent_id || '');
  const [enabled, setEnabled] = useState(channel ? channel.enabled : true);
  const [form, setForm] = useState(() => toForm(props, channel?.config));
  const [bindings, setBindings] = useState(channel?.bindings || []);
  const action = useAction();
  if (!kinds.length) {
    return <p class="muted">No channel plugin is loaded: install one on the Plugins page (granting its server's address) first.</p>;
  }
  const submit = (e) => {
    e.preventDefault();
    const target = (name.trim() || plugin).toLowerCase();
    const body = {
      plugin,
      enabled,
      config: fromForm(props, form),
      bindings: bindings.map((b) => Object.fromEntries(Object.entries(b).filter(([, v]) => v))),
    };
    if (agent) body.agent_id = agent;
    action.run(async () => {
      await api(`${path(target)}/configure`, { method: 'POST', body });
      onDone(`Configured ${target}.`);
    });
  };
  const title = channel ? `Configure ${channel.name}` : 'Configure a channel';
  return (
    <form class="panel" onSubmit={submit} aria-labelledby="configure-title">
      <h2 id="configure-title">{title}</h2>
      <div class="row">
        <div>
          <label for="cf-plugin">Channel plugin</label>
          <select id="cf-plugin" value={plugin} disabled={!!channel} onChange={(e) => { setPlugin(e.target.value); setForm({}); }}>
            {kinds.map((k) => <option key={k.plugin} value={k.plugin}>{k.display_name || k.name} ({k.plugin})</option>)}
          </select>
        </div>
        <div>
          <label for="cf-name">Name</label>
          <input id="cf-name" value={name} disabled={!!channel} pattern="[a-z0-9_\-]{1,64}" placeholder={plugin}
            aria-describedby="cf-name-help" onInput={(e) => setName(e.target.value)} />
          <p id="cf-name-help" class="muted small">Lowercase letters, digits, - and _.</p>
        </div>
        <div>
          <label for="cf-agent">Default agent</label>
          <select id="cf-agent" value={agent} onChange={(e) => setAgent(e.target.value)}>
            <option value="">—</option>
            {agents.map((a) => <option key={a.id} value={a.id}>{a.name}</option>)}
          </select>
        </div>
      </div>
      <fieldset class="config">
        <legend>{kind?.display_name || plugin} settings</legend>
        <SchemaFields schema={kind?.config_schema} idPrefix="cf" keyPrefix={plugin} secretKeys={kind?.secret_keys}
          setKeys={channel?.secret_keys} form={form} onChange={setForm} />
      </fieldset>
      <Bindings bindings={bindings} agents={agents} onChange={setBindings} />
      <label><input type="checkbox" checked={enabled} onChange={(e) => setEnabled(e.target.checked)} /> Enabled (run it now)</label>
      <ErrorText error={action.error} id="configure-error" />
      <span class="actions">
        <button type="submit" disabled={action.busy}>Save</button>
        {channel && <button type="button" class="link" onClick={() => onDone('')}>Cancel</button>}
      </span>
    </form>
  );
}

function Test({ channel, onDone }) {
  const [chat, setChat] = useState('');
  const [text, setText] = useState('');
  const action = useAction();
  const [result, setResult] = useState(null);
  const submit = (e) => {
    e.preventDefault();
    const body = chat.trim() ? { chat_id: chat.trim(), ...(text.trim() ? { text: text.trim() } : {}) } : {};
    action.run(async () => setResult(await api(`${path(channel.name)}/test`, { method: 'POST', body })));
  };
  return (
    <form class="panel" onSubmit={submit} aria-labelledby="test-title">
      <h2 id="test-title">Test {channel.name}</h2>
      <div class="row">
        <div><label for="test-chat">Send to chat (optional)</label><input id="test-chat" value={chat} onInput={(e) => setChat(e.target.value)} /></div>
        <div><label for="test-text">Text</label><input id="test-text" value={text} onInput={(e) => setText(e.target.value)} /></div>
      </div>
      <ErrorText error={action.error} />
      {result && (
        <p class={`verdict ${result.success ? 'ok' : 'bad'}`} role="status">
          {result.success ? 'Reachable' : 'Not reachable'}: {result.detail || result.state}{result.sent ? ' — message queued' : ''}
        </p>
      )}
      <span class="actions">
        <button type="submit" disabled={action.busy}>Test now</button>
        <button type="button" class="link" onClick={onDone}>Close</button>
      </span>
    </form>
  );
}

function DeadLetters({ channel }) {
  const dead = useApi(`${path(channel.name)}/dead-letters`, 5000);
  const action = useAction();
  const retry = (d) => action.run(async () => {
    await api(`${path(channel.name)}/dead-letters/${d.message_id}/retry`, { method: 'POST' });
    dead.reload();
  });
  return (
    <>
      <ErrorText error={action.error || dead.error} />
      <Table
        caption={`Dead letters of ${channel.name}`}
        rows={dead.data?.dead_letters}
        rowKey={(d) => d.message_id}
        empty={`No dead letters in ${channel.name}.`}
        columns={[
          { label: 'Queued', get: (d) => when(d.timestamp) },
          { label: 'To', get: (d) => d.recipient },
          { label: 'Text', get: (d) => <span class="clip">{d.text}</span> },
          { label: 'Attempts', get: (d) => d.attempts },
          { label: 'Error', get: (d) => <span class="clip">{d.error || ''}</span> },
          { label: 'Retry', get: (d) => <button class="small" onClick={() => retry(d)} aria-label={`Retry the message to ${d.recipient}`}>Retry</button> },
        ]}
      />
    </>
  );
}

export function Channels() {
  const data = useApi(['/api/channels', '/api/channels/registry', '/api/agents'], 4000);
  const action = useAction();
  const [notice, setNotice] = useState('');
  const [panel, setPanel] = useState(null); // {kind: 'edit'|'test'|'dead', channel}
  // Bumped on each save, so the new-channel form starts empty again.
  const [round, setRound] = useState(0);
  const [channels, kinds, agents] = data.data ? [data.data[0].channels, data.data[1], data.data[2].items] : [null, [], []];
  const names = Object.fromEntries(agents.map((a) => [a.id, a.name]));
  const act = (fn, done) => action.run(async () => { await fn(); setNotice(done); setPanel(null); data.reload(); });
  const toggle = (c) => act(() => api(`${path(c.name)}/configure`, { method: 'POST', body: { enabled: !c.enabled } }), `${c.name} ${c.enabled ? 'disabled' : 'enabled'}.`);
  const remove = (c) => {
    if (confirm(`Remove ${c.name}? Its configuration and secrets go; its messages stay as history.`)) {
      act(() => api(`${path(c.name)}/configure`, { method: 'DELETE' }), `Removed ${c.name}.`);
    }
  };
  const done = (text) => { setPanel(null); setRound(round + 1); setNotice(text); data.reload(); };
  const open = (kind, c) => setPanel(panel?.kind === kind && panel.channel.name === c.name ? null : { kind, channel: c });
  const inbound = (c) => Object.entries(c.inbound || {}).map(([k, v]) => `${v} ${k}`).join(', ') || 'none';
  return (
    <Page title="Channels" actions={
      <button onClick={() => act(() => api('/api/channels/reload', { method: 'POST' }), 'Channels restarted.')}>Restart all</button>
    }>
      {data.data && !panel && <Configure key={`new-${round}`} kinds={kinds} agents={agents} onDone={done} />}
      {panel?.kind === 'edit' && <Configure key={`edit-${panel.channel.name}`} kinds={kinds} agents={agents} channel={panel.channel} onDone={done} />}
      {panel?.kind === 'test' && <Test key={`test-${panel.channel.name}`} channel={panel.channel} onDone={() => setPanel(null)} />}
      <p class="notice" role="status">{notice}</p>
      <ErrorText error={action.error || data.error} />
      <Table
        caption="Configured channels"
        rows={channels}
        rowKey={(c) => c.name}
        empty="No channels configured."
        columns={[
          { label: 'Channel', get: (c) => <><strong>{c.name}</strong> <span class="muted small">{c.display_name || c.plugin}</span></> },
          { label: 'State', get: (c) => <Badge tone={stateTone(c.state)}>{c.enabled ? c.state : 'disabled'}</Badge> },
          { label: 'Since', get: (c) => (c.connected_since_ms ? when(c.connected_since_ms) : '—') },
          { label: 'Restarts', get: (c) => c.restarts },
          { label: 'Last error', get: (c) => <span class="clip">{c.last_error || ''}</span> },
          { label: 'Agent', get: (c) => (c.agent_id ? names[c.agent_id] || c.agent_id : '—') + (c.bindings.length ? ` (+${c.bindings.length} bindings)` : '') },
          { label: 'Inbound', get: inbound },
          { label: 'Actions', get: (c) => (
            <span class="actions">
              <button class="small" onClick={() => open('edit', c)} aria-label={`Configure ${c.name}`}>Configure</button>
              <button class="small" onClick={() => open('test', c)} aria-label={`Test ${c.name}`}>Test</button>
              <button class="small" role="switch" aria-checked={c.enabled ? 'true' : 'false'} aria-label={`${c.name} enabled`} onClick={() => toggle(c)}>{c.enabled ? 'On' : 'Off'}</button>
              <button class="small" aria-expanded={panel?.kind === 'dead' && panel.channel.name === c.name} onClick={() => open('dead', c)} aria-label={`Dead letters of ${c.name}`}>Dead letters</button>
              <button class="small danger" onClick={() => remove(c)} aria-label={`Remove ${c.name}`}>Remove</button>
            </span>
          ) },
        ]}
      />
      {panel?.kind === 'dead' && <DeadLetters key={panel.channel.name} channel={panel.channel} />}
    </Page>
  );
}
