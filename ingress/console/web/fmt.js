// Numbers and times for people. The same rules as `gateflow analytics`
// tables: rates as percentages, latencies in ms or s with sensible
// precision, costs in dollars with significant digits, thousands separated.

const intFmt = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });
const dash = '–';
const bad = (v) => v === null || v === undefined || Number.isNaN(v);

export function fmtInt(n) { return bad(n) ? dash : intFmt.format(n); }

/** A number with up to `digits` decimals, thousands separated. */
export function fmtNum(n, digits = 2) {
  return bad(n) ? dash : n.toLocaleString('en-US', { maximumFractionDigits: digits });
}

/** A rate in [0, 1] as a percentage: 0.052668 → "5.27 %". */
export function fmtPct(r) {
  if (bad(r)) return dash;
  const p = r * 100;
  if (p === 0) return '0 %';
  if (Math.abs(p) < 0.01) return (p < 0 ? '>−0.01' : '<0.01') + ' %';
  const d = Math.abs(p) < 10 ? 2 : Math.abs(p) < 100 ? 1 : 0;
  return p.toFixed(d) + ' %';
}

/** Milliseconds: "0.42 ms", "4.2 ms", "123 ms", "1.23 s", "4m 12s". */
export function fmtMs(ms) {
  if (bad(ms)) return dash;
  const a = Math.abs(ms);
  if (a === 0) return '0 ms';
  if (a < 1) return ms.toFixed(2) + ' ms';
  if (a < 10) return ms.toFixed(1) + ' ms';
  if (a < 1000) return Math.round(ms) + ' ms';
  if (a < 60000) return (ms / 1000).toFixed(a < 10000 ? 2 : 1) + ' s';
  return fmtDuration(ms);
}

/** Dollars: "$1,234.57", "$0.50", "$0.0527", "$0.0000143" (3 significant
 *  digits below $1, at least two decimals), as `gateflow analytics` writes them. */
export function fmtUSD(v) {
  if (bad(v)) return dash;
  if (v === 0) return '$0';
  const a = Math.abs(v);
  const sign = v < 0 ? '−' : '';
  if (a >= 1) return sign + '$' + a.toLocaleString('en-US', { minimumFractionDigits: 2, maximumFractionDigits: 2 });
  const digits = Math.min(12, Math.max(2, 2 - Math.floor(Math.log10(a))));
  let s = a.toFixed(digits);
  while (s.endsWith('0') && s.length > '0.00'.length) s = s.slice(0, -1);
  return sign + '$' + s;
}

/** A duration for people: "850 ms", "3.2 s", "4m 12s", "2h 03m", "3d 4h". */
export function fmtDuration(ms) {
  if (bad(ms)) return dash;
  if (ms < 1000) return Math.round(ms) + ' ms';
  const s = ms / 1000;
  if (s < 60) return s.toFixed(s < 10 ? 1 : 0) + ' s';
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${String(Math.floor(s % 60)).padStart(2, '0')}s`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h}h ${String(m % 60).padStart(2, '0')}m`;
  return `${Math.floor(h / 24)}d ${h % 24}h`;
}

/** A relative change: +12 %, −4.0 %, "new" when there was nothing before. */
export function fmtChange(x) {
  if (bad(x)) return 'new';
  const p = x * 100;
  const s = Math.abs(p) < 10 ? Math.abs(p).toFixed(1) : Math.round(Math.abs(p)).toLocaleString('en-US');
  return (p > 0 ? '+' : p < 0 ? '−' : '±') + s + ' %';
}

const dateTime = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'medium' });
const shortTime = new Intl.DateTimeFormat(undefined, { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit' });

export function fmtTime(iso) { return iso ? dateTime.format(new Date(iso)) : dash; }
export function fmtShortTime(iso) { return iso ? shortTime.format(new Date(iso)) : dash; }

/** "3 min ago", "in 2 h", "just now". */
export function fmtAgo(iso, now = Date.now()) {
  if (!iso) return dash;
  const d = (new Date(iso).getTime() - now) / 1000;
  const a = Math.abs(d);
  let v;
  if (a < 45) return d < 0 ? 'just now' : 'in a moment';
  if (a < 3600) v = Math.round(a / 60) + ' min';
  else if (a < 86400 * 2) v = Math.round(a / 3600) + ' h';
  else v = Math.round(a / 86400) + ' d';
  return d < 0 ? v + ' ago' : 'in ' + v;
}

/** A run's or step's duration from its times (running: until now). */
export function elapsed(start, end, now = Date.now()) {
  if (!start) return null;
  return (end ? new Date(end).getTime() : now) - new Date(start).getTime();
}
