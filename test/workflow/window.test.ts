// Workflow (time-skipping test server, stubbed steps, the real calendar file and prepare): change windows enforced
// in the run, at the workflow's clock. A rolling run whose window closes mid-rollout starts no new batch (at once,
// or within its cutoff); `fail` ends it as blocked, `wait` resumes it at the next opening; a closed calendar keeps
// a run from even asking for approval; an operator's override goes through with its reason recorded; a global
// freeze blocks a runbook that names no window.
import fs from 'node:fs';
import path from 'node:path';
import { eventually, runbookYaml, useTimeSkipping, type Finished } from '../harness/time-skipping';

const HOSTS = ['host-1', 'host-2', 'host-3'];
const wf = useTimeSkipping(HOSTS);

const MIN = 60_000;
/** The test server's clock when the calendar file was written: every window is relative to it. */
let t0 = 0;
const at = (ms: number) => new Date(Math.floor((t0 + ms) / 60_000) * 60_000).toISOString().replace(':00.000Z', 'Z');

/**
 * Calendars relative to t0. `maint` is closed but for [t0 - 1m, t0 + 30m) and [t0 + 24h, t0 + 25h); `freeze` is a
 * global calendar, open but for a period long past (so it applies to every run without blocking it) until a test
 * moves it over now.
 */
function writeCalendars(freezeFrom: number, freezeTo: number): void {
  fs.writeFileSync(
    path.join(wf.fixture.dir, 'calendars.yaml'),
    `apiVersion: runbooks/v1
kind: Calendars
calendars:
  maint:
    default: closed
    override: { groups: [sre] }
    events:
      - { name: now, start: '${at(-MIN)}', end: '${at(30 * MIN)}' }
      - { name: tomorrow, start: '${at(24 * 60 * MIN)}', end: '${at(25 * 60 * MIN)}' }
  freeze:
    default: open
    global: true
    override: { users: [erin] }
    events:
      - { name: year-end freeze, start: '${at(freezeFrom)}', end: '${at(freezeTo)}' }
  never:
    default: closed
`,
  );
}

beforeAll(async () => {
  t0 = await wf.env.currentTimeMs();
  writeCalendars(-100 * 24 * 60 * MIN, -99 * 24 * 60 * MIN);
});

/** Three hosts, one at a time; each target works, then sleeps 20 minutes of workflow time. */
const rolling = (name: string, window: string) =>
  runbookYaml(
    name,
    `
targets: all
strategy: { type: rolling, batch: 1 }
window: ${window}
steps:
  - id: work
    ssh: { run: 'echo work on \${{ target.name }}' }
    timeout: 15m
  - id: settle
    sleep: 20m
`,
  );

const hostStates = (run: Finished) =>
  Object.fromEntries(Object.entries(run.result!.hosts).map(([h, r]) => [h, r.state]));
const records = (run: Finished, kind: string) =>
  run.stubs.audit.filter((r) => r.run === run.handle.workflowId && r.kind === kind);

// The clock moves between tests (time is skipped), so each test starts with a fresh t0 and calendar file.
beforeEach(async () => {
  t0 = await wf.env.currentTimeMs();
  writeCalendars(-100 * 24 * 60 * MIN, -99 * 24 * 60 * MIN);
});

test('the window closes mid-rollout, policy fail: batches 1 and 2 run, batch 3 never starts, the run is blocked', async () => {
  const run = await wf.run(rolling('win-fail', '{ calendars: [maint], policy: fail }'));
  expect(run.failure).toBeUndefined();
  expect(hostStates(run)).toEqual({ 'host-1': 'succeeded', 'host-2': 'succeeded', 'host-3': 'skipped' });
  expect(run.result!.status).toBe('blocked');
  expect(run.result!.blocked).toMatch(/batch 3 of 3 not started: closed: maint.*policy: fail/);
  expect(run.stubs.calls.map((c) => c.host)).toEqual(['host-1', 'host-2']);
  const closed = records(run, 'window.closed');
  expect(closed).toHaveLength(1);
  expect(closed[0]!.status).toBe('blocked');
  expect(records(run, 'run.finished')[0]!.status).toBe('blocked');
  expect(run.final.status).toBe('blocked');
});

test('a cutoff of 15m stops the rollout after batch 1: batch 2 would start 10 minutes before the window closes', async () => {
  const run = await wf.run(rolling('win-cutoff', '{ calendars: [maint], policy: fail, cutoff: 15m }'));
  expect(hostStates(run)).toEqual({ 'host-1': 'succeeded', 'host-2': 'skipped', 'host-3': 'skipped' });
  expect(run.result!.blocked).toMatch(/batch 2 of 3 not started: the window closes at .*within the cutoff/);
});

