// Node side (the loader reads files, so workflows cannot import this module; activities and the CLI do). Change
// calendars: maintenance windows and change freezes, in one YAML file (`kind: Calendars`), schema once (TypeBox),
// located problems. The evaluation (calendarStatus) reads no clock: the caller passes the time, and the same set
// and time always give the same answer.
//
// Semantics:
// - A calendar is `default: open` or `default: closed`; its events invert the default while they last.
// - A recurring event (`cron`) starts at each local wall time (in the calendar's `timezone`, default UTC) its
//   cron matches (5 or 6 fields; day of month and day of week may not both be restricted). A time that does not
//   exist (spring-forward gap) starts at the end of the gap: the window is shifted, never lost; a time that
//   exists twice (fall-back) starts at the first of the two: never doubled. It ends either at `end: HH:MM`, the
//   first such wall time after the start's (same date if later in the day, else the next date; resolved like the
//   start, and should start and end both fall in one gap, the window keeps its usual wall-clock length), or after
//   `duration` of elapsed time (at most 31 days).
// - A one-off event has `start` and `end`: local date-times in the calendar's zone (`2026-12-01T22:00`, or a date
//   alone for midnight), or instants with an explicit offset or Z.
// - Occurrences are [start, end): at T a calendar is the inverse of its default when T is inside any occurrence
//   (overlapping ones simply union), else its default.
// - Several calendars combine as AWS SSM Change Calendar does: open only when every one is open.
// - The next change is the first instant after T, within the horizon (400 days by default), at which the state
//   (of a calendar, or the combined one) differs from the state at T.
// - `global: true` calendars apply to every runbook, named or not (a company-wide freeze): globalCalendars().
//
// Cost: calendarStatus runs synchronously (in a local activity, on the worker's main thread), so the loader refuses,
// each with a located error, what would make one call slow: a recurring event starting more than once a minute
// (MAX_STARTS_PER_DAY), more than 1,000 events in a calendar (MAX_EVENTS_PER_CALENDAR), more than 100 recurring
// events in the file (MAX_RECURRING_EVENTS), and recurring events starting more than 1,440 times a day in all, the
// file's calendars together (MAX_FILE_STARTS_PER_DAY: one event every minute, or 60 hourly ones). Within these a
// call takes well under 50 ms (a few ms for a real file) and memory in proportion to one day's windows:
// - what a file needs is computed once per loaded set (WeakMap): parsed crons and one-off instants (the loader's),
//   and per recurring event one date's occurrences merged, a pattern shifted onto each date whose zone offset is
//   steady (overlapping ones, e.g. a duration longer than the period, merge into one window; the events of a
//   calendar that start on the same dates are merged together). Zone offsets per day are cached per zone.
// - each calendar's timeline is a lazy stream of windows: one cursor per group of events, dates computed only when
//   reached, a far jump restarting the stream there; a calendar's next change stops at its first flip.
// - the combined next change: when all are open, the first calendar flip; else a search that jumps to the latest
//   time a closed calendar stays closed until and, when that is within the same day, sweeps the rest of that day
//   at once, so the work is a day's windows per day at most, only until the first time all are open.
import fs from 'node:fs';
import path from 'node:path';
import { Type, type Static } from '@sinclair/typebox';
import ms from 'ms';
import { UserError } from '../common/errors';
import { IANAZone } from 'luxon';
import {
  CronError,
  firstInstantOf,
  isValidZone,
  parseCron,
  timesOfDay,
  wallMs,
  type CronFields,
  type WallTime,
} from './cron';
import { CODES, formatProblem, sortProblems, type Problem } from './problems';
import { DURATION_PATTERN, NAME_PATTERN } from './schema';
import { didYouMean } from './suggest';
import { validateAgainstSchema } from './validate';
import { parseYamlSource, tooLargeProblem, type YamlLimits, type YamlSource } from './yaml-source';

/** A calendar file is small: a few dozen calendars of a few events each. */
export const CALENDAR_LIMITS = { maxBytes: 1024 * 1024, what: 'a calendar file' } as const satisfies YamlLimits;
/** Calendar names: lowercase letters, digits and -, starting with a letter, at most this long. */
export const CALENDAR_NAME_MAX = 63;
/** A recurring event's longest `duration`: a status looks this far back (plus a day) for occurrences. */
export const MAX_RECURRING_MS = 31 * 86_400_000;
/** A recurring event starts at most once a minute. */
export const MAX_STARTS_PER_DAY = 1440;
/** A calendar has at most this many events (recurring and one-off). */
export const MAX_EVENTS_PER_CALENDAR = 1000;
/** A calendar file has at most this many recurring events, all calendars together. */
export const MAX_RECURRING_EVENTS = 100;
/** A calendar file's recurring events start at most this many times a day, all together (once a minute). */
export const MAX_FILE_STARTS_PER_DAY = 1440;
/** How far ahead calendarStatus looks for the next change. */
export const DEFAULT_HORIZON_DAYS = 400;

const DAY_MS = 86_400_000;
const END_TIME = /^([01][0-9]|2[0-3]):([0-5][0-9])$/;
const LOCAL_DATE_TIME = /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2}))?(Z|[+-]\d{2}:?\d{2})?)?$/i;

const CalendarEventSchema = Type.Object(
  {
    name: Type.String({ minLength: 1, description: 'Shown as the reason the calendar is inverted.' }),
    description: Type.Optional(Type.String()),
    cron: Type.Optional(
      Type.String({
        minLength: 1,
        description: 'Recurring: starts at each local time this cron matches (5 fields, or 6 with seconds first).',
      }),
    ),
    start: Type.Optional(
      Type.String({
        minLength: 1,
        description: 'One-off: local date-time in the calendar zone (2026-12-01T22:00), or with an offset or Z.',
      }),
    ),
    end: Type.Optional(
      Type.String({
        minLength: 1,
        description: 'Recurring: local time HH:MM, the next one after the start. One-off: a date-time like start.',
      }),
    ),
    duration: Type.Optional(
      Type.String({
        pattern: DURATION_PATTERN,
        description: 'Recurring: elapsed time from the start (30m, 6h, 2d; at most 31d). Instead of end.',
      }),
    ),
  },
  { additionalProperties: false },
);

