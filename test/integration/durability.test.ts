// Integration (real parts only): a run survives a SIGKILLed worker and a restarted Temporal server.
// Worker processes are real `runbook worker` processes; the server restart uses a dev server on a SQLite file.
import type { ChildProcess } from 'node:child_process';
import path from 'node:path';
import { Client, Connection, type WorkflowHandleWithFirstExecutionRunId } from '@temporalio/client';
import { exec } from '../../activities/ssh/exec';
import { SshPool } from '../../activities/ssh/pool';
import { freePort } from '../../common/ports';
import { startDevServer } from '../../worker/dev-server';
import type { runbook, RunbookResult } from '../../workflows/runbook';
import { fleetDir, fleetHost, temporalAddress, testRoot, uniqueTaskQueue } from '../harness/env';
import { startWorkerProcess, stopProcess, waitUntil } from '../harness/processes';

const pool = new SshPool();
afterAll(async () => {
  await pool.closeAll();
});
const remote = async (i: number, cmd: string) => (await pool.use(fleetHost(i), (c) => exec(c, cmd))).stdout;

const workerEnv = () => ({
  RUNBOOK_DIR: path.join(__dirname, '..', 'fixtures', 'runbooks'),
  RUNBOOK_INVENTORY: path.join(fleetDir(), 'inventory.yaml'),
});
const startWorker = (address: string, taskQueue: string) => startWorkerProcess(address, taskQueue, workerEnv());
const stop = stopProcess;

/**
 * Starts `name` on a `runbook worker` process, waits until `started` holds, SIGKILLs that worker, starts a new
 * one, and hands the finished run to `check`.
 */
async function throughWorkerKill(
  name: string,
  marker: string,
  started: () => Promise<boolean>,
  what: string,
  check: (handle: WorkflowHandleWithFirstExecutionRunId<typeof runbook>, result: RunbookResult) => Promise<void>,
): Promise<void> {
  const tq = uniqueTaskQueue('durable');
  const connection = await Connection.connect({ address: temporalAddress() });
  const client = new Client({ connection });
  const first = await startWorker(temporalAddress(), tq);
  let second: ChildProcess | undefined;
  try {
    const handle = await client.workflow.start<typeof runbook>('runbook', {
      taskQueue: tq,
      workflowId: `${tq}-wf`,
      args: [
        { runbook: name, params: { marker }, inventory: path.join(fleetDir(), 'inventory.yaml'), initiator: 'test' },
      ],
    });
    await waitUntil(started, what);
    await stop(first, 'SIGKILL');
    second = await startWorker(temporalAddress(), tq);
    await check(handle, await handle.result());
  } finally {
    await stop(first, 'SIGKILL');
    if (second) await stop(second);
    await connection.close();
  }
}

test('SIGKILL the worker mid multi-host run: a new worker finishes it and each host ran each step once', async () => {
  const marker = `${uniqueTaskQueue('durable')}.txt`;
  // Every host has started.
  const started = async () =>
    (await Promise.all([1, 2, 3].map((i) => remote(i, `cat ${marker} 2>/dev/null || true`)))).every((t) =>
      t.startsWith('line\n'),
    );
  await throughWorkerKill('slow-append', marker, started, 'all hosts to start', async (_handle, result) => {
    expect(result.status).toBe('succeeded');
    for (const i of [1, 2, 3]) expect(await remote(i, `cat ${marker}`)).toBe('line\nsecond\n');
  });
}, 150_000);

test('SIGKILL the worker inside a step group: the new worker re-attaches, no step runs twice or is lost', async () => {
  const marker = `${uniqueTaskQueue('durable')}.txt`;
  const started = async () => (await remote(1, `cat ${marker} 2>/dev/null || true`)).includes('two');
  await throughWorkerKill(
    'grouped-append',
    marker,
    started,
    'the group to reach its second step',
    async (handle, result) => {
      expect(result.status).toBe('succeeded');
      expect(result.hosts['host-1']!.steps).toEqual({
        one: 'succeeded',
        two: 'succeeded',
        skipped: 'skipped',
        three: 'succeeded',
      });
      expect(await remote(1, `cat ${marker}`)).toBe('one\ntwo after first\nthree\n');
      // One local activity ran the group: history has no per-step activity tasks.
      const { events } = await handle.fetchHistory();
      expect(
        events!
          .filter((e) => e.activityTaskScheduledEventAttributes)
          .map((e) => e.activityTaskScheduledEventAttributes!.activityType!.name)
          .filter((a) => a !== 'sendLockMessages'), // the first run of a task queue starts its lock manager
      ).toEqual(['prepare']);
    },
  );
}, 150_000);

test('restart the Temporal server (SQLite) mid-run: the run completes', async () => {
  const tq = uniqueTaskQueue('restart');
  const marker = `${tq}.txt`;
  const port = await freePort();
  const opts = {
    cli: process.env.RUNBOOK_TEST_TEMPORAL_CLI!,
    port,
    headless: true,
    dbFile: path.join(testRoot(), `${tq}.db`),
    logFile: path.join(testRoot(), `${tq}.log`),
  };
  let server = await startDevServer(opts);
  const worker = await startWorker(server.address, tq);
  let connection = await Connection.connect({ address: server.address });
  try {
    const handle = await new Client({ connection }).workflow.start<typeof runbook>('runbook', {
      taskQueue: tq,
      workflowId: `${tq}-wf`,
      args: [{ runbook: 'slow-append', params: { marker, seconds: 4 }, initiator: 'test' }],
    });
    await waitUntil(
      async () => (await remote(1, `cat ${marker} 2>/dev/null || true`)) === 'line\n',
      'the first step to start',
    );
    await connection.close();
    await server.stop();
    server = await startDevServer(opts);
    connection = await Connection.connect({ address: server.address });
    const result = await new Client({ connection }).workflow.getHandle<typeof runbook>(handle.workflowId).result();
    expect(result.status).toBe('succeeded');
    for (const i of [1, 2, 3]) expect(await remote(i, `cat ${marker}`)).toBe('line\nsecond\n');
  } finally {
    await stop(worker);
    await connection.close();
    await server.stop();
  }
}, 180_000);
