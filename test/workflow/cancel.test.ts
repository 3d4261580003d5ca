// Workflow (time-skipping test server, stubbed activities): cancel, and host locks (the real hostLock child
// workflow and the real watchHostLock activity). A cancel kills the running command (sshKill with its key),
// then rolls the target back to completion; targets not started are skipped; the run ends cancelled. Two runs on
// one host take turns; with `locks.hosts: fail` the second fails at once, with nothing to roll back.
import { FAILURES } from '../../common/failure-types';
import { eventually, runbookYaml, useTimeSkipping, type Run } from '../harness/time-skipping';
import { forever } from '../harness/time-skipping-stubs';

const wf = useTimeSkipping(['host-1', 'host-2', 'host-3']);

const waitForCall = (run: Run, key: string, host = 'host-1') =>
  eventually(
    () => run.stubs.calls.some((c) => c.run === run.handle.workflowId && c.key === key && c.host === host),
    `${host} ${key} to start`,
  );

/**
 * The step cancelled mid-way is a long one (a regular activity). A short step is a local activity, which holds its
 * workflow task open: the cancel reaches the run only at the task's next heartbeat, 8 s later with the default
 * task timeout (see the step group test).
 */
const undoable = (name: string, targets = 'host:host-1', more = '') =>
  runbookYaml(
    name,
    `
targets: '${targets}'
${more}
steps:
  - id: prepare
    ssh: { run: 'prepare' }
    rollback:
      - id: unprepare
        ssh: { run: 'unprepare' }
  - id: long
    ssh: { run: 'sleep 1000' }
    timeout: 15m
    rollback:
      - id: never
        ssh: { run: 'long never completed' }
rollback:
  - id: tell
    notify: { channel: oncall, message: 'rolled back \${{ target.name }}' }
`,
  );

test('cancel mid-step: the command is killed by its key, then the completed steps roll back; the run ends cancelled', async () => {
  const run = await wf.run(undoable('cancel-step'), {
    script: ({ key }) => (key === 'steps[1]' ? forever() : undefined),
    during: async (r) => {
      await waitForCall(r, 'steps[1]');
      await r.handle.cancel();
    },
  });
  expect(run.failure).toMatchObject({ cancelled: true });
  expect(run.stubs.timeline).toEqual([
    'host-1 steps[0]',
    'host-1 steps[1]',
    'kill host-1 steps[1]',
    'host-1 steps[0].rollback[0]',
    'notify oncall: rolled back host-1',
  ]);
  expect(run.result).toMatchObject({
    status: 'cancelled',
    hosts: { 'host-1': { state: 'rolled-back', error: 'cancelled', rollbackErrors: [] } },
  });
  expect(run.final.status).toBe('cancelled');
  expect(run.stubs.audit.find((r) => r.kind === 'step' && r.key === 'steps[1]')).toMatchObject({
    by: 'workflow',
    status: 'cancelled',
  });
  expect(run.stubs.audit.find((r) => r.kind === 'cancel')).toMatchObject({
    status: 'cancelled',
    detail: { hosts: { 'host-1': 'rolled-back' } },
  });
});

