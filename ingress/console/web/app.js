// The console's shell: session, navigation, theme, and the pages (loaded
// on first use, so the first load stays small).
import { html, render, useState, useEffect, useMemo } from './lib.js';
import { session, setCsrf, onSignedOut } from './api.js';
import { useLocation, navigate, path, BASE } from './router.js';
import { Session, has, Loading, ErrorBox } from './ui.js';
import { SignIn } from './pages/signin.js';

// Pages by path; each module's default export is the page component.
const routes = [
  [/^\/console\/?$/, null],
  [/^\/console\/inbox$/, () => import('./pages/inbox.js')],
  [/^\/console\/inbox\/([^/]+)\/([^/]+)$/, () => import('./pages/decide.js'), ['id', 'step']],
  [/^\/console\/workflows$/, () => import('./pages/workflows.js')],
  [/^\/console\/workflows\/([^/]+)$/, () => import('./pages/run.js'), ['id']],
  [/^\/console\/submit$/, () => import('./pages/submit.js')],
  [/^\/console\/definitions$/, () => import('./pages/definitions.js')],
  [/^\/console\/definitions\/publish$/, () => import('./pages/publish.js')],
  [/^\/console\/definitions\/([^/]+)\/([^/]+)$/, () => import('./pages/definition.js'), ['name', 'version']],
  [/^\/console\/analytics$/, () => import('./pages/analytics.js')],
  [/^\/console\/catalog$/, () => import('./pages/catalog.js')],
  [/^\/console\/catalog\/([^/]+)$/, () => import('./pages/api.js'), ['name']],
  [/^\/console\/subscriptions$/, () => import('./pages/subscriptions.js')],
  [/^\/console\/keys$/, () => import('./pages/keys.js')],
  [/^\/console\/reference$/, () => import('./pages/reference.js')],
];

// The page's module starts loading at once, beside the session check.
const first = routes.find(([re, load]) => load && re.test(location.pathname));
if (first) first[1]().catch(() => { /* reported when the page is shown */ });

function match(pathname) {
  for (const [re, load, names] of routes) {
    const m = pathname.match(re);
    if (m) {
      const params = {};
      (names || []).forEach((n, i) => { params[n] = decodeURIComponent(m[i + 1]); });
      return { load, params };
    }
  }
  return null;
}

function navItems(sess) {
  const f = sess.features;
  return [
    has(sess, 'approver') && ['Inbox', path.inbox(), '/console/inbox'],
    ['Workflows', path.workflows(), '/console/workflows'],
    ['Definitions', path.definitions(), '/console/definitions'],
    f.analytics && has(sess, 'analyst') && ['Analytics', path.analytics(), '/console/analytics'],
    f.catalog && ['Catalogue', path.catalog(), '/console/catalog'],
    f.subscriptions && ['Subscriptions', path.subscriptions(), '/console/subscriptions'],
    f.keys && has(sess, 'admin') && ['Keys', path.keys(), '/console/keys'],
    ['API reference', path.reference(), '/console/reference'],
  ].filter(Boolean);
}

const themes = ['auto', 'light', 'dark'];
function ThemeToggle() {
  const [theme, setTheme] = useState(localStorage.getItem('gateflow-theme') || 'auto');
  useEffect(() => {
    if (theme === 'auto') document.documentElement.removeAttribute('data-theme');
    else document.documentElement.setAttribute('data-theme', theme);
    localStorage.setItem('gateflow-theme', theme); // the theme only; never the key
    window.dispatchEvent(new Event('gateflow-theme')); // charts redraw in the new colours
  }, [theme]);
  const next = themes[(themes.indexOf(theme) + 1) % themes.length];
  return html`<button type="button" onClick=${() => setTheme(next)} aria-label=${`Theme: ${theme}. Switch to ${next}`}>Theme: ${theme}</button>`;
}

function Layout({ sess, onSignOut, children }) {
  const loc = useLocation();
  const items = navItems(sess);
  return html`
    <a class="skip" href="#main">Skip to content</a>
    <header class="topbar">
      <a class="brand" href=${BASE}><img src=${new URL('./icon.svg', import.meta.url)} alt="" />Gateflow</a>
      <nav aria-label="Main">
        <ul class="nav">
          ${items.map(([label, href, prefix]) => html`
            <li><a href=${href} aria-current=${loc === prefix || loc.startsWith(prefix + '/') || loc.startsWith(prefix + '?') ? 'page' : undefined}>${label}</a></li>`)}
        </ul>
      </nav>
      <div class="who">
        <span title=${'key ' + sess.key_id + ' · roles ' + sess.roles.join(', ')}>
          <span class="visually-hidden">Signed in as </span>${sess.user || sess.key_id} · tenant <strong>${sess.tenant}</strong>
        </span>
        <${ThemeToggle} />
        <button type="button" id="sign-out" onClick=${onSignOut}>Sign out</button>
      </div>
    </header>
    <main id="main" tabindex="-1">${children}</main>`;
}

function Router({ sess }) {
  const loc = useLocation();
  const pathname = loc.split('?')[0];
  const route = useMemo(() => match(pathname), [pathname]);
  const [loaded, setLoaded] = useState({ route: null, Page: null, err: null });
  useEffect(() => {
    if (!route) return undefined;
    if (!route.load) {
      navigate(has(sess, 'approver') ? path.inbox() : path.workflows(), { replace: true });
      return undefined;
    }
    let live = true;
    route.load().then(
      (m) => { if (live) setLoaded({ route, Page: m.default, err: null }); },
      (err) => { if (live) setLoaded({ route, Page: null, err }); });
    return () => { live = false; };
  }, [route]);
  if (!route) return html`<h1>Not found</h1><p>No console page at <code>${pathname}</code>. <a href=${BASE}>Go to the start page</a>.</p>`;
  if (loaded.route !== route) return html`<${Loading} />`;
  if (loaded.err) return html`<${ErrorBox} error=${{ message: 'This page could not be loaded: ' + loaded.err.message, details: [] }} />`;
  const Page = loaded.Page;
  return html`<${Page} params=${route.params} key=${pathname} />`;
}

function App() {
  const [sess, setSess] = useState(undefined); // undefined: checking; null: signed out
  const [error, setError] = useState(null);

  const start = (info) => {
    setCsrf(info.csrf_token);
    setSess({ ...info, features: info.features || {} });
  };

  useEffect(() => {
    session.get().then(start, (e) => {
      if (e.status === 401) setSess(null);
      else { setError(e); setSess(null); }
    });
    return onSignedOut(() => setSess(null));
  }, []);

  const signOut = async () => {
    try { await session.signOut(); } catch { /* the cookie is cleared anyway */ }
    setCsrf('');
    setSess(null);
  };

  if (sess === undefined) return html`<${Loading} what="Checking your session" />`;
  if (sess === null) {
    return html`${error ? html`<${ErrorBox} error=${error} />` : null}<${SignIn} onSignedIn=${start} />`;
  }
  return html`
    <${Session.Provider} value=${sess}>
      <${Layout} sess=${sess} onSignOut=${signOut}><${Router} sess=${sess} /><//>
    <//>`;
}

const saved = localStorage.getItem('gateflow-theme');
if (saved === 'light' || saved === 'dark') document.documentElement.setAttribute('data-theme', saved);
render(html`<${App} />`, document.getElementById('app'));
