// Small shared pieces: data loading, errors, tables, time formatting.
import { useCallback, useEffect, useState } from 'preact/hooks';
import { api } from './api.js';

/** Loads `path` (or several) and reloads on demand or every `every` ms. */
export function useApi(path, every) {
  const [state, setState] = useState({ data: null, error: null });
  const load = useCallback(async () => {
    if (!path) return;
    try {
      const data = Array.isArray(path) ? await Promise.all(path.map((p) => api(p))) : await api(path);
      setState({ data, error: null });
    } catch (error) {
      setState((s) => ({ data: s.data, error }));
    }
  }, [Array.isArray(path) ? path.join('|') : path]);
  useEffect(() => {
    load();
    if (!every) return undefined;
    const t = setInterval(load, every);
    return () => clearInterval(t);
  }, [load, every]);
  return { ...state, reload: load };
}

/** Runs an action, keeping its error (shown inline) and a busy flag. */
export function useAction() {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState(null);
  const run = async (fn) => {
    setBusy(true);
    setError(null);
    try {
      return await fn();
    } catch (e) {
      setError(e);
      return undefined;
    } finally {
      setBusy(false);
    }
  };
  return { busy, error, run, setError };
}

export function ErrorText({ error, id }) {
  if (!error) return null;
  return <p class="error" role="alert" id={id}>{error.message || String(error)}</p>;
}

export function Page({ title, children, actions }) {
  return (
    <section aria-labelledby="page-title">
      <header class="page-head">
        <h1 id="page-title" tabIndex={-1}>{title}</h1>
        {actions}
      </header>
      {children}
    </section>
  );
}

/** A table of `rows` with `columns` [{label, get(row)}]; `empty` when none. */
export function Table({ caption, columns, rows, empty = 'Nothing yet.', rowKey }) {
  if (!rows) return <p class="muted">Loading…</p>;
  if (!rows.length) return <p class="muted">{empty}</p>;
  return (
    <div class="table-wrap">
      <table>
        {caption && <caption>{caption}</caption>}
        <thead>
          <tr>{columns.map((c) => <th scope="col" key={c.label}>{c.label}</th>)}</tr>
        </thead>
        <tbody>
          {rows.map((row, i) => (
            <tr key={rowKey ? rowKey(row) : i}>{columns.map((c) => <td key={c.label}>{c.get(row)}</td>)}</tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

export const when = (t) => (t ? new Date(t).toLocaleString() : '—');
export const usd = (n) => `$${(n || 0).toFixed(4)}`;
export const Badge = ({ children, tone }) => <span class={`badge ${tone || ''}`}>{children}</span>;
