// One API of the catalogue (issue 11's routes): documentation, each
// version's OpenAPI document as a reference, versions and their states, the
// API's history, my subscriptions and a request for one with a plan.
// Owners also see the requests waiting for their approvers, usage by
// consumer, and move versions through the lifecycle.
import { html, useState, useId } from '../lib.js';
import { api as call, q } from '../api.js';
import { path } from '../router.js';
import { Page, useApi, Loading, ErrorBox, StateBadge, Time, Field, has, useSession } from '../ui.js';
import { Markdown, OpenAPIReference } from '../docs.js';
import { fmtInt, fmtPct, fmtMs } from '../fmt.js';

/** planText describes a plan's terms: "gold (10 req/s, 1,000/day)". */
export function planText(p) {
  const parts = [];
  const rl = p.rate_limit || {};
  const quota = p.quota || {};
  parts.push(rl.rps ? `${fmtInt(rl.rps)} req/s` : 'no rate limit');
  if (quota.daily) parts.push(`${fmtInt(quota.daily)} calls/day`);
  if (quota.monthly) parts.push(`${fmtInt(quota.monthly)} calls/month`);
  return `${p.name} (${parts.join(', ')})`;
}

const live = (s) => s.state === 'pending' || s.state === 'active';

function Request({ a, onDone }) {
  const plans = a.plans || [];
  const [plan, setPlan] = useState(plans.length ? plans[0].name : '');
  const [app, setApp] = useState('');
  const [reason, setReason] = useState('');
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const ids = { plan: useId(), app: useId(), reason: useId() };
  const submit = async (e) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const res = await call(`/v1/catalog/${encodeURIComponent(a.name)}/subscriptions`, { method: 'POST', body: { plan, ...(app ? { app } : {}), ...(reason ? { reason } : {}) } });
      onDone(res);
    } catch (err) { setError(err); } finally { setBusy(false); }
  };
  const at = (p) => error && (error.details || []).filter((d) => d.path === p).map((d) => d.message).join('; ');
  return html`
    <form onSubmit=${submit}>
      ${error && !at('plan') && !at('app') ? html`<${ErrorBox} error=${error} title="The request was refused." />` : null}
      <${Field} id=${ids.plan} label="Plan" error=${at('plan')}>
        <select id=${ids.plan} value=${plan} onChange=${(e) => setPlan(e.target.value)}>${plans.map((p) => html`<option value=${p.name}>${planText(p)}</option>`)}</select>
      <//>
      <${Field} id=${ids.app} label="For the app" hint="(optional: a named group of your keys; empty: the whole tenant)" error=${at('app')}>
        <input id=${ids.app} value=${app} onInput=${(e) => setApp(e.target.value)} />
      <//>
      <${Field} id=${ids.reason} label="What you need it for" hint="(optional, shown to the approvers)">
        <textarea id=${ids.reason} rows="2" value=${reason} onInput=${(e) => setReason(e.target.value)}></textarea>
      <//>
      <button class="primary" type="submit" disabled=${busy || !plan}>${busy ? 'Requesting…' : 'Request a subscription'}</button>
    </form>`;
}

/** The states a version may move to next (the API checks every move). */
const nextStates = { draft: ['published'], published: ['deprecated', 'retired'], deprecated: ['published', 'retired'] };

