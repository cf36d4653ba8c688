// Shared pieces of the pages.
import { html, useState, useEffect, useRef, useCallback, useContext, createContext } from './lib.js';
import { api } from './api.js';
import { fmtTime, fmtAgo } from './fmt.js';

/** The signed-in session: tenant, key id, user, roles, features. */
export const Session = createContext(null);

/** has reports whether the session's key holds role (admin holds every role). */
export function has(sess, role) {
  return !!sess && (sess.roles.includes(role) || sess.roles.includes('admin'));
}

export function useSession() { return useContext(Session); }

/** useApi loads path (null: nothing) and reloads when it changes. */
export function useApi(path, { poll = 0 } = {}) {
  const [state, setState] = useState({ data: undefined, error: null, loading: !!path });
  const seq = useRef(0);
  const load = useCallback(async (quiet) => {
    if (!path) return;
    const n = ++seq.current;
    if (!quiet) setState((s) => ({ ...s, loading: true }));
    try {
      const data = await api(path);
      if (n === seq.current) setState({ data, error: null, loading: false });
    } catch (error) {
      if (n === seq.current) setState((s) => ({ data: quiet ? s.data : undefined, error, loading: false }));
    }
  }, [path]);
  useEffect(() => {
    load(false);
    if (!poll) return undefined;
    const t = setInterval(() => { if (!document.hidden) load(true); }, poll);
    return () => clearInterval(t);
  }, [load, poll]);
  return { ...state, reload: () => load(true) };
}

/** Page sets the document title and moves focus to the page heading, so
 *  that screen readers announce the new page after navigation. */
export function Page({ title, actions, children }) {
  const h1 = useRef(null);
  useEffect(() => {
    document.title = title + ' · Gateflow';
    if (h1.current && document.activeElement === document.body) h1.current.focus({ preventScroll: true });
  }, [title]);
  return html`
    <div class="spread"><h1 tabindex="-1" ref=${h1}>${title}</h1>${actions ? html`<div class="row">${actions}</div>` : null}</div>
    ${children}`;
}

export function Loading({ what = 'Loading' }) {
  return html`<p class="muted" role="status" aria-live="polite">${what}…</p>`;
}

/** ErrorBox shows an API error plainly, with each located problem. */
export function ErrorBox({ error, title }) {
  if (!error) return null;
  const details = (error.details || []).filter((d) => d.path || d.message);
  return html`
    <div class="alert error" role="alert">
      <strong>${title || explain(error)}</strong>
      ${title ? html` ${explain(error)}` : null}
      ${details.length > 1 || (details.length === 1 && !error.message.includes(details[0].message)) ? html`
        <ul>${details.map((d) => html`<li><code>${d.path}</code> ${d.message}</li>`)}</ul>` : null}
      ${error.code && error.code !== 'network' ? html`<div class="muted small">code: <code>${error.code}</code>${error.status ? ` · HTTP ${error.status}` : ''}</div>` : null}
    </div>`;
}

const plain = {
  forbidden: 'Your API key does not have the role this needs.',
  rate_limited: 'Too many requests for your key right now; wait a few seconds.',
  temporal_unavailable: 'Gateflow cannot reach Temporal at the moment; try again shortly.',
  analytics_unavailable: 'The analytics store (ClickHouse) did not answer; try again shortly.',
};

/** explain turns an API error into a sentence for people. */
export function explain(error) {
  if (!error) return '';
  return plain[error.code] ? `${plain[error.code]} (${error.message})` : error.message;
}

export function StateBadge({ state }) {
  if (!state) return null;
  return html`<span class=${'badge st-' + state}>${state.replace('-', ' ')}</span>`;
}

/** Time shows a relative time with the exact one on hover and for assistive tech. */
export function Time({ t, abs = false }) {
  if (!t) return html`<span class="muted">–</span>`;
  return html`<time datetime=${t} title=${fmtTime(t)}>${abs ? fmtTime(t) : fmtAgo(t)}</time>`;
}

export function JsonView({ value, label }) {
  if (value === undefined || value === null) return html`<p class="muted small">none</p>`;
  return html`<pre class="code wrap" aria-label=${label || 'JSON'} tabindex="0">${JSON.stringify(value, null, 2)}</pre>`;
}

export function Field({ id, label, hint, error, children }) {
  return html`
    <div class=${'field' + (error ? ' invalid' : '')}>
      <label for=${id}>${label}${hint ? html` <span class="hint">${hint}</span>` : null}</label>
      ${children}
      ${error ? html`<div class="field-error" id=${id + '-error'} role="alert">${error}</div>` : null}
    </div>`;
}

/** Confirm is an inline two-step button: the first press asks, the second acts. */
export function Confirm({ label, question, confirmLabel, onConfirm, kind = 'danger', disabled }) {
  const [asking, setAsking] = useState(false);
  const [busy, setBusy] = useState(false);
  if (!asking) return html`<button type="button" class=${kind} disabled=${disabled} onClick=${() => setAsking(true)}>${label}</button>`;
  return html`
    <span class="row" role="group" aria-label=${question}>
      <span>${question}</span>
      <button type="button" class=${kind} disabled=${busy} onClick=${async () => { setBusy(true); try { await onConfirm(); } finally { setBusy(false); setAsking(false); } }}>${confirmLabel}</button>
      <button type="button" onClick=${() => setAsking(false)}>Keep it</button>
    </span>`;
}

/** Copy copies text to the clipboard. */
export function Copy({ text, label = 'Copy' }) {
  const [done, setDone] = useState(false);
  return html`<button type="button" onClick=${async () => { try { await navigator.clipboard.writeText(text); setDone(true); setTimeout(() => setDone(false), 1500); } catch { /* no clipboard */ } }}>${done ? 'Copied' : label}</button>`;
}
