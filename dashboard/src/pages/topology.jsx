// Topology: which agents talk to which (`GET /api/comms/topology`) drawn
// as an SVG graph, the same data as tables for keyboards and screen
// readers, the comms events live, and a form to send one agent's message
// to another.
import { useEffect, useState } from 'preact/hooks';
import { api, stream } from '../api.js';
import { Badge, ErrorText, Page, Table, useAction, useApi, when } from '../ui.jsx';

const W = 640;
const H = 380;
const R = 22; // a node's radius

/**
 * Places nodes on a circle in name order (then id), so the same agents are
 * always drawn in the same places, whatever order the API lists them in.
 */
export function layout(nodes) {
  const sorted = nodes.slice().sort((a, b) => a.name.localeCompare(b.name) || a.id.localeCompare(b.id));
  const radius = Math.min(W, H) / 2 - R - 26;
  const at = {};
  sorted.forEach((n, i) => {
    const angle = sorted.length === 1 ? 0 : (2 * Math.PI * i) / sorted.length - Math.PI / 2;
    const r = sorted.length === 1 ? 0 : radius;
    at[n.id] = { x: W / 2 + r * Math.cos(angle), y: H / 2 + r * Math.sin(angle) };
  });
  return at;
}

/** A line from one node's rim to the other's, so the arrowhead shows. */
function edgeLine(a, b) {
  const dx = b.x - a.x;
  const dy = b.y - a.y;
  const len = Math.hypot(dx, dy) || 1;
  const [ux, uy] = [dx / len, dy / len];
  return { x1: a.x + ux * R, y1: a.y + uy * R, x2: b.x - ux * (R + 4), y2: b.y - uy * (R + 4) };
}

const short = (s) => (s.length > 16 ? `${s.slice(0, 15)}…` : s);
const edgeText = (e, names) => `${names[e.from] || e.from} to ${names[e.to] || e.to} (${e.kind})`;

/** The graph; its text alternative is the aria-label and the tables below it. */
function Graph({ nodes, edges, names }) {
  const at = layout(nodes);
  const summary = `${nodes.length} agents, ${edges.length} links${edges.length ? ': ' : ''}${edges.map((e) => edgeText(e, names)).join('; ')}`;
  return (
    <figure class="chart topology">
      <figcaption>Who talks to whom</figcaption>
      <svg viewBox={`0 0 ${W} ${H}`} role="img" aria-label={`Agent topology: ${summary}`}>
        <defs>
          <marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse">
            <path class="arrow" d="M0,0 L10,5 L0,10 z" />
          </marker>
        </defs>
        {edges.map((e) => {
          const a = at[e.from];
          const b = at[e.to];
          if (!a || !b) return null;
          const title = <title>{edgeText(e, names)}</title>;
          if (e.from === e.to) {
            // An agent that sent to itself: a loop above its node.
            return <path key={`${e.from}-${e.to}`} class={`edge ${e.kind}`} d={`M${a.x - 8},${a.y - R} c-24,-46 40,-46 16,0`} marker-end="url(#arrow)">{title}</path>;
          }
          return <line key={`${e.from}-${e.to}`} class={`edge ${e.kind}`} {...edgeLine(a, b)} marker-end="url(#arrow)">{title}</line>;
        })}
        {nodes.map((n) => {
          const p = at[n.id];
          return (
            <g key={n.id} class={`node ${n.state === 'Running' ? 'running' : 'stopped'}`}>
              <circle cx={p.x} cy={p.y} r={R}><title>{`${n.name}: ${n.state}, ${n.model}`}</title></circle>
              <text x={p.x} y={p.y + R + 16} text-anchor="middle">{short(n.name)}</text>
            </g>
          );
        })}
      </svg>
    </figure>
  );
}

