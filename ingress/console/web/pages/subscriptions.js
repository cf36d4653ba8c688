// Subscriptions to catalogue APIs: mine as a consumer, or, for owners, the
// ones to my tenant's APIs; admins cancel (consumer) or revoke (owner).
import { html, useState } from '../lib.js';
import { api, q } from '../api.js';
import { path, params as getParams, setParams } from '../router.js';
import { Page, useApi, Loading, ErrorBox, StateBadge, Time, Confirm, has, useSession } from '../ui.js';

export default function Subscriptions() {
  const sess = useSession();
  const p = getParams();
  const as = p.as === 'owner' ? 'owner' : 'consumer';
  const { data, error, loading, reload } = useApi('/v1/subscriptions' + q({ as, state: p.state }));
  const [actionError, setActionError] = useState(null);
  const items = (data && data.items) || [];
  const end = async (s, verb) => {
    setActionError(null);
    try { await api(`/v1/subscriptions/${encodeURIComponent(s.id)}/${verb}`, { method: 'POST', body: {} }); reload(); } catch (e) { setActionError(e); }
  };
  return html`
    <${Page} title=${as === 'owner' ? 'Subscriptions to my APIs' : 'My subscriptions'} actions=${html`<a class="button" href=${path.catalog()}>Catalogue</a>`}>
      <div class="row" role="tablist" aria-label="Whose subscriptions">
        <button type="button" role="tab" aria-selected=${as === 'consumer'} onClick=${() => setParams({ as: '' })}>Mine</button>
        <button type="button" role="tab" aria-selected=${as === 'owner'} onClick=${() => setParams({ as: 'owner' })}>To my APIs</button>
      </div>
      <p></p>
      <${ErrorBox} error=${error} />
      <${ErrorBox} error=${actionError} title="Not done." />
      ${loading && !data ? html`<${Loading} />` : null}
      ${data && !items.length ? html`<p class="empty">None yet.${as === 'consumer' ? html` Find an API in the <a href=${path.catalog()}>catalogue</a>.` : ''}</p>` : null}
      ${items.length ? html`<div class="table-wrap"><table class="stack">
        <thead><tr><th scope="col">API</th><th scope="col">${as === 'owner' ? 'Consumer' : 'Owner'}</th><th scope="col">Plan</th><th scope="col">State</th><th scope="col">Requested</th><th scope="col"><span class="visually-hidden">Action</span></th></tr></thead>
        <tbody>${items.map((s) => html`<tr data-subscription=${s.id}>
          <td data-label="API"><a href=${path.api(s.api)}>${s.api}</a></td>
          <td data-label=${as === 'owner' ? 'Consumer' : 'Owner'}>${as === 'owner' ? `${s.consumer}${s.app ? ` (app ${s.app})` : ''}` : s.owner}</td>
          <td data-label="Plan">${s.plan}</td><td data-label="State"><${StateBadge} state=${s.state} /></td>
          <td data-label="Requested"><${Time} t=${s.requested_at} /></td>
          <td class="action">${has(sess, 'admin') && (s.state === 'pending' || s.state === 'active') ? html`<${Confirm}
            label=${as === 'owner' ? 'Revoke' : 'Cancel'} question=${as === 'owner' ? `Revoke ${s.consumer}'s access?` : 'Cancel this subscription?'}
            confirmLabel=${as === 'owner' ? 'Yes, revoke' : 'Yes, cancel'} onConfirm=${() => end(s, as === 'owner' ? 'revoke' : 'cancel')} />` : null}</td></tr>`)}</tbody>
      </table></div>` : null}
    <//>`;
}
