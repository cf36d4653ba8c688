// A form generated from a JSON Schema (a definition's input_schema):
// objects become fieldsets, strings text inputs (selects for enums, date
// and e-mail inputs by format), numbers number inputs, booleans check
// boxes, arrays lists with add and remove. What the form cannot express
// (oneOf, patternProperties, ...) gets a JSON text area for that value.
// The server validates again; its problems are shown at their fields.
import { html, useState } from './lib.js';

const typeOf = (s) => {
  if (!s || typeof s !== 'object') return 'any';
  if (Array.isArray(s.type)) return s.type.find((t) => t !== 'null') || 'any';
  if (s.type) return s.type;
  if (s.properties) return 'object';
  if (s.enum) return 'enum';
  return 'any';
};

const simple = (s) => ['string', 'number', 'integer', 'boolean', 'enum'].includes(typeOf(s)) && !s.oneOf && !s.anyOf;

/** initial returns a value from the schema's defaults (undefined when none). */
export function initial(s) {
  if (!s || typeof s !== 'object') return undefined;
  if (s.default !== undefined) return structuredClone(s.default);
  if (typeOf(s) === 'object' && s.properties) {
    const out = {};
    for (const [k, sub] of Object.entries(s.properties)) {
      const v = initial(sub);
      if (v !== undefined) out[k] = v;
    }
    return out;
  }
  return undefined;
}

/** formErrors indexes API problem details by field path (without "input."). */
export function formErrors(details) {
  const out = {};
  for (const d of details || []) {
    const p = (d.path || '').replace(/^input\.?/, '');
    (out[p] = out[p] || []).push(d.message);
  }
  return out;
}

const fieldId = (p) => 'in-' + (p || 'root').replace(/[^A-Za-z0-9_-]/g, '_');
const join = (base, key) => (base ? (typeof key === 'number' ? `${base}[${key}]` : `${base}.${key}`) : String(key));

function ErrorText({ id, errors }) {
  if (!errors || !errors.length) return null;
  return html`<div class="field-error" id=${id + '-error'} role="alert">${errors.join('; ')}</div>`;
}

function Scalar({ schema, value, onChange, id, errors, label, required }) {
  const t = typeOf(schema);
  const described = errors && errors.length ? id + '-error' : undefined;
  const common = { id, 'aria-describedby': described, 'aria-invalid': described ? 'true' : undefined, required };
  if (schema.enum) {
    return html`<select ...${common} value=${value === undefined ? '' : JSON.stringify(value)} onChange=${(e) => onChange(e.target.value === '' ? undefined : JSON.parse(e.target.value))}>
      <option value="">${required ? 'choose…' : '(none)'}</option>
      ${schema.enum.map((v) => html`<option value=${JSON.stringify(v)}>${String(v)}</option>`)}
    </select>`;
  }
  if (t === 'boolean') {
    return html`<input type="checkbox" ...${common} checked=${!!value} onChange=${(e) => onChange(e.target.checked)} aria-label=${label} />`;
  }
  if (t === 'number' || t === 'integer') {
    return html`<input type="number" ...${common} step=${t === 'integer' ? '1' : schema.multipleOf || 'any'} min=${schema.minimum} max=${schema.maximum}
      value=${value === undefined ? '' : value} onInput=${(e) => onChange(e.target.value === '' ? undefined : Number(e.target.value))} />`;
  }
  const format = schema.format;
  const type = format === 'date' ? 'date' : format === 'email' ? 'email' : format === 'uri' ? 'url' : 'text';
  if (format === 'date-time') {
    return html`<input type="datetime-local" ...${common} value=${value ? String(value).slice(0, 16) : ''}
      onInput=${(e) => onChange(e.target.value ? new Date(e.target.value).toISOString() : undefined)} />`;
  }
  if ((schema.maxLength || 0) > 200) {
    return html`<textarea ...${common} rows="4" maxlength=${schema.maxLength} value=${value || ''} onInput=${(e) => onChange(e.target.value === '' ? undefined : e.target.value)}></textarea>`;
  }
  return html`<input type=${type} ...${common} maxlength=${schema.maxLength} minlength=${schema.minLength} pattern=${schema.pattern}
    value=${value === undefined ? '' : value} onInput=${(e) => onChange(e.target.value === '' ? undefined : e.target.value)} />`;
}

