// Hands: installed hand plugins, their active instances with the
// supervisor's figures, an activate form made from the hand's settings
// schema, pause/resume/deactivate, each instance's stats and each hand's
// dependency check.
import { useState } from 'preact/hooks';
import { api } from '../api.js';
import { Badge, ErrorText, Page, Table, useAction, useApi, when } from '../ui.jsx';
import { SchemaFields, fromForm, schemaParts } from '../schema_form.jsx';

const handPath = (id) => `/api/hands/${encodeURIComponent(id)}`;
const instancePath = (id) => `/api/hands/instances/${encodeURIComponent(id)}`;
const tone = (s) => (s === 'active' || s === 'loaded' ? 'ok' : s === 'failed' || s === 'error' ? 'bad' : '');
const bytes = (n) => (n >= 1 << 20 ? `${(n / (1 << 20)).toFixed(1)} MiB` : `${Math.round(n / 1024)} KiB`);

/**
 * Activates a hand: its settings from the hand's JSON Schema (the same form
 * as a channel's), the model of the agent it gets, and its tick interval.
 */
function Activate({ hands, onDone }) {
  const loaded = hands.filter((h) => h.status === 'loaded');
  // The first loaded hand until one is chosen (the list may load later).
  const [chosen, setHandId] = useState('');
  const handId = loaded.some((h) => h.id === chosen) ? chosen : loaded[0]?.id || '';
  const hand = loaded.find((h) => h.id === handId);
  const [provider, setProvider] = useState('openai');
  const [model, setModel] = useState('gpt-4o-mini');
  const [tick, setTick] = useState('');
  const [form, setForm] = useState({});
  const action = useAction();
  if (!loaded.length) {
    return <p class="muted">No hand is loaded: install a hand plugin on the Plugins page first.</p>;
  }
  const submit = (e) => {
    e.preventDefault();
    const body = {
      config: fromForm(schemaParts(hand?.settings_schema).props, form),
      provider: provider.trim(),
      model: model.trim(),
    };
    if (tick.trim()) body.tick_interval_secs = Number(tick);
    action.run(async () => {
      const instance = await api(`${handPath(handId)}/activate`, { method: 'POST', body });
      onDone(`Activated ${hand.name}: instance ${instance.instance_id.slice(0, 8)}.`);
    });
  };
  return (
    <form class="panel" onSubmit={submit} aria-labelledby="activate-title" aria-describedby={action.error ? 'activate-error' : undefined}>
      <h2 id="activate-title">Activate a hand</h2>
      <div class="row">
        <div>
          <label for="ha-hand">Hand</label>
          <select id="ha-hand" value={handId} onChange={(e) => { setHandId(e.target.value); setForm({}); action.setError(null); }}>
            {loaded.map((h) => <option key={h.id} value={h.id}>{h.name} ({h.id})</option>)}
          </select>
        </div>
        <div><label for="ha-provider">Provider</label><input id="ha-provider" value={provider} onInput={(e) => setProvider(e.target.value)} required /></div>
        <div><label for="ha-model">Model</label><input id="ha-model" value={model} onInput={(e) => setModel(e.target.value)} required /></div>
        <div>
          <label for="ha-interval">Tick every (seconds)</label>
          <input id="ha-interval" type="number" min={hand?.tick_interval_secs || 1} step={1} value={tick}
            placeholder={hand?.tick_interval_secs ? String(hand.tick_interval_secs) : ''} aria-describedby="ha-interval-help"
            onInput={(e) => setTick(e.target.value)} />
          <p id="ha-interval-help" class="muted small">At least the hand's own interval (the default).</p>
        </div>
      </div>
      {hand?.agent_role && <p class="muted small">Its agent's role: {hand.agent_role}</p>}
      <fieldset class="config">
        <legend>{hand?.name || handId} settings</legend>
        {hand?.settings_schema
          ? <SchemaFields schema={hand.settings_schema} idPrefix="hs" keyPrefix={handId} form={form} onChange={setForm} />
          : <p class="muted">This hand takes no settings.</p>}
      </fieldset>
      <ErrorText error={action.error} id="activate-error" />
      <button type="submit" disabled={action.busy}>Activate</button>
    </form>
  );
}

/** What a hand needs and which of it is missing (`POST .../check-deps`). */
function Deps({ result }) {
  return (
    <section class="panel" aria-labelledby="deps-title">
      <h2 id="deps-title">Dependencies of {result.hand_id}</h2>
      <p class={`verdict ${result.satisfied ? 'ok' : 'bad'}`} role="status">
        {result.satisfied ? 'Everything it needs is there.' : `Missing: ${result.missing.join(', ')}`}
      </p>
      <Table
        caption={`Requirements of ${result.hand_id}`}
        rows={result.requirements}
        rowKey={(r) => `${r.kind}:${r.key}`}
        columns={[
          { label: 'Kind', get: (r) => r.kind },
          { label: 'What', get: (r) => <code>{r.key}</code> },
          { label: 'Met', get: (r) => <Badge tone={r.satisfied ? 'ok' : 'bad'}>{r.satisfied ? 'yes' : 'no'}</Badge> },
          { label: 'Detail', get: (r) => r.detail || '' },
        ]}
      />
    </section>
  );
}

/** An instance's figures: the supervisor's and the hand's own metrics. */
function Stats({ instance, label }) {
  const stats = useApi(`${instancePath(instance.instance_id)}/stats`, 3000);
  const s = stats.data;
  const cards = s
    ? [
      ['Ticks', s.ticks], ['Failed ticks', s.failed_ticks], ['Scheduled ticks started', s.ticks_started],
      ['Restarts', s.restarts], ['Peak memory', bytes(s.peak_memory)], ['Next tick', when(s.next_tick_at)],
      ...Object.entries(s.metrics || {}).map(([k, m]) => [k, m.value]),
    ]
    : [];
  return (
    <section class="panel" aria-labelledby="stats-title">
      <h2 id="stats-title">Stats of {label}</h2>
      <ErrorText error={stats.error} />
      {!s && <p class="muted">Loading…</p>}
      {s && (
        <>
          <dl class="cards">{cards.map(([k, v]) => <div class="card" key={k}><dt>{k}</dt><dd>{v}</dd></div>)}</dl>
          {s.metrics_error && <p class="muted small">The hand gave no figures: {s.metrics_error}</p>}
          <h3 class="small">Settings</h3>
          <pre>{JSON.stringify(s.settings, null, 2)}</pre>
        </>
      )}
    </section>
  );
}

export function Hands() {
  const data = useApi(['/api/hands', '/api/hands/active', '/api/agents'], 3000);
  const action = useAction();
  const [notice, setNotice] = useState('');
  const [deps, setDeps] = useState(null);
  const [stats, setStats] = useState(null); // the instance id whose stats are open
  const [round, setRound] = useState(0);
  const [hands, active, agents] = data.data
    ? [data.data[0].hands, data.data[1].instances, data.data[2].items]
    : [null, null, []];
  // `/api/hands/active` leaves paused instances out; each hand lists all of
  // its instances' ids, so the paused ones are read one by one.
  const activeIds = new Set((active || []).map((i) => i.instance_id));
  const pausedIds = (hands || []).flatMap((h) => h.instances).filter((id) => !activeIds.has(id)).sort();
  const paused = useApi(pausedIds.length ? pausedIds.map((id) => `${instancePath(id)}/stats`) : null, 3000);
  const instances = active && [...active, ...(pausedIds.length ? (paused.data || []).filter((i) => pausedIds.includes(i.instance_id)) : [])];
  const agentNames = Object.fromEntries(agents.map((a) => [a.id, a.name]));
  const handNames = Object.fromEntries((hands || []).map((h) => [h.id, h.name]));
  const label = (i) => `${handNames[i.hand_id] || i.hand_id} ${i.instance_id.slice(0, 8)}`;
  const act = (fn, done) => action.run(async () => { await fn(); setNotice(done); data.reload(); });
  const check = (h) => action.run(async () => setDeps(await api(`${handPath(h.id)}/check-deps`, { method: 'POST', body: {} })));
  const pause = (i) => act(() => api(`${instancePath(i.instance_id)}/${i.status === 'paused' ? 'resume' : 'pause'}`, { method: 'POST' }),
    `${label(i)} ${i.status === 'paused' ? 'resumed' : 'paused'}.`);
  const deactivate = (i) => {
    if (confirm(`Deactivate ${label(i)}? Its agent and its state go.`)) {
      if (stats === i.instance_id) setStats(null);
      act(() => api(instancePath(i.instance_id), { method: 'DELETE' }), `Deactivated ${label(i)}.`);
    }
  };
  const open = instances?.find((i) => i.instance_id === stats);
  return (
    <Page title="Hands" actions={<button onClick={() => act(() => api('/api/hands/reload', { method: 'POST' }), 'Hands reloaded.')}>Reload all</button>}>
      {hands && <Activate key={`activate-${round}`} hands={hands} onDone={(text) => { setNotice(text); setRound(round + 1); data.reload(); }} />}
      <p class="notice" role="status">{notice}</p>
      <ErrorText error={action.error || data.error} />
      <Table
        caption="Installed hands"
        rows={hands}
        rowKey={(h) => h.id}
        empty="No hands installed. A hand is a plugin of kind hand: install its package on the Plugins page."
        columns={[
          { label: 'Hand', get: (h) => <><strong>{h.name}</strong> <span class="muted small">{h.id} {h.version}</span></> },
          { label: 'Status', get: (h) => <Badge tone={tone(h.status)}>{h.status}</Badge> },
          { label: 'What it does', get: (h) => <span class="clip">{h.error || h.description}</span> },
          { label: 'Ticks every', get: (h) => (h.tick_interval_secs ? `${h.tick_interval_secs} s` : '—') },
          { label: 'Instances', get: (h) => h.instances.length },
          { label: 'Actions', get: (h) => (
            <button class="small" onClick={() => check(h)} aria-label={`Check ${h.id}'s dependencies`}>Check dependencies</button>
          ) },
        ]}
      />
      {deps && <Deps result={deps} />}
      <Table
        caption="Instances"
        rows={instances}
        rowKey={(i) => i.instance_id}
        empty="No instances: activate a hand above."
        columns={[
          { label: 'Instance', get: (i) => <><strong>{handNames[i.hand_id] || i.hand_id}</strong> <code class="small">{i.instance_id.slice(0, 8)}</code></> },
          { label: 'Agent', get: (i) => agentNames[i.agent_id] || i.agent_id.slice(0, 8) },
          { label: 'Status', get: (i) => <><Badge tone={tone(i.status)}>{i.status}</Badge> <span class="muted small">{i.state}</span></> },
          { label: 'Last tick', get: (i) => when(i.last_tick_ms) },
          { label: 'Ticks', get: (i) => i.ticks },
          { label: 'Failed ticks', get: (i) => i.failed_ticks },
          { label: 'Restarts', get: (i) => i.restarts },
          { label: 'Last error', get: (i) => <span class="clip">{i.last_error || ''}</span> },
          { label: 'Actions', get: (i) => (
            <span class="actions">
              <button class="small" aria-expanded={stats === i.instance_id} aria-label={`Stats of ${label(i)}`}
                onClick={() => setStats(stats === i.instance_id ? null : i.instance_id)}>Stats</button>
              <button class="small" onClick={() => pause(i)} aria-label={`${i.status === 'paused' ? 'Resume' : 'Pause'} ${label(i)}`}>
                {i.status === 'paused' ? 'Resume' : 'Pause'}
              </button>
              <button class="small danger" onClick={() => deactivate(i)} aria-label={`Deactivate ${label(i)}`}>Deactivate</button>
            </span>
          ) },
        ]}
      />
      {open && <Stats key={open.instance_id} instance={open} label={label(open)} />}
    </Page>
  );
}
