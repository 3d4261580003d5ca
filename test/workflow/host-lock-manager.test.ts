// Workflow (time-skipping test server, stubbed steps, the real lock manager and its real activities): the lock
// manager under attack and under load. Terminated by hand while a run holds a host and another waits: the next
// manager asks the runs before it grants anything (a run at its approval gate holds nothing). Junk and forged
// signals change nothing; a grant for a holder that does not exist goes to the next in line. Its id is reserved: a
// squatter is cleared, a wrong id refused, a table given by hand ignored. (200 runs queued across continue-as-new:
// test/integration/host-locks.test.ts, on a real dev server: on this test server, under CPU load, the manager's
// workflow task of a long queue was once left started and never completed.)
import { WorkflowFailedError } from '@temporalio/client';
import { FAILURES, hostLockManagerId } from '../../common/failure-types';
import { lockTableQuery } from '../../workflows/host-lock-manager';
import { decideSignal } from '../../workflows/messages';
import { eventually, runbookYaml, useTimeSkipping, type Run, type Session } from '../harness/time-skipping';
import { delay } from '../harness/time-skipping-stubs';

const wf = useTimeSkipping(['host-1', 'host-2', 'host-3']);

const touch = (name: string, targets = 'host:host-1') =>
  runbookYaml(
    name,
    `
targets: '${targets}'
steps:
  - { id: touch, ssh: { run: 'touch' }, timeout: 15m }
`,
  );
/** Holds host-1 at an approval step (no activity runs meanwhile, so hours of skipped time change nothing). */
const approvalHolder = (name: string) =>
  runbookYaml(
    name,
    `
targets: 'host:host-1'
steps:
  - { id: hold, approval: { approvers: { users: [alice] }, timeout: 2h } }
  - { id: touch, ssh: { run: 'touch' }, timeout: 15m }
`,
  );

const manager = (s: Session) => wf.env.client.workflow.getHandle(hostLockManagerId(s.taskQueue));
const table = async (s: Session) => manager(s).query(lockTableQuery);
const hostState = async (run: Run, host = 'host-1') => (await run.state()).hosts[host]?.state;
const waiting = (run: Run) =>
  eventually(async () => (await hostState(run)) === 'waiting-lock', `${run.handle.workflowId} to wait`);
const holding = (run: Run) =>
  eventually(async () => (await hostState(run)) === 'running', `${run.handle.workflowId} to hold host-1`);
const approve = (run: Run) => run.handle.signal(decideSignal, { id: 'steps[0]@host-1', approve: true, by: 'alice' });
const order = (s: Session) => s.stubs.calls.map((c) => c.run.replace(s.prefix, ''));
/** The calls never overlap (each starts after the one before ended). */
const oneAtATime = (s: Session) => s.stubs.calls.every((c, i) => i === 0 || c.start > s.stubs.calls[i - 1]!.end!);

test('the manager terminated by hand mid-hold: the next one asks the runs first; the holder keeps the host', async () => {
  await wf.session(async (s) => {
    const holder = await s.start(approvalHolder('mt-holder'));
    await holding(holder);
    const w = await s.start(touch('mt-waiter'));
    await waiting(w);
    // A run at its approval gate: it never asked for a lock, so it answers nothing and holds nothing.
    const gated = await s.start(
      runbookYaml(
        'mt-gated',
        `
targets: 'host:host-2'
approval: { approvers: { users: [alice] }, timeout: 2h }
steps:
  - { id: touch, ssh: { run: 'touch' }, timeout: 15m }
`,
        'high',
      ),
    );
    await eventually(async () => (await gated.state()).status === 'awaiting-approval', 'the gate');
    await manager(s).terminate('test: the lock manager is killed by hand');
    // A new run asks: a new manager starts, asks every open run, and only then grants.
    const late = await s.start(touch('mt-late'));
    await waiting(late); // told so once the new manager has learnt the table
    const ref = async (r: Run) => ({ workflowId: r.handle.workflowId, runId: (await r.handle.describe()).runId });
    expect((await table(s)).hosts['host-1']).toEqual({
      holder: await ref(holder),
      waiting: [
        { ...(await ref(w)), policy: 'wait' },
        { ...(await ref(late)), policy: 'wait' },
      ],
    });
    await delay(300);
    expect(s.stubs.calls).toEqual([]);
    await approve(holder);
    await Promise.all([holder, w, late].map((r) => s.finish(r)));
    expect(order(s)).toEqual(['mt-holder', 'mt-waiter', 'mt-late']);
    expect(oneAtATime(s)).toBe(true);
    await gated.handle.terminate('test: done');
  });
});

