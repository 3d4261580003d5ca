// Unit: cron fields (dsl/cron.ts) read as Temporal Schedules read them, and wall-clock times turned into instants
// across DST. Hostile first: the skipped and the repeated hour in Europe/Berlin, America/New_York and Lord Howe
// (a 30-minute shift), refused extensions and ambiguous day fields, then the ordinary syntax.
import {
  CronError,
  firstInstantOf,
  instantsOf,
  isValidZone,
  matchesDay,
  parseCron,
  wallClock,
  wallTimesOn,
  type WallTime,
} from '../../dsl/cron';

const wall = (year: number, month: number, day: number, hour: number, minute = 0, second = 0): WallTime => ({
  year,
  month,
  day,
  hour,
  minute,
  second,
});
const iso = (ms: number) => new Date(ms).toISOString();

describe('instantsOf and firstInstantOf across DST', () => {
  it.each([
    // zone, local time, instants (UTC)
    ['Europe/Berlin', wall(2026, 3, 29, 2, 30), []], // 02:00 CET -> 03:00 CEST: skipped
    ['Europe/Berlin', wall(2026, 3, 29, 2, 0), []], // the gap's first minute is skipped too
    ['Europe/Berlin', wall(2026, 3, 29, 3, 0), ['2026-03-29T01:00:00.000Z']],
    ['Europe/Berlin', wall(2026, 3, 29, 1, 59, 59), ['2026-03-29T00:59:59.000Z']],
    ['Europe/Berlin', wall(2026, 10, 25, 2, 30), ['2026-10-25T00:30:00.000Z', '2026-10-25T01:30:00.000Z']],
    ['Europe/Berlin', wall(2026, 10, 25, 3, 0), ['2026-10-25T02:00:00.000Z']],
    ['Europe/Berlin', wall(2026, 6, 1, 12, 0), ['2026-06-01T10:00:00.000Z']],
    ['America/New_York', wall(2026, 3, 8, 2, 30), []],
    ['America/New_York', wall(2026, 11, 1, 1, 30), ['2026-11-01T05:30:00.000Z', '2026-11-01T06:30:00.000Z']],
    ['America/New_York', wall(2026, 11, 1, 2, 0), ['2026-11-01T07:00:00.000Z']],
    ['Australia/Lord_Howe', wall(2026, 10, 4, 2, 15), []], // +10:30 -> +11 at 02:00: 02:00-02:29 skipped
    ['Australia/Lord_Howe', wall(2026, 4, 5, 1, 45), ['2026-04-04T14:45:00.000Z', '2026-04-04T15:15:00.000Z']],
    ['UTC', wall(2026, 3, 29, 2, 30), ['2026-03-29T02:30:00.000Z']],
  ] as [string, WallTime, string[]][])('%s %j -> %j', (zone, w, want) => {
    expect(instantsOf(w, zone).map(iso)).toEqual(want);
  });

  it.each([
    ['Europe/Berlin', wall(2026, 3, 29, 2, 30), '2026-03-29T01:00:00.000Z'], // end of the gap: 03:00 CEST
    ['America/New_York', wall(2026, 3, 8, 2, 30), '2026-03-08T07:00:00.000Z'], // 03:00 EDT
    ['Australia/Lord_Howe', wall(2026, 10, 4, 2, 15), '2026-10-03T15:30:00.000Z'], // 02:30 +11
    ['America/New_York', wall(2026, 11, 1, 1, 30), '2026-11-01T05:30:00.000Z'], // the first 01:30 (EDT)
    ['Europe/Berlin', wall(2026, 10, 25, 2, 59), '2026-10-25T00:59:00.000Z'], // the first 02:59 (CEST)
  ] as [string, WallTime, string][])('firstInstantOf %s %j = %s', (zone, w, want) => {
    expect(iso(firstInstantOf(w, zone))).toBe(want);
  });

  it('wallClock (offsets cached per day) agrees with firstInstantOf every 5 minutes around each transition', () => {
    const days: [string, number, number, number][] = [
      ['Europe/Berlin', 2026, 3, 29],
      ['Europe/Berlin', 2026, 10, 25],
      ['America/New_York', 2026, 3, 8],
      ['America/New_York', 2026, 11, 1],
      ['Australia/Lord_Howe', 2026, 10, 4],
      ['Australia/Lord_Howe', 2026, 4, 5],
    ];
    for (const [zone, y, m, d] of days) {
      const clock = wallClock(zone);
      for (let offset = -1; offset <= 1; offset++)
        for (let minutes = 0; minutes < 1440; minutes += 5) {
          const w = wall(y, m, d + offset, Math.floor(minutes / 60), minutes % 60);
          expect([zone, w, clock.instant(w)]).toEqual([zone, w, firstInstantOf(w, zone)]);
        }
    }
  });

  it('an unknown zone is a CronError, and isValidZone says so', () => {
    expect(() => instantsOf(wall(2026, 1, 1, 0), 'Mars/Olympus_Mons')).toThrow(CronError);
    expect(isValidZone('Mars/Olympus_Mons')).toBe(false);
    expect(isValidZone('Europe/Berlin')).toBe(true);
    expect(isValidZone('UTC')).toBe(true);
  });
});

