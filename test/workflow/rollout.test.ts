// Workflow (time-skipping test server, stubbed activities): how a run spreads over its targets. Rolling batches
// (counts, percentages, ramps) seen as the waves of steps that ran at the same time; parallel limits; the failure
// threshold, with the targets it skips and the ones already in flight that still finish.
import { FAILURES } from '../../common/failure-types';
import { runbookYaml, useTimeSkipping, type Finished } from '../harness/time-skipping';
import { maxInFlight, overlapping, waves, type Script } from '../harness/time-skipping-stubs';

const HOSTS = ['host-1', 'host-2', 'host-3', 'host-4', 'host-5', 'host-6'];
const wf = useTimeSkipping(HOSTS);

/**
 * One SSH step per target. Its timeout makes it a regular activity: a short step is a local activity, and while
 * one runs its workflow task takes no new events, so the next target of the batch would start only after it.
 */
const oneStep = (name: string, strategy: string, targets = 'all') =>
  runbookYaml(
    name,
    `
targets: '${targets}'
${strategy ? `strategy: ${strategy}` : ''}
steps:
  - id: work
    ssh: { run: 'echo work on \${{ target.name }}' }
    timeout: 15m
`,
  );

const failOn =
  (...hosts: string[]): Script =>
  ({ host }) =>
    hosts.includes(host) ? { exit: 4, stderr: 'boom' } : undefined;
const hostsIn = (run: Finished, state: string) =>
  Object.entries(run.result!.hosts)
    .filter(([, r]) => r.state === state)
    .map(([h]) => h);
const skipRecords = (run: Finished) =>
  run.stubs.audit.filter((r) => r.kind === 'skip' && r.by === 'workflow' && !r.step);

test.each([
  [
    'a ramp [1, 2] (the last size repeats)',
    '{ type: rolling, batch: [1, 2] }',
    '!host:host-6',
    [['host-1'], ['host-2', 'host-3'], ['host-4', 'host-5']],
  ],
  [
    'a percentage, rounded up (40% of 5 is 2)',
    '{ type: rolling, batch: "40%" }',
    '!host:host-6',
    [['host-1', 'host-2'], ['host-3', 'host-4'], ['host-5']],
  ],
  [
    'a ramp ending in a percentage ([1, "50%"] of 6)',
    '{ type: rolling, batch: [1, "50%"] }',
    'all',
    [['host-1'], ['host-2', 'host-3', 'host-4'], ['host-5', 'host-6']],
  ],
  [
    'no strategy: one target at a time',
    '',
    'host:host-2,host:host-4,host:host-5',
    [['host-2'], ['host-4'], ['host-5']],
  ],
])(
  'rolling batches, %s: each batch runs at once, the next starts after it ended',
  async (_what, strategy, targets, expected) => {
    const name = `batch-${expected.map((b) => b.length).join('-')}-${strategy ? 'r' : 'd'}`;
    const run = await wf.run(oneStep(name, strategy, targets), { script: overlapping() });
    expect(waves(run.stubs.calls)).toEqual(expected);
    expect(run.result!.status).toBe('succeeded');
    expect(run.final.batch).toEqual({ index: expected.length, of: expected.length });
    expect(run.stubs.keys()).toEqual(expected.flat().map(() => 'steps[0]'));
  },
);

test('parallel with a limit: never more than `limit` targets at once, and `limit` at once when there is work', async () => {
  const run = await wf.run(oneStep('parallel-two', '{ type: parallel, limit: 2 }'), { script: overlapping() });
  expect(maxInFlight(run.stubs.calls)).toBe(2);
  expect(run.stubs.calls.map((c) => c.host).sort()).toEqual(HOSTS);
  expect(run.result!.status).toBe('succeeded');
  expect(run.final.batch).toEqual({ index: 1, of: 1 });
});

test('parallel without a limit: every target at once', async () => {
  const run = await wf.run(oneStep('parallel-all', '{ type: parallel }'), { script: overlapping() });
  expect(maxInFlight(run.stubs.calls)).toBe(HOSTS.length);
  expect(run.result!.status).toBe('succeeded');
});

