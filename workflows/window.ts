// Workflow side (deterministic). A run's change window: the calendars it must be inside of (its `window`, and the
// calendar file's global ones as they are at each check), checked before the approval gate and before every batch,
// at the workflow's own clock, through a local activity whose answer is recorded in history (a replay decides the
// same).
//
// Open, and not within `cutoff` of closing: go. Otherwise the run records why (`window.closed`) and, per its policy,
// ends as blocked (`fail`) or waits for the next opening (`wait`, at most `maxWait`; it looks again at least every
// 15 minutes, so a calendar edited meanwhile counts). A target of a parallel batch goes on the last answer while
// it is fresh (a minute) and the window is not closing. One check at a time: parallel targets share it.
//
// An operator's override (a start input, or the `overrideWindow` signal) lets the run go on, but only through
// calendars whose definition in the (trusted) calendar file names the overrider among its `override` users or
// groups; it is recorded with its reason (`window.override`), or refused and recorded as refused.
import { condition, log, proxyLocalActivities, setHandler, upsertSearchAttributes } from '@temporalio/workflow';
import type { Activities } from '../activities';
import type { WindowAnswer } from '../activities/window';
import { windowClosed, windowOpened, windowOverridden } from '../audit/run-events';
import { inputProblems, OverrideSchema, type WindowOverride } from '../dsl/run-input';
import { overrideWindowSignal, type RunState } from './messages';
import { recordEvents, type RunAudit } from './audit';
import { RunbookStatus } from './search-attributes';
import { errorText } from './steps';
import { showProgress } from './progress';
import { windowSummary, windowWaitSummary } from './summaries';

/** The calendar check, its summary saying what it is for and which calendars it asks about. */
const checker = (summary: string) =>
  proxyLocalActivities<Activities>({
    startToCloseTimeout: '30 seconds',
    retry: { maximumAttempts: 5, initialInterval: '1 second' },
    summary,
  });

/** The window a run keeps to, as prepare resolved it (its own calendars; the global ones are added at each check). */
export interface WindowSpec {
  calendars: string[];
  policy: 'wait' | 'fail';
  cutoffMs: number;
  maxWaitMs: number;
}

/** How long a parallel target may go on an earlier answer, and the longest sleep between two checks. */
const FRESH_MS = 60_000;
const RECHECK_MS = 15 * 60_000;

const iso = (t: number | undefined) => (t === undefined ? undefined : new Date(t).toISOString());

export class RunWindow {
  /** Why the run stopped (the window closed and the policy, or the wait, ended it). */
  blocked?: string;
  /** The wait ended because the alert that started the run resolved (nothing was changed). */
  resolved = false;
  private override?: WindowOverride;
  /** The override that went through (recorded), if any: it holds for the rest of the run. */
  private granted?: WindowOverride;
  private refused?: WindowOverride;
  /** The last answer: when it was asked, and when the window closes (undefined: not within the horizon). */
  private last?: { at: number; open: boolean; closesAt?: number };
  private busy?: Promise<boolean>;
  /** Numbers the window's records in the run. */
  private seq = 0;

  constructor(
    private readonly spec: WindowSpec | undefined,
    private readonly audit: RunAudit,
    private readonly state: RunState,
    override: WindowOverride | undefined,
    /** Whether the alert that started the run has resolved (a waiting run then ends, having changed nothing). */
    private readonly alertResolved: () => boolean = () => false,
  ) {
    this.override = override;
    setHandler(overrideWindowSignal, (o) => {
      const problems = inputProblems(OverrideSchema, o);
      if (problems.length) log.warn('ignored a window override', { problems });
      else if (!this.override || this.override === this.refused) this.override = o;
    });
  }

  /** The override the run goes on (a sub-runbook inherits it). */
  get activeOverride(): WindowOverride | undefined {
    return this.granted;
  }

  /** Whether the next target of a running parallel batch may start (on a fresh answer, else after a check). */
  async admitTarget(): Promise<boolean> {
    return this.admit('the next target', true);
  }

  /**
   * Whether the run may go on to `what` (the gate, batch N): at once when open, after waiting when the policy
   * waits, or never (the run is then blocked, and `blocked` says why). `reuse`: a fresh answer will do.
   */
  async admit(what: string, reuse = false): Promise<boolean> {
    while (this.busy) await this.busy;
    if (!this.spec || this.granted) return true;
    if (this.blocked || this.resolved) return false;
    const l = this.last;
    if (
      reuse &&
      l?.open &&
      Date.now() - l.at < FRESH_MS &&
      (l.closesAt === undefined || Date.now() < l.closesAt - this.spec.cutoffMs)
    )
      return true;
    this.busy = this.check(what, this.spec).finally(() => {
      this.busy = undefined;
    });
    return this.busy;
  }

