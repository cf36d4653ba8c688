// One API of the catalogue: documentation, the OpenAPI reference, its
// versions and states, my subscription, and a request for one with a plan.
// Owners see where its pending requests and usage are.
import { html, useState, useId } from '../lib.js';
import { api as call, q } from '../api.js';
import { path } from '../router.js';
import { Page, useApi, Loading, ErrorBox, StateBadge, Time, Field, has, useSession } from '../ui.js';
import { Markdown, OpenAPIReference } from '../docs.js';
import { apiName } from './catalog.js';
import { fmtInt, fmtPct, fmtMs } from '../fmt.js';

function planText(p) {
  if (typeof p === 'string') return p;
  const parts = [];
  const rl = p.rate_limit || {};
  if (rl.rps) parts.push(`${rl.rps} req/s`);
  if (p.daily_quota || p.quota_per_day) parts.push(`${fmtInt(p.daily_quota || p.quota_per_day)}/day`);
  if (p.monthly_quota || p.quota_per_month) parts.push(`${fmtInt(p.monthly_quota || p.quota_per_month)}/month`);
  return (p.name || p.id) + (parts.length ? ` (${parts.join(', ')})` : '');
}

function Request({ a, onDone }) {
  const plans = a.plans || [];
  const [plan, setPlan] = useState(plans.length ? (plans[0].name || plans[0]) : '');
  const [note, setNote] = useState('');
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const ids = { plan: useId(), note: useId() };
  const submit = async (e) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const res = await call(`/v1/catalog/${encodeURIComponent(apiName(a))}/subscriptions`, { method: 'POST', body: { plan, ...(note ? { note } : {}) } });
      onDone(res);
    } catch (err) { setError(err); } finally { setBusy(false); }
  };
  const planErr = error && (error.details || []).find((d) => /plan/.test(d.path));
  return html`
    <form onSubmit=${submit}>
      ${error && !planErr ? html`<${ErrorBox} error=${error} title="The request was refused." />` : null}
      ${plans.length ? html`
        <${Field} id=${ids.plan} label="Plan" error=${planErr && planErr.message}>
          <select id=${ids.plan} value=${plan} onChange=${(e) => setPlan(e.target.value)}>${plans.map((p) => html`<option value=${p.name || p}>${planText(p)}</option>`)}</select>
        <//>` : null}
      <${Field} id=${ids.note} label="What you need it for" hint="(optional, shown to the approvers)">
        <textarea id=${ids.note} rows="2" value=${note} onInput=${(e) => setNote(e.target.value)}></textarea>
      <//>
      <button class="primary" type="submit" disabled=${busy}>${busy ? 'Requesting…' : 'Request a subscription'}</button>
    </form>`;
}

function Usage({ name }) {
  const { data, error } = useApi('/v1/analytics/top' + q({ from: '7d', by: 'consumer', metric: 'calls', target: name, limit: 20 }));
  if (error) return html`<p class="muted small">Usage by consumer is not available (${error.message}).</p>`;
  if (!data) return html`<${Loading} />`;
  if (!(data.items || []).length) return html`<p class="empty">No calls in the last 7 days.</p>`;
  return html`<div class="table-wrap"><table><thead><tr><th scope="col">consumer</th><th scope="col" class="num">calls</th><th scope="col" class="num">error rate</th><th scope="col" class="num">p95</th></tr></thead>
    <tbody>${data.items.map((it) => html`<tr><th scope="row">${it.group}</th><td class="num">${fmtInt(it.calls)}</td><td class="num">${fmtPct(it.error_rate)}</td><td class="num">${fmtMs(it.latency_p95_ms)}</td></tr>`)}</tbody></table></div>`;
}

export default function API({ params }) {
  const sess = useSession();
  const { data: a, error, loading, reload } = useApi('/v1/catalog/' + encodeURIComponent(params.name));
  const [requested, setRequested] = useState(null);
  const [tab, setTab] = useState('docs');
  if (!a) return html`<${Page} title=${params.name}>${error ? html`<${ErrorBox} error=${error} />` : loading ? html`<${Loading} />` : null}<//>`;
  const owner = a.owner && a.owner === sess.tenant;
  const sub = requested || a.subscription;
  const doc = a.openapi || a.openapi_document;
  return html`
    <${Page} title=${a.title || apiName(a)}>
      <p><a href=${path.catalog()}>Catalogue</a> · <span class="mono">${apiName(a)}</span> · ${a.kind || 'api'}${a.owner ? ` · owned by ${a.owner}` : ''}</p>
      ${a.description ? html`<p>${a.description}</p>` : null}
      <div class="grid2">
        <section class="card" aria-labelledby="versions"><h2 id="versions">Versions</h2>
          ${(a.versions || []).length ? html`<ul>${a.versions.map((v) => html`<li><strong>${v.version}</strong> <${StateBadge} state=${v.state} />
            ${v.sunset ? html` <span class="muted small">sunset <${Time} t=${v.sunset} abs /></span>` : null}${v.successor ? html` <span class="muted small">successor ${v.successor}</span>` : null}</li>`)}</ul>` : html`<p class="muted">No versions listed.</p>`}
        </section>
        <section class="card" aria-labelledby="subscription"><h2 id="subscription">Subscription</h2>
          ${owner ? html`<p>Your tenant owns this API; its calls need no subscription.</p>` : null}
          ${!owner && sub ? html`<p data-testid="subscription">Plan <strong>${sub.plan}</strong> · <${StateBadge} state=${sub.state || sub.status} />
            ${sub.workflow_id ? html` · <a href=${path.run(sub.workflow_id)}>approval run</a>` : null}</p>` : null}
          ${!owner && (!sub || ['cancelled', 'revoked', 'rejected'].includes(sub.state || sub.status)) ? html`<${Request} a=${a} onDone=${(r) => { setRequested(r); reload(); }} />` : null}
        </section>
      </div>
      ${owner ? html`
        <section class="card" aria-labelledby="owner"><h2 id="owner">For the owner</h2>
          <p>Subscription requests to this API are approval steps: ${has(sess, 'approver') ? html`decide them in the <a href=${path.inbox()}>inbox</a>` : 'your approvers decide them in their inbox'}.</p>
          <h3>Usage by consumer, last 7 days</h3><${Usage} name=${apiName(a)} />
        </section>` : null}
      <div class="row" role="tablist" aria-label="Documentation">
        <button type="button" role="tab" aria-selected=${tab === 'docs'} onClick=${() => setTab('docs')}>Documentation</button>
        <button type="button" role="tab" aria-selected=${tab === 'openapi'} onClick=${() => setTab('openapi')}>API reference</button>
      </div>
      <section class="card" role="tabpanel">
        ${tab === 'docs' ? (a.docs || a.documentation ? html`<${Markdown} text=${a.docs || a.documentation} />` : html`<p class="muted">No documentation.</p>`) : html`<${OpenAPIReference} doc=${doc} />`}
      </section>
    <//>`;
}
