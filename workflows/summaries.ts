// Workflow side (deterministic, pure). The one-line summary each activity and child workflow of a run carries
// (Temporal user metadata), so the Web UI's history tells the story: which step, on which host, doing what.
// A step's action is described exactly as its change record describes it (audit/events.ts describeAction:
// secrets as <secret:NAME>; the workflow never holds a secret's value, only its token). The UI shows these as
// plain text; they are kept to one line and a few hundred bytes (the server's limit is 400 after the codec).
import type { RenderedAction } from '../dsl/render';
import { maskSecrets } from '../dsl/expr';
import { isRollback } from '../audit/run-events';
import { actionText } from '../audit/action-text';
export { actionText } from '../audit/action-text';
import type { WorkflowAuditEvent } from '../audit/events';
import { fitBytes, oneLine } from '../common/markdown';

/** The largest activity summary, in UTF-8 bytes. */
export const ACTIVITY_SUMMARY_MAX_BYTES = 300;

const line = (text: string) => fitBytes(oneLine(text, ACTIVITY_SUMMARY_MAX_BYTES), ACTIVITY_SUMMARY_MAX_BYTES);

/** Names, at most `max` of them, and how many more. */
function names(list: readonly string[], max = 8): string {
  return list.slice(0, max).join(', ') + (list.length > max ? ` … ${list.length - max} more` : '');
}

/** The step as history names it: `restart`, `rollback remove`, with the attempt or poll of its record key. */
function stepName(stepId: string, path: string, key: string): string {
  const attempt = /#(\d+)$/.exec(key)?.[1];
  const poll = /@(\d+)(?:#\d+)?$/.exec(key)?.[1];
  return `${isRollback(path) ? 'rollback ' : ''}${stepId}${poll ? ` (poll ${poll})` : ''}${attempt ? ` (attempt ${attempt})` : ''}`;
}

/** A step's activity: `restart on host-1: sudo systemctl restart nginx`. */
export function stepSummary(s: {
  stepId: string;
  path: string;
  key: string;
  host?: string;
  action: RenderedAction;
}): string {
  return line(`${stepName(s.stepId, s.path, s.key)}${s.host ? ` on ${s.host}` : ''}: ${actionText(s.action)}`);
}

/** A timer of a step (a retry's backoff, the wait between polls): `healthy on host-1: wait 5s before poll 2`. */
export function waitSummary(stepId: string, host: string | undefined, what: string): string {
  return line(`${stepId}${host ? ` on ${host}` : ''}: ${what}`);
}

/** A step group's local activity: its steps, which are rendered (and audited one by one) inside it. */
export function groupSummary(host: string, stepIds: readonly string[]): string {
  return line(
    `${names(stepIds)} on ${host}: ${stepIds.length} SSH steps in one activity, each run and audited on its own`,
  );
}

/** Stopping a cancelled step's remote command. */
export function killSummary(host: string | undefined, stepIds: readonly string[]): string {
  return line(`stop ${names(stepIds)}${host ? ` on ${host}` : ''}: kill the remote command (the step was cancelled)`);
}

/** The prepare activity. */
export function prepareSummary(runbook: string, inventory: string | undefined): string {
  return line(
    `prepare ${runbook}: load and check the runbook and params, load the inventory${inventory ? ` ${inventory}` : ''}, resolve the targets`,
  );
}

/** The audit activity: which change records it writes (`record step read on host-2: failed`). */
export function auditSummary(
  events: readonly Pick<WorkflowAuditEvent, 'kind' | 'status' | 'step' | 'stepId' | 'target'>[],
): string {
  const one = (e: (typeof events)[number]) =>
    `${e.kind}${(e.stepId ?? e.step) ? ` ${e.stepId ?? e.step}` : ''}${e.target ? ` on ${e.target}` : ''}: ${e.status}`;
  const shown = events.slice(0, 4).map(one);
  return line(`record ${shown.join('; ')}${events.length > 4 ? `; … ${events.length - 4} more` : ''}`);
}

/** A change-window check before `what` (the gate, batch N of M, the next target). */
export function windowSummary(what: string, calendars: readonly string[]): string {
  return line(
    `change window check before ${what}: calendars ${calendars.length ? names(calendars) : '(none named)'} and the global ones`,
  );
}

/** The timer of an approval's wait for decisions. */
export function approvalWaitSummary(id: string, quorum: number): string {
  return line(`approval ${id}: wait for ${quorum} approval${quorum === 1 ? '' : 's'} (or a rejection)`);
}

/** The timer of a run waiting for its change window to open. */
export function windowWaitSummary(what: string, until: string): string {
  return line(`${what} waits for the change window: look again at ${until}`);
}

/** A notification the workflow sends itself (an approval's escalation). */
export function notifySummary(why: string, channel: string, message: string): string {
  return line(`${why}: notify ${channel}: ${maskSecrets(message)}`);
}

/**
 * A sub-runbook's child workflow, as the parent's history shows it (plain text: names from the runbook and the
 * inventory only; its params are in the child's own details, escaped).
 */
export function childSummary(child: string, parent: string, stepId: string, host: string | undefined): string {
  return line(`${child}: sub-runbook of ${parent}, step ${stepId}${host ? ` on ${host}` : ''}`);
}