export const CalendarSchema = Type.Object(
  {
    description: Type.Optional(Type.String()),
    timezone: Type.Optional(
      Type.String({ minLength: 1, default: 'UTC', description: 'IANA zone the times are local to.' }),
    ),
    default: Type.Union([Type.Literal('open'), Type.Literal('closed')], {
      description: 'The state outside every event.',
    }),
    global: Type.Optional(
      Type.Boolean({ default: false, description: 'Applies to every runbook, named or not (a company-wide freeze).' }),
    ),
    override: Type.Optional(
      Type.Object(
        {
          users: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 100 }), { maxItems: 200 })),
          groups: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 100 }), { maxItems: 200 })),
        },
        {
          additionalProperties: false,
          description:
            'Who may run through this calendar while it keeps a run out (the reason is recorded). Absent: nobody.',
        },
      ),
    ),
    events: Type.Optional(
      Type.Array(CalendarEventSchema, { default: [], description: 'Periods that invert the default.' }),
    ),
  },
  { additionalProperties: false },
);

/** The calendar file. */
export const CalendarFileSchema = Type.Object(
  {
    apiVersion: Type.Literal('runbooks/v1', { description: 'Language version.' }),
    kind: Type.Literal('Calendars'),
    calendars: Type.Record(Type.String({ pattern: NAME_PATTERN }), CalendarSchema, { additionalProperties: false }),
  },
  { additionalProperties: false },
);

export type CalendarEventDoc = Static<typeof CalendarEventSchema>;
export type CalendarDoc = Static<typeof CalendarSchema>;
export type CalendarFileDoc = Static<typeof CalendarFileSchema>;

export interface CalendarSet {
  file: string;
  calendars: Record<string, CalendarDoc>;
}

export interface LoadedCalendars {
  /** Present only when there are no errors. */
  set?: CalendarSet;
  problems: Problem[];
}

// ---------------------------------------------------------------------------------------------------------------
// Reading times

/** A date-time as the file writes it: a local wall time, and the offset (minutes east) when it gives one. */
interface WrittenTime {
  wall: WallTime;
  offsetMinutes?: number;
}

/** Reads `2026-12-01T22:00[:00][Z|+01:00]` or `2026-12-01` (midnight); undefined when it is not a real date-time. */
function parseDateTime(text: string): WrittenTime | undefined {
  const m = LOCAL_DATE_TIME.exec(text.trim());
  if (!m) return undefined;
  const [year, month, day, hour, minute, second] = [1, 2, 3, 4, 5, 6].map((i) => Number(m[i] ?? 0)) as [
    number,
    number,
    number,
    number,
    number,
    number,
  ];
  const wall = { year, month, day, hour, minute, second };
  const d = new Date(wallMs(wall));
  if (d.getUTCFullYear() !== year || d.getUTCMonth() + 1 !== month || d.getUTCDate() !== day) return undefined;
  if (hour > 23 || minute > 59 || second > 59) return undefined;
  const off = m[7];
  if (!off) return { wall };
  if (off.toUpperCase() === 'Z') return { wall, offsetMinutes: 0 };
  const digits = off.replace(':', '');
  const minutes = Number(digits.slice(1, 3)) * 60 + Number(digits.slice(3, 5));
  if (minutes > 18 * 60) return undefined;
  return { wall, offsetMinutes: off.startsWith('-') ? -minutes : minutes };
}

/** The instant a written date-time denotes in `zone` (a local time in a gap or repeated: see the header). */
function instantOfWritten(t: WrittenTime, zone: string): number {
  return t.offsetMinutes === undefined ? firstInstantOf(t.wall, zone) : wallMs(t.wall) - t.offsetMinutes * 60_000;
}

// ---------------------------------------------------------------------------------------------------------------
// Loading

/** What the loader read of each event (its cron's fields, a one-off's instants), kept for the evaluation. */
const parsedCron = new WeakMap<CalendarEventDoc, CronFields>();
const parsedOnce = new WeakMap<CalendarEventDoc, { start: number; end: number }>();

type Report = (path: (string | number)[], message: string, code: Problem['code'], at?: 'key' | 'value') => void;

const DATE_TIME_HINT =
  "expected a local date-time like 2026-12-01T22:00 (in the calendar's zone), a date like 2026-12-01, or an instant with an offset like 2026-12-01T22:00+01:00 or Z";

/** The checks a recurring event needs beyond the schema; returns how many times a day it starts (0 if unknown). */
function checkRecurring(ev: CalendarEventDoc, at: (string | number)[], report: Report): number {
  let starts = 0;
  try {
    const f = parseCron(ev.cron!);
    parsedCron.set(ev, f);
    const perDay = f.hour.length * f.minute.length * f.second.length;
    if (perDay > MAX_STARTS_PER_DAY)
      report(
        [...at, 'cron'],
        `the cron starts the event ${perDay} times a day; an event may start at most once a minute (${MAX_STARTS_PER_DAY} times a day): give a longer duration instead`,
        CODES.outOfRange,
      );
    else starts = perDay;
  } catch (err) {
    if (!(err instanceof CronError)) throw err;
    report([...at, 'cron'], err.message, CODES.badFormat);
  }
  if (ev.start !== undefined)
    report(
      [...at, 'start'],
      'an event is either recurring (cron, with end HH:MM or duration) or one-off (start and end), not both',
      CODES.notAllowedValue,
      'key',
    );
  if (ev.end !== undefined && ev.duration !== undefined)
    report(
      [...at, 'duration'],
      'give either end (a local time HH:MM) or duration (elapsed time), not both',
      CODES.notAllowedValue,
      'key',
    );
  else if (ev.end === undefined && ev.duration === undefined)
    report(
      at,
      'a recurring event needs end (the local time HH:MM it ends at, e.g. 04:00) or duration (e.g. 6h)',
      CODES.missingField,
    );
  if (ev.end !== undefined && !END_TIME.test(ev.end))
    report(
      [...at, 'end'],
      `expected a local time of day HH:MM (24h) like 04:00, found "${ev.end}": a recurring event ends at the next such time after it starts${
        parseDateTime(ev.end) ? ' (a date-time end is for one-off events, which have start instead of cron)' : ''
      }`,
      CODES.badFormat,
    );
  if (ev.duration !== undefined) {
    const length = ms(ev.duration as ms.StringValue);
    if (!(length > 0) || length > MAX_RECURRING_MS)
      report(
        [...at, 'duration'],
        `a recurring event lasts more than 0 and at most 31d; found ${ev.duration}`,
        CODES.outOfRange,
      );
  }
  return starts;
}

