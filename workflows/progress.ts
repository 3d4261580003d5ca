// Workflow side (deterministic). The run's current details (setCurrentDetails): what the Web UI's run page shows
// under "Current Details", the same facts as the `state` query in Markdown: status, batch, each host's state and
// step, pending approvals, the change window, the result. Rebuilt whenever the state changes: the places that
// change it call showProgress, and the hosts record reports its own changes (observeHosts), so whoever sets a
// host's state (target.ts, the rollout) needs no call. Current details live in the workflow's memory only (the
// UI reads them with a query), so updating them adds nothing to history and changes nothing on replay.
//
// Hosts, steps and calendar names come from the worker's inventory, runbooks and calendar file; errors, approval
// messages and decisions' comments come from outside: everything is escaped (common/markdown.ts) and bounded.
import { setCurrentDetails } from '@temporalio/workflow';
import { fitLines, mdCode, mdText } from '../common/markdown';
import type { HostState, RunState } from './messages';

/** The largest current details, in UTF-8 bytes. */
export const PROGRESS_MAX_BYTES = 8000;
/** Hosts listed one per row; the rest are counted. */
const MAX_HOSTS_SHOWN = 25;
const MAX_APPROVALS_SHOWN = 10;

const STATUS_TEXT: Partial<Record<RunState['status'], string>> = {
  'awaiting-approval': 'awaiting approval',
  'waiting-window': 'waiting for its change window',
  'rolling-back': 'rolling back',
};

/** The order states are listed in, and which hosts are listed first when not all fit. */
const HOST_ORDER: HostState[] = ['running', 'waiting-lock', 'failed', 'rolled-back', 'pending', 'succeeded', 'skipped'];

/** The rows of the host table: all hosts up to MAX_HOSTS_SHOWN, else the busiest (in their own order) and a count. */
function hostRows(hosts: RunState['hosts']): string[] {
  const all = Object.entries(hosts);
  let shown = all;
  if (all.length > MAX_HOSTS_SHOWN) {
    const rank = (s: HostState) => HOST_ORDER.indexOf(s);
    const picked = new Set(
      all
        .map(([name, h], i) => ({ name, r: rank(h.state), i }))
        .sort((a, b) => a.r - b.r || a.i - b.i)
        .slice(0, MAX_HOSTS_SHOWN)
        .map((x) => x.name),
    );
    shown = all.filter(([name]) => picked.has(name));
  }
  const rows = shown.map(
    ([name, h]) =>
      `| ${mdText(name, 64)} | ${h.state} | ${h.step ? mdCode(h.step, 120) : ''} | ${h.error ? mdText(h.error, 160) : ''} |`,
  );
  if (shown.length < all.length) rows.push(`| … ${all.length - shown.length} more | | | |`);
  return ['| host | state | step | error |', '| --- | --- | --- | --- |', ...rows];
}

/** `2 succeeded, 1 running` in HOST_ORDER. */
function hostCounts(hosts: RunState['hosts']): string {
  const counts = new Map<HostState, number>();
  for (const h of Object.values(hosts)) counts.set(h.state, (counts.get(h.state) ?? 0) + 1);
  return HOST_ORDER.filter((s) => counts.has(s))
    .map((s) => `${counts.get(s)} ${s}`)
    .join(', ');
}

function approvalLines(state: RunState): string[] {
  const pending = state.pendingApprovals;
  if (!pending.length) return [];
  const who = (p: RunState['pendingApprovals'][number]) =>
    [
      p.users.length ? `users ${p.users.map((u) => mdText(u, 40)).join(', ')}` : '',
      p.groups.length ? `groups ${p.groups.map((g) => mdText(g, 40)).join(', ')}` : '',
    ]
      .filter(Boolean)
      .join('; ') || 'anyone';
  const lines = pending
    .slice(0, MAX_APPROVALS_SHOWN)
    .map(
      (p) =>
        `- ${mdCode(p.id, 120)}: ${p.approvals.length} of ${p.quorum} approvals (${who(p)}), until ${mdText(p.deadline, 40)}: ${mdText(p.message, 200)}`,
    );
  if (pending.length > MAX_APPROVALS_SHOWN) lines.push(`- … ${pending.length - MAX_APPROVALS_SHOWN} more`);
  return ['', `**Pending approvals** (decide with \`runbook approve ID --by NAME\`)`, '', ...lines];
}

