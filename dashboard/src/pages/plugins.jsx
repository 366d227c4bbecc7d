import { useState } from 'preact/hooks';
import { api } from '../api.js';
import { Badge, ErrorText, Page, Table, useAction, useApi } from '../ui.jsx';

const perms = (p) => {
  if (!p) return '—';
  const parts = [];
  if (p.filesystem && p.filesystem !== 'none') parts.push(`fs: ${p.filesystem}`);
  for (const k of ['network', 'memory', 'env', 'sockets']) if (p[k]?.length) parts.push(`${k}: ${p[k].join(', ')}`);
  return parts.join('; ') || 'none';
};

// Reads a file as base64 without building a giant string by hand.
const base64 = (file) => new Promise((resolve, reject) => {
  const reader = new FileReader();
  reader.onload = () => resolve(String(reader.result).split(',', 2)[1] || '');
  reader.onerror = () => reject(reader.error);
  reader.readAsDataURL(file);
});

function Install({ onInstalled }) {
  const [file, setFile] = useState(null);
  const [grant, setGrant] = useState('none');
  const action = useAction();
  const submit = (e) => {
    e.preventDefault();
    if (!file) return;
    action.run(async () => {
      const made = await api('/api/plugins/install', { method: 'POST', body: { package: await base64(file), grant } });
      e.target.reset();
      setFile(null);
      onInstalled(made);
    });
  };
  return (
    <form class="panel" onSubmit={submit} aria-labelledby="install-title">
      <h2 id="install-title">Install a package</h2>
      <div class="row">
        <div>
          <label for="package-file">Package file</label>
          <input id="package-file" type="file" aria-describedby="package-help" onChange={(e) => setFile(e.target.files[0] || null)} required />
          <p id="package-help" class="muted small">Made by <code>talon plugin pack</code>, signed by a key in <code>plugins.trusted_keys</code>.</p>
        </div>
        <div>
          <label for="package-grant">Grant</label>
          <select id="package-grant" value={grant} onChange={(e) => setGrant(e.target.value)}>
            <option value="none">nothing (grant later)</option>
            <option value="all">everything it requests</option>
          </select>
          <p class="muted small">To grant part of the request, install with nothing, then choose with <em>Change</em> under Granted.</p>
        </div>
      </div>
      <ErrorText error={action.error} />
      <button type="submit" disabled={action.busy || !file}>Install</button>
    </form>
  );
}

const KINDS = ['network', 'memory', 'env', 'sockets'];

/**
 * Grants part of what a plugin requests: one checkbox per requested item.
 * A requested `*` socket ("the server the operator chooses") is never
 * granted as such; the operator names the `host:port` pairs instead.
 */