function Lifecycle({ a, v, onDone }) {
  const targets = nextStates[v.state] || [];
  const [state, setState] = useState(targets[0] || '');
  const [reason, setReason] = useState('');
  const [successor, setSuccessor] = useState('');
  const [sunset, setSunset] = useState('');
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const ids = { state: useId(), reason: useId(), successor: useId(), sunset: useId() };
  if (!targets.length) return null;
  const others = (a.versions || []).filter((x) => x.version !== v.version && x.state !== 'retired');
  const submit = async (e) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await call(`/v1/catalog/${encodeURIComponent(a.name)}/versions/${encodeURIComponent(v.version)}/lifecycle`, {
        method: 'POST', body: { state, ...(reason ? { reason } : {}), ...(successor ? { successor } : {}), ...(sunset ? { sunset: new Date(sunset).toISOString() } : {}) },
      });
      onDone();
    } catch (err) { setError(err); } finally { setBusy(false); }
  };
  return html`
    <form class="filters" onSubmit=${submit} aria-label=${`Move version ${v.version}`}>
      ${error ? html`<div style="flex-basis:100%"><${ErrorBox} error=${error} title="Not moved." /></div>` : null}
      <div class="field"><label for=${ids.state}>Move ${v.version} to</label>
        <select id=${ids.state} value=${state} onChange=${(e) => setState(e.target.value)}>${targets.map((s) => html`<option value=${s}>${s}</option>`)}</select></div>
      ${state === 'deprecated' || state === 'retired' ? html`
        <div class="field"><label for=${ids.successor}>Successor</label>
          <select id=${ids.successor} value=${successor} onChange=${(e) => setSuccessor(e.target.value)}>
            <option value="">none</option>${others.map((x) => html`<option value=${x.version}>${x.version}</option>`)}</select></div>` : null}
      ${state === 'deprecated' ? html`<div class="field"><label for=${ids.sunset}>Sunset</label><input id=${ids.sunset} type="date" value=${sunset} onInput=${(e) => setSunset(e.target.value)} /></div>` : null}
      <div class="field"><label for=${ids.reason}>Why</label><input id=${ids.reason} value=${reason} onInput=${(e) => setReason(e.target.value)} /></div>
      <button type="submit" disabled=${busy}>${busy ? 'Moving…' : 'Move'}</button>
    </form>`;
}

function Usage({ name }) {
  const { data, error } = useApi('/v1/analytics/top' + q({ from: '7d', by: 'consumer', metric: 'calls', api: name, limit: 20 }));
  if (error) return html`<p class="muted small">Usage by consumer is not available here (${error.message}).</p>`;
  if (!data) return html`<${Loading} />`;
  if (!(data.items || []).length) return html`<p class="empty">No calls in the last 7 days.</p>`;
  return html`<div class="table-wrap"><table><thead><tr><th scope="col">consumer</th><th scope="col" class="num">calls</th><th scope="col" class="num">error rate</th><th scope="col" class="num">p95</th></tr></thead>
    <tbody>${data.items.map((it) => html`<tr><th scope="row">${it.group}</th><td class="num">${fmtInt(it.calls)}</td><td class="num">${fmtPct(it.error_rate)}</td><td class="num">${fmtMs(it.latency_p95_ms)}</td></tr>`)}</tbody></table></div>`;
}

function Pending({ name }) {
  const sess = useSession();
  const { data, error } = useApi('/v1/subscriptions' + q({ as: 'owner', api: name, state: 'pending' }));
  if (error) return html`<${ErrorBox} error=${error} />`;
  if (!data) return html`<${Loading} />`;
  if (!(data.items || []).length) return html`<p class="empty">No request is waiting.</p>`;
  return html`<ul>${data.items.map((s) => html`<li><strong>${s.consumer}${s.app ? ` (app ${s.app})` : ''}</strong> asks for plan ${s.plan}, <${Time} t=${s.requested_at} />${s.reason ? `: “${s.reason}”` : ''}
    ${s.workflow_id && has(sess, 'approver') ? html` · <a href=${path.decide(s.workflow_id, 'approve')}>decide</a>` : null}</li>`)}</ul>`;
}

