// Node side. The change windows a run keeps to: the worker's calendar file (RUNBOOK_CALENDARS, else
// RUNBOOK_DIR/calendars.yaml once it exists) read on each check, reloaded when it changes, evaluated at the time the
// workflow passes in (its own clock), so the answer is a function of its input and the file. The global calendars
// are the file's as it is at each check (a freeze added mid-run counts). A file that stops loading (half-written
// by an editor) does not stop the runs: the last version that loaded is used, and the error is logged.
import fs from 'node:fs';
import { ApplicationFailure } from '@temporalio/common';
import ms from 'ms';
import { messageOf } from '../common/errors';
import { FAILURES } from '../common/failure-types';
import type { Logger } from '../common/logger';
import {
  calendarStatus,
  globalCalendars,
  loadCalendars,
  type CalendarSet,
  type CalendarsLocation,
} from '../dsl/calendars';
import type { RunbookDoc } from '../dsl/schema';
import type { WindowSpec } from '../workflows/window';

export interface WindowQuery {
  /** The run's own calendars (the global ones are added here). */
  calendars: string[];
  /** Epoch ms, the workflow's clock. */
  at: number;
}

/** The combined state of the calendars at `at`, and when it next changes (epoch ms; none within 400 days: absent). */
export interface WindowAnswer {
  open: boolean;
  nextChange?: number;
  calendars: {
    name: string;
    open: boolean;
    event?: string;
    nextChange?: number;
    /** Who may override this calendar when it keeps a run out (from the calendar file); absent: nobody. */
    override?: { users?: string[]; groups?: string[] };
  }[];
}

const calendarFailure = (message: string) =>
  ApplicationFailure.create({ type: FAILURES.calendarInvalid, message, nonRetryable: true });

let cached: { file: string; stamp: string; set: CalendarSet } | undefined;

/** The calendar file's calendars (none when there is no file), loaded again only when the file changed. */
export function calendarsOf(where: CalendarsLocation | undefined, logger?: Logger): CalendarSet | undefined {
  if (!where) return undefined;
  const { file, required } = where;
  let stamp: string;
  try {
    const st = fs.statSync(file);
    stamp = `${st.mtimeMs}:${st.size}:${st.ino}`;
  } catch (err) {
    if (!required && (err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw calendarFailure(`The calendar file ${file} cannot be read: ${messageOf(err)}.`);
  }
  if (cached?.file === file && cached.stamp === stamp) return cached.set;
  try {
    const set = loadCalendars(file);
    cached = { file, stamp, set };
    return set;
  } catch (err) {
    if (cached?.file === file) {
      logger?.error(
        { file, error: messageOf(err) },
        'the calendar file does not load; runs keep to its last version that did until it is fixed',
      );
      return cached.set;
    }
    throw calendarFailure(messageOf(err));
  }
}

/** The state of the run's calendars and every global one at `q.at`. */
export function windowState(where: CalendarsLocation | undefined, q: WindowQuery, logger?: Logger): WindowAnswer {
  const set = calendarsOf(where, logger);
  if (!set) {
    if (q.calendars.length)
      throw calendarFailure(
        `The worker has no calendar file (${where?.file ?? 'RUNBOOK_CALENDARS'}), but the run names ${q.calendars.join(', ')}.`,
      );
    return { open: true, calendars: [] };
  }
  const names = [...new Set([...q.calendars, ...globalCalendars(set)])];
  let status;
  try {
    status = calendarStatus(set, names, new Date(q.at));
  } catch (err) {
    throw calendarFailure(messageOf(err));
  }
  return {
    open: status.open,
    nextChange: status.nextChange?.getTime(),
    calendars: status.calendars.map((c) => {
      const override = (set.calendars[c.name] as { override?: { users?: string[]; groups?: string[] } }).override;
      return {
        name: c.name,
        open: c.open,
        ...(c.event ? { event: c.event } : {}),
        ...(c.nextChange ? { nextChange: c.nextChange.getTime() } : {}),
        ...(override ? { override } : {}),
      };
    }),
  };
}

/**
 * The window a run of `rb` keeps to: its own calendars (the global ones are added at each check), or none when the
 * worker has no calendar file. A name the calendar file does not define refuses the run (returned as a message).
 */
export function runWindow(where: CalendarsLocation | undefined, rb: RunbookDoc): WindowSpec | string | undefined {
  const set = calendarsOf(where);
  const own = rb.window?.calendars ?? [];
  if (own.length && !set)
    return `window.calendars: the runbook names ${own.join(', ')}, but the worker has no calendar file (set RUNBOOK_CALENDARS, or put calendars.yaml in the runbook directory)`;
  if (!set) return undefined;
  const unknown = own.filter((n) => !Object.prototype.hasOwnProperty.call(set.calendars, n));
  if (unknown.length)
    return `window.calendars: ${unknown.map((n) => `"${n}"`).join(', ')} ${unknown.length > 1 ? 'are' : 'is'} not in the calendar file ${set.file} (it has: ${Object.keys(set.calendars).join(', ') || 'none'})`;
  return {
    calendars: own,
    // A runbook without a window of its own meets only global calendars (freezes): closed means blocked.
    policy: rb.window?.policy ?? (rb.window ? 'wait' : 'fail'),
    cutoffMs: ms((rb.window?.cutoff ?? '0s') as ms.StringValue),
    maxWaitMs: ms((rb.window?.maxWait ?? '7d') as ms.StringValue),
  };
}
