// Time-series charts with uPlot (loaded on first use), each with its data
// as a table for keyboards and screen readers.
import { html, useEffect, useRef, useState, useId } from './lib.js';

let loading = null;

/** loadUPlot loads the vendored uPlot script and stylesheet once. */
export function loadUPlot() {
  if (window.uPlot) return Promise.resolve(window.uPlot);
  if (!loading) {
    loading = new Promise((resolve, reject) => {
      const css = document.createElement('link');
      css.rel = 'stylesheet';
      css.href = new URL('./vendor/uPlot.min.css', import.meta.url).href;
      document.head.append(css);
      const s = document.createElement('script');
      s.src = new URL('./vendor/uPlot.iife.min.js', import.meta.url).href;
      s.onload = () => resolve(window.uPlot);
      s.onerror = () => { loading = null; reject(new Error('could not load the chart library')); };
      document.head.append(s);
    });
  }
  return loading;
}

// Series colours distinguishable on light and dark backgrounds.
export const palette = ['#2f7de1', '#e4572e', '#1f9d55', '#9b59d0', '#d4a017', '#0fa3b1', '#d63384', '#7a8a99'];

const cssVar = (name) => getComputedStyle(document.documentElement).getPropertyValue(name).trim();

/** Charts are rebuilt when the theme changes. */
export function themeChanged() { window.dispatchEvent(new Event('gateflow-theme')); }
if (window.matchMedia) window.matchMedia('(prefers-color-scheme: dark)').addEventListener('change', themeChanged);

/** Chart draws series over x (Unix seconds) within range ([from, to] in
 *  Unix seconds: the period asked for, so a sparse series keeps its place
 *  in time); fmt formats values. */
export function Chart({ title, x, series, fmt, range, height = 220, description }) {
  const el = useRef(null);
  const plot = useRef(null);
  const [err, setErr] = useState(null);
  const [theme, setTheme] = useState(0);
  const id = useId();
  useEffect(() => {
    const f = () => setTheme((t) => t + 1);
    window.addEventListener('gateflow-theme', f);
    return () => window.removeEventListener('gateflow-theme', f);
  }, []);
  useEffect(() => {
    let live = true;
    let ro = null;
    loadUPlot().then((uPlot) => {
      if (!live || !el.current) return;
      const muted = cssVar('--muted');
      const grid = cssVar('--border');
      const axis = (values) => ({ stroke: muted, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid, width: 1 }, values });
      const opts = {
        width: Math.max(280, el.current.clientWidth),
        height,
        scales: { x: { time: true, ...(range ? { range: () => range } : {}) }, y: { range: (u, min, max) => [Math.min(0, min), max > 0 ? max * 1.1 : 1] } },
        series: [{}, ...series.map((s, i) => ({
          label: s.label, stroke: s.color || palette[i % palette.length], width: 2,
          spanGaps: false, points: { show: x.length <= 48, size: 5 },
          value: (u, v) => (v === null || v === undefined ? '–' : fmt(v)),
        }))],
        axes: [axis(undefined), { ...axis((u, vals) => vals.map((v) => fmt(v))), size: 76 }],
        legend: { live: true },
      };
      if (plot.current) plot.current.destroy();
      plot.current = new uPlot(opts, [x, ...series.map((s) => s.values)], el.current);
      ro = new ResizeObserver(() => {
        if (plot.current && el.current) plot.current.setSize({ width: Math.max(280, el.current.clientWidth), height });
      });
      ro.observe(el.current);
    }, setErr);
    return () => {
      live = false;
      if (ro) ro.disconnect();
      if (plot.current) { plot.current.destroy(); plot.current = null; }
    };
  }, [x, series, theme, range && range[0], range && range[1]]);
  const points = series.reduce((n, s) => n + s.values.filter((v) => v !== null && v !== undefined).length, 0);
  return html`
    <figure class="card" aria-labelledby=${id} data-chart=${title} data-points=${points} data-series=${series.length} style="margin:0 0 1rem">
      <div class="chart-head"><h2 id=${id}>${title}</h2>${description ? html`<span class="muted small">${description}</span>` : null}</div>
      ${err ? html`<p class="alert error" role="alert">${err.message}</p>` : null}
      ${x.length === 0 ? html`<p class="empty">No calls in this range.</p>` : html`<div class="chart" ref=${el} role="img" aria-label=${`${title}: chart of ${series.map((s) => s.label).join(', ')}; the table below has the values`}></div>`}
      ${x.length ? html`
        <details><summary>${title} as a table</summary>
          <div class="table-wrap"><table>
            <thead><tr><th scope="col">Time</th>${series.map((s) => html`<th scope="col" class="num">${s.label}</th>`)}</tr></thead>
            <tbody>${x.map((t, i) => html`<tr><td>${new Date(t * 1000).toLocaleString()}</td>${series.map((s) => html`<td class="num">${s.values[i] === null || s.values[i] === undefined ? '–' : fmt(s.values[i])}</td>`)}</tr>`)}</tbody>
          </table></div>
        </details>` : null}
    </figure>`;
}
