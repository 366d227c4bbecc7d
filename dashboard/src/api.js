// The API client: one place that adds the key, reads errors and parses SSE.
// The key lives in sessionStorage (this tab, until it closes), never in a URL.

const KEY = 'talon.api_key';

export const getKey = () => sessionStorage.getItem(KEY) || '';
export const setKey = (key) =>
  key ? sessionStorage.setItem(KEY, key) : sessionStorage.removeItem(KEY);

/** An error answered by the API: its status and its `error` text. */
export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

// The shell listens for this to show the login form.
export const unauthorized = new EventTarget();

function headers(json) {
  const h = {};
  const key = getKey();
  if (key) h.Authorization = `Bearer ${key}`;
  if (json) h['Content-Type'] = 'application/json';
  return h;
}

async function failure(res) {
  let message = `${res.status} ${res.statusText}`;
  try {
    const body = await res.json();
    if (body && body.error) message = typeof body.error === 'string' ? body.error : body.error.message;
  } catch {
    // A body that is not JSON keeps the status line as the message.
  }
  if (res.status === 401) unauthorized.dispatchEvent(new Event('401'));
  return new ApiError(res.status, message);
}

/** Calls the API; resolves to the JSON body (or null), rejects with ApiError. */
export async function api(path, { method = 'GET', body, signal } = {}) {
  const res = await fetch(path, {
    method,
    headers: headers(body !== undefined),
    body: body === undefined ? undefined : JSON.stringify(body),
    signal,
  });
  if (!res.ok) throw await failure(res);
  const text = await res.text();
  return text ? JSON.parse(text) : null;
}

/**
 * Reads a server-sent event stream (GET, or POST with a JSON body) and calls
 * onEvent(name, data) for each event; resolves when the stream ends.
 * EventSource cannot send a key or a body, hence fetch.
 */
export async function stream(path, { body, signal, onEvent }) {
  const res = await fetch(path, {
    method: body === undefined ? 'GET' : 'POST',
    headers: headers(body !== undefined),
    body: body === undefined ? undefined : JSON.stringify(body),
    signal,
  });
  if (!res.ok) throw await failure(res);
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += value;
    let cut;
    while ((cut = buffer.indexOf('\n\n')) >= 0) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      let name = 'message';
      const data = [];
      for (const line of block.split('\n')) {
        if (line.startsWith('event:')) name = line.slice(6).trim();
        else if (line.startsWith('data:')) data.push(line.slice(5).replace(/^ /, ''));
      }
      if (!data.length) continue;
      let parsed;
      try {
        parsed = JSON.parse(data.join('\n'));
      } catch {
        parsed = data.join('\n');
      }
      onEvent(name, parsed);
    }
  }
}

/**
 * Uploads a file's bytes to an agent (`POST /api/agents/{id}/upload`);
 * resolves to `{file_id, filename, content_type, size}`. Header values must
 * be printable ASCII, so other characters of the name become `_`.
 */
export async function upload(agentId, file) {
  const h = headers(false);
  h['X-Filename'] = file.name.replace(/[^\x20-\x7e]/g, '_') || 'upload';
  h['Content-Type'] = file.type || 'application/octet-stream';
  const res = await fetch(`/api/agents/${agentId}/upload`, { method: 'POST', headers: h, body: file });
  if (!res.ok) throw await failure(res);
  return res.json();
}