test('rolling, maxFailures 0: the first failure stops the rollout; the rest are skipped, recorded, never touched', async () => {
  const run = await wf.run(oneStep('stop-at-first', '{ type: rolling, batch: 1 }'), { script: failOn('host-2') });
  expect(run.stubs.calls.map((c) => c.host)).toEqual(['host-1', 'host-2']);
  expect(run.failure).toMatchObject({ type: FAILURES.runbookFailed, cancelled: false });
  expect(run.failure!.message).toMatch(
    /^stop-at-first failed: host-2: The command on host-2 exited with 4 \(expected 0\)/,
  );
  expect(run.result).toMatchObject({ status: 'failed', failures: 1, threshold: 0 });
  expect(hostsIn(run, 'succeeded')).toEqual(['host-1']);
  expect(hostsIn(run, 'failed')).toEqual(['host-2']);
  expect(hostsIn(run, 'skipped')).toEqual(['host-3', 'host-4', 'host-5', 'host-6']);
  expect(skipRecords(run).map((r) => [r.target, r.detail?.reason])).toEqual(
    ['host-3', 'host-4', 'host-5', 'host-6'].map((h) => [h, 'failures (1) exceeded the threshold (0)']),
  );
  expect(run.final.status).toBe('failed');
});

test('rolling: targets of the batch in flight finish after the threshold is passed ("at least"); the next batch is skipped', async () => {
  const run = await wf.run(oneStep('at-least', '{ type: rolling, batch: 3, maxFailures: 1 }'), {
    script: overlapping(failOn('host-1', 'host-2')),
  });
  expect(waves(run.stubs.calls)).toEqual([['host-1', 'host-2', 'host-3']]);
  expect(run.result).toMatchObject({ status: 'failed', failures: 2, threshold: 1 });
  expect(hostsIn(run, 'succeeded')).toEqual(['host-3']);
  expect(hostsIn(run, 'skipped')).toEqual(['host-4', 'host-5', 'host-6']);
  expect(skipRecords(run).map((r) => r.detail?.reason)).toEqual(
    Array(3).fill('failures (2) exceeded the threshold (1)'),
  );
});

test('rolling: failures within the threshold (34% of 6 is 2, rounded down) go on to the end; the run is degraded, not failed', async () => {
  const run = await wf.run(oneStep('tolerated', '{ type: rolling, batch: 2, maxFailures: "34%" }'), {
    script: failOn('host-3', 'host-6'),
  });
  expect(run.failure).toBeUndefined();
  expect(run.result).toMatchObject({ status: 'degraded', failures: 2, threshold: 2 });
  expect(run.stubs.calls.map((c) => c.host).sort()).toEqual(HOSTS);
  expect(hostsIn(run, 'failed')).toEqual(['host-3', 'host-6']);
  expect(skipRecords(run)).toEqual([]);
  // The live status shows a degraded run as succeeded; the result says degraded.
  expect(run.final.status).toBe('succeeded');
});

test('parallel, limit 1: no new target starts once failures exceed the threshold; the rest are skipped', async () => {
  const run = await wf.run(oneStep('parallel-stop', '{ type: parallel, limit: 1, maxFailures: 1 }'), {
    script: failOn('host-1', 'host-3'),
  });
  expect(run.stubs.calls.map((c) => c.host)).toEqual(['host-1', 'host-2', 'host-3']);
  expect(run.result).toMatchObject({ status: 'failed', failures: 2, threshold: 1 });
  expect(hostsIn(run, 'skipped')).toEqual(['host-4', 'host-5', 'host-6']);
  expect(skipRecords(run).map((r) => r.target)).toEqual(['host-4', 'host-5', 'host-6']);
});

test('parallel, limit 3: a fast failure stops the queue while two slow targets are still in flight; they finish', async () => {
  const script: Script = async ({ host }) => {
    if (host === 'host-1') return { exit: 1 };
    await new Promise((r) => setTimeout(r, 800));
    return undefined;
  };
  const run = await wf.run(oneStep('parallel-in-flight', '{ type: parallel, limit: 3 }'), { script });
  expect(run.stubs.calls.map((c) => c.host).sort()).toEqual(['host-1', 'host-2', 'host-3']);
  expect(run.result).toMatchObject({ status: 'failed', failures: 1, threshold: 0 });
  expect(hostsIn(run, 'succeeded')).toEqual(['host-2', 'host-3']);
  expect(hostsIn(run, 'skipped')).toEqual(['host-4', 'host-5', 'host-6']);
});