describe('parseCron refuses what Temporal would read differently', () => {
  it('both day of month and day of week restricted: ambiguous, with the reason and the way out', () => {
    expect(() => parseCron('0 0 1 * MON')).toThrow(
      new CronError(
        'cron "0 0 1 * MON" restricts both the day of month ("1") and the day of week ("MON"): classic cron runs on ' +
          'days matching either, Temporal Schedules on days matching both, so it is ambiguous; split it into two ' +
          'expressions, or restrict only one of the two (leave the other *)',
      ),
    );
    expect(() => parseCron('0 0 0 */2 * 1-5')).toThrow(/restricts both/);
  });

  it.each([
    [
      '0 0 L * *',
      'cron "0 0 L * *", day-of-month field "L": "L" (last day of the month or last weekday) is not supported; list the days instead',
    ],
    [
      '0 0 * * 5L',
      'cron "0 0 * * 5L", day-of-week field "5L": "L" (last day of the month or last weekday) is not supported; list the days instead',
    ],
    [
      '0 0 15W * *',
      'cron "0 0 15W * *", day-of-month field "15W": "W" (nearest weekday) is not supported; list the days instead',
    ],
    [
      '0 0 * * MON#2',
      'cron "0 0 * * MON#2", day-of-week field "MON#2": "#" (the nth weekday of the month, as in MON#2) is not supported',
    ],
    [
      '0 0 ? * MON',
      'cron "0 0 ? * MON", day-of-month field "?": "?" (Quartz\'s "no specific value") is not supported; write * instead',
    ],
    [
      'H 0 * * *',
      'cron "H 0 * * *", minute field "H": "H" (Jenkins\' hashed value, chosen at random) is not supported; give the value',
    ],
    [
      '0 0 0 1 1 * 2027',
      'cron "0 0 0 1 1 * 2027" has 7 fields: a year field is not supported; expected 5 fields (minute hour day-of-month month day-of-week) or 6 (second first)',
    ],
    [
      '0 0 * *',
      'cron "0 0 * *" has 4 field(s); expected 5 fields (minute hour day-of-month month day-of-week) or 6 (second first)',
    ],
    [
      '   ',
      'empty cron expression: expected 5 fields (minute hour day-of-month month day-of-week) or 6 (second first)',
    ],
    [
      '@reboot',
      'unknown cron macro "@reboot": expected one of @yearly, @annually, @monthly, @weekly, @daily, @midnight, @hourly, or 5 fields (minute hour day-of-month month day-of-week) or 6 (second first)',
    ],
    ['0 25 * * *', 'cron "0 25 * * *", hour field "25": Constraint error, got value 25 expected range 0-23'],
    ['60 * * * *', 'cron "60 * * * *", minute field "60": Constraint error, got value 60 expected range 0-59'],
    ['0 0 * 13 *', 'cron "0 0 * 13 *", month field "13": Constraint error, got value 13 expected range 1-12'],
    ['0 0 * * FUNDAY', 'cron "0 0 * * FUNDAY", day-of-week field "FUNDAY": unknown name "FUNDAY"; days are SUN to SAT'],
    ['0 0 * * MONDAY', 'cron "0 0 * * MONDAY", day-of-week field "MONDAY": unknown name "MONDAY"; days are SUN to SAT'],
    ['0 MON * * *', 'cron "0 MON * * *", hour field "MON": unknown name "MON"; this field takes numbers'],
    ['0 0 30 2 *', 'cron "0 0 30 2 *": its day of month never occurs in the months it names, so it never runs'],
  ])('%j', (expr, message) => {
    expect(() => parseCron(expr)).toThrow(new CronError(message));
  });
});