/** The checks a one-off event needs beyond the schema. */
function checkOneOff(ev: CalendarEventDoc, at: (string | number)[], zone: string, report: Report): void {
  if (ev.duration !== undefined)
    report(
      [...at, 'duration'],
      'a one-off event takes start and end (date-times); duration is for recurring events (cron)',
      CODES.notAllowedValue,
      'key',
    );
  const start = parseDateTime(ev.start!);
  if (!start) report([...at, 'start'], `${DATE_TIME_HINT}; found "${ev.start}"`, CODES.badFormat);
  if (ev.end === undefined) {
    report(at, 'a one-off event needs end (a date-time like its start)', CODES.missingField);
    return;
  }
  const end = parseDateTime(ev.end);
  if (!end) {
    report([...at, 'end'], `${DATE_TIME_HINT}; found "${ev.end}"`, CODES.badFormat);
    return;
  }
  if (!start) return;
  const [s, e] = [instantOfWritten(start, zone), instantOfWritten(end, zone)];
  parsedOnce.set(ev, { start: s, end: e });
  if (e <= s)
    report(
      [...at, 'end'],
      `the event ends (${ev.end}) ${e === s ? 'when' : 'before'} it starts (${ev.start}); end must be after start`,
      CODES.outOfRange,
    );
}

/**
 * Cross-field checks of a schema-valid file: names, zones, crons, event shapes, times, and the limits that bound
 * what one calendarStatus call may cost (see the header).
 */
function checkCalendars(doc: CalendarFileDoc, report: Report): void {
  const zones = typeof Intl.supportedValuesOf === 'function' ? Intl.supportedValuesOf('timeZone') : [];
  /** The recurring events in file order, with their starts a day. */
  const recurring: { at: (string | number)[]; starts: number }[] = [];
  for (const [name, cal] of Object.entries(doc.calendars)) {
    const at = ['calendars', name];
    if (name.length > CALENDAR_NAME_MAX)
      report(
        at,
        `calendar name "${name}" is ${name.length} characters; at most ${CALENDAR_NAME_MAX}`,
        CODES.outOfRange,
        'key',
      );
    let zone = cal.timezone ?? 'UTC';
    if (!isValidZone(zone)) {
      report(
        [...at, 'timezone'],
        `unknown time zone "${zone}"${didYouMean(zone, zones)}: expected an IANA zone name like Europe/Berlin, America/New_York or UTC`,
        CODES.notAllowedValue,
      );
      zone = 'UTC';
    }
    const events = cal.events ?? [];
    if (events.length > MAX_EVENTS_PER_CALENDAR)
      report(
        [...at, 'events'],
        `calendar "${name}" has ${events.length} events; a calendar has at most ${MAX_EVENTS_PER_CALENDAR}: split it into several calendars, or merge events (a recurring event covers many dates)`,
        CODES.outOfRange,
        'key',
      );
    events.forEach((ev, i) => {
      const evAt = [...at, 'events', i];
      if (ev.cron !== undefined) recurring.push({ at: evAt, starts: checkRecurring(ev, evAt, report) });
      else if (ev.start !== undefined) checkOneOff(ev, evAt, zone, report);
      else
        report(
          evAt,
          'an event needs cron (recurring, with end HH:MM or duration) or start and end (one-off)',
          CODES.missingField,
        );
    });
  }
  if (recurring.length > MAX_RECURRING_EVENTS)
    report(
      [...recurring[MAX_RECURRING_EVENTS]!.at, 'cron'],
      `the file has ${recurring.length} recurring events; a calendar file has at most ${MAX_RECURRING_EVENTS} in all (this is number ${MAX_RECURRING_EVENTS + 1}): give an event a cron that matches more times or days instead of repeating it`,
      CODES.outOfRange,
    );
  let total = 0;
  const all = recurring.reduce((sum, r) => sum + r.starts, 0);
  for (const r of recurring) {
    total += r.starts;
    if (total <= MAX_FILE_STARTS_PER_DAY) continue;
    report(
      [...r.at, 'cron'],
      `the file's recurring events start ${all} times a day in all; at most ${MAX_FILE_STARTS_PER_DAY} (once a minute), and with this event they reach ${total}: start events less often and give them longer durations`,
      CODES.outOfRange,
    );
    break;
  }
}

/** Loads a calendar file's text in passes (YAML, schema, cross-field checks), with every problem located. */
export function loadCalendarsText(file: string, text: string): LoadedCalendars {
  const src: YamlSource = parseYamlSource(file, text, CALENDAR_LIMITS);
  const problems = [...src.problems];
  if (!src.broken && (src.data === null || src.data === undefined)) {
    problems.push(
      src.problem(
        [],
        'the file is empty: a calendar file is a mapping with apiVersion, kind and calendars',
        CODES.wrongType,
      ),
    );
  } else if (!src.broken) {
    const schemaProblems = validateAgainstSchema(CalendarFileSchema, src);
    problems.push(...schemaProblems);
    if (schemaProblems.length === 0)
      checkCalendars(src.data as CalendarFileDoc, (p, message, code, at) =>
        problems.push(src.problem(p, message, code, { at })),
      );
  }
  const sorted = sortProblems(problems);
  const ok = !sorted.some((p) => p.severity === 'error');
  return { set: ok ? { file, calendars: (src.data as CalendarFileDoc).calendars } : undefined, problems: sorted };
}

/** Loads a calendar file; one over the size limit is refused unread. A missing file is a UserError. */
export function loadCalendarsFile(file: string): LoadedCalendars {
  let text: string;
  try {
    const bytes = fs.statSync(file).size;
    if (bytes > CALENDAR_LIMITS.maxBytes) return { problems: [tooLargeProblem(file, bytes, CALENDAR_LIMITS)] };
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new UserError(
      `Cannot read calendar file ${file}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as Error).message}.`,
      { cause: err },
    );
  }
  return loadCalendarsText(file, text);
}

/** Loads a calendar file or throws a UserError listing every problem. */
export function loadCalendars(file: string): CalendarSet {
  const { set, problems } = loadCalendarsFile(file);
  if (!set) throw new UserError(`Calendar file ${file} is invalid:\n${problems.map(formatProblem).join('\n')}`);
  return set;
}

/** Where a process's calendar file is: `required` when named explicitly (RUNBOOK_CALENDARS), else it may not exist (yet). */
export interface CalendarsLocation {
  file: string;
  required: boolean;
}

/** The one rule for where the calendar file is: RUNBOOK_CALENDARS (`envValue`) when set, else `runbookDir`/calendars.yaml. */
export function calendarsLocation(runbookDir: string, envValue?: string): CalendarsLocation {
  return envValue
    ? { file: path.resolve(envValue), required: true }
    : { file: path.join(runbookDir, 'calendars.yaml'), required: false };
}

/**
 * The calendar file a process uses now (calendarsLocation): RUNBOOK_CALENDARS when set, which must exist; else
 * `runbookDir`/calendars.yaml when it exists; else none.
 */
