import { useEffect, useRef, useState } from 'preact/hooks';
import { api, stream, upload } from '../api.js';
import { navigate } from '../router.jsx';
import { ErrorText, Page, useApi, when } from '../ui.jsx';

// A stored message's text: a string, or the text parts of a content array.
function text(content) {
  if (typeof content === 'string') return content;
  if (Array.isArray(content)) return content.map((p) => p.text || p.content || '').filter(Boolean).join('\n');
  return content ? JSON.stringify(content) : '';
}

function ToolCall({ call }) {
  return (
    <details class={`tool ${call.is_error ? 'failed' : ''}`}>
      <summary>Tool <code>{call.tool}</code> {call.result === undefined ? '…running' : call.is_error ? 'failed' : 'done'}</summary>
      {call.input !== undefined && <><h4>Arguments</h4><pre>{JSON.stringify(call.input, null, 2)}</pre></>}
      {call.result !== undefined && <><h4>Result</h4><pre>{call.result}</pre></>}
    </details>
  );
}

function Message({ m }) {
  return (
    <li class={`msg ${m.role}`}>
      <span class="who">{m.role === 'user' ? 'You' : m.role === 'assistant' ? 'Agent' : m.role}</span>
      {m.tools?.map((c) => <ToolCall key={c.id} call={c} />)}
      {m.text && <div class="text">{m.text}</div>}
      {m.status && m.status !== 'completed' && <p class="muted">Turn {m.status}.</p>}
    </li>
  );
}