function windowLines(w: RunState['window']): string[] {
  if (!w) return [];
  if (w.overriddenBy) return [`- **Change window:** overridden by ${mdText(w.overriddenBy, 100)}`];
  const closed = w.calendars.filter((c) => !c.open);
  const why = closed.length
    ? ` (${closed
        .slice(0, 5)
        .map((c) => `${mdText(c.name, 64)}${c.event ? `: ${mdText(c.event, 80)}` : ''}`)
        .join(', ')})`
    : '';
  return [
    `- **Change window:** ${w.open ? 'open' : 'closed'}${why}` +
      `${w.waitingUntil ? ` · waiting until ${mdText(w.waitingUntil, 40)}` : ''}` +
      `${w.nextChange ? ` · next change ${mdText(w.nextChange, 40)}` : ''}`,
  ];
}

/** The run's state as Markdown, at most PROGRESS_MAX_BYTES (whole lines). */
export function progressDetails(state: RunState): string {
  const hosts = Object.keys(state.hosts).length;
  const batch = state.batch.of ? ` · batch ${state.batch.index} of ${state.batch.of}` : '';
  const lines = [`- **Status:** ${STATUS_TEXT[state.status] ?? state.status}${batch}`];
  if (hosts) lines.push(`- **Hosts:** ${hosts} · ${hostCounts(state.hosts)}`);
  lines.push(...windowLines(state.window));
  const result = state.result as { status?: string; failures?: number; threshold?: number } | undefined;
  if (result?.status)
    lines.push(
      `- **Result:** ${mdText(result.status, 20)} · ${result.failures ?? 0} failed (tolerated ${result.threshold ?? 0})`,
    );
  if (state.auditErrors?.length)
    lines.push(`- **Audit:** ${state.auditErrors.length} records could not be written (see \`runbook status\`)`);
  const last = state.decisions.at(-1);
  if (last)
    lines.push(
      `- **Decisions:** ${state.decisions.length}, last ${last.approve ? 'approve' : 'reject'} ${mdCode(last.id, 120)} by ${mdText(last.by, 100)}${last.comment ? `: ${mdText(last.comment, 160)}` : ''}`,
    );
  lines.push(...approvalLines(state));
  if (hosts) lines.push('', ...hostRows(state.hosts));
  return fitLines(lines, PROGRESS_MAX_BYTES);
}

/** Runs whose details are to be rebuilt at the end of the current burst of changes. */
const due = new WeakSet<RunState>();

/**
 * Shows the run's state as its current details, once the changes made in this step of the workflow are done: a
 * rollout marking a thousand hosts pending rebuilds the text once, not a thousand times. (A microtask of its own:
 * it creates no command and resolves nothing the workflow awaits, so no other promise chain moves.)
 */
export function showProgress(state: RunState): void {
  if (due.has(state)) return;
  due.add(state);
  void Promise.resolve().then(() => {
    due.delete(state);
    try {
      setCurrentDetails(progressDetails(state));
    } catch (err) {
      // Never fail the workflow task over a display.
      setCurrentDetails(`**Status:** ${state.status} (details unavailable: ${mdText(String(err), 200)})`);
    }
  });
}

/** Makes every change of a host's entry in `state.hosts` (set or delete) update the current details. */
export function observeHosts(state: RunState): void {
  state.hosts = new Proxy(state.hosts, {
    set(target, key, value) {
      const ok = Reflect.set(target, key, value);
      showProgress(state);
      return ok;
    },
    deleteProperty(target, key) {
      const ok = Reflect.deleteProperty(target, key);
      showProgress(state);
      return ok;
    },
  });
}
