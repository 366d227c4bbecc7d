import { useState } from 'preact/hooks';
import { api } from '../api.js';
import { ErrorText, Page, useAction, useApi } from '../ui.jsx';

export function Settings() {
  const config = useApi('/api/config');
  const [path, setPath] = useState('');
  const [value, setValue] = useState('');
  const [notice, setNotice] = useState('');
  const action = useAction();
  const submit = (e) => {
    e.preventDefault();
    // A value that parses as JSON (numbers, booleans, arrays) goes as such; anything else as a string.
    let parsed = value;
    try { parsed = JSON.parse(value); } catch { /* a plain string */ }
    action.run(async () => {
      await api('/api/config/set', { method: 'POST', body: { path: path.trim(), value: parsed } });
      setNotice(`Saved ${path.trim()}.`);
      config.reload();
    });
  };
  return (
    <Page title="Settings">
      <form class="panel" onSubmit={submit} aria-labelledby="set-title">
        <h2 id="set-title">Change a setting</h2>
        <div class="row">
          <div><label for="set-path">Key (dotted)</label><input id="set-path" value={path} placeholder="budget.daily_limit_usd" onInput={(e) => setPath(e.target.value)} required /></div>
          <div><label for="set-value">Value (JSON or text)</label><input id="set-value" value={value} onInput={(e) => setValue(e.target.value)} aria-describedby={action.error ? 'set-error' : undefined} /></div>
        </div>
        <ErrorText error={action.error} id="set-error" />
        <p class="notice" role="status">{notice}</p>
        <button type="submit" disabled={action.busy}>Save</button>
      </form>
      <h2>Running configuration</h2>
      <p class="muted small">Secrets are redacted.</p>
      <ErrorText error={config.error} />
      <pre class="config" tabIndex={0} aria-label="Running configuration">{config.data ? JSON.stringify(config.data, null, 2) : 'Loading…'}</pre>
    </Page>
  );
}
