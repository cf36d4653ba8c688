// Definitions: every version the tenant can run, grouped by name.
import { html } from '../lib.js';
import { path } from '../router.js';
import { Page, useApi, Loading, ErrorBox, Time, has, useSession } from '../ui.js';

const byVersion = (a, b) => b.version.localeCompare(a.version, undefined, { numeric: true });

export default function Definitions() {
  const sess = useSession();
  const { data, error, loading } = useApi('/v1/definitions');
  const groups = new Map();
  for (const d of (data && data.items) || []) {
    if (!groups.has(d.name)) groups.set(d.name, []);
    groups.get(d.name).push(d);
  }
  const names = [...groups.keys()].sort();
  return html`
    <${Page} title="Definitions" actions=${has(sess, 'admin') ? html`<a class="button primary" href=${path.publish()}>Publish a definition</a>` : null}>
      <${ErrorBox} error=${error} />
      ${loading && !data ? html`<${Loading} />` : null}
      ${data && !names.length ? html`<p class="empty">No definitions yet.</p>` : null}
      ${names.length ? html`
        <div class="table-wrap"><table>
          <caption class="visually-hidden">Definitions and their versions</caption>
          <thead><tr><th scope="col">Name</th><th scope="col">Latest</th><th scope="col">Other versions</th>
            <th scope="col" class="hide-narrow">Description</th><th scope="col" class="hide-narrow">Source</th><th scope="col"><span class="visually-hidden">Actions</span></th></tr></thead>
          <tbody>${names.map((n) => {
            const vs = groups.get(n).slice().sort(byVersion);
            const latest = vs[0];
            return html`<tr data-definition=${n}>
              <th scope="row"><a href=${path.definition(n, latest.version)}>${n}</a></th>
              <td>${latest.version}</td>
              <td>${vs.slice(1).map((v, i) => html`${i ? ', ' : ''}<a href=${path.definition(n, v.version)}>${v.version}</a>`)}</td>
              <td class="hide-narrow">${latest.description || html`<span class="muted">–</span>`}</td>
              <td class="hide-narrow small">${latest.source === 'api' ? html`published ${latest.published_at ? html`<${Time} t=${latest.published_at} />` : ''}${latest.published_by ? ' by ' + latest.published_by : ''}` : 'config dir'}</td>
              <td>${has(sess, 'submitter') ? html`<a class="button" href=${path.submit(n)} aria-label=${'Start a run of ' + n}>Run</a>` : null}</td>
            </tr>`;
          })}</tbody>
        </table></div>` : null}
    <//>`;
}
