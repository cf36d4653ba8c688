// The REST API, as the signed-in user: every call goes to /console/api/v1/...,
// which the server hands to the API with the session's key. The key itself
// never reaches this page.

const BASE = '/console';
let csrf = '';
const signedOutHandlers = new Set();

/** An answer in the API's error shape: {error: {code, message, details}}. */
export class ApiError extends Error {
  constructor(status, body, text) {
    const e = (body && body.error) || {};
    super(e.message || (text && text.slice(0, 200)) || `HTTP ${status}`);
    this.status = status;
    this.code = e.code || (status === 0 ? 'network' : 'http_' + status);
    this.details = Array.isArray(e.details) ? e.details : [];
  }
}

export function setCsrf(token) { csrf = token || ''; }
export function onSignedOut(fn) { signedOutHandlers.add(fn); return () => signedOutHandlers.delete(fn); }

async function send(url, { method = 'GET', body, headers = {}, signal } = {}) {
  const h = { Accept: 'application/json', ...headers };
  if (method !== 'GET' && method !== 'HEAD') h['X-CSRF-Token'] = csrf;
  let payload = body;
  if (body !== undefined && typeof body !== 'string') {
    payload = JSON.stringify(body);
    h['Content-Type'] = 'application/json';
  }
  let res;
  try {
    res = await fetch(url, { method, headers: h, body: payload, signal, credentials: 'same-origin', cache: 'no-store' });
  } catch (err) {
    if (err.name === 'AbortError') throw err;
    throw new ApiError(0, { error: { code: 'network', message: 'The console cannot reach Gateflow: ' + err.message } });
  }
  if (res.status === 204) return null;
  const text = await res.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { /* not JSON */ }
  if (!res.ok) {
    const e = new ApiError(res.status, data, text);
    if (res.status === 401 && (e.code === 'signed_out' || e.code === 'invalid_api_key' || e.code === 'unauthenticated')) {
      signedOutHandlers.forEach((fn) => fn(e));
    }
    throw e;
  }
  return data;
}

/** Calls the REST API: api('/v1/workflows', {method, body, headers}). */
export function api(path, opts) {
  return send(BASE + '/api' + path, opts);
}

/** The URL of a run's event stream (for EventSource, same origin, cookie). */
export function eventsURL(id) {
  return BASE + '/api/v1/workflows/' + encodeURIComponent(id) + '/events';
}

export const session = {
  get: () => send(BASE + '/session'),
  signIn: (key) => send(BASE + '/session', { method: 'POST', body: { key } }),
  signOut: () => send(BASE + '/session', { method: 'DELETE' }),
};

/** q builds a query string from an object, leaving out empty values. */
export function q(params) {
  const s = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== '') s.set(k, v);
  }
  const str = s.toString();
  return str ? '?' + str : '';
}

/** A random id for Idempotency-Key headers (one per form, so a double click starts one run). */
export function randomId() {
  const b = new Uint8Array(16);
  crypto.getRandomValues(b);
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
}
