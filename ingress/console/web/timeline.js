// A run's timeline: the definition's steps as they nest (parallel branches,
// switch arms, foreach items), each with its state from the status, its
// attempts, duration, error, output and request, and compensations under
// the steps they undo. A bar places each step within the run's span.
import { html } from './lib.js';
import { StateBadge, JsonView } from './ui.js';
import { fmtDuration, fmtTime, elapsed } from './fmt.js';

const escapeRe = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** buildTree lays the status's steps out on the definition's shape. */
export function buildTree(def, status) {
  const steps = (status && status.steps) || [];
  const byId = new Map(steps.map((s) => [s.id, s]));
  const used = new Set();
  const node = (step, prefix) => {
    const id = prefix + step.id;
    const st = byId.get(id);
    if (st) used.add(id);
    const n = { id, step, st, groups: [] };
    if (step.kind === 'parallel') {
      n.groups = (step.branches || []).map((b, i) => ({ label: 'branch ' + (b.name || i + 1), nodes: (b.steps || []).map((s) => node(s, prefix)) }));
    } else if (step.kind === 'switch') {
      n.groups = (step.cases || []).map((c) => ({ label: 'when ' + c.when, nodes: (c.steps || []).map((s) => node(s, prefix)) }));
      if (step.default && step.default.length) n.groups.push({ label: 'default', nodes: step.default.map((s) => node(s, prefix)) });
    } else if (step.kind === 'foreach') {
      const re = new RegExp('^' + escapeRe(id) + '\\[(\\d+)\\]\\.');
      const items = new Set();
      for (const s of steps) {
        const m = s.id.match(re);
        if (m) items.add(Number(m[1]));
      }
      n.groups = [...items].sort((a, b) => a - b).map((i) => ({ label: 'item ' + i, nodes: (step.steps || []).map((s) => node(s, `${id}[${i}].`)) }));
      if (!items.size) n.note = 'no item has started';
    }
    const comp = byId.get(id + '.compensate');
    if (comp) {
      used.add(comp.id);
      n.compensation = { id: comp.id, step: { ...(step.compensate || {}), id: 'compensate', kind: comp.kind }, st: comp, groups: [], isCompensation: true };
    }
    return n;
  };
  const roots = ((def && def.steps) || []).map((s) => node(s, ''));
  const others = steps.filter((s) => !used.has(s.id)).map((s) => ({ id: s.id, step: { id: s.id, kind: s.kind }, st: s, groups: [] }));
  return { roots, others };
}

/** The step's request as the definition writes it (templates unevaluated). */
function requestOf(step) {
  const skip = new Set(['id', 'kind', 'name', 'steps', 'branches', 'cases', 'default', 'compensate']);
  const out = {};
  for (const [k, v] of Object.entries(step || {})) if (!skip.has(k)) out[k] = v;
  return Object.keys(out).length ? out : null;
}

function Bar({ st, span }) {
  if (!st || !st.started_at || !span) return html`<div class="bar" aria-hidden="true"></div>`;
  const start = new Date(st.started_at).getTime();
  const end = st.finished_at ? new Date(st.finished_at).getTime() : span.now;
  const total = Math.max(1, span.end - span.start);
  const left = Math.max(0, Math.min(100, ((start - span.start) / total) * 100));
  const width = Math.max(0.5, Math.min(100 - left, ((end - start) / total) * 100));
  const cls = st.state === 'failed' ? 'failed' : st.state === 'compensated' ? 'compensated' : '';
  return html`<div class="bar" aria-hidden="true"><span class=${cls} style=${`left:${left}%;width:${width}%`}></span></div>`;
}

function StepNode({ n, span, pending, renderApproval }) {
  const { st, step } = n;
  const state = st ? st.state : 'pending';
  const d = st && st.started_at ? elapsed(st.started_at, st.finished_at, span.now) : null;
  const req = requestOf(step);
  const approval = (pending || []).find((p) => p.step_id === n.id);
  const label = step.name ? `${step.name} (${n.id})` : n.id;
  return html`
    <li class="step" data-step=${n.id} data-state=${state}>
      <div class="step-head">
        <span class="name">${n.isCompensation ? '↩ ' : ''}${label} <span class="kind">${step.kind}</span></span>
        <${StateBadge} state=${state} />
        <${Bar} st=${st} span=${span} />
      </div>
      <div class="step-meta">
        ${st && st.started_at ? html`<span>started <time datetime=${st.started_at}>${fmtTime(st.started_at)}</time></span>` : null}
        ${d !== null ? html`<span>${st.finished_at ? 'took' : 'running for'} ${fmtDuration(d)}</span>` : null}
        ${st && st.attempts > 1 ? html`<span>${st.attempts} attempts</span>` : st && st.attempts === 1 ? html`<span>1 attempt</span>` : null}
        ${step.when ? html`<span>when <code>${step.when}</code></span>` : null}
        ${n.note ? html`<span>${n.note}</span>` : null}
      </div>
      ${st && st.error ? html`<div class="step-error" role="note">${st.error}</div>` : null}
      ${approval && renderApproval ? renderApproval(approval) : null}
      ${req ? html`<details><summary>Request of ${n.id}</summary><${JsonView} value=${req} label=${'Request of ' + n.id} /></details>` : null}
      ${st && st.output !== undefined ? html`<details><summary>Output of ${n.id}${st.output_truncated ? ' (truncated)' : ''}</summary><${JsonView} value=${st.output} label=${'Output of ' + n.id} /></details>` : null}
      ${n.groups.length ? html`
        <ul>${n.groups.map((g) => html`
          <li><div class="branch-label">${g.label}</div>
            <ul class="timeline">${g.nodes.map((c) => html`<${StepNode} key=${c.id} n=${c} span=${span} pending=${pending} renderApproval=${renderApproval} />`)}</ul>
          </li>`)}
        </ul>` : null}
      ${n.compensation ? html`<ul class="timeline"><${StepNode} n=${n.compensation} span=${span} pending=${pending} /></ul>` : null}
    </li>`;
}

/** Timeline renders a run's steps; renderApproval(pending) adds the
 *  approval's votes and actions under a waiting approval step. */
export function Timeline({ def, status, renderApproval, now }) {
  const tree = buildTree(def, status);
  const t = now || Date.now();
  const start = status && status.started_at ? new Date(status.started_at).getTime() : t;
  const end = status && status.closed_at ? new Date(status.closed_at).getTime() : t;
  const span = { start, end: Math.max(end, start + 1), now: t };
  if (!tree.roots.length && !tree.others.length) return html`<p class="muted">No step has run yet.</p>`;
  return html`
    <ol class="timeline" aria-label="Steps">
      ${tree.roots.map((n) => html`<${StepNode} key=${n.id} n=${n} span=${span} pending=${status.pending_approvals} renderApproval=${renderApproval} />`)}
      ${tree.others.map((n) => html`<${StepNode} key=${n.id} n=${n} span=${span} pending=${status.pending_approvals} renderApproval=${renderApproval} />`)}
    </ol>`;
}
