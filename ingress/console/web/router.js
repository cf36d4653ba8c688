// Client-side navigation under /console: links are plain <a href>, so they
// work with the keyboard, open in new tabs and survive a reload (the server
// answers every page path with the same shell).
import { useState, useEffect } from './lib.js';

export const BASE = '/console';
const listeners = new Set();
const notify = () => listeners.forEach((fn) => fn());

export function navigate(to, { replace = false } = {}) {
  if (replace) history.replaceState(null, '', to);
  else history.pushState(null, '', to);
  notify();
}

window.addEventListener('popstate', notify);

document.addEventListener('click', (e) => {
  const a = e.target.closest && e.target.closest('a[href]');
  if (!a || e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
  if (a.target || a.hasAttribute('download') || a.dataset.external !== undefined) return;
  const u = new URL(a.href, location.href);
  if (u.origin !== location.origin) return;
  if (u.pathname !== BASE && !u.pathname.startsWith(BASE + '/')) return;
  if (u.pathname.startsWith(BASE + '/api/') || u.pathname.startsWith(BASE + '/assets/')) return;
  e.preventDefault();
  if (u.pathname + u.search !== location.pathname + location.search) navigate(u.pathname + u.search + u.hash);
});

/** The current path and query; re-renders on navigation. */
export function useLocation() {
  const get = () => location.pathname + location.search;
  const [loc, set] = useState(get());
  useEffect(() => {
    const fn = () => set(get());
    listeners.add(fn);
    return () => listeners.delete(fn);
  }, []);
  return loc;
}

/** The query parameters of the current location. */
export function params() {
  return Object.fromEntries(new URLSearchParams(location.search));
}

/** Replaces the query (filters belong in the URL: reload and share keep them). */
export function setParams(obj, { replace = false } = {}) {
  const s = new URLSearchParams();
  for (const [k, v] of Object.entries(obj)) if (v !== undefined && v !== null && v !== '') s.set(k, v);
  const str = s.toString();
  navigate(location.pathname + (str ? '?' + str : ''), { replace });
}

export const path = {
  inbox: () => `${BASE}/inbox`,
  decide: (id, step) => `${BASE}/inbox/${encodeURIComponent(id)}/${encodeURIComponent(step)}`,
  workflows: () => `${BASE}/workflows`,
  run: (id) => `${BASE}/workflows/${encodeURIComponent(id)}`,
  submit: (name, version) => `${BASE}/submit` + (name ? `?definition=${encodeURIComponent(name)}` + (version ? `&version=${encodeURIComponent(version)}` : '') : ''),
  definitions: () => `${BASE}/definitions`,
  definition: (name, version) => `${BASE}/definitions/${encodeURIComponent(name)}/${encodeURIComponent(version)}`,
  publish: (name, version) => `${BASE}/definitions/publish` + (name ? `?from=${encodeURIComponent(name)}@${encodeURIComponent(version)}` : ''),
  analytics: () => `${BASE}/analytics`,
  catalog: () => `${BASE}/catalog`,
  api: (name) => `${BASE}/catalog/${encodeURIComponent(name)}`,
  subscriptions: () => `${BASE}/subscriptions`,
  keys: () => `${BASE}/keys`,
  reference: () => `${BASE}/reference`,
};