  private async check(what: string, spec: WindowSpec): Promise<boolean> {
    let waitedSince: number | undefined;
    let closedSeq: number | undefined;
    for (;;) {
      const now = Date.now();
      let answer: WindowAnswer;
      try {
        answer = await checker(windowSummary(what, spec.calendars)).windowState({ calendars: spec.calendars, at: now });
      } catch (err) {
        // The calendar file went bad and no good version of it is known: stop cleanly, changing nothing more.
        return this.stop(`${what} not started: the change calendars cannot be read (${errorText(err)})`);
      }
      const closesAt = answer.open ? answer.nextChange : undefined;
      const inCutoff = answer.open && closesAt !== undefined && now >= closesAt - spec.cutoffMs;
      const open = answer.open && !inCutoff;
      this.last = { at: now, open, closesAt };
      this.state.window = { open, calendars: answer.calendars, nextChange: iso(answer.nextChange) };
      showProgress(this.state);
      if (open) {
        if (waitedSince !== undefined) {
          await recordEvents(this.audit, this.state, windowOpened(closedSeq!, what, answer, now - waitedSince));
          this.setStatus('running');
        }
        return true;
      }
      // The calendars that keep the run out: the closed ones, or (inside the cutoff) the ones about to close.
      const blocking = answer.calendars.filter((c) => (inCutoff ? c.nextChange === closesAt : !c.open));
      const reason = inCutoff
        ? `the window closes at ${iso(closesAt)}, within the cutoff (${spec.cutoffMs / 1000}s)`
        : `closed: ${blocking.map((c) => `${c.name}${c.event ? ` (${c.event})` : ''}`).join(', ')}`;
      if (this.override && this.override !== this.refused) {
        const o = this.override;
        const denied = blocking.filter((c) => !mayOverride(c.override, o)).map((c) => c.name);
        await recordEvents(this.audit, this.state, windowOverridden(++this.seq, what, answer, reason, o, denied));
        if (!denied.length) {
          this.granted = o;
          this.state.window.overriddenBy = o.by;
          showProgress(this.state);
          this.setStatus('running');
          return true;
        }
        this.refused = o;
      }
      if (this.alertResolved()) return this.stopResolved();
      // Open again at the next change when closed; when only inside the cutoff, look again once it has closed.
      const reopens = inCutoff ? closesAt : answer.nextChange;
      if (waitedSince === undefined) {
        closedSeq = ++this.seq;
        await recordEvents(
          this.audit,
          this.state,
          windowClosed(closedSeq, what, answer, reason, spec.policy, iso(reopens)),
        );
      }
      if (spec.policy === 'fail') return this.stop(`${what} not started: ${reason} (window policy: fail)`);
      waitedSince ??= now;
      const deadline = waitedSince + spec.maxWaitMs;
      if (now >= deadline)
        return this.stop(
          `${what} not started: ${reason}, and no opening within the longest wait (${spec.maxWaitMs / 3_600_000}h)`,
        );
      this.state.window.waitingUntil = iso(reopens !== undefined && reopens <= deadline ? reopens : undefined);
      this.setStatus('waiting-window');
      // Sleep to the opening, the deadline, or a quarter of an hour (the calendars may change), whichever is first;
      // an override or the alert's resolution wakes the run at once.
      await this.sleepUntil(Math.min(reopens ?? deadline, deadline, now + RECHECK_MS), what);
    }
  }

  /** Sleeps until `t` on the workflow clock, or until an override or the alert's resolution comes. */
  private async sleepUntil(t: number, what: string): Promise<void> {
    const ms = t - Date.now();
    if (ms > 0)
      await condition(
        () => (this.override !== undefined && this.override !== this.refused) || this.alertResolved(),
        ms,
        { summary: windowWaitSummary(what, iso(t)!) },
      );
  }

  private stop(reason: string): false {
    this.blocked = reason;
    return false;
  }

  private stopResolved(): false {
    this.resolved = true;
    return false;
  }

  private setStatus(status: RunState['status']): void {
    this.state.status = status;
    showProgress(this.state);
    upsertSearchAttributes([{ key: RunbookStatus, value: status }]);
  }
}

/** Whether a calendar's `override` list lets this override through (no list: nobody may). */
export function mayOverride(allowed: { users?: string[]; groups?: string[] } | undefined, o: WindowOverride): boolean {
  if (!allowed) return false;
  return (allowed.users ?? []).includes(o.by) || (o.groups ?? []).some((g) => (allowed.groups ?? []).includes(g));
}

export type { WindowAnswer };
