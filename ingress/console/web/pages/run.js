// One run: its summary, input, live timeline (Server-Sent Events), output
// or error, cancel for submitters, and a link to the Temporal Web UI for
// operators when one is configured.
import { html, useState } from '../lib.js';
import { api } from '../api.js';
import { useRun } from '../rundata.js';
import { path } from '../router.js';
import { Page, Loading, ErrorBox, StateBadge, JsonView, Confirm, has, useSession } from '../ui.js';
import { Timeline } from '../timeline.js';
import { ApprovalSummary } from '../approval.js';
import { fmtTime, fmtDuration, elapsed } from '../fmt.js';

export function temporalLink(sess, status) {
  if (!sess.temporal_ui || !status) return null;
  const wid = encodeURIComponent(status.tenant + '/' + status.id);
  return `${sess.temporal_ui}/namespaces/${encodeURIComponent(sess.temporal_namespace)}/workflows/${wid}/${encodeURIComponent(status.run_id)}/history`;
}

export default function Run({ params }) {
  const sess = useSession();
  const { status, input, error, live, reload } = useRun(params.id);
  const [cancelError, setCancelError] = useState(null);
  const [notice, setNotice] = useState('');

  const cancel = async () => {
    setCancelError(null);
    try {
      await api('/v1/workflows/' + encodeURIComponent(params.id) + '/cancel', { method: 'POST' });
      setNotice('Cancellation requested; compensations of completed steps run now.');
      reload();
    } catch (e) {
      setCancelError(e);
    }
  };

  if (!status) {
    return html`<${Page} title=${'Run ' + params.id}>${error ? html`<${ErrorBox} error=${error} />` : html`<${Loading} />`}<//>`;
  }
  const link = temporalLink(sess, status);
  const running = status.state === 'running';
  const def = input && input.definition;
  return html`
    <${Page} title=${'Run ' + params.id} actions=${html`
      ${running ? html`<span class=${'live' + (live ? '' : ' off')} role="status">${live ? 'live' : 'reconnecting'}</span>` : null}
      ${link ? html`<a class="button" href=${link} target="_blank" rel="noopener noreferrer" data-external>Open in Temporal UI</a>` : null}
      ${running && has(sess, 'submitter') ? html`<${Confirm} label="Cancel run" question="Cancel this run? Completed steps are compensated." confirmLabel="Yes, cancel" onConfirm=${cancel} />` : null}`}>
      ${notice ? html`<div class="alert ok" role="status">${notice}</div>` : null}
      <${ErrorBox} error=${cancelError} title="Cancel refused." />
      <${ErrorBox} error=${error} />
      <div class="grid2">
        <section class="card" aria-labelledby="run-summary">
          <h2 id="run-summary" class="visually-hidden">Summary</h2>
          <dl class="kv">
            <dt>State</dt><dd data-testid="run-state"><${StateBadge} state=${status.state} /></dd>
            <dt>Definition</dt><dd><a href=${path.definition(status.definition, status.version)}>${status.definition}</a> v${status.version}</dd>
            <dt>Started</dt><dd><time datetime=${status.started_at}>${fmtTime(status.started_at)}</time></dd>
            ${status.closed_at ? html`<dt>Closed</dt><dd><time datetime=${status.closed_at}>${fmtTime(status.closed_at)}</time></dd>` : null}
            <dt>${running ? 'Running for' : 'Took'}</dt><dd>${fmtDuration(elapsed(status.started_at, status.closed_at))}</dd>
            ${input && input.submitted_by ? html`<dt>Submitted by</dt><dd>${input.submitted_by}</dd>` : null}
            ${input && input.labels ? html`<dt>Labels</dt><dd>${Object.entries(input.labels).map(([k, v]) => html`<code>${k}=${v}</code> `)}</dd>` : null}
            <dt>Run id</dt><dd class="mono small">${status.run_id}</dd>
          </dl>
        </section>
        <section class="card" aria-labelledby="run-input">
          <h2 id="run-input">Input</h2>
          ${input ? html`<${JsonView} value=${input.input} label="Run input" />` : html`<${Loading} />`}
        </section>
      </div>
      ${status.error ? html`<div class="alert error" role="alert"><strong>The run ended with an error.</strong> <span class="mono">${status.error}</span></div>` : null}
      <section class="card" aria-labelledby="run-steps">
        <h2 id="run-steps">Timeline</h2>
        <${Timeline} def=${def} status=${status} renderApproval=${(p) => html`<${ApprovalSummary} approval=${p} workflowId=${params.id} />`} />
      </section>
      ${status.output !== undefined ? html`<section class="card" aria-labelledby="run-output"><h2 id="run-output">Output</h2><${JsonView} value=${status.output} label="Run output" /></section>` : null}
    <//>`;
}
