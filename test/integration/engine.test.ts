// Integration (real Temporal, real sshd, the engine's worker): the runbook interpreter end to end. Rolling
// batches, outputs, when, failure threshold with rollback, the approval gate, cancel, and bad input that fails
// before any step.
import { WorkflowFailedError, type WorkflowHandle } from '@temporalio/client';
import type { runbook, RunbookResult } from '../../workflows/runbook';
import { decideSignal, stateQuery, type RunState } from '../../workflows/messages';
import { useFleetRuns, fleetHost, uniqueTaskQueue, withEngineWorker } from '../harness/env';
import { waitUntil } from '../harness/processes';

const fleet = useFleetRuns();
const { inventory, remote } = fleet;
const start = (taskQueue: string, name: string, params: Record<string, unknown>) =>
  fleet.env.client.workflow.start<typeof runbook>('runbook', {
    taskQueue,
    workflowId: `${taskQueue}-${name}`,
    args: [{ runbook: name, params, inventory: inventory(), initiator: 'test' }],
  });

async function failureOf(handle: WorkflowHandle): Promise<{ type?: string; message?: string; details?: unknown[] }> {
  const err = await handle.result().then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(WorkflowFailedError);
  return (err as WorkflowFailedError).cause as never;
}

/** The per-host result a failed run reports (its failure must be RunbookFailed). */
async function failedRunResult(handle: WorkflowHandle): Promise<RunbookResult> {
  const failure = await failureOf(handle);
  expect(failure.type).toBe('RunbookFailed');
  return failure.details?.[0] as RunbookResult;
}

test('rolling batches run every step on every host; outputs feed later steps; when skips', async () => {
  const tq = uniqueTaskQueue('engine');
  const marker = `${tq}.txt`;
  const note = "it's $(not) run; `ever`";
  const result = await withEngineWorker(fleet.env, tq, async () =>
    (await start(tq, 'fleet-touch', { note, marker })).result(),
  );
  expect(result.status).toBe('succeeded');
  expect(Object.fromEntries(Object.entries(result.hosts).map(([h, r]) => [h, [r.state, r.steps]]))).toEqual(
    Object.fromEntries(
      ['host-1', 'host-2', 'host-3'].map((h) => [
        h,
        ['succeeded', { write: 'succeeded', read: 'succeeded', skipped: 'skipped', echo_output: 'succeeded' }],
      ]),
    ),
  );
  for (const i of [1, 2, 3]) {
    expect(await remote(i, `cat ${marker}`)).toBe(note);
    expect(await remote(i, `cat ${marker}.out`)).toBe(`got ${note}\n{"host": "${fleetHost(i).user}"}\n`);
    expect(await remote(i, 'test -e should-not-exist && echo yes || echo no')).toBe('no\n');
  }
});

test('a failure stops the rollout (maxFailures 0): that host rolls back, later hosts are skipped', async () => {
  const tq = uniqueTaskQueue('engine');
  const marker = `${tq}.txt`;
  const handle = await start(tq, 'fail-rollback', { marker });
  const result = await withEngineWorker(fleet.env, tq, () => failedRunResult(handle));
  expect(Object.fromEntries(Object.entries(result.hosts).map(([h, r]) => [h, r.state]))).toEqual({
    'host-1': 'succeeded',
    'host-2': 'rolled-back',
    'host-3': 'skipped',
  });
  expect(result.hosts['host-2']!.error).toMatch(/^The command on host-2 exited with 1 \(expected 0\)/);
  expect(await remote(1, `cat ${marker}`)).toBe('created\n');
  expect(await remote(2, `test -e ${marker} && echo present || cat ${marker}.rolledback`)).toBe('removed\n');
  expect(await remote(3, `test -e ${marker} && echo present || echo absent`)).toBe('absent\n');
  const { RunbookStatus } = await handle
    .describe()
    .then((d) => ({ RunbookStatus: d.typedSearchAttributes.get({ name: 'RunbookStatus', type: 'KEYWORD' } as never) }));
  expect(RunbookStatus).toBe('failed');
});

