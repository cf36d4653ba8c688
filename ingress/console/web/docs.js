// Documentation rendering: a small, safe Markdown subset (text is never
// parsed as HTML) and an OpenAPI 3 document as a reference.
import { html } from './lib.js';

function inline(text) {
  // `code`, **bold**, *em*, [text](http(s) link); everything else is text.
  const out = [];
  const re = /(`[^`]+`)|(\*\*[^*]+\*\*)|(\*[^*]+\*)|(\[[^\]]+\]\((https?:\/\/[^)\s]+|\/[^)\s]*)\))/g;
  let last = 0;
  let m;
  while ((m = re.exec(text))) {
    if (m.index > last) out.push(text.slice(last, m.index));
    const t = m[0];
    if (m[1]) out.push(html`<code>${t.slice(1, -1)}</code>`);
    else if (m[2]) out.push(html`<strong>${t.slice(2, -2)}</strong>`);
    else if (m[3]) out.push(html`<em>${t.slice(1, -1)}</em>`);
    else {
      const label = t.slice(1, t.indexOf(']'));
      out.push(html`<a href=${m[5]} rel="noopener noreferrer" target=${m[5].startsWith('/') ? undefined : '_blank'}>${label}</a>`);
    }
    last = m.index + t.length;
  }
  if (last < text.length) out.push(text.slice(last));
  return out;
}

/** Markdown renders headings, paragraphs, lists, quotes and code blocks. */
export function Markdown({ text }) {
  if (!text) return null;
  const blocks = [];
  const lines = text.replace(/\r\n/g, '\n').split('\n');
  let i = 0;
  while (i < lines.length) {
    const line = lines[i];
    if (/^```/.test(line)) {
      const code = [];
      i++;
      while (i < lines.length && !/^```/.test(lines[i])) code.push(lines[i++]);
      i++;
      blocks.push(html`<pre class="code">${code.join('\n')}</pre>`);
      continue;
    }
    const h = line.match(/^(#{1,4})\s+(.*)$/);
    if (h) {
      const level = Math.min(4, h[1].length + 1); // the page has the h1
      blocks.push(html`<${'h' + level}>${inline(h[2])}<//>`);
      i++;
      continue;
    }
    if (/^\s*([-*]|\d+\.)\s+/.test(line)) {
      const ordered = /^\s*\d+\./.test(line);
      const items = [];
      while (i < lines.length && /^\s*([-*]|\d+\.)\s+/.test(lines[i])) items.push(lines[i++].replace(/^\s*([-*]|\d+\.)\s+/, ''));
      const lis = items.map((t) => html`<li>${inline(t)}</li>`);
      blocks.push(ordered ? html`<ol>${lis}</ol>` : html`<ul>${lis}</ul>`);
      continue;
    }
    if (/^>\s?/.test(line)) {
      const q = [];
      while (i < lines.length && /^>\s?/.test(lines[i])) q.push(lines[i++].replace(/^>\s?/, ''));
      blocks.push(html`<blockquote>${inline(q.join(' '))}</blockquote>`);
      continue;
    }
    if (!line.trim()) { i++; continue; }
    const para = [];
    while (i < lines.length && lines[i].trim() && !/^(```|#{1,4}\s|>|\s*([-*]|\d+\.)\s)/.test(lines[i])) para.push(lines[i++]);
    blocks.push(html`<p>${inline(para.join(' '))}</p>`);
  }
  return html`<div class="markdown">${blocks}</div>`;
}

/** resolve follows a local $ref ("#/components/schemas/X"). */
function resolve(doc, s, seen = new Set()) {
  if (!s || typeof s !== 'object' || !s.$ref) return s;
  if (seen.has(s.$ref) || !s.$ref.startsWith('#/')) return { description: s.$ref };
  seen.add(s.$ref);
  let v = doc;
  for (const part of s.$ref.slice(2).split('/')) v = v && v[part.replace(/~1/g, '/').replace(/~0/g, '~')];
  return resolve(doc, v, seen);
}

const refName = (s) => (s && s.$ref ? s.$ref.split('/').pop() : '');

function typeText(doc, s) {
  if (!s) return 'any';
  if (s.$ref) return refName(s);
  if (s.enum) return s.enum.map((v) => JSON.stringify(v)).join(' | ');
  if (s.type === 'array') return 'array of ' + typeText(doc, s.items);
  if (s.oneOf || s.anyOf) return (s.oneOf || s.anyOf).map((x) => typeText(doc, x)).join(' or ');
  const t = Array.isArray(s.type) ? s.type.join(' | ') : s.type || (s.properties ? 'object' : 'any');
  return s.format ? `${t} (${s.format})` : t;
}

/** Schema lists an object's fields (two levels deep; refs by name). */
export function Schema({ doc, schema, depth = 0 }) {
  const s = resolve(doc, schema);
  if (!s) return null;
  const props = s.properties || (s.items && resolve(doc, s.items) && resolve(doc, s.items).properties);
  if (!props) return html`<span class="mono small">${typeText(doc, schema)}</span>${s.description ? html` <span class="muted small">${s.description}</span>` : null}`;
  const req = new Set(s.required || (s.items && resolve(doc, s.items).required) || []);
  return html`
    ${s.type === 'array' ? html`<div class="muted small">array of:</div>` : null}
    <ul class="small" style="margin:.2rem 0;padding-left:1.1rem">
      ${Object.entries(props).map(([k, v]) => html`<li><code>${k}</code>${req.has(k) ? html` <span class="badge warn">required</span>` : null}
        <span class="mono muted"> ${typeText(doc, v)}</span>${resolve(doc, v) && resolve(doc, v).description ? html` — ${resolve(doc, v).description}` : null}
        ${depth < 1 && resolve(doc, v) && (resolve(doc, v).properties || (resolve(doc, v).items && resolve(doc, resolve(doc, v).items) && resolve(doc, resolve(doc, v).items).properties)) ? html`<${Schema} doc=${doc} schema=${v} depth=${depth + 1} />` : null}</li>`)}
    </ul>`;
}

const methods = ['get', 'post', 'put', 'patch', 'delete'];

/** OpenAPIReference renders every operation of an OpenAPI 3 document. */
export function OpenAPIReference({ doc, filter = '' }) {
  if (!doc || !doc.paths) return html`<p class="muted">No OpenAPI document.</p>`;
  const f = filter.toLowerCase();
  const ops = [];
  for (const [p, item] of Object.entries(doc.paths)) {
    for (const m of methods) {
      const op = item[m];
      if (!op) continue;
      const text = `${m} ${p} ${op.summary || ''} ${(op.tags || []).join(' ')}`.toLowerCase();
      if (!f || text.includes(f)) ops.push([p, m, op]);
    }
  }
  return html`
    ${doc.info ? html`<p><strong>${doc.info.title}</strong> ${doc.info.version ? html`<span class="muted">version ${doc.info.version}</span>` : null}</p>
      ${doc.info.description ? html`<${Markdown} text=${doc.info.description} />` : null}` : null}
    <p class="muted small">${ops.length} operation${ops.length === 1 ? '' : 's'}</p>
    ${ops.map(([p, m, op]) => html`
      <details class="card" style="padding:.5rem .75rem" data-operation=${m.toUpperCase() + ' ' + p}>
        <summary style="font-size:1rem;color:var(--text)"><span class="badge st-running">${m.toUpperCase()}</span> <code>${p}</code> ${op.summary ? html`<span class="muted"> ${op.summary}</span>` : null}</summary>
        ${op.description ? html`<${Markdown} text=${op.description} />` : null}
        ${(op.parameters || []).length ? html`
          <h3>Parameters</h3>
          <div class="table-wrap"><table>
            <thead><tr><th scope="col">name</th><th scope="col">in</th><th scope="col">type</th><th scope="col">description</th></tr></thead>
            <tbody>${op.parameters.map((x) => resolve(doc, x)).map((x) => html`<tr><td><code>${x.name}</code>${x.required ? ' *' : ''}</td><td>${x.in}</td><td class="mono small">${typeText(doc, x.schema)}</td><td>${x.description || ''}</td></tr>`)}</tbody>
          </table></div>` : null}
        ${op.requestBody ? html`<h3>Request body</h3>${Object.entries(resolve(doc, op.requestBody).content || {}).map(([ct, c]) => html`<div class="muted small">${ct}</div><${Schema} doc=${doc} schema=${c.schema} />`)}` : null}
        <h3>Responses</h3>
        <ul class="small">${Object.entries(op.responses || {}).map(([code, r]) => {
          const rr = resolve(doc, r) || {};
          const c = rr.content && Object.values(rr.content)[0];
          return html`<li><strong>${code}</strong> ${rr.description || ''}${c && c.schema ? html` <span class="mono muted">${typeText(doc, c.schema)}</span>` : null}</li>`;
        })}</ul>
      </details>`)}`;
}
