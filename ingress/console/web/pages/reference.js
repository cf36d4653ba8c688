// The REST API's own reference, rendered from /v1/openapi.json.
import { html, useState, useId } from '../lib.js';
import { Page, useApi, Loading, ErrorBox } from '../ui.js';
import { OpenAPIReference } from '../docs.js';

export default function Reference() {
  const { data, error, loading } = useApi('/v1/openapi.json');
  const [filter, setFilter] = useState('');
  const id = useId();
  return html`
    <${Page} title="API reference">
      <p class="muted">Every route of this Gateflow, from <a href="/v1/openapi.json" data-external>/v1/openapi.json</a>. Authenticate with <code>Authorization: Bearer &lt;key&gt;</code>.</p>
      <div class="field"><label for=${id}>Filter operations</label><input id=${id} type="search" value=${filter} onInput=${(e) => setFilter(e.target.value)} placeholder="e.g. approvals" /></div>
      <${ErrorBox} error=${error} />
      ${loading && !data ? html`<${Loading} />` : null}
      ${data ? html`<${OpenAPIReference} doc=${data} filter=${filter} />` : null}
    <//>`;
}
