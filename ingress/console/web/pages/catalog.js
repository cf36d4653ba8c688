// The API catalogue: browse and search the APIs this tenant can see.
// Built against the catalogue API of issue 11 (GET /v1/catalog); the page
// is offered only when /v1/openapi.json lists that route.
import { html, useState, useEffect, useId } from '../lib.js';
import { q } from '../api.js';
import { path, params as getParams, setParams } from '../router.js';
import { Page, useApi, Loading, ErrorBox, StateBadge, useSession } from '../ui.js';

export const apiName = (a) => a.name;
/** The state to show for an API: of its newest version that is not a draft, else its newest. */
export const apiState = (a) => {
  const vs = a.versions || [];
  const v = vs.slice().reverse().find((x) => x.state !== 'draft') || vs[vs.length - 1];
  return v ? v.state : '';
};

export default function Catalog() {
  const sess = useSession();
  const p = getParams();
  const [text, setText] = useState(p.q || '');
  const ids = { q: useId(), kind: useId(), state: useId() };
  useEffect(() => { const t = setTimeout(() => { if ((p.q || '') !== text) setParams({ ...p, q: text }, { replace: true }); }, 300); return () => clearTimeout(t); }, [text]);
  const { data, error, loading } = useApi('/v1/catalog' + q({ q: p.q, kind: p.kind, tag: p.tag, state: p.state }));
  const items = (data && data.items) || [];
  if (!sess.features.catalog) return html`<${Page} title="Catalogue"><p>This Gateflow has no API catalogue.</p><//>`;
  return html`
    <${Page} title="API catalogue" actions=${sess.features.subscriptions ? html`<a class="button" href=${path.subscriptions()}>My subscriptions</a>` : null}>
      <form class="filters" role="search" onSubmit=${(e) => e.preventDefault()}>
        <div class="field"><label for=${ids.q}>Search</label><input id=${ids.q} type="search" value=${text} onInput=${(e) => setText(e.target.value)} placeholder="name, title, description" /></div>
        <div class="field"><label for=${ids.kind}>Kind</label>
          <select id=${ids.kind} value=${p.kind || ''} onChange=${(e) => setParams({ ...p, kind: e.target.value }, { replace: true })}>
            ${['', 'service', 'orchestration', 'prompt', 'model'].map((k) => html`<option value=${k}>${k || 'any'}</option>`)}
          </select></div>
        <div class="field"><label for=${ids.state}>State</label>
          <select id=${ids.state} value=${p.state || ''} onChange=${(e) => setParams({ ...p, state: e.target.value }, { replace: true })}>
            ${['', 'published', 'deprecated', 'draft', 'retired'].map((k) => html`<option value=${k}>${k || 'any'}</option>`)}
          </select></div>
        ${p.tag ? html`<div class="field"><span class="badge st-running">tag ${p.tag}</span> <button type="button" class="link" onClick=${() => setParams({ ...p, tag: '' })}>remove</button></div>` : null}
      </form>
      <${ErrorBox} error=${error} />
      ${loading && !data ? html`<${Loading} />` : null}
      ${data && !items.length ? html`<p class="empty" role="status">No API matches.</p>` : null}
      <div class="grid2">${items.map((a) => html`
        <article class="card" data-api=${apiName(a)}>
          <div class="spread"><h2 style="margin:0"><a href=${path.api(apiName(a))}>${a.title || apiName(a)}</a></h2><${StateBadge} state=${apiState(a)} /></div>
          <p class="muted small">${apiName(a)} · ${a.kind} · owned by ${a.owner}${a.owner === sess.tenant ? ' (you)' : ''} · ${a.visibility}</p>
          ${a.subscription ? html`<p class="small">Your subscription: <${StateBadge} state=${a.subscription.state} /> plan ${a.subscription.plan}</p>` : null}
          ${a.description ? html`<p>${a.description}</p>` : null}
          ${(a.tags || []).length ? html`<p class="row">${a.tags.map((t) => html`<a class="badge st-pending" href=${path.catalog() + '?tag=' + encodeURIComponent(t)}>${t}</a>`)}</p>` : null}
        </article>`)}
      </div>
    <//>`;
}