test('cancel inside a step group: every step of the group is killed (which one runs is not known), then rollback', async () => {
  const yaml = runbookYaml(
    'cancel-group',
    `
targets: host:host-1
steps:
  - { id: a, ssh: { run: 'a' } }
  - { id: b, ssh: { run: 'b' } }
  - { id: c, ssh: { run: 'c' } }
rollback:
  - id: tell
    notify: { channel: oncall, message: 'rolled back \${{ target.name }}' }
`,
  );
  const run = await wf.run(yaml, {
    script: ({ key }) => (key === 'steps[1]' ? forever() : undefined),
    during: async (r) => {
      await waitForCall(r, 'steps[1]');
      await r.handle.cancel();
    },
    // The group is a local activity: the cancel reaches the run at the workflow task's heartbeat (80% of this).
    workflowTaskTimeout: '2s',
  });
  expect(run.stubs.calls.map((c) => [c.activity, c.key, c.outcome])).toEqual([
    ['sshSteps', 'steps[0]', 'succeeded'],
    ['sshSteps', 'steps[1]', 'cancelled'],
  ]);
  expect(run.stubs.kills.map((k) => k.key)).toEqual(['steps[0]', 'steps[1]', 'steps[2]']);
  expect(run.stubs.timeline.slice(-1)).toEqual(['notify oncall: rolled back host-1']);
  // The group's cancel has a record of its own (kind cancel), kept beside the outcome of the step that completed
  // (it used to share that step's record id, and the store dropped it).
  const cancelRecord = {
    by: 'workflow',
    kind: 'cancel',
    key: 'steps[0]',
    status: 'cancelled',
    detail: { group: ['steps[0]', 'steps[1]', 'steps[2]'] },
  };
  expect(run.stubs.audit).toContainEqual(expect.objectContaining(cancelRecord));
  expect(run.stubs.audit.filter((r) => r.key === 'steps[0]' && r.kind === 'step').map((r) => [r.by, r.status])).toEqual(
    [['activity', 'succeeded']],
  );
  expect(run.stubs.audit.find((r) => r.kind === 'cancel' && r.key === 'run')).toMatchObject({
    detail: { hosts: { 'host-1': 'rolled-back' } },
  });
  expect(run.result).toMatchObject({ status: 'cancelled', hosts: { 'host-1': { state: 'rolled-back' } } });
});

test('cancel during a rolling rollout: finished targets stay as they are, the running one rolls back, the rest are skipped', async () => {
  const run = await wf.run(undoable('cancel-rollout', 'all', 'strategy: { type: rolling, batch: 1 }'), {
    script: ({ host, key }) => (host === 'host-2' && key === 'steps[1]' ? forever() : undefined),
    during: async (r) => {
      await waitForCall(r, 'steps[1]', 'host-2');
      await r.handle.cancel();
    },
  });
  expect(run.stubs.timeline).toEqual([
    'host-1 steps[0]',
    'host-1 steps[1]',
    'host-2 steps[0]',
    'host-2 steps[1]',
    'kill host-2 steps[1]',
    'host-2 steps[0].rollback[0]',
    'notify oncall: rolled back host-2',
  ]);
  expect(run.result).toMatchObject({
    status: 'cancelled',
    hosts: { 'host-1': { state: 'succeeded' }, 'host-2': { state: 'rolled-back' }, 'host-3': { state: 'skipped' } },
  });
  expect(run.stubs.audit.filter((r) => r.kind === 'skip').map((r) => [r.target, r.detail?.reason])).toEqual([
    ['host-3', 'run cancelled'],
  ]);
});

test('cancel while the gate waits for approval: nothing ran, nothing to roll back, no approval left pending', async () => {
  const yaml = runbookYaml(
    'cancel-gate',
    `
targets: host:host-1
approval: { approvers: { users: [alice] }, timeout: 1h }
steps:
  - { id: change, ssh: { run: 'change' } }
rollback:
  - { id: tell, notify: { channel: oncall, message: 'rolled back' } }
`,
    'high',
  );
  const run = await wf.run(yaml, {
    during: async (r) => {
      await eventually(async () => (await r.state()).pendingApprovals.length === 1, 'the gate');
      await r.handle.cancel();
    },
  });
  expect(run.failure).toMatchObject({ cancelled: true });
  expect(run.stubs.timeline).toEqual([]);
  expect(run.final).toMatchObject({ status: 'cancelled', pendingApprovals: [] });
  expect(run.result?.status).toBe('cancelled');
  // The target was never reached: skipped, and recorded so (it used to stay "pending", with no record).
  expect(run.final?.hosts).toEqual({ 'host-1': { state: 'skipped' } });
  expect(run.stubs.audit).toContainEqual(
    expect.objectContaining({ kind: 'skip', key: 'target', target: 'host-1', detail: { reason: 'run cancelled' } }),
  );
  expect(run.workflowMs).toBeLessThan(3_600_000);
});