test('policy wait: batch 3 waits for the next opening (a day later) and the run succeeds; the wait is recorded', async () => {
  const run = await wf.run(rolling('win-wait', '{ calendars: [maint], policy: wait }'));
  expect(run.result!.status).toBe('succeeded');
  expect(run.stubs.calls.map((c) => c.host)).toEqual(['host-1', 'host-2', 'host-3']);
  expect(records(run, 'window.closed').map((r) => r.status)).toEqual(['waiting']);
  expect(records(run, 'window.opened')).toHaveLength(1);
  // It started again at the opening, t0 + 24h, not before.
  expect(run.workflowMs).toBeGreaterThanOrEqual(24 * 60 * MIN);
  expect(run.workflowMs).toBeLessThan(25 * 60 * MIN);
});

test('policy wait with maxWait shorter than the next opening: blocked after the longest wait', async () => {
  const run = await wf.run(rolling('win-maxwait', '{ calendars: [maint], policy: wait, maxWait: 2h }'));
  expect(run.result!.status).toBe('blocked');
  expect(run.result!.blocked).toMatch(/no opening within the longest wait \(2h\)/);
  expect(hostStates(run)['host-3']).toBe('skipped');
});

test('an override sent while the run waits lets it go on at once, recorded with who and why', async () => {
  const run = await wf.run(rolling('win-override', '{ calendars: [maint], policy: wait }'), {
    during: async (r) => {
      // Wait until it waits for the window (time is not skipped while `during` runs, so skip it ourselves).
      await eventually(async () => {
        await wf.env.sleep(5 * MIN);
        return (await r.state()).status === 'waiting-window';
      }, 'the run to wait for its window');
      // Someone the calendar does not list first: refused and recorded; then a member of its override group.
      await r.handle.signal('overrideWindow', { by: 'mallory', reason: 'let me through' });
      await eventually(async () => {
        await wf.env.sleep(MIN);
        return r.stubs.audit.some((a) => a.kind === 'window.override' && a.status === 'refused');
      }, 'the refused override to be recorded');
      expect((await r.state()).status).toBe('waiting-window');
      await r.handle.signal('overrideWindow', { by: 'dana', groups: ['sre'], reason: 'customer outage, CAB-1234' });
    },
  });
  expect(run.result!.status).toBe('succeeded');
  const o = records(run, 'window.override');
  expect(o.map((r) => r.status)).toEqual(['refused', 'overridden']);
  expect(o[0]!.detail).toMatchObject({ by: 'mallory', denied: ['maint'] });
  expect(o[1]!.detail).toMatchObject({ by: 'dana', groups: ['sre'], reason: 'customer outage, CAB-1234' });
  expect(run.final.window).toMatchObject({ open: false, overriddenBy: 'dana' });
  expect(run.workflowMs).toBeLessThan(24 * 60 * MIN);
});

test('an override by someone the calendar does not list is refused: the freeze holds and the run is blocked', async () => {
  writeCalendars(-MIN, 60 * MIN);
  const yaml = runbookYaml(
    'win-no-override',
    `
targets: all
steps:
  - id: work
    ssh: { run: 'echo work' }
    timeout: 15m
`,
  );
  const run = await wf.run(yaml, {
    input: { initiator: 'mallory', windowOverride: { by: 'mallory', groups: ['sre'], reason: 'trust me' } },
  });
  expect(run.result!.status).toBe('blocked');
  expect(run.stubs.calls).toEqual([]);
  expect(records(run, 'window.override').map((r) => [r.status, (r.detail as { denied: string[] }).denied])).toEqual([
    ['refused', ['freeze']],
  ]);
});

test('the alert resolving while its remediation waits for the window ends it, having changed nothing', async () => {
  const yaml = rolling('win-alert', '{ calendars: [never], policy: wait }');
  const run = await wf.run(yaml, {
    input: { initiator: 'fp-1', trigger: 'alert', alert: { fingerprint: 'fp-1' } },
    during: async (r) => {
      await eventually(async () => (await r.state()).status === 'waiting-window', 'the run to wait');
      await r.handle.signal('alertResolved', { at: new Date().toISOString() });
    },
  });
  expect(run.failure).toBeUndefined();
  expect(run.result!.status).toBe('cancelled');
  expect(run.stubs.calls).toEqual([]);
  expect(records(run, 'run.finished')[0]!.status).toBe('cancelled');
});