test('high risk: nothing runs until a quorum of allowed approvers approves; decisions are recorded', async () => {
  const tq = uniqueTaskQueue('engine');
  const marker = `${tq}.txt`;
  await withEngineWorker(fleet.env, tq, async () => {
    const handle = await start(tq, 'gated', { marker });
    const waitFor = async (pred: (s: RunState) => boolean) => {
      for (let i = 0; i < 100; i++) {
        const s = await handle.query(stateQuery);
        if (pred(s)) return s;
        await new Promise((r) => setTimeout(r, 100));
      }
      throw new Error('state never matched');
    };
    await waitFor((s) => s.pendingApprovals.length === 1);
    await handle.signal(decideSignal, { id: 'gate', approve: true, by: 'mallory', comment: 'not allowed' });
    await handle.signal(decideSignal, { id: 'gate', approve: true, by: 'alice', comment: 'ok' });
    const s = await waitFor((x) => x.decisions.length === 2);
    expect(s.pendingApprovals[0]!.approvals).toEqual([{ by: 'alice', comment: 'ok' }]);
    expect(s.status).toBe('awaiting-approval');
    expect(await remote(1, `test -e ${marker} && echo yes || echo no`)).toBe('no\n');
    await handle.signal(decideSignal, {
      id: 'gate',
      approve: true,
      by: 'bob',
      groups: ['dba'],
      comment: 'checked replication',
    });
    const result = await handle.result();
    expect(result.status).toBe('succeeded');
    expect(await remote(1, `test -e ${marker} && echo yes || echo no`)).toBe('yes\n');
    expect((await handle.query(stateQuery)).decisions.map((d) => [d.by, d.approve, d.comment])).toEqual([
      ['mallory', true, 'not allowed'],
      ['alice', true, 'ok'],
      ['bob', true, 'checked replication'],
    ]);
  });
});

test('a rejection fails the gate with who rejected and why; no step runs', async () => {
  const tq = uniqueTaskQueue('engine');
  const marker = `${tq}.txt`;
  const handle = await start(tq, 'gated', { marker });
  const failure = await withEngineWorker(fleet.env, tq, async () => {
    for (let i = 0; i < 100 && (await handle.query(stateQuery)).pendingApprovals.length === 0; i++)
      await new Promise((r) => setTimeout(r, 100));
    await handle.signal(decideSignal, { id: 'gate', approve: false, by: 'alice', comment: 'not during the freeze' });
    return failureOf(handle);
  });
  expect([failure.type, failure.message]).toEqual([
    'ApprovalRejected',
    'Approval "gate" rejected by alice: not during the freeze',
  ]);
  expect(await remote(1, `test -e ${marker} && echo yes || echo no`)).toBe('no\n');
});

test('cancel kills the running remote command and runs rollback', async () => {
  const tq = uniqueTaskQueue('engine');
  const marker = `${tq}.txt`;
  await withEngineWorker(fleet.env, tq, async () => {
    const handle = await start(tq, 'long-sleep', { marker });
    await waitUntil(
      async () => (await remote(2, `test -s ${marker}.pid && echo y || true`)) === 'y\n',
      'the long command to start',
      90_000,
    );
    await handle.cancel();
    const err = await handle.result().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect((err as WorkflowFailedError).cause?.name).toBe('CancelledFailure');
    expect((await handle.describe()).status.name).toBe('CANCELLED');
  });
  expect(await remote(2, `cat ${marker}`)).toBe('started\nundone\n');
  expect(
    await remote(
      2,
      `p=$(cat ${marker}.pid); if [ -d /proc/$p ] && ! grep -q '^State:.*Z' /proc/$p/status; then echo alive; else echo gone; fi`,
    ),
  ).toBe('gone\n');
}, 120_000);

test.each([
  [
    'an unknown runbook',
    'no-such-runbook',
    {},
    'UnknownRunbook',
    /^No runbook named "no-such-runbook" in the worker's runbook directory \(there are: .*fleet-touch.*\)/,
  ],
  [
    'invalid params',
    'fleet-touch',
    { note: 'x', marker: '../etc/passwd' },
    'ParamsInvalid',
    /^Invalid params for fleet-touch:\nparams\.marker: "\.\.\/etc\/passwd" does not match the pattern \[a-z0-9\.-\]\+ \[RB1304\]$/,
  ],
])(
  'bad input at start (%s) fails fast with the located message and runs no step',
  async (_l, name, params, type, message) => {
    const tq = uniqueTaskQueue('engine');
    const handle = await start(tq, name, params);
    const failure = await withEngineWorker(fleet.env, tq, () => failureOf(handle));
    expect(failure.type).toBe(type);
    expect(failure.message).toMatch(message);
    const { events } = await handle.fetchHistory();
    const scheduled = events!
      .filter((e) => e.activityTaskScheduledEventAttributes)
      .map((e) => e.activityTaskScheduledEventAttributes!.activityType!.name);
    expect(scheduled).toEqual(['prepare']);
  },
);

