// Deciding one approval: the run's input and earlier steps, the votes so
// far, and approve or reject with a comment. Refusals are said plainly.
import { html, useState, useId } from '../lib.js';
import { api } from '../api.js';
import { path } from '../router.js';
import { Page, Loading, ErrorBox, StateBadge, JsonView, Field, has, useSession } from '../ui.js';
import { Timeline } from '../timeline.js';
import { useRun } from '../rundata.js';
import { ApprovalSummary, refusal } from '../approval.js';

export default function Decide({ params }) {
  const { id, step } = params;
  const sess = useSession();
  const { status, input, error } = useRun(id);
  const [comment, setComment] = useState('');
  const [busy, setBusy] = useState(false);
  const [result, setResult] = useState(null);
  const [refused, setRefused] = useState(null);
  const commentId = useId();

  const decide = async (decision) => {
    setBusy(true);
    setRefused(null);
    try {
      const res = await api(`/v1/workflows/${encodeURIComponent(id)}/approvals/${encodeURIComponent(step)}`, { method: 'POST', body: { decision, comment } });
      setResult({ decision, ...res });
    } catch (e) {
      setRefused(e);
    } finally {
      setBusy(false);
    }
  };

  const title = `Decide ${step}`;
  if (!status) return html`<${Page} title=${title}>${error ? html`<${ErrorBox} error=${error} />` : html`<${Loading} />`}<//>`;
  const pending = (status.pending_approvals || []).find((p) => p.step_id === step);
  const stepState = ((status.steps || []).find((s) => s.id === step) || {}).state;
  return html`
    <${Page} title=${title}>
      <p>Run <a class="mono" href=${path.run(id)}>${id}</a> of <a href=${path.definition(status.definition, status.version)}>${status.definition}</a> v${status.version}${' · '}<${StateBadge} state=${status.state} />${input && input.submitted_by ? html` · submitted by <strong>${input.submitted_by}</strong>` : null}</p>
      ${result ? html`
        <div class="alert ok" role="status" data-testid="decision-result">
          <strong>${result.resolved ? `Step ${result.outcome} (${result.votes} of ${result.quorum} votes).` : `Your ${result.decision === 'approve' ? 'approval' : 'rejection'} is recorded: ${result.votes} of ${result.quorum} votes.`}</strong>
          ${' '}<a href=${path.run(id)}>Follow the run</a> · <a href=${path.inbox()}>Back to the inbox</a>
        </div>` : null}
      ${refused ? html`
        <div class="alert error" role="alert" data-testid="decision-refused"><strong>${refusal(refused)}</strong>
          <div class="muted small">code: <code>${refused.code}</code> · HTTP ${refused.status}</div></div>` : null}
      ${!result && pending ? html`
        <section class="card" aria-labelledby="decision">
          <h2 id="decision">Your decision</h2>
          <${ApprovalSummary} approval=${pending} />
          <form onSubmit=${(e) => e.preventDefault()}>
            <${Field} id=${commentId} label="Comment" hint="(optional; recorded with your vote)">
              <textarea id=${commentId} rows="3" maxlength="2000" value=${comment} onInput=${(e) => setComment(e.target.value)}></textarea>
            <//>
            <div class="row">
              <button type="button" class="ok" disabled=${busy || !has(sess, 'approver')} onClick=${() => decide('approve')}>Approve</button>
              <button type="button" class="danger" disabled=${busy || !has(sess, 'approver')} onClick=${() => decide('reject')}>Reject</button>
            </div>
          </form>
        </section>` : null}
      ${!result && !pending ? html`<div class="alert info" role="status">This step is not waiting for a decision${stepState ? html` (it is <${StateBadge} state=${stepState} />)` : ''}.</div>` : null}
      <div class="grid2">
        <section class="card" aria-labelledby="decide-input"><h2 id="decide-input">Input of the run</h2>
          ${input ? html`<${JsonView} value=${input.input} label="Run input" />` : html`<${Loading} />`}</section>
        <section class="card" aria-labelledby="decide-steps"><h2 id="decide-steps">Steps so far</h2>
          <${Timeline} def=${input && input.definition} status=${status} /></section>
      </div>
    <//>`;
}
