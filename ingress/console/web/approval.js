// Approval pieces shared by the inbox, the decision page and run pages.
import { html } from './lib.js';
import { path } from './router.js';
import { StateBadge, has, useSession } from './ui.js';
import { fmtTime, fmtAgo } from './fmt.js';

export function approversText(a) {
  const parts = [];
  if (a && a.roles && a.roles.length) parts.push('roles ' + a.roles.join(', '));
  if (a && a.users && a.users.length) parts.push('users ' + a.users.join(', '));
  return parts.join('; ') || 'anyone';
}

export function Deadline({ at, escalated }) {
  if (!at && !escalated) return html`<span class="muted">none</span>`;
  const overdue = at && new Date(at).getTime() < Date.now();
  return html`
    ${at ? html`<time datetime=${at} title=${new Date(at).toLocaleString()} class=${overdue ? 'up' : ''}>${overdue ? 'overdue ' : ''}${fmtAgo(at)}</time>` : null}
    ${escalated ? html` <span class="badge warn">escalated</span>` : null}`;
}

/** Why a decision was refused, for people. */
const refusals = {
  step_not_waiting: 'Already decided: this step is no longer waiting for votes.',
  duplicate_vote: 'You have already voted on this step.',
  not_approver: 'You are not an approver of this step.',
  self_approval: 'You submitted this run, so you may not approve it yourself.',
  workflow_closed: 'This run has already closed.',
  step_not_found: 'This run has no such approval step.',
  workflow_not_found: 'No such run in your tenant.',
  forbidden: 'Your key has no approver role.',
};

export function refusal(err) {
  return refusals[err.code] || err.message;
}

/** ApprovalSummary shows a waiting approval's votes, deadline and approvers. */
export function ApprovalSummary({ approval: a, workflowId }) {
  const sess = useSession();
  return html`
    <div class="card" style="margin:.4rem 0 .4rem .5rem">
      <div class="spread">
        <strong>Waiting for approval: ${(a.votes || []).length} of ${a.quorum} votes</strong>
        ${workflowId && has(sess, 'approver') ? html`<a class="button primary" href=${path.decide(workflowId, a.step_id)}>Decide</a>` : null}
      </div>
      <dl class="kv small">
        <dt>Approvers</dt><dd>${approversText(a.approvers)}</dd>
        <dt>Waiting since</dt><dd><time datetime=${a.since}>${fmtTime(a.since)}</time></dd>
        <dt>Deadline</dt><dd><${Deadline} at=${a.deadline} escalated=${a.escalated} /></dd>
      </dl>
      ${(a.votes || []).length ? html`
        <h3>Votes so far</h3>
        <ul>${a.votes.map((v) => html`
          <li><${StateBadge} state=${v.decision === 'approve' ? 'approved' : 'rejected'} /> by <strong>${v.by.user || v.by.key_id}</strong>
            <time datetime=${v.at} class="muted"> ${fmtTime(v.at)}</time>${v.comment ? html`: “${v.comment}”` : null}</li>`)}
        </ul>` : null}
    </div>`;
}
