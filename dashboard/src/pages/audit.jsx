import { useEffect, useState } from 'preact/hooks';
import { api, stream } from '../api.js';
import { Badge, ErrorText, Page, Table, useAction, useApi, when } from '../ui.jsx';

const columns = [
  { label: 'When', get: (e) => when(e.timestamp) },
  { label: 'Event', get: (e) => e.event_type },
  { label: 'Outcome', get: (e) => <Badge tone={e.outcome === 'ok' ? 'ok' : 'bad'}>{e.outcome}</Badge> },
  { label: 'Details', get: (e) => <span class="clip">{e.details}</span> },
];

export function Audit() {
  const recent = useApi('/api/audit/recent?n=50', 10000);
  const action = useAction();
  const [result, setResult] = useState(null);
  const verify = () => action.run(async () => setResult(await api('/api/audit/verify')));
  return (
    <Page title="Audit" actions={<button onClick={verify} disabled={action.busy}>Verify the chain</button>}>
      <ErrorText error={action.error || recent.error} />
      {result && (
        <p class={`verdict ${result.valid ? 'ok' : 'bad'}`} role="status">
          {result.valid
            ? `Chain valid: ${result.chain_length} entries, tip ${result.tip_hash.slice(0, 16)}…`
            : `Chain broken at entry ${result.first_broken} of ${result.chain_length}.`}
        </p>
      )}
      <Table caption="Recent entries" rows={recent.data?.entries} rowKey={(e) => e.id} columns={columns} />
    </Page>
  );
}

export function Logs() {
  const [entries, setEntries] = useState([]);
  const [error, setError] = useState(null);
  const [live, setLive] = useState(false);
  useEffect(() => {
    const controller = new AbortController();
    setLive(true);
    stream('/api/logs/stream', {
      signal: controller.signal,
      onEvent: (_name, data) => {
        if (data && typeof data === 'object' && data.event_type) setEntries((es) => [data, ...es].slice(0, 500));
      },
    }).catch((e) => { if (e.name !== 'AbortError') setError(e); }).finally(() => setLive(false));
    return () => controller.abort();
  }, []);
  return (
    <Page title="Logs">
      <p role="status">{live ? 'Live: new entries appear at the top.' : 'Not connected.'}</p>
      <ErrorText error={error} />
      <Table caption="Audit trail, newest first" rows={entries} rowKey={(e) => e.id} columns={columns} />
    </Page>
  );
}