export function findCalendarsFile(runbookDir: string, envValue?: string): string | undefined {
  const { file, required } = calendarsLocation(runbookDir, envValue);
  if (fs.existsSync(file)) return required ? envValue : file;
  if (required)
    throw new UserError(
      `RUNBOOK_CALENDARS names ${envValue}, which does not exist; point it at a calendar file (kind: Calendars) or unset it to use ${path.join(runbookDir, 'calendars.yaml')}.`,
    );
  return undefined;
}

/** The calendars marked `global: true` (they apply to every runbook), in file order. */
export function globalCalendars(set: CalendarSet): string[] {
  return Object.entries(set.calendars)
    .filter(([, c]) => c.global === true)
    .map(([name]) => name);
}

// ---------------------------------------------------------------------------------------------------------------
// Evaluation (pure)

export interface CalendarState {
  name: string;
  open: boolean;
  default: 'open' | 'closed';
  timezone: string;
  /** The event that inverts the default right now (the first in file order, when several do). */
  event?: string;
  /** When this calendar next flips; undefined: not within the horizon. */
  nextChange?: Date;
}

export interface WindowStatus {
  at: Date;
  /** Every named calendar is open (true when none is named). */
  open: boolean;
  calendars: CalendarState[];
  /** When the combined state next flips; undefined: not within the horizon. */
  nextChange?: Date;
}

// Math and the like read once (jest runs modules in a vm context, where each global read in a hot loop is slow).
const { floor, max, min } = Math;
const { isInteger } = Number;
const NEVER = Infinity;

// How the work is bounded: see the file header.

/** How a recurring event's occurrences start and end: ms from a date's local midnight. */
interface Shape {
  /** The times of day it starts at, ascending. */
  timesMs: number[];
  /** Elapsed ms, or -1 when it ends at the local time of day `endMs`. */
  durationMs: number;
  endMs: number;
}

/** One or more recurring events that start on the same dates, evaluated together. */
interface Recurrence {
  /** The months (bit 1-12), days of month (bit 1-31) and days of week (bit 0-6, Sunday 0) they start on. */
  monthBits: number;
  domBits: number;
  dowBits: number;
  shapes: Shape[];
  /**
   * One date's occurrences, merged: [start, end) pairs in ms from the date's local midnight. Valid on a date
   * whose zone offset is steady (and the next date's too when `nextDay`); undefined when a duration is not a
   * whole number of ms (then every occurrence is computed as it comes, for the same rounding).
   */
  pattern?: number[];
  /** Some occurrence ends at a local time on the next date. */
  nextDay: boolean;
  /** How far before a time an occurrence covering it can start. */
  lookback: number;
}

type CompiledEvent = { name: string; once: { start: number; end: number } } | { name: string; cron: Recurrence };

interface CompiledCalendar {
  name: string;
  doc: CalendarDoc;
  zone: string;
  defaultOpen: boolean;
  days: ZoneDays;
  /** Every event, in file order (a recurring one as a Recurrence of its own). */
  events: CompiledEvent[];
  /** The recurring events, grouped by the dates they start on. */
  recurrences: Recurrence[];
  /** The one-off events' intervals, sorted and merged (touching ones too): start, end, start, end... */
  onceMerged: number[];
  /** The longest look-back of its recurring events. */
  lookback: number;
}

/** Zone offsets, per zone, cached across calls and sets (each map is cleared when it reaches this size). */
const ZONE_CACHE_MAX = 100_000;

const LUXON_FORMAT = /^(\d+)\/(\d+)\/(\d+) (AD|BC),? (\d+):(\d+):(\d+)$/;

/**
 * IANAZone.offset (minutes east at an instant) computed the way luxon does when it lacks formatToParts: from
 * the same formatter's format() (a quarter of the time); luxon itself when the text is not the expected shape.
 */
function offsetFunction(zone: string): (ts: number) => number {
  const z = IANAZone.create(zone);
  const dtf = new Intl.DateTimeFormat('en-US', {
    hour12: false,
    timeZone: zone,
    year: 'numeric',
    month: '2-digit',
    day: '2-digit',
    hour: '2-digit',
    minute: '2-digit',
    second: '2-digit',
    era: 'short',
  });
  return (ts) => {
    const m = LUXON_FORMAT.exec(dtf.format(ts).replace(/\u200E/g, ''));
    if (!m || !(ts >= -8.64e15 && ts <= 8.64e15)) return z.offset(ts);
    let year = Number(m[3]);
    if (m[4] === 'BC') year = 1 - year;
    if (year < 100) return z.offset(ts); // luxon's two-digit-year handling: rare, leave it to luxon
    const hour = Number(m[5]) === 24 ? 0 : Number(m[5]);
    const asUTC = Date.UTC(year, Number(m[1]) - 1, Number(m[2]), hour, Number(m[6]), Number(m[7]), 0);
    const over = ts % 1000;
    return (asUTC - (ts - (over >= 0 ? over : 1000 + over))) / 60_000;
  };
}

/** The offset of a zone's wall clock, per epoch day: steady (most days) or shifting once (DST nights). */
class ZoneDays {
  private readonly offset: (ts: number) => number;
  /** Offset (minutes) at the start of a UTC day. */
  private readonly probes = new Map<number, number>();
  /** For a date whose offset is not steady: the one transition near it, or null when it is not one. */
  private readonly shifts = new Map<number, { at: number; before: number; after: number } | null>();

  constructor(readonly zone: string) {
    this.offset = offsetFunction(zone);
  }

  private probe(k: number): number {
    let o = this.probes.get(k);
    if (o === undefined) {
      if (this.probes.size >= ZONE_CACHE_MAX) this.probes.clear();
      o = this.offset(k * DAY_MS);
      this.probes.set(k, o);
    }
    return o;
  }

  /**
   * The offset in ms (instant = wall read as UTC minus this) all through local date `d` (an epoch day) and a day
   * either side; undefined when it changes near the date. The same as WallClock.steadyOffset.
   */
  steady(d: number): number | undefined {
    const before = this.probe(d - 1);
    return before === this.probe(d + 2) ? before * 60_000 : undefined;
  }

