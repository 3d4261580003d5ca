// Pure (workflow-safe). Cron expressions read the way Temporal Schedules read them, and local wall-clock times
// turned into instants in an IANA zone (luxon's zone data, that is the ICU of the Node running it).
//
// Syntax: 5 fields (minute hour day-of-month month day-of-week) or 6 (second first); numbers, `*`, ranges `1-5`,
// lists `1,15`, steps `*/15` and `8-18/2`, month names JAN-DEC and day names SUN-SAT (any case), Sunday as 0 or
// 7. The macros @yearly (@annually), @monthly, @weekly, @daily (@midnight) and @hourly are expanded. Refused, each
// with its reason: `L`, `W`, `#`, `?` and `H` (Quartz/Jenkins extensions), a 7th (year) field, and a day of month
// and a day of week both restricted (classic cron runs on days matching either, Temporal on days matching both).
// Matching is AND of every field, as in Temporal. cron-parser reads the syntax; its next()/prev() are not used
// (their DST behaviour is not ours): times come from wallTimesOn + instantsOf/firstInstantOf.
import type { CronExpressionParser as CronParser } from 'cron-parser';
import { IANAZone } from 'luxon';

/** A cron expression's fields, expanded to the values each allows (sorted, no duplicates). */
export interface CronFields {
  second: number[];
  minute: number[];
  hour: number[];
  dayOfMonth: number[];
  /** 1-12. */
  month: number[];
  /** 0-6, Sunday 0 (7 is folded to 0). */
  dayOfWeek: number[];
  /** The day-of-month field is not `*`. */
  domRestricted: boolean;
  /** The day-of-week field is not `*`. */
  dowRestricted: boolean;
}

/** A local date and time of day, as a wall clock in some zone shows it (month 1-12). */
export interface WallTime {
  year: number;
  month: number;
  day: number;
  hour: number;
  minute: number;
  second: number;
}

export type TimeOfDay = Pick<WallTime, 'hour' | 'minute' | 'second'>;

/** Thrown when a cron expression cannot be read or is refused; the message is one line saying why. */
export class CronError extends Error {
  override name = 'CronError' as const;
}

/**
 * cron-parser's parser module alone: the package's index also loads its crontab-file reader, which requires fs,
 * and the workflow bundler refuses that. (The module has no declaration file of its own, hence require.)
 */
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { CronExpressionParser } = require('cron-parser/dist/CronExpressionParser') as {
  CronExpressionParser: typeof CronParser;
};

const DAY_MS = 86_400_000;

const MACROS: Record<string, string> = {
  '@yearly': '0 0 1 1 *',
  '@annually': '0 0 1 1 *',
  '@monthly': '0 0 1 * *',
  '@weekly': '0 0 * * 0',
  '@daily': '0 0 * * *',
  '@midnight': '0 0 * * *',
  '@hourly': '0 * * * *',
};

const FIELD_NAMES = ['second', 'minute', 'hour', 'day-of-month', 'month', 'day-of-week'] as const;
const MONTH_NAMES = /\b(jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)\b/gi;
const DAY_NAMES = /\b(sun|mon|tue|wed|thu|fri|sat)\b/gi;
const NAME_HINTS = [
  'this field takes numbers',
  'this field takes numbers',
  'this field takes numbers',
  'this field takes numbers',
  'months are JAN to DEC',
  'days are SUN to SAT',
] as const;

