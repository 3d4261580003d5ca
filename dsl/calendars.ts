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
import fs from 'node:fs';
import path from 'node:path';
import { Type, type Static } from '@sinclair/typebox';
import ms from 'ms';
import { UserError } from '../common/errors';
import {
  CronError,
  firstInstantOf,
  isValidZone,
  matchesDay,
  parseCron,
  timesOfDay,
  wallClock,
  wallMs,
  type CronFields,
  type TimeOfDay,
  type WallClock,
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

type Report = (path: (string | number)[], message: string, code: Problem['code'], at?: 'key' | 'value') => void;

const DATE_TIME_HINT =
  "expected a local date-time like 2026-12-01T22:00 (in the calendar's zone), a date like 2026-12-01, or an instant with an offset like 2026-12-01T22:00+01:00 or Z";

/** The checks a recurring event needs beyond the schema. */
function checkRecurring(ev: CalendarEventDoc, at: (string | number)[], report: Report): void {
  try {
    const f = parseCron(ev.cron!);
    const perDay = f.hour.length * f.minute.length * f.second.length;
    if (perDay > MAX_STARTS_PER_DAY)
      report(
        [...at, 'cron'],
        `the cron starts the event ${perDay} times a day; an event may start at most once a minute (${MAX_STARTS_PER_DAY} times a day): give a longer duration instead`,
        CODES.outOfRange,
      );
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
  if (e <= s)
    report(
      [...at, 'end'],
      `the event ends (${ev.end}) ${e === s ? 'when' : 'before'} it starts (${ev.start}); end must be after start`,
      CODES.outOfRange,
    );
}

/** Cross-field checks of a schema-valid file: names, zones, crons, event shapes, times. */
function checkCalendars(doc: CalendarFileDoc, report: Report): void {
  const zones = typeof Intl.supportedValuesOf === 'function' ? Intl.supportedValuesOf('timeZone') : [];
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
    (cal.events ?? []).forEach((ev, i) => {
      const evAt = [...at, 'events', i];
      if (ev.cron !== undefined) checkRecurring(ev, evAt, report);
      else if (ev.start !== undefined) checkOneOff(ev, evAt, zone, report);
      else
        report(
          evAt,
          'an event needs cron (recurring, with end HH:MM or duration) or start and end (one-off)',
          CODES.missingField,
        );
    });
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

/**
 * The calendar file a process uses: RUNBOOK_CALENDARS (`envValue`) when set, which must exist; else
 * `runbookDir`/calendars.yaml when it exists; else none.
 */
export function findCalendarsFile(runbookDir: string, envValue?: string): string | undefined {
  if (envValue) {
    if (!fs.existsSync(envValue))
      throw new UserError(
        `RUNBOOK_CALENDARS names ${envValue}, which does not exist; point it at a calendar file (kind: Calendars) or unset it to use ${path.join(runbookDir, 'calendars.yaml')}.`,
      );
    return envValue;
  }
  const inDir = path.join(runbookDir, 'calendars.yaml');
  return fs.existsSync(inDir) ? inDir : undefined;
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

/** [start, end) in epoch ms. */
interface Interval {
  start: number;
  end: number;
}

type CompiledEvent =
  | { name: string; once: Interval }
  | {
      name: string;
      fields: CronFields;
      times: TimeOfDay[];
      /** The same times as ms from the start of the day. */
      timesMs: number[];
      /** Elapsed ms, or the local time of day it ends at. */
      length: { ms: number } | { hour: number; minute: number };
      /** How far before a time an occurrence covering it can start. */
      lookback: number;
    };

interface CompiledCalendar {
  name: string;
  doc: CalendarDoc;
  zone: string;
  defaultOpen: boolean;
  clock: WallClock;
  events: CompiledEvent[];
}

/** A calendar ready to evaluate (its file was checked by the loader, so nothing here fails). */
function compile(name: string, doc: CalendarDoc): CompiledCalendar {
  const zone = doc.timezone ?? 'UTC';
  const events = (doc.events ?? []).map((ev): CompiledEvent => {
    if (ev.cron === undefined) {
      const start = instantOfWritten(parseDateTime(ev.start!)!, zone);
      return { name: ev.name, once: { start, end: instantOfWritten(parseDateTime(ev.end!)!, zone) } };
    }
    const fields = parseCron(ev.cron);
    const times = timesOfDay(fields);
    const m = ev.end === undefined ? undefined : END_TIME.exec(ev.end);
    const length: { ms: number } | { hour: number; minute: number } = m
      ? { hour: Number(m[1]), minute: Number(m[2]) }
      : { ms: ms(ev.duration as ms.StringValue) };
    return {
      name: ev.name,
      fields,
      times,
      timesMs: times.map(msOfDay),
      length,
      lookback: 'ms' in length ? length.ms : 2 * DAY_MS,
    };
  });
  return { name, doc, zone, defaultOpen: doc.default === 'open', clock: wallClock(zone), events };
}

/** The date (month 1-12) of an epoch day number. */
function dateOf(epochDay: number): { year: number; month: number; day: number } {
  const d = new Date(epochDay * DAY_MS);
  return { year: d.getUTCFullYear(), month: d.getUTCMonth() + 1, day: d.getUTCDate() };
}

const msOfDay = (t: { hour: number; minute: number; second?: number }) =>
  ((t.hour * 60 + t.minute) * 60 + (t.second ?? 0)) * 1000;

/**
 * Local times of one epoch day as instants: arithmetic from the day's start when the zone's offset is steady
 * around it (most days), else the clock's slow path.
 */
function localDay(clock: WallClock, epochDay: number): (t: TimeOfDay, tMs: number) => number {
  const date = dateOf(epochDay);
  const offset = clock.steadyOffset(date.year, date.month, date.day);
  if (offset === undefined) return (t) => clock.instant({ ...date, ...t });
  const base = epochDay * DAY_MS - offset;
  return (_t, tMs) => base + tMs;
}

/**
 * One event's occurrences that overlap [from, to] (end > from, start <= to), touching and overlapping ones
 * merged, in order; the last may end later than its merged occurrences would take it past `to`. Recurring starts never decrease (the clock maps later wall times to later or equal instants),
 * so merging as they come is enough.
 */
function occurrences(ev: CompiledEvent, clock: WallClock, from: number, to: number): Interval[] {
  if ('once' in ev) return ev.once.end > from && ev.once.start <= to ? [{ ...ev.once }] : [];
  const out: Interval[] = [];
  const endTime = 'ms' in ev.length ? undefined : { ...ev.length, second: 0 };
  const endMs = endTime ? msOfDay(endTime) : 0;
  // A local date is within a day of the UTC date of the same instant.
  const last = Math.floor(to / DAY_MS) + 1;
  let tomorrow: ReturnType<typeof localDay> | undefined;
  for (let d = Math.floor((from - ev.lookback) / DAY_MS) - 1; d <= last; d++) {
    const date = dateOf(d);
    if (!matchesDay(ev.fields, date.year, date.month, date.day)) continue;
    const today = localDay(clock, d);
    tomorrow = undefined;
    for (let i = 0; i < ev.times.length; i++) {
      const tMs = ev.timesMs[i]!;
      const start = today(ev.times[i]!, tMs);
      if (start > to) return out;
      let end: number;
      if (!endTime) {
        end = start + (ev.length as { ms: number }).ms;
      } else {
        // The first end time of day after the start's, on the wall clock: later today, else tomorrow.
        const sameDay = endMs > tMs;
        end = sameDay ? today(endTime, endMs) : (tomorrow ??= localDay(clock, d + 1))(endTime, endMs);
        // Start and end in the same skipped hour: keep the usual wall-clock length from the shifted start.
        if (end <= start) end = start + (sameDay ? 0 : DAY_MS) + endMs - tMs;
      }
      if (end <= from) continue;
      const prev = out[out.length - 1];
      if (prev && start <= prev.end) prev.end = Math.max(prev.end, end);
      else out.push({ start, end });
      // Later occurrences start inside the last interval and could only move its end further past `to`.
      if (out[out.length - 1]!.end > to) return out;
    }
  }
  return out;
}

/** Sorts and unions intervals (touching ones too: [a, b) and [b, c) make [a, c)). */
function union(intervals: Interval[]): Interval[] {
  const out: Interval[] = [];
  for (const i of [...intervals].sort((a, b) => a.start - b.start)) {
    const prev = out[out.length - 1];
    if (prev && i.start <= prev.end) prev.end = Math.max(prev.end, i.end);
    else out.push({ ...i });
  }
  return out;
}

/** A calendar between T and W: its state at T, the event inverting it, and its flips in (T, W], in order. */
interface Timeline {
  open: boolean;
  event?: string;
  flips: number[];
}

function timeline(c: CompiledCalendar, t: number, w: number): Timeline {
  const perEvent = c.events.map((ev) => occurrences(ev, c.clock, t, w));
  const active = perEvent.findIndex((list) => list.some((i) => i.start <= t && t < i.end));
  const flips: number[] = [];
  for (const piece of union(perEvent.flat()))
    for (const at of [piece.start, piece.end]) if (at > t && at <= w) flips.push(at);
  return {
    open: c.defaultOpen !== active >= 0,
    event: active >= 0 ? c.events[active]!.name : undefined,
    flips,
  };
}

/** The first flip in the timelines at which "every calendar is open" differs from its value at T. */
function combinedChange(lines: Timeline[]): number | undefined {
  const states = lines.map((l) => l.open);
  const initial = states.every(Boolean);
  const flips = lines.flatMap((l, i) => l.flips.map((at) => ({ at, i }))).sort((a, b) => a.at - b.at);
  for (let k = 0; k < flips.length; k++) {
    const { at, i } = flips[k]!;
    states[i] = !states[i];
    if (flips[k + 1]?.at === at) continue;
    if (states.every(Boolean) !== initial) return at;
  }
  return undefined;
}

/**
 * The state of the named calendars at `at`, each and combined (open only when all are open), with when each
 * next changes. Throws UserError for an unknown name. Pure: looks back at most 32 days for occurrences, and ahead
 * in growing steps until every change is found or the horizon (`horizonDays`, default 400) is reached.
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
  const compiled = wanted.map((n) => compile(n, set.calendars[n]!));
  const horizon = t + Math.max(0, opts.horizonDays ?? DEFAULT_HORIZON_DAYS) * DAY_MS;
  let w = Math.min(horizon, t + 8 * DAY_MS);
  for (;;) {
    const lines = compiled.map((c) => timeline(c, t, w));
    const change = combinedChange(lines);
    if (w >= horizon || (change !== undefined && lines.every((l) => l.flips.length > 0))) {
      const calendars = compiled.map((c, i): CalendarState => ({
        name: c.name,
        open: lines[i]!.open,
        default: c.doc.default,
        timezone: c.zone,
        event: lines[i]!.event,
        nextChange: lines[i]!.flips[0] === undefined ? undefined : new Date(lines[i]!.flips[0]!),
      }));
      return {
        at: new Date(t),
        open: lines.every((l) => l.open),
        calendars,
        nextChange: change === undefined ? undefined : new Date(change),
      };
    }
    w = Math.min(horizon, t + (w - t) * 4);
  }
}
