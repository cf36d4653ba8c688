// Approvals inbox: the approval steps waiting for this key, oldest first.
import { html } from '../lib.js';
import { path } from '../router.js';
import { Page, useApi, Loading, ErrorBox, Time, has, useSession } from '../ui.js';
import { approversText, Deadline } from '../approval.js';

export default function Inbox() {
  const sess = useSession();
  const { data, error, loading, reload } = useApi(has(sess, 'approver') ? '/v1/approvals' : null, { poll: 10000 });
  const items = (data && data.items) || [];
  return html`
    <${Page} title="Approvals inbox" actions=${html`<button type="button" onClick=${reload}>Refresh</button>`}>
      <p class="muted">Approval steps you may decide, oldest first. The list refreshes every 10 seconds.</p>
      ${!has(sess, 'approver') ? html`<div class="alert info">Your key has no approver role, so no approvals wait for it.</div>` : null}
      <${ErrorBox} error=${error} />
      ${loading && !data ? html`<${Loading} />` : null}
      ${data && data.truncated ? html`<div class="alert info">More running workflows matched than were inspected (${data.scanned}); the list may be incomplete.</div>` : null}
      ${data && items.length === 0 ? html`<p class="empty" role="status">Nothing is waiting for you.</p>` : null}
      ${items.length > 0 ? html`
        <div class="table-wrap">
          <table class="stack">
            <caption class="visually-hidden">Approvals waiting for you</caption>
            <thead><tr>
              <th scope="col">Waiting since</th><th scope="col">Workflow</th><th scope="col">Definition</th>
              <th scope="col">Step</th><th scope="col" class="num">Votes</th><th scope="col">Deadline</th>
              <th scope="col" class="hide-narrow">Approvers</th><th scope="col"><span class="visually-hidden">Action</span></th>
            </tr></thead>
            <tbody>
              ${items.map((a) => html`
                <tr data-workflow=${a.workflow_id} data-step=${a.step_id}>
                  <td data-label="Waiting since"><${Time} t=${a.since} /></td>
                  <td data-label="Workflow"><a href=${path.run(a.workflow_id)} class="mono">${a.workflow_id}</a></td>
                  <td data-label="Definition"><span><a href=${path.definition(a.definition, a.version)}>${a.definition}</a> <span class="muted">v${a.version}</span></span></td>
                  <td data-label="Step"><span class="mono">${a.step_id}</span></td>
                  <td data-label="Votes" class="num">${(a.votes || []).length} of ${a.quorum}</td>
                  <td data-label="Deadline"><span><${Deadline} at=${a.deadline} escalated=${a.escalated} /></span></td>
                  <td data-label="Approvers" class="hide-narrow small">${approversText(a.approvers)}</td>
                  <td class="action"><a class="button primary" href=${path.decide(a.workflow_id, a.step_id)} aria-label=${`Decide ${a.step_id} of ${a.workflow_id}`}>Decide</a></td>
                </tr>`)}
            </tbody>
          </table>
        </div>` : null}
    <//>`;
}
