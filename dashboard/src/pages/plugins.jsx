import { useState } from 'preact/hooks';
import { api } from '../api.js';
import { Badge, ErrorText, Page, Table, useAction, useApi } from '../ui.jsx';

const perms = (p) => {
  if (!p) return '—';
  const parts = [];
  if (p.filesystem && p.filesystem !== 'none') parts.push(`fs: ${p.filesystem}`);
  for (const k of ['network', 'memory', 'env']) if (p[k]?.length) parts.push(`${k}: ${p[k].join(', ')}`);
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
        </div>
      </div>
      <ErrorText error={action.error} />
      <button type="submit" disabled={action.busy || !file}>Install</button>
    </form>
  );
}

export function Plugins() {
  const plugins = useApi('/api/plugins', 5000);
  const action = useAction();
  const [notice, setNotice] = useState('');
  const toggle = (p) => action.run(async () => {
    await api(`/api/plugins/${encodeURIComponent(p.name)}/${p.enabled ? 'disable' : 'enable'}`, { method: 'POST' });
    setNotice(`${p.name} ${p.enabled ? 'disabled' : 'enabled'}.`);
    plugins.reload();
  });
  const ms = (us, n) => (n ? `${(us / n / 1000).toFixed(1)} ms` : '—');
  return (
    <Page title="Plugins">
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
          { label: 'Granted', get: (p) => perms(p.permissions?.granted) },
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
