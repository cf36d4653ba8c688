// Publish a definition version: write YAML (starting from an existing
// version), see it highlighted, publish; the API's problems are shown at
// the lines their paths point to.
import { html, useState, useEffect, useMemo, useRef, useId } from '../lib.js';
import { api } from '../api.js';
import { path, params as getParams } from '../router.js';
import { Page, ErrorBox, Loading, has, useSession } from '../ui.js';
import { toYAML, Highlighted, pathLines, locate } from '../yaml.js';

const template = `name: my-flow
version: "1"
description: What this orchestration does
input_schema:
  type: object
  required: [name]
  properties:
    name: {type: string}
steps:
  - id: hello
    kind: http
    service: echo
    method: POST
    path: /hello
    body:
      name: \${{ input.name }}
output:
  greeting: \${{ steps.hello.output.body }}
`;

/** bump turns "3" into "4" and "1.2" into "1.3". */
const bump = (v) => v.replace(/(\d+)(?!.*\d)/, (d) => String(Number(d) + 1));

/** top reads a top-level scalar (name, version) from YAML text. */
function top(text, key) {
  const m = text.match(new RegExp('^' + key + ':[ \\t]*(.*?)[ \\t]*(#.*)?$', 'm'));
  if (!m) return '';
  return m[1].replace(/^(["'])(.*)\1$/, '$2');
}

export default function Publish() {
  const sess = useSession();
  const from = getParams().from || '';
  const [text, setText] = useState(from ? '' : template);
  const [loading, setLoading] = useState(!!from);
  const [error, setError] = useState(null);
  const [done, setDone] = useState(null);
  const [busy, setBusy] = useState(false);
  const editor = useRef(null);
  const id = useId();

  useEffect(() => {
    if (!from) return;
    const [name, version] = from.split('@');
    api(`/v1/definitions/${encodeURIComponent(name)}/versions/${encodeURIComponent(version)}`).then((d) => {
      setText(toYAML({ ...d, version: bump(d.version) }));
      setLoading(false);
    }, (e) => { setError(e); setText(template); setLoading(false); });
  }, [from]);

  const name = top(text, 'name');
  const version = top(text, 'version');
  const lines = useMemo(() => pathLines(text), [text]);
  // Problems by line; those whose path is not written anywhere go on line 0.
  const problems = useMemo(() => {
    const out = {};
    for (const d of (error && error.details) || []) {
      let line = locate(lines, d.path);
      const m = !line && /line (\d+)/.exec(d.message || error.message);
      if (m) line = Number(m[1]);
      (out[line] = out[line] || []).push(d);
    }
    if (error && error.code === 'invalid_yaml') {
      const m = /line (\d+)/.exec(error.message);
      if (m) (out[Number(m[1])] = out[Number(m[1])] || []).push({ path: 'line ' + m[1], message: error.message });
    }
    return out;
  }, [error, lines]);

  const goTo = (line) => {
    const ta = editor.current;
    if (!ta || !line) return;
    const offset = text.split('\n').slice(0, line - 1).join('\n').length + (line > 1 ? 1 : 0);
    ta.focus();
    ta.setSelectionRange(offset, offset + (text.split('\n')[line - 1] || '').length);
  };

  const publish = async () => {
    setError(null);
    setDone(null);
    if (!name || !version) {
      setError({ code: 'invalid_request', message: 'The YAML needs top-level name and version fields.', details: [] });
      return;
    }
    setBusy(true);
    try {
      const res = await api(`/v1/definitions/${encodeURIComponent(name)}/versions/${encodeURIComponent(version)}`, {
        method: 'PUT', body: text, headers: { 'Content-Type': 'application/yaml' },
      });
      setDone(res);
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  };

  const located = Object.entries(problems).filter(([l]) => Number(l) > 0);
  const unlocated = problems[0] || [];
  return html`
    <${Page} title="Publish a definition">
      ${!has(sess, 'admin') ? html`<div class="alert info">Publishing needs the admin role; the API will refuse it for your key.</div>` : null}
      <p class="muted">Published versions are immutable: publish a new version to change a definition. The API validates every field and every expression.</p>
      ${done ? html`<div class="alert ok" role="status" data-testid="published"><strong>${done.existing ? 'This exact content was already published as' : 'Published'} ${done.name} v${done.version}.</strong>
        <a href=${path.definition(done.name, done.version)}>Open it</a></div>` : null}
      ${error ? html`
        <div class="alert error" role="alert" data-testid="publish-errors">
          <strong>${error.code === 'validation_failed' || (error.details || []).length ? `Not published: ${(error.details || []).length || 1} problem${(error.details || []).length === 1 ? '' : 's'}.` : 'Not published.'}</strong> ${(error.details || []).length ? '' : error.message}
          ${(error.details || []).length ? html`<ul>${located.flatMap(([l, ds]) => ds.map((d) => html`
            <li><button type="button" class="link" onClick=${() => goTo(Number(l))}>line ${l}</button> <code>${d.path}</code>: ${d.message}</li>`))}
            ${unlocated.map((d) => html`<li><code>${d.path || '(definition)'}</code>: ${d.message}</li>`)}</ul>` : null}
        </div>` : null}
      ${loading ? html`<${Loading} />` : html`
        <div class="grid2">
          <div>
            <label for=${id}>YAML <span class="hint">${name ? `${name} v${version || '?'}` : 'needs name and version'}</span></label>
            <textarea id=${id} ref=${editor} class="editor" spellcheck=${false} autocapitalize="off" value=${text}
              onInput=${(e) => setText(e.target.value)} rows="24"></textarea>
            <div class="row" style="margin-top:.5rem">
              <button type="button" class="primary" disabled=${busy} onClick=${publish}>${busy ? 'Publishing…' : `Publish ${name || ''} v${version || '?'}`}</button>
            </div>
          </div>
          <div>
            <div class="muted small" style="font-weight:600;margin-bottom:.2rem">Preview${located.length ? ' with problems at their lines' : ''}</div>
            <${Highlighted} text=${text} problems=${problems} label="Highlighted YAML with problems" />
          </div>
        </div>`}
    <//>`;
}
