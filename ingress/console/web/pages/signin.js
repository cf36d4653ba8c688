// Sign-in with an API key. The key goes to the server once, which keeps it
// in a sealed HttpOnly cookie; it is never stored by this page.
import { html, useState, useRef, useEffect } from '../lib.js';
import { session } from '../api.js';
import { Field, ErrorBox } from '../ui.js';

export function SignIn({ onSignedIn }) {
  const [key, setKey] = useState('');
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const input = useRef(null);
  useEffect(() => { document.title = 'Sign in · Gateflow'; input.current && input.current.focus(); }, []);

  const submit = async (e) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const info = await session.signIn(key);
      setKey('');
      await onSignedIn(info);
    } catch (err) {
      setError(err);
      input.current && input.current.focus();
    } finally {
      setBusy(false);
    }
  };
  const fieldError = error && (error.details || []).find((d) => d.path === 'key');
  return html`
    <main id="main" class="signin">
      <div class="card">
        <h1>Sign in to Gateflow</h1>
        <p class="muted">Use an API key (<code>gf_…</code>). The console shows exactly what the key may read and do.</p>
        ${error && !fieldError ? html`<${ErrorBox} error=${error} />` : null}
        <form onSubmit=${submit} autocomplete="off">
          <${Field} id="api-key" label="API key" error=${fieldError && fieldError.message}>
            <input id="api-key" ref=${input} type="password" name="api-key" required spellcheck=${false} autocapitalize="off"
              aria-describedby=${fieldError ? 'api-key-error' : undefined} aria-invalid=${fieldError ? 'true' : undefined}
              value=${key} onInput=${(e) => setKey(e.target.value)} style="width:100%" />
          <//>
          <button class="primary" type="submit" disabled=${busy || !key.trim()}>${busy ? 'Signing in…' : 'Sign in'}</button>
        </form>
        <p class="muted small">The key is kept in an encrypted, HttpOnly cookie for this site only, and forgotten when you sign out.
          ${' '}<code>gateflow dev</code> prints its key and keeps it in <code>.gateflow/dev-key</code>.</p>
      </div>
    </main>`;
}
