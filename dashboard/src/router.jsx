// A router of a dozen lines: paths from pages.json, history.pushState, and
// a hook that re-renders on navigation. Query strings carry page state.
import { useEffect, useState } from 'preact/hooks';

export function navigate(url) {
  history.pushState(null, '', url);
  dispatchEvent(new PopStateEvent('popstate'));
}

export function useLocation() {
  const [loc, setLoc] = useState(() => ({ path: location.pathname, query: new URLSearchParams(location.search) }));
  useEffect(() => {
    const update = () => setLoc({ path: location.pathname, query: new URLSearchParams(location.search) });
    addEventListener('popstate', update);
    return () => removeEventListener('popstate', update);
  }, []);
  return loc;
}

/** A link that navigates in place; modified clicks open a tab as usual. */
export function Link({ href, children, ...rest }) {
  const click = (e) => {
    if (e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
    e.preventDefault();
    navigate(href);
  };
  return <a href={href} onClick={click} {...rest}>{children}</a>;
}
