// API keys of the tenant, for admins: list, create (the key is shown once),
// disable. The routes (GET/POST /v1/keys, POST /v1/keys/{id}/disable) are
// admin only and audited by the API; this page is offered when they exist.
import { html, useState, useId } from '../lib.js';
import { api } from '../api.js';
import { Page, useApi, Loading, ErrorBox, Field, Time, Confirm, Copy, has, useSession } from '../ui.js';

const builtin = ['submitter', 'approver', 'analyst', 'model', 'admin'];

function Create({ onCreated }) {
  const [roles, setRoles] = useState(['submitter']);
  const [extra, setExtra] = useState('');
  const [user, setUser] = useState('');
  const [app, setApp] = useState('');
  const [note, setNote] = useState('');
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const ids = { extra: useId(), user: useId(), app: useId(), note: useId() };
  const toggle = (r) => setRoles(roles.includes(r) ? roles.filter((x) => x !== r) : [...roles, r]);
  const submit = async (e) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    const all = [...roles, ...extra.split(/[\s,]+/).filter(Boolean)];
    try {
      const res = await api('/v1/keys', { method: 'POST', body: { roles: all, ...(user ? { user } : {}), ...(app ? { app } : {}), ...(note ? { note } : {}) } });
      onCreated(res);
      setUser(''); setApp(''); setNote(''); setExtra('');
    } catch (err) { setError(err); } finally { setBusy(false); }
  };
  const errAt = (p) => error && (error.details || []).filter((d) => d.path === p).map((d) => d.message).join('; ');
  return html`
    <form class="card" onSubmit=${submit} aria-labelledby="new-key">
      <h2 id="new-key" style="margin-top:0">Create a key</h2>
      ${error && !(error.details || []).length ? html`<${ErrorBox} error=${error} />` : null}
      <fieldset><legend>Roles</legend>
        <div class="row">${builtin.map((r) => html`<label style="font-weight:400;display:flex;gap:.35rem;align-items:center"><input type="checkbox" checked=${roles.includes(r)} onChange=${() => toggle(r)} />${r}</label>`)}</div>
        ${errAt('roles') ? html`<div class="field-error" role="alert">${errAt('roles')}</div>` : null}
      </fieldset>
      <${Field} id=${ids.extra} label="Other roles" hint="(named by approval steps, e.g. manager; comma separated)"><input id=${ids.extra} value=${extra} onInput=${(e) => setExtra(e.target.value)} /><//>
      <${Field} id=${ids.user} label="User" hint="(approval steps may name users)" error=${errAt('user')}><input id=${ids.user} value=${user} onInput=${(e) => setUser(e.target.value)} autocomplete="off" /><//>
      <${Field} id=${ids.app} label="App" hint="(optional: groups keys for catalogue subscriptions)" error=${errAt('app')}><input id=${ids.app} value=${app} onInput=${(e) => setApp(e.target.value)} autocomplete="off" /><//>
      <${Field} id=${ids.note} label="Note" hint="(for operators)" error=${errAt('note')}><input id=${ids.note} value=${note} onInput=${(e) => setNote(e.target.value)} /><//>
      <button class="primary" type="submit" disabled=${busy || (!roles.length && !extra.trim())}>${busy ? 'Creating…' : 'Create key'}</button>
    </form>`;
}

export default function Keys() {
  const sess = useSession();
  const allowed = has(sess, 'admin') && sess.features.keys;
  const { data, error, loading, reload } = useApi(allowed ? '/v1/keys' : null);
  const [created, setCreated] = useState(null);
  const [actionError, setActionError] = useState(null);
  if (!sess.features.keys) return html`<${Page} title="API keys"><p>This Gateflow manages keys in its keys file only (<code>gateflow keys create</code>).</p><//>`;
  if (!has(sess, 'admin')) {
    return html`<${Page} title="API keys"><div class="alert error" role="alert" data-testid="keys-forbidden"><strong>Only admins manage API keys.</strong> Your key's roles: ${sess.roles.join(', ') || 'none'}.</div><//>`;
  }
  const items = (data && data.items) || [];
  const disable = async (id) => {
    setActionError(null);
    try { await api(`/v1/keys/${encodeURIComponent(id)}/disable`, { method: 'POST', body: {} }); reload(); } catch (e) { setActionError(e); }
  };
  const secret = created && created.key;
  return html`
    <${Page} title="API keys">
      ${secret ? html`
        <div class="alert ok" role="status">
          <strong>Key ${created.id} created. Copy it now: it is shown only once.</strong>
          <p class="secret" data-testid="new-key">${secret}</p>
          <div class="row"><${Copy} text=${secret} label="Copy key" /><button type="button" onClick=${() => setCreated(null)}>I have stored it</button></div>
        </div>` : null}
      <${ErrorBox} error=${error} />
      <${ErrorBox} error=${actionError} title="The key was not disabled." />
      <div class="grid2">
        <div>
          ${loading && !data ? html`<${Loading} />` : null}
          ${data ? html`<div class="table-wrap"><table>
            <caption class="visually-hidden">Keys of tenant ${sess.tenant}</caption>
            <thead><tr><th scope="col">Key id</th><th scope="col">Roles</th><th scope="col">User</th><th scope="col">App</th><th scope="col">Created</th><th scope="col">State</th><th scope="col"><span class="visually-hidden">Action</span></th></tr></thead>
            <tbody>${items.map((k) => html`<tr data-key=${k.id}>
              <th scope="row" class="mono">${k.id}${k.id === sess.key_id ? html` <span class="badge st-running">this key</span>` : null}</th>
              <td>${(k.roles || []).join(', ')}</td><td>${k.user || ''}</td><td>${k.app || ''}</td>
              <td>${k.source === 'file' ? html`<span class="muted small">keys file</span>` : html`<${Time} t=${k.created_at} />${k.created_by ? ` by ${k.created_by}` : ''}`}</td>
              <td>${k.disabled ? html`<span class="badge st-cancelled">disabled</span>` : html`<span class="badge st-succeeded">active</span>`}</td>
              <td>${!k.disabled && k.source !== 'file' ? html`<${Confirm} label="Disable" question=${`Disable ${k.id}? Requests with it are refused from now on.`} confirmLabel="Yes, disable" onConfirm=${() => disable(k.id)} />` : null}</td>
            </tr>`)}</tbody></table></div>` : null}
        </div>
        <${Create} onCreated=${(k) => { setCreated(k); reload(); }} />
      </div>
    <//>`;
}
