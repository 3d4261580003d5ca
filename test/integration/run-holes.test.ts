// Integration (real Temporal, real sshd, the engine's worker): what wave 1 got wrong when two of a thing meet, or
// when a thing is large. Two rollback steps of one step; two approvals pending at once; 1 MiB of output from each
// of 50 steps; a long wait for a host lock.
import type { runbook, RunbookResult } from '../../workflows/runbook';
import { decideSignal, stateQuery } from '../../workflows/messages';
import { useFleetRuns, uniqueTaskQueue, withEngineWorker } from '../harness/env';
import { waitUntil } from '../harness/processes';
import { WorkflowFailedError } from '@temporalio/client';

const fleet = useFleetRuns();
const { inventory, remote } = fleet;
const start = (tq: string, name: string, params: Record<string, unknown>, id = `${tq}-${name}`) =>
  fleet.env.client.workflow.start<typeof runbook>('runbook', {
    taskQueue: tq,
    workflowId: id,
    args: [{ runbook: name, params, inventory: inventory(), initiator: 'test' }],
  });

test('a step with two rollback steps: both run, newest first is the step order, each with its own record', async () => {
  const tq = uniqueTaskQueue('holes');
  const marker = `${tq}.txt`;
  const handle = await start(tq, 'two-undo', { marker });
  const err = await withEngineWorker(fleet.env, tq, () =>
    handle.result().then(
      () => undefined,
      (e: unknown) => e,
    ),
  );
  expect(err).toBeInstanceOf(WorkflowFailedError);
  const result = ((err as WorkflowFailedError).cause as { details?: unknown[] }).details?.[0] as RunbookResult;
  expect(result.hosts['host-1']!.state).toBe('rolled-back');
  expect(result.hosts['host-1']!.rollbackErrors).toEqual([]);
  // Compensations run newest-first: the second undo step was pushed last.
  expect(await remote(1, `cat ${marker}.undo`)).toBe('second\nfirst\n');
});

test('two approvals pending at once: a decision for one is not lost to the other; a path decides every host there', async () => {
  const tq = uniqueTaskQueue('holes');
  const marker = `${tq}.txt`;
  const handle = await start(tq, 'per-host-approval', { marker });
  await withEngineWorker(fleet.env, tq, async () => {
    await waitUntil(
      async () => (await handle.query(stateQuery)).pendingApprovals.length === 2,
      'both hosts to wait for approval',
    );
    const ids = (await handle.query(stateQuery)).pendingApprovals.map((p) => p.id).sort();
    expect(ids).toEqual(['steps[0]@host-1', 'steps[0]@host-2']);
    // Decided in the order opposite to the one they are waited on, and one after the other, quickly.
    await handle.signal(decideSignal, { id: 'steps[0]@host-2', approve: true, by: 'alice' });
    await handle.signal(decideSignal, { id: 'steps[0]@host-1', approve: true, by: 'alice', comment: 'ok' });
    // Malformed decisions are ignored, not fatal.
    await handle.signal(decideSignal, { id: 'steps[0]', approve: 'yes', by: 'mallory', extra: 1 } as never);
    const result = await handle.result();
    expect(result.status).toBe('succeeded');
    const state = await handle.query(stateQuery);
    expect(state.decisions.map((d) => d.id)).toEqual(['steps[0]@host-2', 'steps[0]@host-1']);
  });
  for (const i of [1, 2]) expect(await remote(i, `test -e ${marker} && echo yes || echo no`)).toBe('yes\n');

  // One decision naming the step path decides every host waiting there.
  const second = await start(tq, 'per-host-approval', { marker: `${marker}.2` }, `${tq}-path`);
  await withEngineWorker(fleet.env, tq, async () => {
    await waitUntil(
      async () => (await second.query(stateQuery)).pendingApprovals.length === 2,
      'both hosts to wait for approval',
    );
    await second.signal(decideSignal, { id: 'steps[0]', approve: true, by: 'alice' });
    expect((await second.result()).status).toBe('succeeded');
  });
});

test('1 MiB of stdout and of stderr from each of 50 steps: the run completes, outputs still work', async () => {
  const tq = uniqueTaskQueue('holes');
  const handle = await start(tq, 'chatty', {});
  const result = await withEngineWorker(fleet.env, tq, () => handle.result());
  expect(result.status).toBe('succeeded');
  expect(Object.values(result.hosts['host-1']!.steps).every((s) => s === 'succeeded')).toBe(true);
  // No event in the run's history comes near Temporal's 2 MiB payload limit.
  const { events } = await handle.fetchHistory();
  const largest = Math.max(...events!.map((e) => JSON.stringify(e).length));
  expect(largest).toBeLessThan(512 * 1024);
}, 180_000);

test("waiting for a host lock does not grow the waiting run's history while the holder works", async () => {
  const tq = uniqueTaskQueue('holes');
  const log = `${tq}.log`;
  await withEngineWorker(fleet.env, tq, async () => {
    const holder = await start(tq, 'slow-append', { marker: log, seconds: 12 }, `${tq}-holder`);
    await waitUntil(
      async () => (await remote(1, `cat ${log} 2>/dev/null || true`)).includes('line'),
      'the holder to start',
    );
    const waiter = await start(tq, 'append-line', { marker: `${log}.w`, hosts: 'host:host-1' }, `${tq}-waiter`);
    await waitUntil(
      async () => (await waiter.query(stateQuery)).hosts['host-1']?.state === 'waiting-lock',
      'the waiter to wait',
    );
    const count = async () => (await waiter.fetchHistory()).events!.length;
    const before = await count();
    await new Promise((r) => setTimeout(r, 6000));
    expect(await count()).toBe(before); // wave 1: about 30 more events in 6 s
    expect((await holder.result()).status).toBe('succeeded');
    expect((await waiter.result()).status).toBe('succeeded');
  });
  expect(await remote(1, `cat ${log}.w`)).toBe('line\n');
}, 120_000);

test("a sub-runbook run through step targets locks its host: only the run's own target counts as held", async () => {
  const tq = uniqueTaskQueue('holes');
  const log = `${tq}.log`;
  await withEngineWorker(fleet.env, tq, async () => {
    const holder = await start(tq, 'hold-two', { log });
    await waitUntil(
      async () => (await remote(2, `cat ${log} 2>/dev/null || true`)).includes('start'),
      'the holder to start',
    );
    const parent = await start(tq, 'delegate-child', { log });
    expect((await parent.result()).status).toBe('succeeded');
    expect((await holder.result()).status).toBe('succeeded');
  });
  // The child waited for host-2's lock instead of acting inside the holder's work.
  expect(await remote(2, `cat ${log}`)).toBe('start\nend\nchild\n');
}, 120_000);
