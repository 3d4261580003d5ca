// Node side. The change windows a run keeps to: the worker's calendar file (RUNBOOK_CALENDARS, else
// RUNBOOK_DIR/calendars.yaml) read on each check (reloaded when it changes), evaluated at the time the workflow
// passes in (its own clock), so the activity is a pure function of its input and the file.
import fs from 'node:fs';
import { ApplicationFailure } from '@temporalio/common';
import ms from 'ms';
import { messageOf } from '../common/errors';
import { FAILURES } from '../common/failure-types';
import { calendarStatus, globalCalendars, loadCalendars, type CalendarSet } from '../dsl/calendars';
import type { RunbookDoc } from '../dsl/schema';
import type { WindowSpec } from '../workflows/window';

export interface WindowQuery {
  calendars: string[];
  /** Epoch ms, the workflow's clock. */
  at: number;
}

/** The combined state of the calendars at `at`, and when it next changes (epoch ms; none within 400 days: absent). */
export interface WindowAnswer {
  open: boolean;
  nextChange?: number;
  calendars: { name: string; open: boolean; event?: string; nextChange?: number }[];
}

const calendarFailure = (message: string) =>
  ApplicationFailure.create({ type: FAILURES.calendarInvalid, message, nonRetryable: true });

let cached: { file: string; stamp: string; set: CalendarSet } | undefined;

/** The calendar file's calendars, loaded again only when the file changed. Throws CalendarInvalid. */
export function calendarsOf(file: string | undefined): CalendarSet | undefined {
  if (!file) return undefined;
  let stamp: string;
  try {
    const st = fs.statSync(file);
    stamp = `${st.mtimeMs}:${st.size}:${st.ino}`;
  } catch (err) {
    throw calendarFailure(`The calendar file ${file} cannot be read: ${messageOf(err)}.`);
  }
  if (cached?.file === file && cached.stamp === stamp) return cached.set;
  try {
    const set = loadCalendars(file);
    cached = { file, stamp, set };
    return set;
  } catch (err) {
    throw calendarFailure(messageOf(err));
  }
}

/** The state of `q.calendars` at `q.at`. */
export function windowState(file: string | undefined, q: WindowQuery): WindowAnswer {
  const set = calendarsOf(file);
  if (!set) throw calendarFailure('The worker has no calendar file (RUNBOOK_CALENDARS), but the run names calendars.');
  let status;
  try {
    status = calendarStatus(set, q.calendars, new Date(q.at));
  } catch (err) {
    throw calendarFailure(messageOf(err));
  }
  return {
    open: status.open,
    nextChange: status.nextChange?.getTime(),
    calendars: status.calendars.map((c) => ({
      name: c.name,
      open: c.open,
      ...(c.event ? { event: c.event } : {}),
      ...(c.nextChange ? { nextChange: c.nextChange.getTime() } : {}),
    })),
  };
}

/**
 * The window a run of `rb` keeps to: its own calendars and every global one, or none. A name the calendar file
 * does not define refuses the run (returned as a message).
 */
export function runWindow(file: string | undefined, rb: RunbookDoc): WindowSpec | string | undefined {
  const set = calendarsOf(file);
  const own = rb.window?.calendars ?? [];
  if (own.length && !set)
    return `window.calendars: the runbook names ${own.join(', ')}, but the worker has no calendar file (set RUNBOOK_CALENDARS, or put calendars.yaml in the runbook directory)`;
  if (!set) return undefined;
  const unknown = own.filter((n) => !Object.prototype.hasOwnProperty.call(set.calendars, n));
  if (unknown.length)
    return `window.calendars: ${unknown.map((n) => `"${n}"`).join(', ')} ${unknown.length > 1 ? 'are' : 'is'} not in the calendar file ${set.file} (it has: ${Object.keys(set.calendars).join(', ') || 'none'})`;
  const names = [...new Set([...own, ...globalCalendars(set)])];
  if (!names.length) return undefined;
  return {
    calendars: names,
    // A runbook without a window of its own meets only global calendars (freezes): closed means blocked.
    policy: rb.window?.policy ?? (rb.window ? 'wait' : 'fail'),
    cutoffMs: ms((rb.window?.cutoff ?? '0s') as ms.StringValue),
    maxWaitMs: ms((rb.window?.maxWait ?? '7d') as ms.StringValue),
  };
}
