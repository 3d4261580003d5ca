// Node side. `runbook calendar status [NAMES...] [--at TIME] [--file FILE] [--json] [--check]`: whether the change
// calendars (maintenance windows, change freezes) are open now or at a given time, why, and when that changes.
import { DateTime } from 'luxon';
import { UserError } from '../common/errors';
import {
  calendarStatus,
  DEFAULT_HORIZON_DAYS,
  findCalendarsFile,
  loadCalendars,
  type CalendarState,
  type WindowStatus,
} from '../dsl/calendars';

export interface CalendarStatusOptions {
  /** ISO 8601 with Z or an offset; without one it is read as UTC. @default 'now' */
  at?: string;
  /** The calendar file. @default RUNBOOK_CALENDARS, else RUNBOOK_DIR/calendars.yaml */
  file?: string;
  /** Print the WindowStatus as JSON. */
  json?: boolean;
  /** Exit 1 when the combined state is closed. */
  check?: boolean;
}

/** Where output goes: process.stdout, or anything with a write (tests). */
export interface TextOut {
  write(text: string): unknown;
}

/** The time `--at` names, and whether it was read as UTC for want of an offset. */
export function parseAt(
  text: string | undefined,
  now: () => Date = () => new Date(),
): { at: Date; assumedUtc: boolean } {
  if (text === undefined || text.trim().toLowerCase() === 'now') return { at: now(), assumedUtc: false };
  const t = text.trim();
  const dt = DateTime.fromISO(t, { zone: 'utc' });
  if (!dt.isValid)
    throw new UserError(
      `--at ${JSON.stringify(text)} is not a time: expected ISO 8601 like 2026-12-20T22:00Z or 2026-12-20T23:00+01:00 (without an offset it is read as UTC), or now.`,
    );
  return { at: dt.toJSDate(), assumedUtc: !/[T ].*(Z|[+-]\d{2}(:?\d{2})?)$/i.test(t) };
}

/** `2026-12-20T21:00:00Z`: UTC, without milliseconds unless there are some. */
function utc(d: Date): string {
  return d.toISOString().replace('.000Z', 'Z');
}

/** `Sun 2026-12-20 22:00 Europe/Berlin`: the wall clock of the calendar's zone. */
function local(d: Date, zone: string): string {
  return `${DateTime.fromJSDate(d, { zone }).toFormat('ccc yyyy-MM-dd HH:mm')} ${zone}`;
}

/** `in 3d 4h`, `in 25m`, `in 40s`: the two largest units from `from` to `to` (`now` when they are equal). */
export function inWords(from: Date, to: Date): string {
  let rest = Math.max(0, Math.round((to.getTime() - from.getTime()) / 1000));
  const units = [
    ['d', 86_400],
    ['h', 3_600],
    ['m', 60],
    ['s', 1],
  ] as const;
  const counts = units.map(([unit, size]) => {
    const n = Math.floor(rest / size);
    rest -= n * size;
    return { n, unit };
  });
  const first = counts.findIndex((c) => c.n > 0);
  if (first < 0) return 'now';
  return `in ${counts
    .slice(first, first + 2)
    .filter((c) => c.n > 0)
    .map((c) => `${c.n}${c.unit}`)
    .join(' ')}`;
}

function nextChangeText(c: CalendarState, at: Date): string {
  if (!c.nextChange) return `no change within ${DEFAULT_HORIZON_DAYS} days`;
  return `${utc(c.nextChange)} (${local(c.nextChange, c.timezone)}), ${inWords(at, c.nextChange)}`;
}

/** The table: one line per calendar, then the combined state. */
export function describeStatus(s: WindowStatus, note = ''): string {
  const rows = s.calendars.map((c) => [
    c.name,
    c.open ? 'OPEN' : 'CLOSED',
    c.event ? `event "${c.event}"` : `default (${c.default})`,
    nextChangeText(c, s.at),
  ]);
  const head = ['NAME', 'STATE', 'WHY', 'NEXT CHANGE'];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const fmt = (cells: string[]) =>
    cells
      .map((c, i) => c.padEnd(widths[i]!))
      .join('  ')
      .trimEnd();
  const state = s.open ? 'OPEN' : 'CLOSED';
  const all =
    s.calendars.length === 0
      ? 'ALL: OPEN (no calendars)'
      : s.nextChange
        ? `ALL: ${state} until ${utc(s.nextChange)}, ${inWords(s.at, s.nextChange)}`
        : `ALL: ${state}, no change within ${DEFAULT_HORIZON_DAYS} days`;
  return [`at ${utc(s.at)}${note}`, fmt(head), ...rows.map(fmt), all].join('\n');
}

/** The calendar file to read: --file, else RUNBOOK_CALENDARS, else RUNBOOK_DIR/calendars.yaml; none is an error. */
function calendarFile(file: string | undefined): string {
  if (file) return file;
  const dir = process.env.RUNBOOK_DIR ?? 'runbooks';
  const found = findCalendarsFile(dir, process.env.RUNBOOK_CALENDARS);
  if (!found)
    throw new UserError(
      `No calendar file: looked for RUNBOOK_CALENDARS (unset) and ${dir}/calendars.yaml (none). Set RUNBOOK_CALENDARS ` +
        'to a calendar file, create calendars.yaml in the runbook directory (runbooks/calendars.example.yaml shows the format), or pass --file.',
    );
  return found;
}

/** `runbook calendar status`: prints the status; resolves to the exit code (1 with --check when closed). */
export async function runCalendarStatus(
  names: string[],
  opts: CalendarStatusOptions,
  out: TextOut = process.stdout,
): Promise<number> {
  const file = calendarFile(opts.file);
  const set = loadCalendars(file);
  const { at, assumedUtc } = parseAt(opts.at);
  const status = calendarStatus(set, names.length ? names : Object.keys(set.calendars), at);
  if (opts.json) out.write(`${JSON.stringify(status, null, 2)}\n`);
  else out.write(`${describeStatus(status, `${assumedUtc ? ' (no offset given: read as UTC)' : ''}, ${file}`)}\n`);
  return opts.check && !status.open ? 1 : 0;
}
