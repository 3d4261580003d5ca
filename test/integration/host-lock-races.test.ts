// Integration (the main suite's real dev server; the workflow harness: stubbed steps, the real lock manager and its
// real activities): host locks between runs. On the dev server, not the time-skipping test server: these runs are
// queried while they run, and that server made such queries replay histories wrongly (a nondeterminism error in 2
// of 3 runs under load, none in 8 here); none of these tests needs time skipped.
// Two runs racing for one free host never act on it together, and the second starts only after the first's rollback; fail policy against a live holder and against one terminated by hand; a holder cancelled while
// two runs queue; a holder terminated by hand (its waiter goes on within seconds); a fan-out asks once; an old-style
// `host-lock:HOST` lock (a run of the code before the manager) keeps its host until it ends.
import path from 'node:path';
import { bundleWorkflowCode, Worker } from '@temporalio/worker';
import { FAILURES, hostLockManagerId } from '../../common/failure-types';
import { lockTableQuery } from '../../workflows/host-lock-manager';
import type { RunState } from '../../workflows/messages';
import { dataConverter } from '../harness/time-skipping-env';
import {
  eventually,
  resultOf,
  runbookYaml,
  uniqueId,
  useTimeSkipping,
  type Run,
  type Session,
} from '../harness/time-skipping';
import { delay, forever, type Script } from '../harness/time-skipping-stubs';

const wf = useTimeSkipping(['races-1', 'races-2', 'races-3'], { devServer: true });
const quiet = () => undefined;

/** One long step on the hosts (a regular activity), a rollback that says so. */
const touch = (name: string, opts: { locks?: string; targets?: string; strategy?: string } = {}) =>
  runbookYaml(
    name,
    `
targets: '${opts.targets ?? 'host:races-1'}'
${opts.strategy ? `strategy: ${opts.strategy}` : ''}
locks: { hosts: ${opts.locks ?? 'wait'} }
steps:
  - { id: touch, ssh: { run: 'touch' }, timeout: 15m }
rollback:
  - { id: tell, notify: { channel: oncall, message: '${name} rolled back' } }
`,
  );

const hostState = async (run: Run, host = 'races-1') => (await run.state()).hosts[host]?.state;
const waiting = (run: Run, host = 'races-1') =>
  eventually(
    async () => (await hostState(run, host)) === 'waiting-lock',
    `${run.handle.workflowId} to wait for ${host}`,
  );
const stepOf = (run: Run) => run.stubs.calls.find((c) => c.run === run.handle.workflowId);
const started = (run: Run) => eventually(() => stepOf(run) !== undefined, `${run.handle.workflowId} to start its step`);
const table = (s: Session) => wf.env.client.workflow.getHandle(hostLockManagerId(s.taskQueue)).query(lockTableQuery);

/** A script whose steps of runs named in `held` wait until `release()`. */
function gate(...held: string[]) {
  let release!: () => void;
  const open = new Promise<void>((resolve) => {
    release = resolve;
  });
  const script: Script = ({ run }) => (held.some((h) => run.endsWith(h)) ? open : undefined);
  return { script, release };
}

test('two runs racing for one free host: one acts, the other waits; it starts after the first rolled back', async () => {
  await wf.session(
    async (s) => {
      const [a, b] = await Promise.all([s.start(touch('race-a')), s.start(touch('race-b'))]);
      // Sample both runs' host state until both ended: never running together.
      const samples: [
        RunState['hosts'][string]['state'] | undefined,
        RunState['hosts'][string]['state'] | undefined,
      ][] = [];
      let done = false;
      const sampling = (async () => {
        while (!done) {
          samples.push(await Promise.all([hostState(a), hostState(b)]));
          await delay(100);
        }
      })();
      const [fa, fb] = await Promise.all([s.finish(a), s.finish(b)]);
      done = true;
      await sampling;
      const [first, second] = s.stubs.calls[0]!.run === a.handle.workflowId ? [fa, fb] : [fb, fa];
      expect(first.result).toMatchObject({ status: 'failed', hosts: { 'races-1': { state: 'rolled-back' } } });
      expect(second.result!.status).toBe('succeeded');
      const name = (r: Run) => r.handle.workflowId.replace(s.prefix, '');
      // The first's rollback is done before the second's step starts.
      expect(s.stubs.timeline).toEqual([
        'races-1 steps[0]',
        `notify oncall: ${name(first)} rolled back`,
        'races-1 steps[0]',
      ]);
      expect(s.stubs.calls.map((c) => c.run)).toEqual([first.handle.workflowId, second.handle.workflowId]);
      const [c1, c2] = s.stubs.calls;
      expect(c2!.start).toBeGreaterThan(c1!.end!);
      const active = new Set(['running', 'failed']); // failed: rolling back, still holding
      const firstIsA = first === fa;
      expect(
        samples.some(([x, y]) => active.has(x ?? '') && active.has(y ?? '') && (x === 'running') !== (y === 'running')),
      ).toBe(false);
      expect(samples.some(([x, y]) => x === 'running' && y === 'running')).toBe(false);
      // The second is seen running only after the first was seen at its end.
      const firstOf = (i: 0 | 1, pred: (st: string | undefined) => boolean) => samples.findIndex((smp) => pred(smp[i]));
      const [fi, si] = firstIsA ? ([0, 1] as const) : ([1, 0] as const);
      const secondRunning = firstOf(si, (st) => st === 'running');
      const firstEnded = firstOf(fi, (st) => st === 'rolled-back');
      // (A sample that sees both saw the first's end first: it releases after its rollback.)
      if (secondRunning >= 0) expect(secondRunning).toBeGreaterThanOrEqual(firstEnded);
      expect((await table(s)).hosts['races-1']).toBeUndefined();
    },
    async ({ run }, calls) => {
      await delay(300);
      return calls[0]!.run === run ? { exit: 1, stderr: 'first fails' } : undefined;
    },
  );
});