test('junk and forged signals change nothing; a grant to a holder that does not exist goes to the next in line; a cancel is ignored', async () => {
  await wf.session(async (s) => {
    const holder = await s.start(approvalHolder('junk-holder'));
    await holding(holder);
    const w = await s.start(touch('junk-waiter'));
    await waiting(w);
    const before = await table(s);
    const { runId } = await manager(s).describe();
    const junk: unknown[] = [
      null,
      'release everything',
      42,
      [],
      { from: { workflowId: holder.handle.workflowId, runId: 'x' }, release: [{ requestId: 'guess', host: 'host-1' }] },
      { from: { workflowId: 'evil' }, acquire: [{ requestId: 'a', host: 'host-1', policy: 'wait' }] },
      { from: { workflowId: 'evil', runId: 'r' }, acquire: [{ requestId: 'a', host: '../etc', policy: 'wait' }] },
      { from: { workflowId: 'evil', runId: 'r' }, grant: true },
      {
        from: { workflowId: 'evil', runId: 'r' },
        release: Array.from({ length: 600 }, () => ({ requestId: 'a', host: 'h' })),
      },
      JSON.parse(`{"from":${'['.repeat(50)}${']'.repeat(50)}}`),
    ];
    for (const j of junk) await manager(s).signal('lockRequests', j);
    // A forged grant to the waiting run: it is not for a request of its own, so it gives it back and goes on waiting.
    await w.handle.signal('lockAnswers', { answers: [{ requestId: 'forged', host: 'host-1', answer: 'granted' }] });
    await w.handle.signal('lockAnswers', { answers: 'all of them' });
    await delay(500);
    expect(await table(s)).toEqual(before);
    expect(await hostState(w)).toBe('waiting-lock');
    const d = await manager(s).describe();
    expect([d.runId, d.status.name]).toEqual([runId, 'RUNNING']);
    // A well-formed request from a run that does not exist, for host-2: granted, the signal fails, the next gets it.
    await manager(s).signal('lockRequests', {
      from: { workflowId: 'no-such-run', runId: 'b3c8f0de-0000-4000-8000-000000000000' },
      acquire: [{ requestId: 'ghost', host: 'host-2', policy: 'wait' }],
    });
    const next = await s.finish(await s.start(touch('junk-host2', 'host:host-2')));
    expect(next.result!.status).toBe('succeeded');
    await approve(holder);
    await Promise.all([s.finish(holder), s.finish(w)]);
    expect(order(s)).toEqual(['junk-host2', 'junk-holder', 'junk-waiter']);
    const { events } = await manager(s).fetchHistory();
    expect(events!.filter((e) => e.workflowTaskFailedEventAttributes)).toEqual([]);
    // A cancel request is ignored: the manager (and its table) go on.
    await manager(s).cancel();
    expect((await s.finish(await s.start(touch('after-cancel')))).result!.status).toBe('succeeded');
    expect((await manager(s).describe()).status.name).toBe('RUNNING');
  });
});

test('the manager id is reserved: a squatter is cleared, a wrong id refused, a table given by hand ignored', async () => {
  await wf.session(async (s) => {
    // A workflow of another type on a queue nobody polls squats the manager's id: the next request clears it.
    await manager(s)
      .terminate()
      .catch(() => undefined);
    await wf.env.client.workflow.start('squat', {
      taskQueue: 'nobody-polls-this',
      workflowId: hostLockManagerId(s.taskQueue),
    });
    const r = await s.finish(await s.start(touch('after-squat')));
    expect(r.result!.status).toBe('succeeded');
    expect((await manager(s).describe()).type).toBe('hostLockManager');
    // Another queue's manager id, on this queue: refused.
    const wrong = await wf.env.client.workflow.start('hostLockManager', {
      taskQueue: s.taskQueue,
      workflowId: hostLockManagerId('elsewhere'),
      args: [{}],
    });
    await expect(wrong.result()).rejects.toBeInstanceOf(WorkflowFailedError);
    await wrong.result().catch((err: WorkflowFailedError) => {
      expect((err.cause as { type?: string }).type).toBe(FAILURES.reservedId);
    });
    // Started by hand with a table that says host-1 is held: not believed (it was not continued as new).
    await manager(s).terminate();
    await wf.env.client.workflow.start('hostLockManager', {
      taskQueue: s.taskQueue,
      workflowId: hostLockManagerId(s.taskQueue),
      args: [
        {
          state: {
            hosts: {
              'host-1': {
                holder: { requestId: 'x', host: 'host-1', policy: 'wait', workflowId: 'ghost', runId: 'ghost' },
                queue: [],
              },
            },
            legacyClear: ['host-1'],
            legacyDone: true,
            finished: [],
            since: 0,
            recovering: false,
            owed: [],
          },
        },
      ],
    });
    expect((await s.finish(await s.start(touch('after-forged')))).result!.status).toBe('succeeded');
    // A run may not take a lock manager's id.
    const run = await wf.env.client.workflow.start('runbook', {
      taskQueue: s.taskQueue,
      workflowId: hostLockManagerId('x'),
      args: [{ runbook: 'whatever' }],
    });
    await run.result().catch((err: WorkflowFailedError) => {
      expect((err.cause as { message?: string }).message).toMatch(
        /workflow id: ids starting with "runbook-host-locks:" are reserved for host locks/,
      );
    });
  });
});