  /**
   * The instant of local time `tMs` (ms from midnight) on date `d`, as firstInstantOf gives it: arithmetic on a
   * steady date, and on a date with one transition near it (found once, to the ms); else firstInstantOf itself.
   */
  instant(d: number, tMs: number): number {
    const off = this.steady(d);
    if (off !== undefined) return d * DAY_MS - off + tMs;
    const shift = this.shift(d);
    if (!shift) {
      const sec = floor(tMs / 1000);
      const time = { hour: floor(sec / 3600), minute: floor(sec / 60) % 60, second: sec % 60 };
      return firstInstantOf({ ...dateOf(d), ...time }, this.zone);
    }
    // Read with the offset before the transition when that falls before it; else with the one after when that
    // falls after it; else the time is in the gap, which ends at the transition.
    const wall = d * DAY_MS + tMs;
    const early = wall - shift.before * 60_000;
    if (early < shift.at) return early;
    const late = wall - shift.after * 60_000;
    return late >= shift.at ? late : shift.at;
  }

  private shift(d: number): { at: number; before: number; after: number } | null {
    let s = this.shifts.get(d);
    if (s === undefined) {
      if (this.shifts.size >= ZONE_CACHE_MAX) this.shifts.clear();
      const before = this.probe(d - 1);
      const after = this.probe(d + 2);
      let [lo, hi] = [(d - 1) * DAY_MS, (d + 2) * DAY_MS];
      while (hi - lo > 1) {
        const mid = floor((lo + hi) / 2);
        if (this.offset(mid) === before) lo = mid;
        else hi = mid;
      }
      s = this.offset(hi) === after ? { at: hi, before, after } : null;
      this.shifts.set(d, s);
    }
    return s;
  }
}

const zoneDays = new Map<string, ZoneDays>();

function daysOf(zone: string): ZoneDays {
  let z = zoneDays.get(zone);
  if (!z) {
    z = new ZoneDays(zone);
    zoneDays.set(zone, z);
  }
  return z;
}

const bitsOf = (values: number[]) => values.reduce((bits, v) => (bits | (1 << v)) >>> 0, 0);

/** Sorts [start, end) pairs by start and merges them (touching ones too) into `out`. */
function mergePairs(pairs: number[], out: number[]): void {
  const order = Array.from({ length: pairs.length / 2 }, (_, i) => i).sort((a, b) => pairs[2 * a]! - pairs[2 * b]!);
  for (const i of order) mergeInto(out, pairs[2 * i]!, pairs[2 * i + 1]!);
}

/** Recurring events that start on the same dates, as one Recurrence. */
function recurrenceOf(bits: [number, number, number], shapes: Shape[]): Recurrence {
  const pairs: number[] = [];
  for (const { timesMs, durationMs, endMs } of shapes)
    for (const tMs of timesMs)
      pairs.push(tMs, durationMs >= 0 ? tMs + durationMs : endMs > tMs ? endMs : DAY_MS + endMs);
  const pattern: number[] = [];
  mergePairs(pairs, pattern);
  return {
    monthBits: bits[0],
    domBits: bits[1],
    dowBits: bits[2],
    shapes,
    pattern: shapes.every((s) => isInteger(s.durationMs)) ? pattern : undefined,
    nextDay: shapes.some((s) => s.durationMs < 0 && s.timesMs.some((t) => t >= s.endMs)),
    lookback: max(...shapes.map((s) => (s.durationMs >= 0 ? s.durationMs : 2 * DAY_MS))),
  };
}

/** A calendar ready to evaluate (its file was checked by the loader, so nothing here fails). */
function compile(name: string, doc: CalendarDoc): CompiledCalendar {
  const zone = doc.timezone ?? 'UTC';
  const groups = new Map<string, { bits: [number, number, number]; shapes: Shape[] }>();
  const events = (doc.events ?? []).map((ev): CompiledEvent => {
    if (ev.cron === undefined) {
      const once = parsedOnce.get(ev) ?? {
        start: instantOfWritten(parseDateTime(ev.start!)!, zone),
        end: instantOfWritten(parseDateTime(ev.end!)!, zone),
      };
      return { name: ev.name, once };
    }
    const fields = parsedCron.get(ev) ?? parseCron(ev.cron);
    const m = ev.end === undefined ? undefined : END_TIME.exec(ev.end);
    const shape: Shape = {
      timesMs: timesOfDay(fields).map(msOfDay),
      durationMs: m ? -1 : ms(ev.duration as ms.StringValue),
      endMs: m ? msOfDay({ hour: Number(m[1]), minute: Number(m[2]) }) : 0,
    };
    const bits: [number, number, number] = [bitsOf(fields.month), bitsOf(fields.dayOfMonth), bitsOf(fields.dayOfWeek)];
    const key = bits.join(' ');
    const group = groups.get(key) ?? { bits, shapes: [] };
    group.shapes.push(shape);
    groups.set(key, group);
    return { name: ev.name, cron: recurrenceOf(bits, [shape]) };
  });
  const recurrences = [...groups.values()].map((g) => recurrenceOf(g.bits, g.shapes));
  const onceMerged: number[] = [];
  const once = events.flatMap((e) => ('once' in e ? [e.once.start, e.once.end] : []));
  mergePairs(once, onceMerged);
  return {
    name,
    doc,
    zone,
    defaultOpen: doc.default === 'open',
    days: daysOf(zone),
    events,
    recurrences,
    onceMerged,
    lookback: max(0, ...recurrences.map((r) => r.lookback)),
  };
}

/** Per loaded set: its calendars, compiled on first use. */
const compiledSets = new WeakMap<CalendarSet, Map<string, CompiledCalendar>>();

function compiled(set: CalendarSet, name: string): CompiledCalendar {
  let bySet = compiledSets.get(set);
  if (!bySet) {
    bySet = new Map();
    compiledSets.set(set, bySet);
  }
  const doc = set.calendars[name]!;
  let c = bySet.get(name);
  if (c?.doc !== doc) {
    c = compile(name, doc);
    bySet.set(name, c);
  }
  return c;
}

/** Appends [start, end) to a list of start, end pairs, merged into the last pair when it starts by that one's end. */
function mergeInto(list: number[], start: number, end: number): void {
  const n = list.length;
  if (n > 0 && start <= list[n - 1]!) {
    if (end > list[n - 1]!) list[n - 1] = end;
  } else list.push(start, end);
}

/** The date (month 1-12) of an epoch day number. */
function dateOf(epochDay: number): { year: number; month: number; day: number } {
  const d = new Date(epochDay * DAY_MS);
  return { year: d.getUTCFullYear(), month: d.getUTCMonth() + 1, day: d.getUTCDate() };
}

