// Analytics: trends of calls, error rate, latency percentiles, tokens and
// cost with interval and grouping; top-N; approval turnaround; this period
// against the one before. Everything from /v1/analytics/... for the key's
// tenant; the choices live in the URL.
import { html, useMemo, useId } from '../lib.js';
import { q } from '../api.js';
import { params as getParams, setParams } from '../router.js';
import { Page, useApi, Loading, ErrorBox, useSession } from '../ui.js';
import { Chart } from '../chart.js';
import { fmtInt, fmtPct, fmtMs, fmtUSD, fmtChange } from '../fmt.js';

const ranges = [['15m', 'last 15 minutes'], ['1h', 'last hour'], ['6h', 'last 6 hours'], ['24h', 'last 24 hours'], ['7d', 'last 7 days'], ['30d', 'last 30 days']];
const intervals = ['minute', 'hour', 'day'];
// Group-by values, as the API documents them (catalogue dimensions such as
// api and consumer appear when the server has them).
const defaultDims = ['kind', 'target', 'service', 'model', 'definition', 'step'];
const kinds = ['', 'ingress', 'http', 'model', 'approval', 'mcp'];
const metrics = [['calls', 'calls', fmtInt], ['errors', 'errors', fmtInt], ['error_rate', 'error rate', fmtPct], ['latency_p95', 'p95 latency', fmtMs], ['tokens', 'tokens', fmtInt], ['cost', 'cost', fmtUSD]];
const maxSeries = 8;
// The columns of the top-N table; the one ranked by is marked.
const columns = [
  ['calls', 'calls', fmtInt, (it) => it.calls], ['errors', 'errors', fmtInt, (it) => it.errors],
  ['error_rate', 'error rate', fmtPct, (it) => it.error_rate], ['latency_p95', 'p95', fmtMs, (it) => it.latency_p95_ms],
  ['tokens', 'tokens', fmtInt, (it) => it.tokens_in + it.tokens_out], ['cost', 'cost', fmtUSD, (it) => it.cost_usd],
];

const defaultInterval = (range) => (['15m', '1h', '6h'].includes(range) ? 'minute' : ['24h', '7d'].includes(range) ? 'hour' : 'day');

/** series turns trend points into chart series, one per group. */
function toSeries(points, pick, { zero = false } = {}) {
  const xs = [...new Set(points.map((p) => p.time))].sort();
  const index = new Map(xs.map((t, i) => [t, i]));
  const totals = new Map();
  for (const p of points) totals.set(p.group || '', (totals.get(p.group || '') || 0) + p.calls);
  const groups = [...totals.keys()].sort((a, b) => totals.get(b) - totals.get(a)).slice(0, maxSeries);
  const x = xs.map((t) => new Date(t).getTime() / 1000);
  const series = [];
  for (const [label, f] of pick) {
    for (const g of groups) {
      const values = xs.map(() => (zero ? 0 : null));
      for (const p of points) if ((p.group || '') === g) values[index.get(p.time)] = f(p);
      series.push({ label: groups.length > 1 || g ? (pick.length > 1 ? `${g || 'all'} ${label}` : g || 'all') : label, values });
    }
  }
  return { x, series, groups: totals.size };
}

function Select({ label, value, options, onChange }) {
  const id = useId();
  return html`<div class="field"><label for=${id}>${label}</label>
    <select id=${id} value=${value} onChange=${(e) => onChange(e.target.value)}>
      ${options.map(([v, text]) => html`<option value=${v}>${text}</option>`)}
    </select></div>`;
}

