// YAML for definitions: write a definition (JSON from the API) as block
// YAML, highlight it, and find the line of a problem's path
// ("steps[2].retry.max_attempts") in text a person wrote.
import { html } from './lib.js';

const plainKey = /^[A-Za-z_][A-Za-z0-9_.-]*$/;
const reserved = /^(true|false|yes|no|on|off|null|~|y|n)$/i;
// Strings that YAML would read as something else: numbers, sexagesimals,
// dates. A digit-led string stays plain only as a duration ("30s", "24h").
const numeric = /^[-+.]?[0-9]|^[-+]?\.(inf|nan)$/i;
const duration = /^[0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h|d)$/;

function scalar(s) {
  if (typeof s !== 'string') return JSON.stringify(s);
  if (s === '' || reserved.test(s) || (numeric.test(s) && !duration.test(s)) || /^[\s\-?:,[\]{}#&*!|>'"%@`]/.test(s) ||
      /[\n\r\t]|: |\s#|:$|\s$/.test(s)) {
    return JSON.stringify(s);
  }
  return s;
}

/** toYAML writes a JSON value as block YAML (2-space indents). */
export function toYAML(value) {
  const lines = [];
  const key = (k) => (plainKey.test(k) && !reserved.test(k) ? k : JSON.stringify(k));
  const block = (s, ind) => {
    // Multi-line text reads best as a literal block.
    if (typeof s === 'string' && s.includes('\n') && !/^\s/.test(s) && !/[\r\t]/.test(s) && !/\n\n$/.test(s) && !/ \n|\s$/.test(s.replace(/\n$/, ''))) {
      return { head: s.endsWith('\n') ? '|' : '|-', body: s.replace(/\n$/, '').split('\n').map((l) => (l ? ' '.repeat(ind) + l : '')) };
    }
    return null;
  };
  const write = (v, ind, prefix) => {
    const pad = ' '.repeat(ind);
    if (Array.isArray(v)) {
      if (!v.length) { lines.push(prefix + '[]'); return; }
      if (prefix.trim()) lines.push(prefix.trimEnd());
      v.forEach((item) => {
        if (item && typeof item === 'object' && !Array.isArray(item) && Object.keys(item).length) {
          const entries = Object.entries(item);
          entries.forEach(([k, iv], i) => field(k, iv, ind + 2, i === 0 ? pad + '- ' : pad + '  '));
        } else {
          writeValue(item, ind + 2, pad + '- ');
        }
      });
      return;
    }
    if (v && typeof v === 'object') {
      const entries = Object.entries(v);
      if (!entries.length) { lines.push(prefix + '{}'); return; }
      if (prefix.trim()) lines.push(prefix.trimEnd());
      entries.forEach(([k, iv]) => field(k, iv, ind, pad));
      return;
    }
    lines.push(prefix + scalar(v));
  };
  const writeValue = (v, ind, prefix) => {
    const b = block(v, ind);
    if (b) { lines.push(prefix + b.head); lines.push(...b.body); return; }
    if (v && typeof v === 'object') write(v, ind, prefix);
    else lines.push(prefix + scalar(v));
  };
  // field writes "k: v" with its first line prefixed by lead.
  const field = (k, v, ind, lead) => {
    const head = lead + key(k) + ':';
    if (v && typeof v === 'object' && (Array.isArray(v) ? v.length : Object.keys(v).length)) {
      lines.push(head);
      write(v, Array.isArray(v) ? ind : ind + 2, '');
      return;
    }
    writeValue(v, ind + 2, head + ' ');
  };
  if (value && typeof value === 'object' && !Array.isArray(value)) Object.entries(value).forEach(([k, v]) => field(k, v, 0, ''));
  else writeValue(value, 0, '');
  return lines.join('\n') + '\n';
}

/** tokens splits one YAML line into [class, text] pieces for highlighting. */
function tokens(line, inBlock) {
  if (inBlock) return [['t-str', line]];
  const out = [];
  const m = line.match(/^(\s*)((?:- +)*)(.*)$/);
  out.push(['', m[1]]);
  if (m[2]) out.push(['t-punct', m[2]]);
  let rest = m[3];
  const km = rest.match(/^("(?:[^"\\]|\\.)*"|'[^']*'|[^\s#'"{[][^:#]*?)(\s*:)(\s|$)/);
  if (km) {
    out.push(['t-key', km[1]], ['t-punct', km[2]]);
    rest = rest.slice(km[1].length + km[2].length);
  }
  const cm = rest.match(/(^|\s)#.*$/);
  let comment = '';
  if (cm && !/^\s*["']/.test(rest)) { comment = rest.slice(cm.index); rest = rest.slice(0, cm.index); }
  const value = rest.trim();
  const lead = rest.slice(0, rest.length - rest.trimStart().length);
  const trail = rest.slice(lead.length + value.length);
  if (lead) out.push(['', lead]);
  if (value) {
    let cls = 't-str';
    if (/^[-+]?(\d[\d_]*(\.\d*)?([eE][-+]?\d+)?|\.inf|\.nan)$/i.test(value) || /^(true|false|null|~)$/.test(value)) cls = 't-num';
    else if (/^[|>][-+]?\d*$/.test(value) || /^[[\]{}]+$/.test(value)) cls = 't-punct';
    // Expressions inside strings stand out.
    const parts = value.split(/(\$\{\{.*?\}\})/);
    parts.forEach((part) => { if (part) out.push([/^\$\{\{/.test(part) ? 't-expr' : cls, part]); });
  }
  if (trail) out.push(['', trail]);
  if (comment) out.push(['t-com', comment]);
  return out;
}

/** Highlighted renders YAML text with line numbers; problems (by line,
 *  1-based) are written under their lines. */
export function Highlighted({ text, problems = {}, label }) {
  const lines = text.replace(/\n$/, '').split('\n');
  let block = -1; // indentation of the key that opened a block scalar
  const rows = lines.map((line, i) => {
    const ind = line.length - line.trimStart().length;
    const inBlock = block >= 0 && (line.trim() === '' || ind > block);
    if (!inBlock) block = -1;
    const toks = tokens(line, inBlock);
    if (!inBlock && /:\s*[|>][-+]?\d*\s*(#.*)?$/.test(line)) block = ind + (line.trimStart().startsWith('- ') ? 2 : 0);
    const errs = problems[i + 1];
    return html`<span class=${'ln' + (errs ? ' has-error' : '')} data-line=${i + 1}>${toks.map(([c, t]) => (c ? html`<span class=${c}>${t}</span>` : t))}</span>${errs ? errs.map((e) => html`<span class="err" role="note">↳ <code>${e.path}</code>: ${e.message}</span>`) : null}`;
  });
  return html`<pre class="code yaml" tabindex="0" aria-label=${label || 'YAML'}>${rows}</pre>`;
}

/** pathLines maps each path that starts on a line ("steps[0].retry") to
 *  that line (1-based), for block YAML as people write definitions. */
export function pathLines(text) {
  const out = new Map();
  const frames = [{ indent: -1, path: '', kind: 'root', next: 0 }];
  let block = -1;
  text.split('\n').forEach((raw, i) => {
    const line = raw.replace(/\t/g, '  ');
    const trimmed = line.trim();
    let col = line.length - line.trimStart().length;
    if (block >= 0) {
      if (trimmed === '' || col > block) return;
      block = -1;
    }
    if (trimmed === '' || trimmed.startsWith('#') || trimmed === '---' || trimmed === '...') return;
    let rest = line.slice(col);
    const top = () => frames[frames.length - 1];
    while (rest === '-' || rest.startsWith('- ')) {
      while (frames.length > 1 && (top().indent > col || (top().indent === col && top().kind === 'item'))) frames.pop();
      const parent = top();
      const p = `${parent.path}[${parent.next++}]`;
      frames.push({ indent: col, path: p, kind: 'item', next: 0 });
      if (!out.has(p)) out.set(p, i + 1);
      const after = rest.slice(1);
      const spaces = after.length - after.trimStart().length;
      col += 1 + spaces;
      rest = after.trimStart();
      if (!rest) return;
    }
    const km = rest.match(/^("(?:[^"\\]|\\.)*"|'[^']*'|[^\s#'"{[][^:#]*?)\s*:(\s|$)/);
    if (!km) return;
    let k = km[1];
    if (/^["']/.test(k)) { try { k = k.startsWith('"') ? JSON.parse(k) : k.slice(1, -1); } catch { k = k.slice(1, -1); } }
    while (frames.length > 1 && top().indent >= col) frames.pop();
    const parent = top();
    const p = parent.path ? `${parent.path}.${k}` : k;
    frames.push({ indent: col, path: p, kind: 'key', next: 0 });
    if (!out.has(p)) out.set(p, i + 1);
    const value = rest.slice(km[0].length).trim();
    if (/^[|>][-+]?\d*\s*(#.*)?$/.test(value)) block = col;
  });
  return out;
}

/** locate returns the line of path in text, or of its nearest ancestor
 *  that is written there (a missing field is reported at its parent). */
export function locate(lines, path) {
  let p = (path || '').replace(/^(body|definition)\./, '');
  while (p) {
    if (lines.has(p)) return lines.get(p);
    const cut = Math.max(p.lastIndexOf('.'), p.lastIndexOf('['));
    if (cut <= 0) break;
    p = p.slice(0, cut);
  }
  return lines.has(p) ? lines.get(p) : 0;
}