/** Why a cron extension is refused, by the character that marks it. */
const UNSUPPORTED: [RegExp, string][] = [
  [/\?/, '"?" (Quartz\'s "no specific value") is not supported; write * instead'],
  [/#/, '"#" (the nth weekday of the month, as in MON#2) is not supported'],
  [/L/i, '"L" (last day of the month or last weekday) is not supported; list the days instead'],
  [/W/i, '"W" (nearest weekday) is not supported; list the days instead'],
  [/H/i, '"H" (Jenkins\' hashed value, chosen at random) is not supported; give the value'],
];

const USAGE = '5 fields (minute hour day-of-month month day-of-week) or 6 (second first)';

/** The expression with a macro expanded, split into its fields; throws for an unknown macro or a wrong count. */
function splitFields(expr: string): string[] {
  const text = expr.trim();
  if (!text) throw new CronError(`empty cron expression: expected ${USAGE}`);
  if (text.startsWith('@')) {
    const expanded = MACROS[text.toLowerCase()];
    if (!expanded)
      throw new CronError(
        `unknown cron macro "${text}": expected one of ${Object.keys(MACROS).join(', ')}, or ${USAGE}`,
      );
    return ['0', ...expanded.split(' ')];
  }
  const parts = text.split(/\s+/);
  if (parts.length === 7)
    throw new CronError(`cron "${text}" has 7 fields: a year field is not supported; expected ${USAGE}`);
  if (parts.length !== 5 && parts.length !== 6)
    throw new CronError(`cron "${text}" has ${parts.length} field(s); expected ${USAGE}`);
  return parts.length === 5 ? ['0', ...parts] : parts;
}

/** Refuses the extensions cron-parser reads but Temporal does not (or reads differently), field by field. */
function refuseExtensions(expr: string, fields: string[]): void {
  fields.forEach((raw, i) => {
    let text = raw;
    if (i === 4) text = text.replace(MONTH_NAMES, '1');
    if (i === 5) text = text.replace(DAY_NAMES, '1');
    // A word left over is a misspelt (or misplaced) name, not an extension.
    const word = /[a-z]{3,}/i.exec(text);
    if (word)
      throw new CronError(
        `cron "${expr}", ${FIELD_NAMES[i]} field "${raw}": unknown name "${word[0]}"; ${NAME_HINTS[i]}`,
      );
    for (const [re, why] of UNSUPPORTED)
      if (re.test(text)) throw new CronError(`cron "${expr}", ${FIELD_NAMES[i]} field "${raw}": ${why}`);
  });
}

/** cron-parser's reason, with the field that has it when one field alone is at fault. */
function parserError(expr: string, fields: string[], err: unknown): CronError {
  const reason = err instanceof Error ? err.message : String(err);
  for (let i = 0; i < fields.length; i++) {
    const probe = fields.map((f, j) => (j === i ? f : '*'));
    try {
      CronExpressionParser.parse(probe.join(' '));
    } catch (e) {
      const why = e instanceof Error ? e.message : String(e);
      return new CronError(`cron "${expr}", ${FIELD_NAMES[i]} field "${fields[i]}": ${why}`);
    }
  }
  if (/day of month/i.test(reason))
    return new CronError(`cron "${expr}": its day of month never occurs in the months it names, so it never runs`);
  return new CronError(`cron "${expr}": ${reason}`);
}

/** The numbers among a field's values (`L` is refused before parsing), sorted, without duplicates. */
const numbers = (values: readonly unknown[]): number[] =>
  [...new Set(values.filter((v): v is number => typeof v === 'number'))].sort((a, b) => a - b);

/**
 * Reads a cron expression (see the file header for the syntax). Throws CronError with a one-line reason, naming
 * the field at fault when it can.
 */
export function parseCron(expr: string): CronFields {
  const fields = splitFields(expr);
  const shown = expr.trim();
  refuseExtensions(shown, fields);
  const domRestricted = fields[3] !== '*';
  const dowRestricted = fields[5] !== '*';
  if (domRestricted && dowRestricted)
    throw new CronError(
      `cron "${shown}" restricts both the day of month ("${fields[3]}") and the day of week ("${fields[5]}"): ` +
        'classic cron runs on days matching either, Temporal Schedules on days matching both, so it is ambiguous; ' +
        'split it into two expressions, or restrict only one of the two (leave the other *)',
    );
  let parsed;
  try {
    parsed = CronExpressionParser.parse(fields.join(' ')).fields;
  } catch (err) {
    throw parserError(shown, fields, err);
  }
  return {
    second: numbers(parsed.second.values),
    minute: numbers(parsed.minute.values),
    hour: numbers(parsed.hour.values),
    dayOfMonth: numbers(parsed.dayOfMonth.values),
    month: numbers(parsed.month.values),
    dayOfWeek: numbers(parsed.dayOfWeek.values.map((v) => (typeof v === 'number' ? v % 7 : v))),
    domRestricted,
    dowRestricted,
  };
}

/** Whether the date (month 1-12) matches every day field: month, day of month and day of week (AND). */
export function matchesDay(f: CronFields, year: number, month: number, day: number): boolean {
  const dow = new Date(Date.UTC(year, month - 1, day)).getUTCDay();
  return f.month.includes(month) && f.dayOfMonth.includes(day) && f.dayOfWeek.includes(dow);
}

/** Every time of day the hour, minute and second fields allow, in order (the same for any matching day). */
export function timesOfDay(f: CronFields): TimeOfDay[] {
  const out: TimeOfDay[] = [];
  for (const hour of f.hour)
    for (const minute of f.minute) for (const second of f.second) out.push({ hour, minute, second });
  return out;
}

/** The times of day the expression fires on this date, in order; [] when the date does not match. */
export function wallTimesOn(f: CronFields, year: number, month: number, day: number): TimeOfDay[] {
  return matchesDay(f, year, month, day) ? timesOfDay(f) : [];
}

/** Whether the zone is an IANA zone name this runtime knows (e.g. Europe/Berlin, UTC). */
export function isValidZone(zone: string): boolean {
  return IANAZone.isValidZone(zone);
}

function zoneOf(zone: string): IANAZone {
  if (!isValidZone(zone))
    throw new CronError(`unknown time zone "${zone}": expected an IANA zone name like Europe/Berlin`);
  return IANAZone.create(zone);
}

/** The wall time read as if it were UTC (ms): the instant is this minus the zone's offset. */
export function wallMs(w: WallTime): number {
  return Date.UTC(w.year, w.month - 1, w.day, w.hour, w.minute, w.second);
}

/**
 * The instants (epoch ms, ascending) a local wall-clock time denotes in an IANA zone: [] when it falls in a
 * spring-forward gap, 2 when it is repeated at a fall-back, else 1. The candidate offsets are the zone's a day
 * before and a day after (and at) the time; an instant counts when the zone has that offset at that instant.
 * Throws CronError for an unknown zone.
 */
export function instantsOf(wall: WallTime, zone: string): number[] {
  const z = zoneOf(zone);
  const local = wallMs(wall);
  const offsets = new Set([z.offset(local - DAY_MS), z.offset(local), z.offset(local + DAY_MS)]);
  const found = new Set<number>();
  for (const o of offsets) {
    const instant = local - o * 60_000;
    if (z.offset(instant) === o) found.add(instant);
  }
  return [...found].sort((a, b) => a - b);
}

/**
 * The one instant a wall time starts at: the first of two when the time is repeated (fall-back), the end of the
 * gap when it is skipped (spring-forward: 02:30 on a day that jumps from 02:00 to 03:00 starts at 03:00).
 */
export function firstInstantOf(wall: WallTime, zone: string): number {
  const [first] = instantsOf(wall, zone);
  if (first !== undefined) return first;
  const z = zoneOf(zone);
  const local = wallMs(wall);
  const before = z.offset(local - DAY_MS);
  const after = z.offset(local + DAY_MS);
  // In the gap: read with the later offset the time lies before the jump, with the earlier one after it.
  let lo = local - Math.max(before, after) * 60_000;
  let hi = local - Math.min(before, after) * 60_000;
  if (z.offset(lo) !== before) return hi;
  while (hi - lo > 1) {
    const mid = Math.floor((lo + hi) / 2);
    if (z.offset(mid) === before) lo = mid;
    else hi = mid;
  }
  return hi;
}

/** firstInstantOf for many wall times in one zone, with each local date's offset looked up once. */
export interface WallClock {
  /** firstInstantOf(wall, zone). */
  instant(wall: WallTime): number;
  /**
   * The zone's offset in ms (instant = wall read as UTC minus this) all through the local date (month 1-12) and a
   * day either side; undefined when it changes near the date (then use `instant`).
   */
  steadyOffset(year: number, month: number, day: number): number | undefined;
}

/**
 * A WallClock for the zone: most dates have no transition near them, and their times cost only arithmetic; the
 * others take firstInstantOf's slow path. Throws CronError for an unknown zone.
 */
export function wallClock(zone: string): WallClock {
  const z = zoneOf(zone);
  const steady = new Map<number, number | null>();
  const steadyOffset = (year: number, month: number, day: number): number | undefined => {
    const dayStart = Date.UTC(year, month - 1, day);
    let offset = steady.get(dayStart);
    if (offset === undefined) {
      const before = z.offset(dayStart - DAY_MS);
      offset = before === z.offset(dayStart + 2 * DAY_MS) ? before * 60_000 : null;
      steady.set(dayStart, offset);
    }
    return offset ?? undefined;
  };
  return {
    steadyOffset,
    instant(wall) {
      const offset = steadyOffset(wall.year, wall.month, wall.day);
      return offset === undefined ? firstInstantOf(wall, zone) : wallMs(wall) - offset;
    },
  };
}