function RawJSON({ value, onChange, id, errors }) {
  const [text, setText] = useState(value === undefined ? '' : JSON.stringify(value, null, 2));
  const [bad, setBad] = useState('');
  return html`
    <textarea id=${id} rows="4" value=${text} aria-describedby=${bad || (errors && errors.length) ? id + '-error' : undefined}
      onInput=${(e) => {
        setText(e.target.value);
        if (e.target.value.trim() === '') { setBad(''); onChange(undefined); return; }
        try { onChange(JSON.parse(e.target.value)); setBad(''); } catch (err) { setBad('not valid JSON: ' + err.message); }
      }}></textarea>
    <${ErrorText} id=${id} errors=${bad ? [bad, ...(errors || [])] : errors} />`;
}

/** Node renders one value of the schema at path p. */
function Node({ schema, value, onChange, p, errors, label, required }) {
  const id = fieldId(p);
  const t = typeOf(schema);
  const own = errors[p];
  const hint = schema.description;
  if (t === 'object' && schema.properties && !schema.oneOf && !schema.anyOf) {
    const req = new Set(schema.required || []);
    const v = value && typeof value === 'object' ? value : {};
    const body = Object.entries(schema.properties).map(([k, sub]) => html`
      <${Node} key=${k} schema=${sub} value=${v[k]} p=${join(p, k)} errors=${errors} label=${sub.title || k} required=${req.has(k)}
        onChange=${(nv) => { const o = { ...v }; if (nv === undefined) delete o[k]; else o[k] = nv; onChange(o); }} />`);
    if (!p) return html`<div>${body}<${ErrorText} id=${id} errors=${own} /></div>`;
    return html`<fieldset><legend>${label}${required ? ' *' : ''}</legend>${hint ? html`<p class="hint muted small">${hint}</p>` : null}${body}<${ErrorText} id=${id} errors=${own} /></fieldset>`;
  }
  if (t === 'array' && schema.items && typeof schema.items === 'object') {
    const list = Array.isArray(value) ? value : [];
    const item = schema.items;
    return html`
      <fieldset aria-describedby=${own ? id + '-error' : undefined}>
        <legend>${label}${required ? ' *' : ''} <span class="muted small">(${list.length} item${list.length === 1 ? '' : 's'})</span></legend>
        ${hint ? html`<p class="hint muted small">${hint}</p>` : null}
        ${list.map((iv, i) => html`
          <div class="row" key=${i} style="align-items:flex-start">
            <div style="flex:1">
              <${Node} schema=${item} value=${iv} p=${join(p, i)} errors=${errors} label=${`${label} ${i + 1}`}
                onChange=${(nv) => { const a = list.slice(); a[i] = nv; onChange(a); }} />
            </div>
            <button type="button" aria-label=${`Remove ${label} ${i + 1}`} onClick=${() => onChange(list.filter((_, j) => j !== i))}>Remove</button>
          </div>`)}
        <button type="button" onClick=${() => onChange([...list, initial(item) ?? (typeOf(item) === 'object' ? {} : undefined)])}>Add ${item.title || 'item'}</button>
        <${ErrorText} id=${id} errors=${own} />
      </fieldset>`;
  }
  const labelText = html`${label}${required ? html`<span aria-hidden="true"> *</span><span class="visually-hidden"> (required)</span>` : null}`;
  return html`
    <div class=${'field' + (own ? ' invalid' : '')}>
      <label for=${id}>${labelText}${hint ? html` <span class="hint">${hint}</span>` : null}</label>
      ${simple(schema)
        ? html`<${Scalar} schema=${schema} value=${value} onChange=${onChange} id=${id} errors=${own} label=${label} required=${required} />`
        : html`<${RawJSON} value=${value} onChange=${onChange} id=${id} errors=${own} />`}
      ${simple(schema) ? html`<${ErrorText} id=${id} errors=${own} />` : null}
    </div>`;
}

/** SchemaForm edits value (an object) by schema; errors come from formErrors. */
export function SchemaForm({ schema, value, onChange, errors }) {
  return html`<${Node} schema=${schema} value=${value} onChange=${onChange} p="" errors=${errors || {}} label="Input" required=${true} />`;
}