test('a sub-runbook a calendar blocks fails its step in the parent (it did nothing)', async () => {
  wf.fixture.runbook(
    runbookYaml(
      'win-child',
      `
window: { calendars: [never], policy: fail }
steps:
  - id: inner
    ssh: { run: 'echo inner' }
    timeout: 15m
`,
    ),
  );
  const run = await wf.run(
    runbookYaml(
      'win-parent',
      `
steps:
  - id: child
    runbook: { name: win-child }
  - id: after
    ssh: { run: 'echo after' }
    timeout: 15m
`,
    ),
  );
  expect(run.result?.status ?? run.failure?.type).not.toBe('succeeded');
  expect(run.failure?.message ?? JSON.stringify(run.result)).toMatch(/sub-runbook win-child was blocked: .*never/);
  expect(run.stubs.calls.map((c) => c.key)).not.toContain('steps[1]');
});

test('a freeze added to the calendar file mid-run stops the next batch (global calendars are read at each check)', async () => {
  const run = await wf.run(rolling('win-late-freeze', '{ calendars: [maint], policy: fail }'), {
    script: ({ host }) => {
      if (host === 'host-1') writeCalendars(-MIN, 24 * 60 * MIN);
      return undefined;
    },
  });
  expect(run.result!.status).toBe('blocked');
  expect(run.result!.blocked).toMatch(/batch 2 of 3 not started: closed: freeze/);
  expect(run.stubs.calls.map((c) => c.host)).toEqual(['host-1']);
});

test('a global freeze blocks a runbook that names no window, before its approval is even asked for', async () => {
  writeCalendars(-MIN, 60 * MIN);
  const yaml = runbookYaml(
    'win-frozen',
    `
targets: all
approval: { approvers: { users: [ops] }, timeout: 1h }
steps:
  - id: work
    ssh: { run: 'echo work' }
    timeout: 15m
`,
    'high',
  );
  const run = await wf.run(yaml);
  expect(run.result!.status).toBe('blocked');
  expect(run.result!.blocked).toMatch(/the approval gate not started: closed: freeze \(year-end freeze\)/);
  expect(run.stubs.calls).toEqual([]);
  expect(run.stubs.notifications).toEqual([]);
  expect(Object.values(hostStates(run))).toEqual(['skipped', 'skipped', 'skipped']);
});

test('an override given at the start runs through the freeze, and says so in the audit trail once', async () => {
  writeCalendars(-MIN, 60 * MIN);
  const yaml = runbookYaml(
    'win-start-override',
    `
targets: all
strategy: { type: rolling, batch: 1 }
steps:
  - id: work
    ssh: { run: 'echo work' }
    timeout: 15m
`,
  );
  const run = await wf.run(yaml, {
    input: { initiator: 'erin', windowOverride: { by: 'erin', reason: 'security patch, INC-77' } },
  });
  expect(run.result!.status).toBe('succeeded');
  expect(run.stubs.calls).toHaveLength(3);
  const o = records(run, 'window.override');
  expect(o).toHaveLength(1);
  expect(o[0]!.detail).toMatchObject({ by: 'erin', reason: 'security patch, INC-77' });
});

test('a run naming a calendar the file does not have is refused before it does anything', async () => {
  const run = await wf.run(rolling('win-unknown', '{ calendars: [nope] }'));
  expect(run.failure?.type).toBe('RunbookInvalid');
  expect(run.failure?.message).toMatch(
    /window.calendars: "nope" is not in the calendar file .*it has: maint, freeze, never/,
  );
  expect(run.stubs.calls).toEqual([]);
});

test('parallel targets meeting a closed window together: one check, one closed and one opened record', async () => {
  const yaml = runbookYaml(
    'win-parallel',
    `
targets: all
strategy: { type: parallel, limit: 2 }
window: { calendars: [maint], policy: wait, cutoff: 15m }
steps:
  - id: work
    ssh: { run: 'echo work on \${{ target.name }}' }
    timeout: 15m
  - id: settle
    sleep: 20m
`,
  );
  const run = await wf.run(yaml);
  expect(run.result!.status).toBe('succeeded');
  expect(records(run, 'window.closed')).toHaveLength(1);
  expect(records(run, 'window.opened')).toHaveLength(1);
  expect(run.stubs.calls.map((c) => c.host).sort()).toEqual(['host-1', 'host-2', 'host-3']);
});