export function Chat({ query }) {
  const agentId = query.get('agent') || '';
  const agents = useApi('/api/agents');
  const sessions = useApi(agentId ? `/api/agents/${agentId}/sessions` : null);
  const [sessionId, setSessionId] = useState(null);
  const [messages, setMessages] = useState([]);
  const [draft, setDraft] = useState('');
  const [running, setRunning] = useState(false);
  const [phase, setPhase] = useState('');
  const [error, setError] = useState(null);
  const [attachments, setAttachments] = useState([]);
  const [dragging, setDragging] = useState(false);
  const controller = useRef(null);
  const list = useRef(null);
  const current = sessionId || sessions.data?.current_session_id || null;

  useEffect(() => { setSessionId(null); setMessages([]); setAttachments([]); }, [agentId]);
  useEffect(() => {
    if (!agentId || !current || running) return;
    api(`/api/sessions/${current}`).then(
      (s) => setMessages((s.messages || []).filter((m) => m.role === 'user' || m.role === 'assistant')
        .map((m) => ({ role: m.role, text: text(m.content) })).filter((m) => m.text)),
      setError,
    );
  }, [agentId, current]);
  useEffect(() => { list.current?.lastElementChild?.scrollIntoView({ block: 'end' }); }, [messages]);

  const update = (fn) => setMessages((ms) => { const copy = ms.slice(); copy[copy.length - 1] = fn({ ...copy[copy.length - 1] }); return copy; });

  const send = async (e) => {
    e.preventDefault();
    const message = draft.trim();
    if (!message || running) return;
    setError(null);
    setDraft('');
    const files = attachments;
    setAttachments([]);
    let sid = current;
    try {
      if (!sid) {
        const made = await api(`/api/agents/${agentId}/sessions`, { method: 'POST', body: {} });
        sid = made.session_id;
        setSessionId(sid);
        sessions.reload();
      }
    } catch (err) { setError(err); return; }
    const shown = files.length ? `${message}\n[attached: ${files.map((f) => f.filename).join(', ')}]` : message;
    setMessages((ms) => [...ms, { role: 'user', text: shown }, { role: 'assistant', text: '', tools: [] }]);
    setRunning(true);
    controller.current = new AbortController();
    try {
      await stream(`/api/agents/${agentId}/message/stream`, {
        body: { message, session_id: sid, ...(files.length ? { attachments: files.map((f) => ({ file_id: f.file_id })) } : {}) },
        signal: controller.current.signal,
        onEvent: (name, data) => {
          if (name === 'chunk') update((m) => ({ ...m, text: m.text + data.content }));
          else if (name === 'tool_use') update((m) => ({ ...m, tools: [...m.tools, { id: data.id, tool: data.tool }] }));
          else if (name === 'tool_result') update((m) => ({ ...m, tools: m.tools.map((c) => (c.id === data.id ? { ...c, ...data } : c)) }));
          else if (name === 'phase') { setPhase(data.phase); if (data.phase === 'error') setError(new Error(data.detail)); }
          else if (name === 'done') update((m) => ({ ...m, status: data.status, text: m.text || data.response || '' }));
        },
      });
    } catch (err) {
      if (err.name !== 'AbortError') setError(err);
    } finally {
      setRunning(false);
      setPhase('');
      sessions.reload();
    }
  };

  // Files dropped on the conversation or picked with the button are uploaded
  // at once and go with the next message.
  const attach = async (fileList) => {
    setError(null);
    for (const file of Array.from(fileList)) {
      try {
        const made = await upload(agentId, file);
        setAttachments((a) => [...a, made]);
      } catch (err) { setError(err); }
    }
  };
  const drop = (e) => { e.preventDefault(); setDragging(false); attach(e.dataTransfer.files); };

  const interrupt = () => {
    if (current) api(`/api/agents/${agentId}/sessions/${current}/interrupt`, { method: 'POST' }).catch(setError);
  };
  const newSession = async () => {
    try {
      const made = await api(`/api/agents/${agentId}/sessions`, { method: 'POST', body: {} });
      setSessionId(made.session_id);
      setMessages([]);
      sessions.reload();
    } catch (err) { setError(err); }
  };
  const switchTo = async (sid) => {
    try {
      await api(`/api/agents/${agentId}/sessions/${sid}/switch`, { method: 'POST' });
      setSessionId(sid);
    } catch (err) { setError(err); }
  };

  return (
    <Page title="Chat">
      <div class="filters">
        <label for="chat-agent">Agent</label>
        <select id="chat-agent" value={agentId} onChange={(e) => navigate(`/chat?agent=${e.target.value}`)}>
          <option value="">choose an agent</option>
          {(agents.data?.items || []).map((a) => <option key={a.id} value={a.id}>{a.name}</option>)}
        </select>
      </div>
      {agentId && (
        <div class="chat">
          <aside aria-label="Sessions" class="sessions">
            <h2>Sessions</h2>
            <button onClick={newSession} disabled={running}>New session</button>
            <ul>
              {(sessions.data?.items || []).map((s) => (
                <li key={s.id}>
                  <button class={`link ${s.id === current ? 'current' : ''}`} aria-current={s.id === current ? 'true' : undefined}
                    disabled={running} onClick={() => switchTo(s.id)}>
                    {s.label || when(s.created_at)} · {s.turns} turns
                  </button>
                </li>
              ))}
            </ul>
          </aside>
          <div class={`conversation ${dragging ? 'dragging' : ''}`} onDragOver={(e) => { e.preventDefault(); setDragging(true); }}
            onDragLeave={() => setDragging(false)} onDrop={drop}>
            <ol class="messages" ref={list} aria-live="polite" aria-label="Messages">
              {messages.map((m, i) => <Message key={i} m={m} />)}
            </ol>
            {running && <p class="muted" role="status">{phase || 'working'}…</p>}
            <ErrorText error={error} />
            {attachments.length > 0 && (
              <ul class="attachments" aria-label="Attachments">
                {attachments.map((f) => (
                  <li key={f.file_id}>{f.filename} <span class="muted small">{Math.ceil(f.size / 1024)} KiB</span>{' '}
                    <button type="button" class="link" aria-label={`Remove ${f.filename}`} onClick={() => setAttachments((a) => a.filter((x) => x.file_id !== f.file_id))}>remove</button>
                  </li>
                ))}
              </ul>
            )}
            <form class="composer" onSubmit={send}>
              <label class="attach">
                <input type="file" multiple class="sr-only" aria-label="Attach files" onChange={(e) => { attach(e.target.files); e.target.value = ''; }} />
                <span aria-hidden="true">Attach</span>
              </label>
              <label for="chat-input" class="sr-only">Message</label>
              <textarea id="chat-input" rows={2} value={draft} placeholder="Message (Enter sends, Shift+Enter for a new line)"
                onInput={(e) => setDraft(e.target.value)}
                onKeyDown={(e) => { if (e.key === 'Enter' && !e.shiftKey) { e.preventDefault(); e.currentTarget.form.requestSubmit(); } }} />
              {running ? <button type="button" class="danger" onClick={interrupt}>Interrupt</button> : <button type="submit">Send</button>}
            </form>
          </div>
        </div>
      )}
    </Page>
  );
}