export default function API({ params }) {
  const sess = useSession();
  const { data: a, error, loading, reload } = useApi('/v1/catalog/' + encodeURIComponent(params.name));
  const [requested, setRequested] = useState(null);
  const [tab, setTab] = useState('docs');
  const [picked, setPicked] = useState('');
  const vid = useId();
  if (!a) return html`<${Page} title=${params.name}>${error ? html`<${ErrorBox} error=${error} />` : loading ? html`<${Loading} />` : null}<//>`;
  const owner = a.owner === sess.tenant;
  const subs = (a.subscriptions || []).slice().sort((x, y) => (y.requested_at || '').localeCompare(x.requested_at || ''));
  const current = requested || subs.find(live) || subs[0];
  const versions = a.versions || [];
  const shown = versions.find((v) => v.version === picked) || versions.slice().reverse().find((v) => v.state === 'published') || versions[versions.length - 1];
  return html`
    <${Page} title=${a.title || a.name}>
      <p><a href=${path.catalog()}>Catalogue</a> · <span class="mono">${a.name}</span> · ${a.kind} · owned by ${a.owner} · ${a.visibility}</p>
      ${a.description ? html`<p>${a.description}</p>` : null}
      <div class="grid2">
        <section class="card" aria-labelledby="versions"><h2 id="versions">Versions</h2>
          <ul>${versions.map((v) => html`<li data-version=${v.version}><strong>${v.version}</strong> <${StateBadge} state=${v.state} />
            ${v.sunset ? html` <span class="muted small">sunset <${Time} t=${v.sunset} abs /></span>` : null}${v.successor ? html` <span class="muted small">→ ${v.successor}</span>` : null}
            ${v.notes ? html`<div class="muted small">${v.notes}</div>` : null}
            ${owner && has(sess, 'admin') ? html`<${Lifecycle} a=${a} v=${v} onDone=${reload} />` : null}</li>`)}</ul>
        </section>
        <section class="card" aria-labelledby="subscription"><h2 id="subscription">Subscription</h2>
          ${owner ? html`<p>Your tenant owns this API; its own calls need no subscription.</p>` : null}
          ${!owner && current ? html`<p data-testid="subscription">Plan <strong>${current.plan}</strong>${current.app ? ` for app ${current.app}` : ''} · <${StateBadge} state=${current.state} /> · requested <${Time} t=${current.requested_at} /></p>` : null}
          ${!owner && (!current || !live(current)) ? (has(sess, 'admin')
            ? html`<${Request} a=${a} onDone=${(r) => { setRequested(r); reload(); }} />`
            : html`<p class="muted">An admin of your tenant requests subscriptions.</p>`) : null}
          ${(a.plans || []).length ? html`<h3>Plans</h3><ul>${a.plans.map((p) => html`<li>${planText(p)}${p.description ? html` — ${p.description}` : null}</li>`)}</ul>` : null}
        </section>
      </div>
      ${owner ? html`
        <section class="card" aria-labelledby="owner"><h2 id="owner">For the owner</h2>
          <h3>Requests waiting for your approvers</h3><${Pending} name=${a.name} />
          <h3>Usage by consumer, last 7 days</h3><${Usage} name=${a.name} />
        </section>` : null}
      <div class="spread">
        <div class="row" role="tablist" aria-label="Documentation">
          <button type="button" role="tab" aria-selected=${tab === 'docs'} onClick=${() => setTab('docs')}>Documentation</button>
          <button type="button" role="tab" aria-selected=${tab === 'openapi'} onClick=${() => setTab('openapi')}>API reference</button>
          ${(a.history || []).length ? html`<button type="button" role="tab" aria-selected=${tab === 'history'} onClick=${() => setTab('history')}>History</button>` : null}
        </div>
        ${tab === 'openapi' && versions.length > 1 ? html`<div class="field" style="margin:0"><label for=${vid}>Version</label>
          <select id=${vid} value=${shown ? shown.version : ''} onChange=${(e) => setPicked(e.target.value)}>${versions.map((v) => html`<option value=${v.version}>${v.version} (${v.state})</option>`)}</select></div>` : null}
      </div>
      <section class="card" role="tabpanel">
        ${tab === 'docs' ? (a.docs ? html`<${Markdown} text=${a.docs} />` : html`<p class="muted">No documentation.</p>`) : null}
        ${tab === 'openapi' ? html`<${OpenAPIReference} doc=${shown && shown.openapi} />` : null}
        ${tab === 'history' ? html`<div class="table-wrap"><table><thead><tr><th scope="col">when</th><th scope="col">who</th><th scope="col">what</th><th scope="col">why</th></tr></thead>
          <tbody>${a.history.slice().reverse().map((h) => html`<tr><td><${Time} t=${h.at} /></td><td>${h.by}</td>
            <td>${h.action.replace('_', ' ')}${h.version ? ` ${h.version}` : ''}${h.to ? `: ${h.from ? h.from + ' → ' : ''}${h.to}` : ''}</td><td>${h.reason || ''}</td></tr>`)}</tbody></table></div>` : null}
      </section>
    <//>`;
}