const touch = (name: string, locks = 'wait') =>
  runbookYaml(
    name,
    `
targets: host:host-1
locks: { hosts: ${locks} }
steps:
  - { id: touch, ssh: { run: 'touch' }, timeout: 15m }
rollback:
  - { id: tell, notify: { channel: oncall, message: '${name} rolled back' } }
`,
  );

test('two runs on one host take turns: the second waits for the lock (waiting-lock) and starts after the first ends', async () => {
  let release!: () => void;
  const held = new Promise<void>((resolve) => {
    release = resolve;
  });
  await wf.session(
    async (s) => {
      const first = await s.start(touch('lock-first'));
      await waitForCall(first, 'steps[0]');
      const second = await s.start(touch('lock-second'));
      await eventually(
        async () => (await second.state()).hosts['host-1']?.state === 'waiting-lock',
        'the second run to wait for the lock',
      );
      expect(s.stubs.calls.map((c) => c.run)).toEqual([first.handle.workflowId]);
      release();
      const [a, b] = await Promise.all([s.finish(first), s.finish(second)]);
      expect([a.result!.status, b.result!.status]).toEqual(['succeeded', 'succeeded']);
      const [c1, c2] = s.stubs.calls;
      expect([c1!.run, c2!.run]).toEqual([first.handle.workflowId, second.handle.workflowId]);
      expect(c2!.start).toBeGreaterThan(c1!.end!);
    },
    ({ run }) => (run.endsWith('lock-first') ? held : undefined),
  );
});

test('locks.hosts fail: the second run fails at once with HostLocked and rolls back nothing (it never held the host)', async () => {
  await wf.session(async (s) => {
    const first = await s.start(touch('hold-for-fail'));
    await waitForCall(first, 'steps[0]');
    const second = await s.finish(await s.start(touch('lock-fail', 'fail')));
    expect(second.result).toMatchObject({
      status: 'failed',
      hosts: {
        'host-1': {
          state: 'failed',
          error: 'host host-1 is locked by another run (locks.hosts: fail)',
          rollbackErrors: [],
        },
      },
    });
    expect(second.failure?.type).toBe(FAILURES.runbookFailed);
    expect(s.stubs.notifications).toEqual([]);
    expect(s.stubs.calls.map((c) => c.run)).toEqual([first.handle.workflowId]);
    await first.handle.cancel();
    const cancelled = await s.finish(first);
    expect(cancelled.result).toMatchObject({ status: 'cancelled', hosts: { 'host-1': { state: 'rolled-back' } } });
    expect(s.stubs.timeline).toEqual([
      'host-1 steps[0]',
      'kill host-1 steps[0]',
      'notify oncall: hold-for-fail rolled back',
    ]);
  }, forever);
});

test('cancel a run that waits for a host lock: it never acted on the host, so it rolls back nothing; the holder goes on', async () => {
  let release!: () => void;
  const held = new Promise<void>((resolve) => {
    release = resolve;
  });
  await wf.session(
    async (s) => {
      const holder = await s.start(touch('lock-holder'));
      await waitForCall(holder, 'steps[0]');
      const waiter = await s.start(touch('lock-waiter'));
      await eventually(
        async () => (await waiter.state()).hosts['host-1']?.state === 'waiting-lock',
        'the waiter to wait',
      );
      await waiter.handle.cancel();
      const w = await s.finish(waiter);
      expect(w.result).toMatchObject({
        status: 'cancelled',
        hosts: { 'host-1': { state: 'failed', error: 'cancelled' } },
      });
      release();
      expect((await s.finish(holder)).result!.status).toBe('succeeded');
      expect(s.stubs.calls.map((c) => c.run)).toEqual([holder.handle.workflowId]);
      expect(s.stubs.notifications).toEqual([]);
    },
    ({ run }) => (run.endsWith('lock-holder') ? held : undefined),
  );
});