/** Whether `r` starts on an epoch day: its month, day of month and day of week, by arithmetic (as Date: proleptic Gregorian). */
function matchesDate(r: Recurrence, epochDay: number): boolean {
  const dow = (((epochDay + 4) % 7) + 7) % 7; // 1970-01-01 was a Thursday
  if (!((r.dowBits >>> dow) & 1)) return false;
  // Howard Hinnant's civil_from_days.
  const z = epochDay + 719_468;
  const era = floor(z / 146_097);
  const doe = z - era * 146_097;
  const yoe = floor((doe - floor(doe / 1460) + floor(doe / 36_524) - floor(doe / 146_096)) / 365);
  const doy = doe - (365 * yoe + floor(yoe / 4) - floor(yoe / 100));
  const mp = floor((5 * doy + 2) / 153);
  const day = doy - floor((153 * mp + 2) / 5) + 1;
  const month = mp < 10 ? mp + 3 : mp - 9;
  return ((r.monthBits >>> month) & 1) === 1 && ((r.domBits >>> day) & 1) === 1;
}

const msOfDay = (t: { hour: number; minute: number; second?: number }) =>
  ((t.hour * 60 + t.minute) * 60 + (t.second ?? 0)) * 1000;

/**
 * The occurrences starting on local date `d` (an epoch day, which `r` starts on), merged, occurrence by
 * occurrence as the file header says: as start, end pairs to add `base` to. On most dates that is the pattern
 * shifted onto the date (nothing computed); else each occurrence in turn.
 */
function occurrencesOn(r: Recurrence, days: ZoneDays, d: number): { pairs: number[]; base: number } {
  const off = days.steady(d);
  if (r.pattern && off !== undefined && isInteger(off) && (!r.nextDay || days.steady(d + 1) === off))
    return { pairs: r.pattern, base: d * DAY_MS - off };
  const pairs: number[] = [];
  const base = off === undefined ? undefined : d * DAY_MS - off;
  for (const { timesMs, durationMs, endMs } of r.shapes)
    for (const tMs of timesMs) {
      const start = base === undefined ? days.instant(d, tMs) : base + tMs;
      let end: number;
      if (durationMs >= 0) end = start + durationMs;
      else {
        // The first end time of day after the start's, on the wall clock: later today, else tomorrow.
        const sameDay = endMs > tMs;
        end = sameDay && base !== undefined ? base + endMs : days.instant(sameDay ? d : d + 1, endMs);
        // Start and end in the same skipped hour: keep the usual wall-clock length from the shifted start.
        if (end <= start) end = start + (sameDay ? 0 : DAY_MS) + endMs - tMs;
      }
      pairs.push(start, end);
    }
  // One event's starts come in order (later wall times map to later or equal instants); several events' do not.
  const merged: number[] = [];
  if (r.shapes.length === 1) for (let i = 0; i < pairs.length; i += 2) mergeInto(merged, pairs[i]!, pairs[i + 1]!);
  else mergePairs(pairs, merged);
  return { pairs: merged, base: 0 };
}

/** Whether an occurrence of `r` covers `t`. */
function covers(r: Recurrence, days: ZoneDays, t: number): boolean {
  for (let d = floor((t - r.lookback) / DAY_MS) - 1; d <= floor(t / DAY_MS) + 1; d++) {
    if (!matchesDate(r, d)) continue;
    const { pairs, base } = occurrencesOn(r, days, d);
    for (let i = 0; i < pairs.length; i += 2) if (base + pairs[i]! <= t && t < base + pairs[i + 1]!) return true;
  }
  return false;
}

/** A stream of disjoint, non-touching [s, e) intervals in order. */
interface Cursor {
  s: number;
  e: number;
  /** Moves to the next interval; false (for good) when there is none. */
  next(): boolean;
}

/**
 * A Recurrence's occurrences ending after `from` and starting at or before `limit`, merged (touching ones too).
 * Starts never decrease from one date to the next (later wall times map to later or equal instants), so merging
 * as they come is enough; a date is computed only when the stream reaches it.
 */
class RecurrenceCursor implements Cursor {
  s = 0;
  e = 0;
  /** The current date's merged occurrences (pairs to add `base` to), and the next one to read. */
  private buf: number[] = [];
  private base = 0;
  private bi = 0;
  /** The next date to compute, and the last that can start by `limit` (a local date is within a day of UTC's). */
  private d: number;
  private readonly dLast: number;
  /** The interval being merged. */
  private ps = 0;
  private pe = 0;
  private pending = false;

  constructor(
    private readonly r: Recurrence,
    private readonly days: ZoneDays,
    private readonly from: number,
    private readonly limit: number,
  ) {
    this.d = floor((from - r.lookback) / DAY_MS) - 1;
    this.dLast = floor(limit / DAY_MS) + 1;
  }

  /** Computes the next date with occurrences; false when none is left. */
  private fill(): boolean {
    while (this.d <= this.dLast) {
      const d = this.d++;
      if (!matchesDate(this.r, d)) continue;
      ({ pairs: this.buf, base: this.base } = occurrencesOn(this.r, this.days, d));
      this.bi = 0;
      if (this.buf.length) return true;
    }
    return false;
  }

  next(): boolean {
    for (;;) {
      const more = this.bi < this.buf.length || this.fill();
      const rs = more ? this.base + this.buf[this.bi]! : NEVER;
      const re = more ? this.base + this.buf[this.bi + 1]! : NEVER;
      this.bi += 2;
      if (!more || rs > this.limit) {
        // Nothing more starts in time: the stream ends with the interval being merged.
        this.d = this.dLast + 1;
        this.buf = [];
        this.bi = 0;
        if (!this.pending || this.pe <= this.from) return (this.pending = false);
        this.pending = false;
        this.s = this.ps;
        this.e = this.pe;
        return true;
      }
      if (this.pending && rs <= this.pe) {
        if (re > this.pe) this.pe = re;
        continue;
      }
      const s = this.ps;
      const e = this.pe;
      const had = this.pending;
      this.ps = rs;
      this.pe = re;
      this.pending = true;
      if (had && e > this.from) {
        this.s = s;
        this.e = e;
        return true;
      }
    }
  }
}

/** The one-off events' merged intervals ending after `from` and starting at or before `limit`. */
class OnceCursor implements Cursor {
  s = 0;
  e = 0;
  private i: number;

  constructor(
    private readonly list: number[],
    from: number,
    private readonly limit: number,
  ) {
    // The ends of merged intervals increase: the first ending after `from`, by bisection.
    let [lo, hi] = [0, list.length / 2];
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (list[2 * mid + 1]! > from) hi = mid;
      else lo = mid + 1;
    }
    this.i = lo;
  }

  next(): boolean {
    if (2 * this.i >= this.list.length || this.list[2 * this.i]! > this.limit) return false;
    this.s = this.list[2 * this.i]!;
    this.e = this.list[2 * this.i + 1]!;
    this.i++;
    return true;
  }
}