function Grants({ plugin, onDone }) {
  const req = plugin.permissions?.requested || {};
  const had = plugin.permissions?.granted || {};
  const [fs, setFs] = useState(had.filesystem === 'workspace');
  const [picked, setPicked] = useState(() => Object.fromEntries(KINDS.map((k) => [k, (had[k] || []).filter((v) => (req[k] || []).includes(v))])));
  const chosenSockets = (had.sockets || []).filter((v) => !(req.sockets || []).includes(v));
  const [sockets, setSockets] = useState(chosenSockets.join('\n'));
  const action = useAction();
  const flip = (k, v) => setPicked({ ...picked, [k]: picked[k].includes(v) ? picked[k].filter((x) => x !== v) : [...picked[k], v] });
  const submit = (e) => {
    e.preventDefault();
    const grant = {};
    for (const k of KINDS) grant[k] = [...picked[k]];
    grant.sockets = [...grant.sockets, ...sockets.split('\n').map((x) => x.trim()).filter(Boolean)];
    if (fs) grant.filesystem = 'workspace';
    action.run(async () => {
      await api(`/api/plugins/${encodeURIComponent(plugin.name)}/grants`, { method: 'PUT', body: { grant } });
      onDone(`Saved ${plugin.name}'s grants.`);
    });
  };
  const items = KINDS.flatMap((k) => (req[k] || []).filter((v) => !(k === 'sockets' && v === '*')).map((v) => [k, v]));
  return (
    <form class="panel" onSubmit={submit} aria-labelledby="grants-title">
      <h2 id="grants-title">Grants of {plugin.name}</h2>
      <fieldset class="tools">
        <legend>Requested: check what to grant</legend>
        {req.filesystem === 'workspace' && <label><input type="checkbox" checked={fs} onChange={(e) => setFs(e.target.checked)} /> filesystem: workspace</label>}
        {items.map(([k, v]) => (
          <label key={`${k}-${v}`}><input type="checkbox" checked={picked[k].includes(v)} onChange={() => flip(k, v)} /> {k}: {v}</label>
        ))}
        {!items.length && req.filesystem !== 'workspace' && !(req.sockets || []).includes('*') && <span class="muted">It requests nothing.</span>}
      </fieldset>
      {(req.sockets || []).includes('*') && (
        <div>
          <label for="grant-sockets">Servers it may connect to (host:port or ip:port, one per line)</label>
          <textarea id="grant-sockets" rows={2} value={sockets} onInput={(e) => setSockets(e.target.value)} />
        </div>
      )}
      <ErrorText error={action.error} />
      <span class="actions">
        <button type="submit" disabled={action.busy}>Save grants</button>
        <button type="button" class="link" onClick={() => onDone('')}>Cancel</button>
      </span>
    </form>
  );
}

export function Plugins() {
  const plugins = useApi('/api/plugins', 5000);
  const action = useAction();
  const [notice, setNotice] = useState('');
  const [granting, setGranting] = useState(null);
  const toggle = (p) => action.run(async () => {
    await api(`/api/plugins/${encodeURIComponent(p.name)}/${p.enabled ? 'disable' : 'enable'}`, { method: 'POST' });
    setNotice(`${p.name} ${p.enabled ? 'disabled' : 'enabled'}.`);
    plugins.reload();
  });
  const ms = (us, n) => (n ? `${(us / n / 1000).toFixed(1)} ms` : '—');
  return (
    <Page title="Plugins">
      {granting && <Grants key={granting.name} plugin={granting} onDone={(text) => { setGranting(null); if (text) setNotice(text); plugins.reload(); }} />}
      <Install onInstalled={(p) => { setNotice(`Installed ${p.name || 'the package'}.`); plugins.reload(); }} />
      <p class="notice" role="status">{notice}</p>
      <ErrorText error={action.error || plugins.error} />
      <Table
        caption="Installed plugins"
        rows={plugins.data?.plugins}
        rowKey={(p) => p.name}
        columns={[
          { label: 'Plugin', get: (p) => <><strong>{p.name}</strong> <span class="muted">{p.version}</span><br /><span class="muted small">{p.description}</span></> },
          { label: 'Status', get: (p) => <Badge tone={p.enabled && p.status === 'loaded' ? 'ok' : p.error ? 'bad' : ''}>{p.enabled ? p.status : 'disabled'}</Badge> },
          { label: 'Requested', get: (p) => perms(p.permissions?.requested) },
          { label: 'Granted', get: (p) => <>{perms(p.permissions?.granted)} <button class="small" onClick={() => setGranting(p)} aria-label={`Change ${p.name}'s grants`}>Change</button></> },
          { label: 'Calls', get: (p) => `${p.stats?.calls ?? 0} (${p.stats?.errors ?? 0} failed)` },
          { label: 'Per call', get: (p) => (p.stats?.calls ? `${ms(p.stats.wall_us_total, p.stats.calls)}, ${Math.round(p.stats.fuel_total / p.stats.calls)} fuel, peak ${Math.round(p.stats.peak_memory_max / 1024)} KiB` : '—') },
          { label: 'Enabled', get: (p) => (
            <button class="small" role="switch" aria-checked={p.enabled ? 'true' : 'false'} aria-label={`${p.name} enabled`} onClick={() => toggle(p)}>
              {p.enabled ? 'On' : 'Off'}
            </button>
          ) },
        ]}
      />
    </Page>
  );
}
