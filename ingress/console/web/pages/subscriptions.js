// My subscriptions to catalogue APIs (GET /v1/subscriptions).
import { html } from '../lib.js';
import { path } from '../router.js';
import { Page, useApi, Loading, ErrorBox, StateBadge, Time } from '../ui.js';

export default function Subscriptions() {
  const { data, error, loading } = useApi('/v1/subscriptions');
  const items = (data && (data.items || data.subscriptions)) || [];
  return html`
    <${Page} title="My subscriptions" actions=${html`<a class="button" href=${path.catalog()}>Catalogue</a>`}>
      <${ErrorBox} error=${error} />
      ${loading && !data ? html`<${Loading} />` : null}
      ${data && !items.length ? html`<p class="empty">No subscriptions yet. Find an API in the <a href=${path.catalog()}>catalogue</a>.</p>` : null}
      ${items.length ? html`<div class="table-wrap"><table>
        <thead><tr><th scope="col">API</th><th scope="col">Plan</th><th scope="col">State</th><th scope="col">Requested</th><th scope="col">Consumer</th></tr></thead>
        <tbody>${items.map((s) => html`<tr>
          <th scope="row"><a href=${path.api(s.api)}>${s.api}</a></th><td>${s.plan}</td><td><${StateBadge} state=${s.state || s.status} /></td>
          <td><${Time} t=${s.requested_at || s.created_at} /></td><td>${s.app ? `${s.consumer || ''} app ${s.app}` : s.consumer || ''}</td></tr>`)}</tbody>
      </table></div>` : null}
    <//>`;
}