describe('parseCron reads the ordinary syntax', () => {
  it('5 fields: seconds are 0; names, ranges, lists and steps expand', () => {
    expect(parseCron('*/15 9-17 * JAN,mar MON-FRI')).toEqual({
      second: [0],
      minute: [0, 15, 30, 45],
      hour: [9, 10, 11, 12, 13, 14, 15, 16, 17],
      dayOfMonth: Array.from({ length: 31 }, (_, i) => i + 1),
      month: [1, 3],
      dayOfWeek: [1, 2, 3, 4, 5],
      domRestricted: false,
      dowRestricted: true,
    });
  });

  it('6 fields put seconds first; Sunday as 7 folds to 0; a day of month alone is restricted', () => {
    const f = parseCron('30 0 22 1,15 * *');
    expect([f.second, f.minute, f.hour, f.dayOfMonth, f.domRestricted, f.dowRestricted]).toEqual([
      [30],
      [0],
      [22],
      [1, 15],
      true,
      false,
    ]);
    expect(parseCron('0 0 * * 5-7').dayOfWeek).toEqual([0, 5, 6]);
    expect(parseCron('0 0 * * 7').dayOfWeek).toEqual([0]);
    expect(parseCron('0 0 * * sun').dayOfWeek).toEqual([0]);
  });

  it('names containing L, W or H are names, not extensions', () => {
    expect(parseCron('0 0 * JUL,APR *').month).toEqual([4, 7]);
    expect(parseCron('0 0 * * WED,THU').dayOfWeek).toEqual([3, 4]);
  });

  it.each([
    ['@daily', '0 0 * * *'],
    ['@midnight', '0 0 * * *'],
    ['@weekly', '0 0 * * 0'],
    ['@monthly', '0 0 1 * *'],
    ['@YEARLY', '0 0 1 1 *'],
    ['@hourly', '0 * * * *'],
  ])('macro %s expands to %s', (macro, expr) => {
    expect(parseCron(macro)).toEqual(parseCron(expr));
  });

  it('matchesDay ANDs month, day of month and day of week', () => {
    const mondays = parseCron('0 22 * * MON');
    expect(matchesDay(mondays, 2026, 3, 30)).toBe(true); // a Monday
    expect(matchesDay(mondays, 2026, 3, 29)).toBe(false); // a Sunday
    const firstOfDec = parseCron('0 0 1 DEC *');
    expect(matchesDay(firstOfDec, 2026, 12, 1)).toBe(true);
    expect(matchesDay(firstOfDec, 2026, 11, 1)).toBe(false);
    expect(matchesDay(firstOfDec, 2026, 12, 2)).toBe(false);
  });

  it('wallTimesOn: every time of a matching day, in order; none on another day', () => {
    const f = parseCron('0,30 9,8 * * SAT');
    expect(wallTimesOn(f, 2026, 3, 28)).toEqual([
      { hour: 8, minute: 0, second: 0 },
      { hour: 8, minute: 30, second: 0 },
      { hour: 9, minute: 0, second: 0 },
      { hour: 9, minute: 30, second: 0 },
    ]);
    expect(wallTimesOn(f, 2026, 3, 29)).toEqual([]);
  });
});