test('host locks: two overlapping runs on one host take turns (wait), or the second fails fast (fail)', async () => {
  const tq = uniqueTaskQueue('engine');
  const log = `${tq}.log`;
  await withEngineWorker(fleet.env, tq, async () => {
    const a = await start(tq, 'hold-host', { log, tag: 'a' });
    await waitUntil(
      async () => (await remote(1, `cat ${log} 2>/dev/null || true`)) !== '',
      'run a to hold host-1',
      90_000,
    );
    const b = await fleet.env.client.workflow.start<typeof runbook>('runbook', {
      taskQueue: tq,
      workflowId: `${tq}-b`,
      args: [{ runbook: 'hold-host', params: { log, tag: 'b' }, inventory: inventory() }],
    });
    let sawWaiting = false;
    for (let i = 0; i < 50 && !sawWaiting; i++) {
      sawWaiting = (await b.query(stateQuery)).hosts['host-1']?.state === 'waiting-lock';
      if (!sawWaiting) await new Promise((r) => setTimeout(r, 100));
    }
    expect(sawWaiting).toBe(true);
    const c = await fleet.env.client.workflow.start<typeof runbook>('runbook', {
      taskQueue: tq,
      workflowId: `${tq}-c`,
      args: [{ runbook: 'hold-host-fail', params: { log, tag: 'c' }, inventory: inventory() }],
    });
    const cFailure = await failureOf(c);
    expect(cFailure.type).toBe('RunbookFailed');
    expect((cFailure.details?.[0] as RunbookResult).hosts['host-1']!.error).toBe(
      'host host-1 is locked by another run (locks.hosts: fail)',
    );
    expect((await a.result()).status).toBe('succeeded');
    expect((await b.result()).status).toBe('succeeded');
  });
  expect(await remote(1, `cat ${log}`)).toBe('start a\nend a\nstart b\nend b\n');
}, 150_000);

test('retry re-runs a failed command as a new attempt; until polls to its condition; parallel groups run', async () => {
  const tq = uniqueTaskQueue('engine');
  const marker = `${tq}`;
  const result = await withEngineWorker(fleet.env, tq, async () =>
    (await start(tq, 'retry-poll', { marker })).result(),
  );
  expect(result.status).toBe('succeeded');
  expect(result.hosts['host-1']!.steps).toEqual({ flaky: 'succeeded', poll: 'succeeded', group: 'succeeded' });
  expect(await remote(1, `cat ${marker}.n ${marker}.p ${marker}.pa ${marker}.pb`)).toBe('3\n3\na\n3\n');
});

test("a sub-runbook runs as a child on its parent's locked host (no self-deadlock); step targets act on another host", async () => {
  const tq = uniqueTaskQueue('engine');
  const marker = `${tq}.txt`;
  const handle = await start(tq, 'parent-call', { marker });
  const result = await withEngineWorker(fleet.env, tq, () => handle.result());
  expect(result.status).toBe('succeeded');
  expect(result.hosts['host-1']!.steps).toEqual({
    before: 'succeeded',
    child: 'succeeded',
    elsewhere: 'succeeded',
    after: 'succeeded',
  });
  expect(await remote(1, `cat ${marker}`)).toBe('parent-before\nfrom-parent\nparent-after\n');
  expect(await remote(3, `cat ${marker}`)).toBe('delegated by succeeded\n');
  const child = fleet.env.client.workflow.getHandle(`${handle.workflowId}/steps[1]@host-1`);
  const described = await child.describe();
  expect(described.status.name).toBe('COMPLETED');
  expect(described.typedSearchAttributes.get({ name: 'Trigger', type: 'KEYWORD' } as never)).toBe('sub-runbook');
});

test('an approval nobody answers escalates once, then times out and fails the run before the next step', async () => {
  const tq = uniqueTaskQueue('engine');
  const marker = `${tq}.txt`;
  const handle = await start(tq, 'approval-timeout', { marker });
  const result = await withEngineWorker(fleet.env, tq, () => failedRunResult(handle));
  expect(result.hosts['host-2']!.error).toBe('Approval "steps[0]@host-2" got 0 of 1 approvals in time');
  expect(await remote(2, `test -e ${marker} && echo yes || echo no`)).toBe('no\n');
  const { events } = await handle.fetchHistory();
  const activities = events!
    .filter((e) => e.activityTaskScheduledEventAttributes)
    .map((e) => e.activityTaskScheduledEventAttributes!.activityType!.name);
  // The escalation (and, for the first run of a task queue, the start of its lock manager).
  expect(activities.filter((a) => a !== 'sendLockMessages')).toEqual(['prepare', 'notify']);
});
