// Integration (real Temporal dev server, real sshd, real `runbook worker` processes): host locks and their lock
// manager with the parts that fail in production. A worker SIGKILLed while runs wait for a host (and while one is
// still asking) is replaced and every run takes its turn, none overlapping; a manager whose tasks keep failing is
// replaced by the next run that asks; 200 runs queued on one host take their turns in the order they asked, across
// continue-as-new of the manager.
import path from 'node:path';
import type { ChildProcess } from 'node:child_process';
import type { WorkflowHandle } from '@temporalio/client';
import { hostLockManagerId } from '../../common/failure-types';
import { decideSignal, stateQuery } from '../../workflows/messages';
import type { runbook } from '../../workflows/runbook';
import { fleetDir, temporalAddress, uniqueTaskQueue, useFleetRuns, withEngineWorker } from '../harness/env';
import { startWorkerProcess, stopProcess, waitUntil } from '../harness/processes';

const fleet = useFleetRuns();
const { inventory, remote } = fleet;

const start = (tq: string, name: string, params: Record<string, unknown>, id: string) =>
  fleet.env.client.workflow.start<typeof runbook>('runbook', {
    taskQueue: tq,
    workflowId: id,
    args: [{ runbook: name, params, inventory: inventory(), initiator: 'test' }],
  });
const waitingFor = (run: WorkflowHandle<typeof runbook>, what: string) =>
  waitUntil(async () => (await run.query(stateQuery)).hosts['host-1']?.state === 'waiting-lock', what, 60_000);

test('SIGKILL the worker while runs wait for a host and one is still asking: the next worker gives each its turn', async () => {
  const tq = uniqueTaskQueue('locks');
  const log = `${tq}.log`;
  const env = {
    RUNBOOK_DIR: path.join(__dirname, '..', 'fixtures', 'runbooks'),
    RUNBOOK_INVENTORY: path.join(fleetDir(), 'inventory.yaml'),
  };
  const first = await startWorkerProcess(temporalAddress(), tq, env);
  let second: ChildProcess | undefined;
  try {
    const a = await start(tq, 'hold-host', { log, tag: 'a' }, `${tq}-a`);
    await waitUntil(async () => (await remote(1, `cat ${log} 2>/dev/null || true`)) !== '', 'a to hold host-1');
    const b = await start(tq, 'hold-host', { log, tag: 'b' }, `${tq}-b`);
    await waitingFor(b, 'b to wait');
    const c = await start(tq, 'hold-host', { log, tag: 'c' }, `${tq}-c`);
    await new Promise((r) => setTimeout(r, 300)); // c is preparing or asking
    await stopProcess(first, 'SIGKILL');
    second = await startWorkerProcess(temporalAddress(), tq, env);
    for (const r of [a, b, c]) expect((await r.result()).status).toBe('succeeded');
  } finally {
    await stopProcess(first, 'SIGKILL');
    if (second) await stopProcess(second);
  }
  expect(await remote(1, `cat ${log}`)).toBe('start a\nend a\nstart b\nend b\nstart c\nend c\n');
}, 180_000);

test('a lock manager whose tasks keep failing (started by hand with input no worker can decode) is replaced', async () => {
  const tq = uniqueTaskQueue('locks');
  const marker = `${tq}.txt`;
  await withEngineWorker(fleet.env, tq, async () => {
    await fleet.env.client.workflowService.startWorkflowExecution({
      namespace: 'default',
      workflowId: hostLockManagerId(tq),
      workflowType: { name: 'hostLockManager' },
      taskQueue: { name: tq },
      input: { payloads: [{ metadata: { encoding: Buffer.from('binary/garbage') }, data: Buffer.from('??') }] },
      requestId: `${tq}-garbage`,
    });
    await waitUntil(
      async () =>
        ((await fleet.env.client.workflow.getHandle(hostLockManagerId(tq)).describe()).raw.pendingWorkflowTask
          ?.attempt ?? 0) >= 3,
      'the garbage manager to fail its task three times',
      90_000,
    );
    const run = await start(tq, 'append-line', { marker, hosts: 'host:host-1' }, `${tq}-run`);
    expect((await run.result()).status).toBe('succeeded');
    const d = await fleet.env.client.workflow.getHandle(hostLockManagerId(tq)).describe();
    expect([d.type, d.status.name]).toEqual(['hostLockManager', 'RUNNING']);
  });
  expect(await remote(1, `cat ${marker}`)).toBe('line\n');
}, 180_000);

test('200 runs queued on one host take their turns in the order they asked, across continue-as-new', async () => {
  const N = 200;
  const tq = uniqueTaskQueue('locks');
  const log = `${tq}.log`;
  await withEngineWorker(fleet.env, tq, async () => {
    const manager = await fleet.env.client.workflow.start('hostLockManager', {
      taskQueue: tq,
      workflowId: hostLockManagerId(tq),
      args: [{ historyLimit: 100 }],
    });
    // The holder waits at an approval on host-1 (and host-2) until every other run is queued.
    const holder = await start(tq, 'per-host-approval', { marker: `${tq}.touched` }, `${tq}-holder`);
    await waitUntil(
      async () => (await holder.query(stateQuery)).pendingApprovals.some((p) => p.id === 'steps[0]@host-1'),
      'the holder to hold host-1',
    );
    const runs: WorkflowHandle<typeof runbook>[] = [];
    for (let i = 1; i < N; i++) {
      const r = await start(tq, 'lock-turn', { log, tag: `r${i}` }, `${tq}-r${i}`);
      await waitingFor(r, `r${i} to wait`);
      runs.push(r);
    }
    for (const id of ['steps[0]@host-1', 'steps[0]@host-2'])
      await holder.signal(decideSignal, { id, approve: true, by: 'alice' });
    expect((await holder.result()).status).toBe('succeeded');
    for (const r of runs) expect((await r.result()).status).toBe('succeeded');
    const d = await manager.describe();
    expect(d.runId).not.toBe(manager.firstExecutionRunId); // it continued as new on the way
    expect(d.status.name).toBe('RUNNING');
  });
  const expected = Array.from({ length: N - 1 }, (_, i) => `start r${i + 1}\nend r${i + 1}\n`).join('');
  expect(await remote(1, `cat ${log}`)).toBe(expected);
}, 600_000);