/** A binary min-heap of cursors by their current start. */
class CursorHeap {
  readonly items: Cursor[] = [];

  top(): Cursor | undefined {
    return this.items[0];
  }

  push(item: Cursor): void {
    const a = this.items;
    let i = a.length;
    a.push(item);
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (a[parent]!.s <= item.s) break;
      a[i] = a[parent]!;
      i = parent;
    }
    a[i] = item;
  }

  /** Restores the order after the top's start grew; or removes the top (`drop`). */
  fixTop(drop: boolean): void {
    const a = this.items;
    let item = a[0]!;
    if (drop) {
      item = a.pop()!;
      if (a.length === 0) return;
    }
    const n = a.length;
    let i = 0;
    for (;;) {
      let c = 2 * i + 1;
      if (c >= n) break;
      if (c + 1 < n && a[c + 1]!.s < a[c]!.s) c++;
      if (a[c]!.s >= item.s) break;
      a[i] = a[c]!;
      i = c;
    }
    a[i] = item;
  }
}

/** A binary min-heap of the indexes 0..n-1 by `keys[index]` (read whenever two are compared). */
class IndexHeap {
  private readonly items: Int32Array;
  size = 0;

  constructor(
    private readonly keys: Float64Array,
    capacity: number,
  ) {
    this.items = new Int32Array(capacity);
  }

  /** The index with the least key; -1 when empty. */
  top(): number {
    return this.size ? this.items[0]! : -1;
  }

  push(index: number): void {
    const { items, keys } = this;
    const k = keys[index]!;
    let i = this.size++;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (keys[items[parent]!]! <= k) break;
      items[i] = items[parent]!;
      i = parent;
    }
    items[i] = index;
  }

  /** Adds indexes without ordering them: call heapify() before using the heap again. */
  add(index: number): void {
    this.items[this.size++] = index;
  }

  heapify(): void {
    for (let i = (this.size >> 1) - 1; i >= 0; i--) this.siftDown(i, this.items[i]!);
  }

  /** Restores the order after the top's key grew; or removes the top (`drop`). */
  fixTop(drop: boolean): void {
    let index = this.items[0]!;
    if (drop) {
      index = this.items[--this.size]!;
      if (this.size === 0) return;
    }
    this.siftDown(0, index);
  }

  private siftDown(from: number, index: number): void {
    const { items, keys } = this;
    const k = keys[index]!;
    const n = this.size;
    let i = from;
    for (;;) {
      let c = 2 * i + 1;
      if (c >= n) break;
      if (c + 1 < n && keys[items[c + 1]!]! < keys[items[c]!]!) c++;
      if (keys[items[c]!]! >= k) break;
      items[i] = items[c]!;
      i = c;
    }
    items[i] = index;
  }
}

/**
 * One calendar's timeline from a time on: the union of its events' occurrences as pieces [ps, pe) in order (the
 * calendar is inverted inside a piece). Pieces up to `horizon` are exact; one reaching past it may end early.
 */
class Timeline {
  ps = 0;
  pe = 0;
  /** A piece is current: the first that ends after the time last asked about. */
  has = false;
  private heap = new CursorHeap();

  constructor(
    readonly c: CompiledCalendar,
    private readonly horizon: number,
  ) {}

  /** (Re)starts the timeline at `from`. */
  start(from: number): this {
    this.heap = new CursorHeap();
    for (const r of this.c.recurrences) {
      const cur = new RecurrenceCursor(r, this.c.days, from, this.horizon);
      if (cur.next()) this.heap.push(cur);
    }
    const once = new OnceCursor(this.c.onceMerged, from, this.horizon);
    if (once.next()) this.heap.push(once);
    this.has = this.nextPiece();
    return this;
  }

  private advanceTop(): void {
    this.heap.fixTop(!this.heap.top()!.next());
  }

  private nextPiece(): boolean {
    const first = this.heap.top();
    if (!first) return false;
    if (this.heap.items.length === 1) {
      // One stream: its intervals are the pieces.
      this.ps = first.s;
      this.pe = first.e;
      if (!first.next()) this.heap.items.pop();
      return true;
    }
    this.ps = first.s;
    this.pe = first.e;
    this.advanceTop();
    for (let top = this.heap.top(); top && top.s <= this.pe; top = this.heap.top()) {
      if (top.e > this.pe) this.pe = top.e;
      this.advanceTop();
    }
    return true;
  }

  /** Moves to time `x` (never earlier than the last): far ahead by starting again there, else piece by piece. */
  moveTo(x: number): void {
    if (!this.has || this.pe > x) return;
    if (x - this.pe > this.c.lookback + 2 * DAY_MS) this.start(x);
    else while (this.has && this.pe <= x) this.has = this.nextPiece();
  }

  /** Adds its closed periods in [x, to) to `out` (after moveTo(x)), and moves to `to`. */
  closedIn(x: number, to: number, out: Intervals): void {
    let at = x;
    while (this.has && this.ps < to) {
      if (this.c.defaultOpen) out.push(max(this.ps, at), min(this.pe, to));
      else out.push(at, this.ps);
      at = this.pe;
      if (this.pe > to) return;
      this.has = this.nextPiece();
    }
    if (!this.c.defaultOpen) out.push(at, to);
  }

  /** Inverted at `x` (after moveTo(x)). */
  invertedAt(x: number): boolean {
    return this.has && this.ps <= x;
  }

  openAt(x: number): boolean {
    return this.c.defaultOpen !== this.invertedAt(x);
  }

  /** The first flip after `x` (after moveTo(x)), when within the horizon. */
  flipAfter(x: number): number | undefined {
    if (!this.has) return undefined;
    const at = this.ps <= x ? this.pe : this.ps;
    return at <= this.horizon ? at : undefined;
  }
}

/** Intervals [start, end) collected in any order, to find the first time none covers. */
class Intervals {
  starts = new Float64Array(256);
  ends = new Float64Array(256);
  n = 0;
  /** Scratch: each interval's bucket, the indexes ordered by bucket, and where each bucket begins and fills. */
  private bucket = new Int32Array(256);
  private order = new Int32Array(256);
  private begin = new Int32Array(258);
  private fill = new Int32Array(258);

