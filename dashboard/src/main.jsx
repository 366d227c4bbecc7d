import { render } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import './style.css';
import pages from './pages.json';
import { api, getKey, setKey, unauthorized } from './api.js';
import { Link, useLocation } from './router.jsx';
import { ErrorText } from './ui.jsx';
import { Overview } from './pages/overview.jsx';

/**
 * A page loaded on first visit (its own chunk under /assets/), so the first
 * load holds the shell, the sign-in form and the overview only, however
 * many pages there are.
 */
function lazyPage(load, name) {
  let View = null;
  return function Lazy(props) {
    const [error, setError] = useState(null);
    const [, loaded] = useState(false);
    useEffect(() => {
      if (View) return;
      load().then((m) => {
        View = m[name];
        loaded(true);
        // The shell focused nothing while the page was loading.
        document.getElementById('page-title')?.focus();
      }, setError);
    }, []);
    if (error) return <ErrorText error={error} />;
    return View ? <View {...props} /> : <p class="muted">Loading…</p>;
  };
}

const views = {
  '/': Overview,
  '/agents': lazyPage(() => import('./pages/agents.jsx'), 'Agents'),
  '/chat': lazyPage(() => import('./pages/chat.jsx'), 'Chat'),
  '/plugins': lazyPage(() => import('./pages/plugins.jsx'), 'Plugins'),
  '/channels': lazyPage(() => import('./pages/channels.jsx'), 'Channels'),
  '/hands': lazyPage(() => import('./pages/hands.jsx'), 'Hands'),
  '/topology': lazyPage(() => import('./pages/topology.jsx'), 'Topology'),
  '/schedules': lazyPage(() => import('./pages/schedules.jsx'), 'Schedules'),
  '/workflows': lazyPage(() => import('./pages/work.jsx'), 'Workflows'),
  '/tasks': lazyPage(() => import('./pages/work.jsx'), 'Tasks'),
  '/approvals': lazyPage(() => import('./pages/work.jsx'), 'Approvals'),
  '/usage': lazyPage(() => import('./pages/usage.jsx'), 'Usage'),
  '/audit': lazyPage(() => import('./pages/audit.jsx'), 'Audit'),
  '/logs': lazyPage(() => import('./pages/audit.jsx'), 'Logs'),
  '/settings': lazyPage(() => import('./pages/settings.jsx'), 'Settings'),
};

function Login({ onDone }) {
  const [key, setValue] = useState('');
  const [error, setError] = useState(null);
  const submit = async (e) => {
    e.preventDefault();
    setKey(key.trim());
    try {
      await api('/api/status');
      onDone();
    } catch (err) {
      setKey('');
      setError(err.status === 401 ? new Error('That key was refused.') : err);
    }
  };
  return (
    <main class="login">
      <form onSubmit={submit} aria-describedby="login-help">
        <h1>Talon</h1>
        <p id="login-help">This daemon has an API key. Enter it once; it is kept for this browser tab only.</p>
        <label for="api-key">API key</label>
        <input id="api-key" type="password" autocomplete="current-password" value={key} onInput={(e) => setValue(e.target.value)} required />
        <ErrorText error={error} />
        <button type="submit">Sign in</button>
      </form>
    </main>
  );
}

function App() {
  const { path, query } = useLocation();
  const [auth, setAuth] = useState('checking');
  const [navOpen, setNavOpen] = useState(false);
  const main = useRef(null);
  useEffect(() => {
    const onUnauthorized = () => setAuth('needed');
    unauthorized.addEventListener('401', onUnauthorized);
    api('/api/status').then(() => setAuth('ok'), (e) => setAuth(e.status === 401 ? 'needed' : 'ok'));
    return () => unauthorized.removeEventListener('401', onUnauthorized);
  }, []);
  useEffect(() => {
    const page = pages.find((p) => p.path === path);
    document.title = page ? `${page.title} · Talon` : 'Talon';
    setNavOpen(false);
    // Focus the new page's heading so keyboard and screen-reader users land on it.
    main.current?.querySelector('h1')?.focus();
  }, [path, auth]);
  if (auth === 'checking') return null;
  if (auth === 'needed') return <Login onDone={() => setAuth('ok')} />;
  const View = views[path] || Overview;
  return (
    <div class="shell">
      <a class="skip" href="#main">Skip to content</a>
      <header class="top">
        <Link href="/" class="brand">Talon</Link>
        <button class="menu" aria-expanded={navOpen} aria-controls="nav" onClick={() => setNavOpen(!navOpen)}>Menu</button>
        {getKey() && <button class="link" onClick={() => { setKey(''); setAuth('needed'); }}>Sign out</button>}
      </header>
      <nav id="nav" aria-label="Pages" class={navOpen ? 'open' : ''}>
        <ul>
          {pages.map((p) => (
            <li key={p.path}><Link href={p.path} aria-current={p.path === path ? 'page' : undefined}>{p.title}</Link></li>
          ))}
        </ul>
      </nav>
      <main id="main" ref={main}>
        <View query={query} />
      </main>
    </div>
  );
}

render(<App />, document.getElementById('app'));
