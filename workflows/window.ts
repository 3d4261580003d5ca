// Workflow side (deterministic). A run's change window: the calendars it must be inside of (its `window` and the
// calendar file's global ones), checked before the approval gate and before every batch, at the workflow's own
// clock, through a local activity whose answer is recorded in history (a replay decides the same).
//
// Open, and not within `cutoff` of closing: go. Otherwise the run records why (`window.closed`) and, per its policy,
// ends as blocked (`fail`) or waits for the next opening (`wait`, at most `maxWait`). A target of a parallel batch
// goes on the last answer while it holds. An operator's override (a start input, or the `overrideWindow` signal
// while the run waits) lets the run proceed for the rest of its life; it needs a reason, and it is recorded.
import { condition, log, proxyLocalActivities, setHandler, upsertSearchAttributes } from '@temporalio/workflow';
import type { Activities } from '../activities';
import type { WindowAnswer } from '../activities/window';
import { windowClosed, windowOpened, windowOverridden } from '../audit/run-events';
import { inputProblems, OverrideSchema, type WindowOverride } from '../dsl/run-input';
import { overrideWindowSignal, type RunState } from './messages';
import { recordEvents, type RunAudit } from './audit';
import { RunbookStatus } from './search-attributes';
import { FAILURES } from '../common/failure-types';

const { windowState } = proxyLocalActivities<Activities>({
  startToCloseTimeout: '30 seconds',
  retry: { maximumAttempts: 5, nonRetryableErrorTypes: [FAILURES.calendarInvalid] },
});

/** The window a run keeps to, as prepare resolved it (names checked against the calendar file). */
export interface WindowSpec {
  calendars: string[];
  policy: 'wait' | 'fail';
  cutoffMs: number;
  maxWaitMs: number;
}

const iso = (t: number | undefined) => (t === undefined ? undefined : new Date(t).toISOString());

export class RunWindow {
  /** Why the run stopped (the window closed and the policy, or the wait, ended it). */
  blocked?: string;
  private override?: WindowOverride;
  /** The window's end as last seen open (a parallel batch's targets go on it). */
  private closesAt?: number;
  private checked = false;

  constructor(
    private readonly spec: WindowSpec | undefined,
    private readonly audit: RunAudit,
    private readonly state: RunState,
    override: WindowOverride | undefined,
  ) {
    this.override = override;
    setHandler(overrideWindowSignal, (o) => {
      const problems = inputProblems(OverrideSchema, o);
      if (problems.length) log.warn('ignored a window override', { problems });
      else this.override ??= o;
    });
  }

  /** Whether the next target of a running batch may start (on the last answer while it holds). */
  async admitTarget(): Promise<boolean> {
    if (!this.spec || this.blocked) return !this.blocked;
    if (this.checked && (this.closesAt === undefined || Date.now() < this.closesAt - this.spec.cutoffMs)) return true;
    return this.admit('the next target');
  }

  /**
   * Whether the run may go on to `what` (the gate, batch N): at once when open, after waiting when the policy
   * waits, or never (the run is then blocked, and `blocked` says why).
   */
  async admit(what: string): Promise<boolean> {
    if (!this.spec || this.blocked) return !this.blocked;
    const spec = this.spec;
    let waitedSince: number | undefined;
    for (;;) {
      if (this.override && this.overrideRecorded) return true;
      const now = Date.now();
      const answer = await windowState({ calendars: spec.calendars, at: now });
      this.checked = true;
      const closesAt = answer.open ? answer.nextChange : undefined;
      const inCutoff = answer.open && closesAt !== undefined && now >= closesAt - spec.cutoffMs;
      this.state.window = {
        open: answer.open && !inCutoff,
        calendars: answer.calendars,
        nextChange: iso(answer.nextChange),
      };
      if (answer.open && !inCutoff) {
        this.closesAt = closesAt;
        if (waitedSince !== undefined) {
          await recordEvents(this.audit, this.state, windowOpened(this.seq, what, answer, now - waitedSince));
          this.setStatus('running');
        }
        return true;
      }
      const reason = inCutoff
        ? `the window closes at ${iso(closesAt)}, within the cutoff (${spec.cutoffMs / 1000}s)`
        : `closed: ${answer.calendars
            .filter((c) => !c.open)
            .map((c) => `${c.name}${c.event ? ` (${c.event})` : ''}`)
            .join(', ')}`;
      if (this.override) {
        await recordEvents(this.audit, this.state, windowOverridden(what, answer, reason, this.override));
        this.overrideRecorded = true;
        this.setStatus('running');
        return true;
      }
      // Open again at the next change when closed; when only inside the cutoff, look again once it has closed.
      const reopens = inCutoff ? closesAt : answer.nextChange;
      if (waitedSince === undefined) {
        await recordEvents(
          this.audit,
          this.state,
          windowClosed(++this.seq, what, answer, reason, spec.policy, iso(reopens)),
        );
      }
      if (spec.policy === 'fail') return this.stop(`${what} not started: ${reason} (window policy: fail)`);
      waitedSince ??= now;
      const deadline = waitedSince + spec.maxWaitMs;
      if (reopens === undefined || reopens > deadline) {
        await this.sleepUntil(deadline);
        if (!this.override)
          return this.stop(
            `${what} not started: ${reason}, and no opening within the longest wait (${spec.maxWaitMs / 3_600_000}h)`,
          );
        continue;
      }
      this.state.window.waitingUntil = iso(reopens);
      this.setStatus('waiting-window');
      await this.sleepUntil(reopens);
    }
  }

  private overrideRecorded = false;
  /** Numbers the window's records in the run. */
  private seq = 0;

  /** Sleeps until `t` on the workflow clock, or until an override comes. */
  private async sleepUntil(t: number): Promise<void> {
    const ms = t - Date.now();
    if (ms > 0) await condition(() => this.override !== undefined, ms);
  }

  private async stop(reason: string): Promise<false> {
    this.blocked = reason;
    return false;
  }

  private setStatus(status: RunState['status']): void {
    this.state.status = status;
    upsertSearchAttributes([{ key: RunbookStatus, value: status }]);
  }
}

export type { WindowAnswer };