test('fail policy: a live holder refuses at once; a holder terminated by hand (nobody waiting, so unwatched) does not', async () => {
  await wf.session(async (s) => {
    const holder = await s.start(touch('fail-holder'));
    await started(holder);
    const refused = await s.finish(await s.start(touch('fail-refused', { locks: 'fail' })));
    expect(refused.failure?.type).toBe(FAILURES.runbookFailed);
    expect(refused.result!.hosts['races-1']).toEqual({
      state: 'failed',
      error: 'host races-1 is locked by another run (locks.hosts: fail)',
      steps: {},
      rollbackErrors: [],
    });
    await holder.handle.terminate('test: the holder dies without releasing');
    const next = await s.finish(await s.start(touch('fail-next', { locks: 'fail' })));
    expect(next.result!.status).toBe('succeeded');
    expect(s.stubs.calls.map((c) => c.run)).toEqual([holder.handle.workflowId, next.handle.workflowId]);
  }, gate('fail-holder').script);
});

test('cancel the holder while two runs queue and one of them is cancelled: rollback, then the next waiter', async () => {
  await wf.session(async (s) => {
    const holder = await s.start(touch('cq-holder'));
    await started(holder);
    const w1 = await s.start(touch('cq-w1'));
    await waiting(w1);
    const w2 = await s.start(touch('cq-w2'));
    await waiting(w2);
    expect((await table(s)).hosts['races-1']!.waiting.map((w) => w.workflowId)).toEqual([
      w1.handle.workflowId,
      w2.handle.workflowId,
    ]);
    await w1.handle.cancel();
    const c1 = await s.finish(w1);
    expect(c1.result).toMatchObject({
      status: 'cancelled',
      hosts: { 'races-1': { state: 'failed', error: 'cancelled' } },
    });
    await eventually(async () => (await table(s)).hosts['races-1']!.waiting.length === 1, 'the withdrawal');
    s.stubs.script(() => undefined);
    await holder.handle.cancel();
    const [h, w] = await Promise.all([s.finish(holder), s.finish(w2)]);
    expect(h.result!.hosts['races-1']!.state).toBe('rolled-back');
    expect(w.result!.status).toBe('succeeded');
    expect(s.stubs.timeline).toEqual([
      'races-1 steps[0]',
      'kill races-1 steps[0]',
      'notify oncall: cq-holder rolled back',
      'races-1 steps[0]',
    ]);
    expect(s.stubs.calls.map((c) => c.run)).toEqual([holder.handle.workflowId, w2.handle.workflowId]);
  }, forever);
});

test('a holder terminated by hand: the run waiting for its host goes on within seconds', async () => {
  await wf.session(async (s) => {
    const holder = await s.start(touch('term-holder'));
    await started(holder);
    const w = await s.start(touch('term-waiter'));
    await waiting(w);
    s.stubs.script(() => undefined);
    const t0 = Date.now();
    await holder.handle.terminate('test: killed by hand');
    await started(w);
    expect(Date.now() - t0).toBeLessThan(10_000); // the manager's watch looks every second
    expect((await s.finish(w)).result!.status).toBe('succeeded');
  }, forever);
});

