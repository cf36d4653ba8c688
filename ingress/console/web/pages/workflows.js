// Workflows: the tenant's runs with filters (state, definition, start time)
// and cursor paging; the API returns one page at a time, so a tenant with
// many runs costs the same as one with a few.
import { html, useState, useEffect, useId } from '../lib.js';
import { q } from '../api.js';
import { path, params as getParams, setParams, useLocation } from '../router.js';
import { Page, useApi, Loading, ErrorBox, StateBadge, Time, has, useSession } from '../ui.js';
import { fmtDuration, elapsed } from '../fmt.js';

const states = ['running', 'succeeded', 'failed', 'cancelled', 'terminated', 'timed-out'];
const sizes = [20, 50, 100];

/** Converts a datetime-local value (local time) to RFC 3339 and back. */
const toRFC = (v) => (v ? new Date(v).toISOString() : '');
const toLocal = (iso) => {
  if (!iso) return '';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return '';
  const off = d.getTimezoneOffset() * 60000;
  return new Date(d.getTime() - off).toISOString().slice(0, 16);
};

export default function Workflows() {
  const sess = useSession();
  const loc = useLocation();
  const p = getParams();
  const ids = { status: useId(), def: useId(), after: useId(), before: useId(), size: useId() };
  const defs = useApi('/v1/definitions');
  const names = [...new Set(((defs.data && defs.data.items) || []).map((d) => d.name))].sort();
  // The cursors of the pages before this one, to go back.
  const [back, setBack] = useState([]);
  useEffect(() => { if (!p.cursor) setBack([]); }, [loc]);

  const limit = sizes.includes(Number(p.limit)) ? Number(p.limit) : 20;
  const query = q({ status: p.status, definition: p.definition, started_after: p.started_after, started_before: p.started_before, limit, cursor: p.cursor });
  const { data, error, loading } = useApi('/v1/workflows' + query);
  const items = (data && data.items) || [];

  const filter = (change) => setParams({ ...p, ...change, cursor: '' });
  const next = () => { setBack([...back, p.cursor || '']); setParams({ ...p, cursor: data.next_cursor }); };
  const prev = () => { const b = back.slice(0, -1); const c = back[back.length - 1]; setBack(b); setParams({ ...p, cursor: c }); };
  const page = back.length + 1;

  return html`
    <${Page} title="Workflows" actions=${has(sess, 'submitter') ? html`<a class="button primary" href=${path.submit()}>Start a run</a>` : null}>
      <form class="filters" onSubmit=${(e) => e.preventDefault()} aria-label="Filters">
        <div class="field"><label for=${ids.status}>State</label>
          <select id=${ids.status} value=${p.status || ''} onChange=${(e) => filter({ status: e.target.value })}>
            <option value="">any</option>${states.map((s) => html`<option value=${s}>${s}</option>`)}
          </select></div>
        <div class="field"><label for=${ids.def}>Definition</label>
          <select id=${ids.def} value=${p.definition || ''} onChange=${(e) => filter({ definition: e.target.value })}>
            <option value="">any</option>${names.map((n) => html`<option value=${n}>${n}</option>`)}
            ${p.definition && !names.includes(p.definition) ? html`<option value=${p.definition}>${p.definition}</option>` : null}
          </select></div>
        <div class="field"><label for=${ids.after}>Started after</label>
          <input id=${ids.after} type="datetime-local" value=${toLocal(p.started_after)} onChange=${(e) => filter({ started_after: toRFC(e.target.value) })} /></div>
        <div class="field"><label for=${ids.before}>Started before</label>
          <input id=${ids.before} type="datetime-local" value=${toLocal(p.started_before)} onChange=${(e) => filter({ started_before: toRFC(e.target.value) })} /></div>
        <div class="field"><label for=${ids.size}>Per page</label>
          <select id=${ids.size} value=${String(limit)} onChange=${(e) => filter({ limit: e.target.value })}>${sizes.map((n) => html`<option value=${String(n)}>${n}</option>`)}</select></div>
        ${p.status || p.definition || p.started_after || p.started_before ? html`<button type="button" onClick=${() => setParams({})}>Clear filters</button>` : null}
      </form>
      <${ErrorBox} error=${error} />
      ${loading && !data ? html`<${Loading} />` : null}
      ${data && items.length === 0 ? html`<p class="empty" role="status">No run matches${p.cursor ? ' on this page' : ''}.</p>` : null}
      ${items.length > 0 ? html`
        <div class="table-wrap" aria-busy=${loading ? 'true' : 'false'}>
          <table data-testid="runs" class="stack">
            <caption class="visually-hidden">Runs, running first, then the most recently closed</caption>
            <thead><tr><th scope="col">Run</th><th scope="col">Definition</th><th scope="col">State</th>
              <th scope="col">Started</th><th scope="col" class="num">Duration</th></tr></thead>
            <tbody>${items.map((w) => html`
              <tr data-run=${w.id}>
                <td data-label="Run"><a class="mono" href=${path.run(w.id)}>${w.id}</a></td>
                <td data-label="Definition"><span>${w.definition} <span class="muted">v${w.version}</span></span></td>
                <td data-label="State"><${StateBadge} state=${w.state} /></td>
                <td data-label="Started"><${Time} t=${w.started_at} /></td>
                <td data-label="Duration" class="num">${fmtDuration(elapsed(w.started_at, w.closed_at))}</td>
              </tr>`)}
            </tbody>
          </table>
        </div>` : null}
      <nav class="spread" aria-label="Pages" style="margin-top:.75rem">
        <span class="muted" role="status">Page ${page}${items.length ? ` · ${items.length} runs` : ''}</span>
        <span class="row">
          <button type="button" disabled=${page === 1} onClick=${prev}>Previous page</button>
          <button type="button" disabled=${!data || !data.next_cursor} onClick=${next}>Next page</button>
        </span>
      </nav>
    <//>`;
}