export default function Analytics() {
  const sess = useSession();
  const dims = [['', 'nothing'], ...((sess.features.dimensions || []).length ? sess.features.dimensions : defaultDims).filter((d) => d).map((d) => [d, d.replace('_', ' ')])];
  const p = getParams();
  const range = ranges.some(([r]) => r === p.range) ? p.range : '24h';
  const interval = intervals.includes(p.interval) ? p.interval : defaultInterval(range);
  const groupBy = dims.some(([d]) => d === p.group_by) ? p.group_by || '' : '';
  const kind = kinds.includes(p.kind) ? p.kind || '' : '';
  const by = dims.some(([d]) => d && d === p.by) ? p.by : 'target';
  const metric = metrics.some(([m]) => m === p.metric) ? p.metric : 'calls';
  const definition = p.definition || '';
  const set = (change) => setParams({ ...p, ...change }, { replace: true });
  const filters = { from: range, kind, definition };

  const trend = useApi('/v1/analytics/trend' + q({ ...filters, interval, group_by: groupBy }));
  const top = useApi('/v1/analytics/top' + q({ ...filters, by, metric, limit: 10 }));
  const approvals = useApi('/v1/analytics/approvals' + q({ from: range, definition }));
  const compare = useApi('/v1/analytics/compare' + q({ ...filters, by: groupBy }));
  const defs = useApi('/v1/definitions');
  const defNames = [...new Set(((defs.data && defs.data.items) || []).map((d) => d.name))].sort();

  const points = (trend.data && trend.data.points) || [];
  const charts = useMemo(() => {
    const grouped = !!groupBy;
    return {
      calls: toSeries(points, [['calls', (x) => x.calls]], { zero: true }),
      errors: toSeries(points, [['error rate', (x) => x.error_rate]]),
      latency: grouped ? toSeries(points, [['p95', (x) => x.latency_p95_ms]])
        : toSeries(points, [['p50', (x) => x.latency_p50_ms], ['p95', (x) => x.latency_p95_ms], ['p99', (x) => x.latency_p99_ms]]),
      tokens: grouped ? toSeries(points, [['tokens', (x) => x.tokens_in + x.tokens_out]], { zero: true })
        : toSeries(points, [['tokens in', (x) => x.tokens_in], ['tokens out', (x) => x.tokens_out]], { zero: true }),
      cost: toSeries(points, [['cost', (x) => x.cost_usd]], { zero: true }),
    };
  }, [trend.data, groupBy]);
  const span = trend.data ? [new Date(trend.data.from).getTime() / 1000, new Date(trend.data.to).getTime() / 1000] : null;
  const metricLabel = (metrics.find(([m]) => m === metric) || metrics[0])[1];
  const capped = charts.calls.groups > maxSeries ? html`<p class="muted small">Showing the ${maxSeries} groups with the most calls of ${charts.calls.groups}.</p>` : null;

  return html`
    <${Page} title="Analytics">
      <form class="filters" onSubmit=${(e) => e.preventDefault()} aria-label="Analytics choices">
        <${Select} label="Range" value=${range} options=${ranges} onChange=${(v) => set({ range: v, interval: '' })} />
        <${Select} label="Interval" value=${interval} options=${intervals.map((i) => [i, i])} onChange=${(v) => set({ interval: v })} />
        <${Select} label="Group by" value=${groupBy} options=${dims} onChange=${(v) => set({ group_by: v })} />
        <${Select} label="Kind" value=${kind} options=${kinds.map((k) => [k, k || 'any'])} onChange=${(v) => set({ kind: v })} />
        <${Select} label="Definition" value=${definition} options=${[['', 'any'], ...defNames.map((n) => [n, n])]} onChange=${(v) => set({ definition: v })} />
      </form>
      <${ErrorBox} error=${trend.error} />
      ${trend.loading && !trend.data ? html`<${Loading} what="Loading the trend" />` : null}
      ${trend.data ? html`
        ${capped}
        <div class="grid2">
          <${Chart} title="Calls" x=${charts.calls.x} series=${charts.calls.series} range=${span} fmt=${fmtInt} description=${`per ${interval}`} />
          <${Chart} title="Error rate" x=${charts.errors.x} series=${charts.errors.series} range=${span} fmt=${fmtPct} description="errors and timeouts / calls" />
          <${Chart} title="Latency" x=${charts.latency.x} series=${charts.latency.series} range=${span} fmt=${fmtMs} description=${groupBy ? 'p95' : 'p50, p95, p99'} />
          <${Chart} title="Tokens" x=${charts.tokens.x} series=${charts.tokens.series} range=${span} fmt=${fmtInt} description="model calls" />
          <${Chart} title="Cost" x=${charts.cost.x} series=${charts.cost.series} range=${span} fmt=${fmtUSD} description="model calls, USD" />
        </div>` : null}

      <section class="card" aria-labelledby="top-n">
        <div class="spread"><h2 id="top-n" style="margin:0">Top 10</h2>
          <div class="filters" style="margin:0">
            <${Select} label="By" value=${by} options=${dims.filter(([d]) => d)} onChange=${(v) => set({ by: v })} />
            <${Select} label="Ranked by" value=${metric} options=${metrics.map(([m, l]) => [m, l])} onChange=${(v) => set({ metric: v })} />
          </div></div>
        <${ErrorBox} error=${top.error} />
        ${top.loading && !top.data ? html`<${Loading} />` : null}
        ${top.data && !(top.data.items || []).length ? html`<p class="empty">No calls in this range.</p>` : null}
        ${top.data && (top.data.items || []).length ? html`
          <div class="table-wrap"><table data-testid="top">
            <caption class="visually-hidden">Top 10 ${by} values by ${metricLabel}</caption>
            <thead><tr><th scope="col">${by}</th>${columns.map(([m, label]) => html`<th scope="col" class="num" aria-sort=${m === metric ? 'descending' : undefined}>${m === metric ? html`<strong>${label} ↓</strong>` : label}</th>`)}</tr></thead>
            <tbody>${top.data.items.map((it) => html`<tr>
              <th scope="row" class="mono">${it.group || '(none)'}</th>
              ${columns.map(([m, , f, get]) => html`<td class="num">${m === metric ? html`<strong>${f(get(it))}</strong>` : f(get(it))}</td>`)}</tr>`)}</tbody>
          </table></div>` : null}
      </section>

      <section class="card" aria-labelledby="compare">
        <h2 id="compare">This period against the one before${groupBy ? `, by ${groupBy}` : ''}</h2>
        <${ErrorBox} error=${compare.error} />
        ${compare.loading && !compare.data ? html`<${Loading} />` : null}
        ${compare.data && (compare.data.groups || []).length ? html`
          <div class="table-wrap"><table>
            <thead><tr><th scope="col">${groupBy || 'tenant'}</th><th scope="col" class="num">calls</th><th scope="col" class="num">change</th>
              <th scope="col" class="num">error rate</th><th scope="col" class="num">change</th><th scope="col" class="num">p95</th><th scope="col" class="num">change</th>
              <th scope="col" class="num">cost</th><th scope="col" class="num">change</th></tr></thead>
            <tbody>${compare.data.groups.map((g) => html`<tr>
              <th scope="row" class="mono">${g.group || 'all'}</th>
              <td class="num">${fmtInt(g.current.calls)}</td><td class="num">${fmtChange(g.calls_change)}</td>
              <td class="num">${fmtPct(g.current.error_rate)}</td><td class=${'num ' + (g.error_rate_change > 0 ? 'up' : g.error_rate_change < 0 ? 'down' : '')}>${fmtChange(g.error_rate_change)}</td>
              <td class="num">${fmtMs(g.current.latency_p95_ms)}</td><td class=${'num ' + (g.latency_p95_change > 0 ? 'up' : g.latency_p95_change < 0 ? 'down' : '')}>${fmtChange(g.latency_p95_change)}</td>
              <td class="num">${fmtUSD(g.current.cost_usd)}</td><td class="num">${fmtChange(g.cost_change)}</td></tr>`)}</tbody>
          </table></div>` : compare.data ? html`<p class="empty">No calls in either period.</p>` : null}
      </section>

      <section class="card" aria-labelledby="turnaround">
        <h2 id="turnaround">Approval turnaround</h2>
        <${ErrorBox} error=${approvals.error} />
        ${approvals.loading && !approvals.data ? html`<${Loading} />` : null}
        ${approvals.data && (approvals.data.roles || []).length ? html`
          <div class="table-wrap"><table>
            <thead><tr><th scope="col">role</th><th scope="col" class="num">decisions</th><th scope="col" class="num">approved</th>
              <th scope="col" class="num">rejected</th><th scope="col" class="num">timed out</th><th scope="col" class="num">p50</th>
              <th scope="col" class="num">p95</th><th scope="col" class="num">max</th></tr></thead>
            <tbody>${approvals.data.roles.map((r) => html`<tr>
              <th scope="row">${r.role}</th><td class="num">${fmtInt(r.decisions)}</td><td class="num">${fmtInt(r.approved)}</td>
              <td class="num">${fmtInt(r.rejected)}</td><td class="num">${fmtInt(r.timed_out)}</td><td class="num">${fmtMs(r.turnaround_p50_ms)}</td>
              <td class="num">${fmtMs(r.turnaround_p95_ms)}</td><td class="num">${fmtMs(r.turnaround_max_ms)}</td></tr>`)}</tbody>
          </table></div>` : approvals.data ? html`<p class="empty">No approval was decided in this range.</p>` : null}
      </section>
    <//>`;
}