  push(start: number, end: number): void {
    if (start >= end) return;
    if (this.n === this.starts.length) {
      const size = this.n * 2;
      const [s, e] = [new Float64Array(size), new Float64Array(size)];
      s.set(this.starts);
      e.set(this.ends);
      [this.starts, this.ends] = [s, e];
      [this.bucket, this.order] = [new Int32Array(size), new Int32Array(size)];
      [this.begin, this.fill] = [new Int32Array(size + 2), new Int32Array(size + 2)];
    }
    this.starts[this.n] = start;
    this.ends[this.n++] = end;
  }

  /**
   * The first time in [from, to) no interval covers, if any (every interval starts at or after `from`). The
   * intervals are taken in order of start: bucketed by start (n buckets over [from, to)), each bucket sorted.
   */
  firstUncovered(from: number, to: number): number | undefined {
    const { starts, ends, n, bucket, order, begin, fill } = this;
    const scale = n / (to - from);
    begin.fill(0, 0, n + 1);
    for (let i = 0; i < n; i++) {
      const b = min(n - 1, floor((starts[i]! - from) * scale));
      bucket[i] = b;
      begin[b + 1]!++;
    }
    for (let b = 0; b < n; b++) begin[b + 1]! += begin[b]!;
    fill.set(begin.subarray(0, n));
    for (let i = 0; i < n; i++) order[fill[bucket[i]!]!++] = i;
    let covered = from;
    for (let b = 0; b < n; b++) {
      const lo = begin[b]!;
      const hi = begin[b + 1]!;
      if (hi - lo > 16) order.subarray(lo, hi).sort((x, y) => starts[x]! - starts[y]!);
      else
        for (let k = lo + 1; k < hi; k++) {
          const i = order[k]!;
          let j = k - 1;
          for (; j >= lo && starts[order[j]!]! > starts[i]!; j--) order[j + 1] = order[j]!;
          order[j + 1] = i;
        }
      for (let k = lo; k < hi; k++) {
        const i = order[k]!;
        if (starts[i]! > covered) return covered < to ? covered : undefined;
        if (ends[i]! > covered) covered = ends[i]!;
      }
    }
    return covered < to ? covered : undefined;
  }
}

/**
 * The first time after `t` (up to `horizon`) at which every calendar is open, given that one is closed at `t`.
 * Jumps to the latest time a closed calendar stays closed until, looking again there only at the calendars whose
 * state may have changed; when that is within the same (UTC) day, sweeps the rest of the day at once: the
 * closed periods of the calendars that change in it, sorted, and the first gap. So each step moves to another
 * day, and a day costs what changes in it.
 */
function firstAllOpen(all: Timeline[], t: number, horizon: number): number | undefined {
  // A calendar open from `t` to the horizon plays no part.
  const lines = all.filter((line) => !line.openAt(t) || line.flipAfter(t) !== undefined);
  const until = new Float64Array(lines.length);
  const heap = new IndexHeap(until, lines.length);
  const closed = new Intervals();
  let need = t;
  lines.forEach((line, i) => {
    until[i] = line.flipAfter(t) ?? NEVER;
    if (!line.openAt(t)) need = max(need, until[i]!);
    heap.push(i);
  });
  for (;;) {
    if (need > horizon) return undefined;
    const x = need;
    for (let i = heap.top(); i >= 0 && until[i]! <= x; i = heap.top()) {
      const line = lines[i]!;
      line.moveTo(x);
      until[i] = line.flipAfter(x) ?? NEVER;
      if (!line.openAt(x)) need = max(need, until[i]!);
      heap.fixTop(false);
    }
    if (need === x) return x;
    const dayEnd = (floor(x / DAY_MS) + 1) * DAY_MS;
    if (need >= dayEnd) continue;
    // Every calendar closed in [x, dayEnd) changes before dayEnd (the others stay open past it).
    closed.n = 0;
    const swept: number[] = [];
    for (let i = heap.top(); i >= 0 && until[i]! < dayEnd; i = heap.top()) {
      const line = lines[i]!;
      line.moveTo(x);
      line.closedIn(x, dayEnd, closed);
      swept.push(i);
      heap.fixTop(true);
    }
    const gap = closed.n ? closed.firstUncovered(x, dayEnd) : x;
    if (gap !== undefined) return gap <= horizon ? gap : undefined;
    for (const i of swept) {
      const line = lines[i]!;
      until[i] = line.flipAfter(dayEnd) ?? NEVER;
      if (!line.openAt(dayEnd)) need = max(need, until[i]!);
      heap.add(i);
    }
    heap.heapify();
    need = max(need, dayEnd);
  }
}

/**
 * The state of the named calendars at `at`, each and combined (open only when all are open), with when each
 * next changes. Throws UserError for an unknown name. Pure: looks back at most 32 days for occurrences, and ahead
 * only as far as the first change of each calendar and of the combination, at most to the horizon
 * (`horizonDays`, default 400).
 */
export function calendarStatus(
  set: CalendarSet,
  names: string[],
  at: Date,
  opts: { horizonDays?: number } = {},
): WindowStatus {
  const t = at.getTime();
  if (Number.isNaN(t)) throw new UserError('Cannot evaluate calendars at an invalid time.');
  const known = Object.keys(set.calendars);
  const wanted = [...new Set(names)];
  for (const n of wanted)
    if (!Object.prototype.hasOwnProperty.call(set.calendars, n))
      throw new UserError(
        `No calendar named "${n}" in ${set.file}${didYouMean(n, known)}; it defines: ${known.join(', ') || 'none'}.`,
      );
  const horizon = t + max(0, opts.horizonDays ?? DEFAULT_HORIZON_DAYS) * DAY_MS;
  const lines = wanted.map((n) => new Timeline(compiled(set, n), horizon).start(t));
  const calendars = lines.map((line): CalendarState => {
    const c = line.c;
    // The first event in file order that covers `t`, when one does.
    const active = line.invertedAt(t)
      ? c.events.find((ev) => ('once' in ev ? ev.once.start <= t && t < ev.once.end : covers(ev.cron, c.days, t)))
      : undefined;
    const next = line.flipAfter(t);
    return {
      name: c.name,
      open: line.openAt(t),
      default: c.doc.default,
      timezone: c.zone,
      event: active?.name,
      nextChange: next === undefined ? undefined : new Date(next),
    };
  });
  const open = calendars.every((c) => c.open);
  let change: number | undefined;
  if (open) {
    // Every calendar is open: the first to flip closes the combination.
    for (const line of lines) {
      const next = line.flipAfter(t);
      if (next !== undefined && (change === undefined || next < change)) change = next;
    }
  } else change = firstAllOpen(lines, t, horizon);
  return { at: new Date(t), open, calendars, nextChange: change === undefined ? undefined : new Date(change) };
}