/** `POST /api/comms/send`: one agent's message to another, answered by a turn of the receiver. */
function Send({ nodes, onSent }) {
  const [from, setFrom] = useState('');
  const [to, setTo] = useState('');
  const [message, setMessage] = useState('');
  const [answer, setAnswer] = useState(null);
  const action = useAction();
  const submit = (e) => {
    e.preventDefault();
    action.run(async () => {
      setAnswer(null);
      const r = await api('/api/comms/send', { method: 'POST', body: { from_agent_id: from, to_agent_id: to, message } });
      const name = nodes.find((n) => n.id === to)?.name || to;
      setAnswer({ name, text: r.response });
      setMessage('');
      onSent();
    });
  };
  const options = nodes.map((n) => <option key={n.id} value={n.id}>{n.name}</option>);
  return (
    <form class="panel" onSubmit={submit} aria-labelledby="send-title">
      <h2 id="send-title">Send a message between agents</h2>
      <div class="row">
        <div><label for="cs-from">From</label><select id="cs-from" value={from} onChange={(e) => setFrom(e.target.value)} required><option value="">—</option>{options}</select></div>
        <div><label for="cs-to">To</label><select id="cs-to" value={to} onChange={(e) => setTo(e.target.value)} required><option value="">—</option>{options}</select></div>
      </div>
      <label for="cs-message">Message</label>
      <textarea id="cs-message" rows={2} value={message} onInput={(e) => setMessage(e.target.value)} required />
      <ErrorText error={action.error} id="send-error" />
      <p class="notice" role="status">{action.busy ? 'Waiting for the answer…' : answer ? `${answer.name} answered: ${answer.text}` : ''}</p>
      <button type="submit" disabled={action.busy}>Send</button>
    </form>
  );
}

const eventColumns = [
  { label: 'When', get: (e) => when(e.timestamp) },
  { label: 'Kind', get: (e) => <Badge tone={e.kind === 'task_failed' ? 'bad' : e.kind === 'task_completed' ? 'ok' : ''}>{e.kind}</Badge> },
  { label: 'From', get: (e) => e.source_name || e.source_id },
  { label: 'To', get: (e) => e.target_name || e.target_id || '—' },
  { label: 'Detail', get: (e) => <span class="clip">{e.detail}</span> },
];

/** The newest events, then each new one from the stream (newest first). */
function useEvents(onNew) {
  const [events, setEvents] = useState(null);
  const [live, setLive] = useState(false);
  const [error, setError] = useState(null);
  useEffect(() => {
    const controller = new AbortController();
    const add = (list) => setEvents((es) => {
      const seen = new Set((es || []).map((e) => e.id));
      return [...list.filter((e) => !seen.has(e.id)), ...(es || [])].slice(0, 200);
    });
    // Subscribe first, then list, so an event between the two is not lost
    // (the id check drops one seen twice).
    setLive(true);
    stream('/api/comms/events/stream', {
      signal: controller.signal,
      onEvent: (name, data) => {
        if (name === 'lagged') return;
        if (data && typeof data === 'object' && data.id) {
          add([data]);
          onNew();
        }
      },
    }).catch((e) => { if (e.name !== 'AbortError') setError(e); }).finally(() => setLive(false));
    api('/api/comms/events?limit=50', { signal: controller.signal })
      .then((page) => add(page.items), (e) => { if (e.name !== 'AbortError') setError(e); });
    return () => controller.abort();
  }, []);
  return { events, live, error };
}

export function Topology() {
  const topo = useApi('/api/comms/topology', 10000);
  const events = useEvents(() => topo.reload());
  const nodes = topo.data?.nodes || [];
  const edges = topo.data?.edges || [];
  const names = Object.fromEntries(nodes.map((n) => [n.id, n.name]));
  const talksTo = (n) => edges.filter((e) => e.from === n.id).map((e) => names[e.to] || e.to).join(', ') || '—';
  return (
    <Page title="Topology">
      <ErrorText error={topo.error} />
      {topo.data && (nodes.length ? <Graph nodes={nodes} edges={edges} names={names} /> : <p class="muted">No agents yet.</p>)}
      <div class="charts">
        <Table
          caption="Agents"
          rows={topo.data && nodes}
          rowKey={(n) => n.id}
          empty="No agents yet."
          columns={[
            { label: 'Agent', get: (n) => n.name },
            { label: 'State', get: (n) => <Badge tone={n.state === 'Running' ? 'ok' : ''}>{n.state}</Badge> },
            { label: 'Model', get: (n) => n.model },
            { label: 'Sends to', get: talksTo },
          ]}
        />
        <Table
          caption="Links"
          rows={topo.data && edges}
          rowKey={(e) => `${e.from}-${e.to}`}
          empty="No agent has sent another a message yet."
          columns={[
            { label: 'From', get: (e) => names[e.from] || e.from },
            { label: 'To', get: (e) => names[e.to] || e.to },
            { label: 'Kind', get: (e) => e.kind },
          ]}
        />
      </div>
      {nodes.length > 0 && <Send nodes={nodes} onSent={() => topo.reload()} />}
      <h2>Recent comms events</h2>
      <p class="muted small">{events.live ? 'Live: new events appear at the top.' : 'Not connected.'}</p>
      <ErrorText error={events.error} />
      <Table caption="Comms events, newest first" rows={events.events} rowKey={(e) => e.id} empty="No comms events yet." columns={eventColumns} />
    </Page>
  );
}