test('a fan-out asks the manager once for all its hosts, and each host is granted to it', async () => {
  await wf.session(async (s) => {
    // Once without measuring: a manager checks each host for an old-style lock before its first grant of it.
    await s.finish(await s.start(touch('fan-warm', { targets: 'all', strategy: '{ type: parallel }' })));
    const run = await s.finish(await s.start(touch('fan', { targets: 'all', strategy: '{ type: parallel }' })));
    expect(run.result!.status).toBe('succeeded');
    const { events } = await run.handle.fetchHistory();
    // Sent as signals from the workflow: no activity once a manager runs.
    const lockSends = events!.filter(
      (e) => e.signalExternalWorkflowExecutionInitiatedEventAttributes?.signalName === 'lockRequests',
    );
    expect(
      events!.filter((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'sendLockMessages'),
    ).toEqual([]);
    // The first acquire goes at once, the two others together when it is done; the releases go in one or a few
    // sends (targets end at different times).
    expect(lockSends.length).toBeGreaterThanOrEqual(3);
    expect(lockSends.length).toBeLessThanOrEqual(5);
    const acquires = lockSends.map((e) => {
      const p = e.signalExternalWorkflowExecutionInitiatedEventAttributes!.input!.payloads![0]!;
      return (JSON.parse(Buffer.from(p.data!).toString()) as { acquire?: unknown[] }).acquire?.length ?? 0;
    });
    expect(acquires.slice(0, 2)).toEqual([1, 2]);
    expect(lockSends[0]!.signalExternalWorkflowExecutionInitiatedEventAttributes!.workflowExecution!.workflowId).toBe(
      hostLockManagerId(s.taskQueue),
    );
    const signaled = events!.filter((e) => e.workflowExecutionSignaledEventAttributes?.signalName === 'lockAnswers');
    // The grants come in one or two signals (the manager may see both sends in one round), three in all.
    expect(signaled.length).toBeGreaterThanOrEqual(1);
    expect(signaled.length).toBeLessThanOrEqual(2);
    const grants = signaled.flatMap((e) => {
      const p = e.workflowExecutionSignaledEventAttributes!.input!.payloads![0]!;
      return (JSON.parse(Buffer.from(p.data!).toString()) as { answers: { host: string; answer: string }[] }).answers;
    });
    expect(grants.map((g) => `${g.host}:${g.answer}`).sort()).toEqual([
      'races-1:granted',
      'races-2:granted',
      'races-3:granted',
    ]);
  });
});

test('an old-style lock (a `host-lock:HOST` child of a run of the old code) keeps its host until it ends', async () => {
  // A worker of its own runs what the code before the manager did (test/harness/legacy-lock-workflows.ts).
  const legacyQueue = uniqueId('legacy');
  const worker = await Worker.create({
    connection: wf.env.nativeConnection,
    namespace: wf.env.namespace ?? 'default',
    taskQueue: legacyQueue,
    workflowBundle: await bundleWorkflowCode({
      workflowsPath: path.join(__dirname, '..', 'harness', 'legacy-lock-workflows.ts'),
      logger: { log: quiet, trace: quiet, debug: quiet, info: quiet, warn: quiet, error: quiet },
    }),
    dataConverter,
  });
  await worker.runUntil(
    wf.session(async (s) => {
      // A fresh manager: it checks each host once (and would stop checking once none ran for ten minutes).
      await wf.env.client.workflow
        .getHandle(hostLockManagerId(s.taskQueue))
        .terminate('test: a fresh manager')
        .catch(() => undefined);
      const legacy = await wf.env.client.workflow.start('legacyHolder', {
        taskQueue: legacyQueue,
        workflowId: `${s.prefix}legacy`,
        args: ['races-3'],
      });
      await eventually(
        async () =>
          (
            await wf.env.client.workflow
              .getHandle('host-lock:races-3')
              .describe()
              .catch(() => undefined)
          )?.status.name === 'RUNNING',
        'the old-style lock to run',
      );
      try {
        const refused = await s.finish(await s.start(touch('legacy-fail', { locks: 'fail', targets: 'host:races-3' })));
        expect(refused.result!.hosts['races-3']!.error).toBe(
          'host races-3 is locked by another run (locks.hosts: fail)',
        );
        const w = await s.start(touch('legacy-wait', { targets: 'host:races-3' }));
        await waiting(w, 'races-3');
        await delay(500);
        expect(stepOf(w)).toBeUndefined();
        expect((await table(s)).hosts['races-3']).toMatchObject({ holder: null, legacyHeld: true });
        await legacy.signal('letGo');
        await resultOf(wf.env, legacy);
        expect((await s.finish(w)).result!.status).toBe('succeeded');
      } finally {
        // The old-style lock's id is the namespace's, not this file's: never leave it to another test file.
        for (const id of [legacy.workflowId, 'host-lock:races-3'])
          await wf.env.client.workflow
            .getHandle(id)
            .terminate('test over')
            .catch(() => undefined);
      }
    }),
  );
}, 90_000);
