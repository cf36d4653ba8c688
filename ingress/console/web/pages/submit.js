// Start a run: pick a definition, fill the input form generated from its
// input_schema (or write the JSON), submit. Problems the API finds are
// shown at their fields.
import { html, useState, useEffect, useMemo, useId } from '../lib.js';
import { api, randomId } from '../api.js';
import { navigate, path, params as getParams, setParams } from '../router.js';
import { Page, useApi, Loading, ErrorBox, Field, has, useSession } from '../ui.js';
import { SchemaForm, initial, formErrors } from '../schemaform.js';

export default function Submit() {
  const sess = useSession();
  const p = getParams();
  const ids = { def: useId(), ver: useId(), json: useId(), labels: useId() };
  const defs = useApi('/v1/definitions');
  const all = (defs.data && defs.data.items) || [];
  const names = [...new Set(all.map((d) => d.name))].sort();
  const versions = all.filter((d) => d.name === p.definition).map((d) => d.version);
  const version = p.version || '';
  const one = useApi(p.definition ? `/v1/definitions/${encodeURIComponent(p.definition)}/versions/${encodeURIComponent(version || 'latest')}` : null);
  const schema = one.data && one.data.input_schema;

  const [value, setValue] = useState({});
  const [mode, setMode] = useState('form');
  const [text, setText] = useState('{}');
  const [textError, setTextError] = useState('');
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  // One idempotency key per filled form: a double click or a retry after a
  // lost answer starts one run, never two.
  const idem = useMemo(() => randomId(), [p.definition, version, JSON.stringify(value), text, mode]);

  useEffect(() => {
    const v = (schema && initial(schema)) || {};
    setValue(v);
    setText(JSON.stringify(v, null, 2));
    setError(null);
  }, [one.data]);

  const submit = async (e) => {
    e.preventDefault();
    setError(null);
    let input = value;
    if (mode === 'json') {
      try { input = text.trim() ? JSON.parse(text) : {}; } catch (err) { setTextError('not valid JSON: ' + err.message); return; }
    }
    setBusy(true);
    try {
      const res = await api('/v1/workflows', { method: 'POST', body: { definition: p.definition, version: version || undefined, input }, headers: { 'Idempotency-Key': idem } });
      navigate(path.run(res.id));
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };

  const errs = formErrors(error && error.details);
  const switchMode = (m) => {
    if (m === 'json') setText(JSON.stringify(value, null, 2));
    else { try { setValue(JSON.parse(text || '{}')); } catch { /* keep the form's value */ } }
    setTextError('');
    setMode(m);
  };

  return html`
    <${Page} title="Start a run">
      ${!has(sess, 'submitter') ? html`<div class="alert info">Your key has no submitter role: the API will refuse to start runs.</div>` : null}
      <${ErrorBox} error=${defs.error} />
      <div class="filters">
        <div class="field"><label for=${ids.def}>Definition</label>
          <select id=${ids.def} value=${p.definition || ''} onChange=${(e) => setParams({ definition: e.target.value }, { replace: true })}>
            <option value="">choose…</option>${names.map((n) => html`<option value=${n}>${n}</option>`)}
          </select></div>
        ${p.definition ? html`<div class="field"><label for=${ids.ver}>Version</label>
          <select id=${ids.ver} value=${version} onChange=${(e) => setParams({ definition: p.definition, version: e.target.value }, { replace: true })}>
            <option value="">latest</option>${versions.map((v) => html`<option value=${v}>${v}</option>`)}
          </select></div>` : null}
      </div>
      ${p.definition && one.loading ? html`<${Loading} />` : null}
      <${ErrorBox} error=${one.error} />
      ${one.data ? html`
        <form class="card" onSubmit=${submit} noValidate>
          <div class="spread">
            <h2 style="margin:0">${one.data.name} v${one.data.version}</h2>
            <div class="row" role="group" aria-label="Input editor">
              <button type="button" aria-pressed=${mode === 'form'} onClick=${() => switchMode('form')}>Form</button>
              <button type="button" aria-pressed=${mode === 'json'} onClick=${() => switchMode('json')}>JSON</button>
            </div>
          </div>
          ${one.data.description ? html`<p class="muted">${one.data.description}</p>` : null}
          ${error ? html`<${ErrorBox} error=${error} title="The run was not started." />` : null}
          ${mode === 'form' && schema ? html`<${SchemaForm} schema=${schema} value=${value} onChange=${setValue} errors=${errs} />` : null}
          ${mode === 'form' && !schema ? html`<p class="muted">This definition declares no input schema; any JSON object is accepted. Use the JSON editor to give one.</p>` : null}
          ${mode === 'json' ? html`
            <${Field} id=${ids.json} label="Input (JSON object)" error=${textError}>
              <textarea id=${ids.json} rows="12" value=${text} onInput=${(e) => { setText(e.target.value); setTextError(''); }}></textarea>
            <//>` : null}
          <button class="primary" type="submit" disabled=${busy}>${busy ? 'Starting…' : 'Start run'}</button>
        </form>` : null}
    <//>`;
}
