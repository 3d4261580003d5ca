// Integration (real Temporal, real sshd, a real worker process killed with SIGKILL): a step's remote effect
// happens once. The retried activity re-attaches to the command the dead worker started.
import path from 'node:path';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { exec } from '../../activities/ssh/exec';
import { SshPool } from '../../activities/ssh/pool';
import { connectTestEnv, fleetDir, fleetHost, temporalAddress, uniqueTaskQueue } from '../harness/env';
import { startWorkerProcess, stopProcess, waitUntil } from '../harness/processes';
import type { runCommand } from '../../workflows';

let env: TestWorkflowEnvironment;
const pool = new SshPool();
beforeAll(async () => {
  env = await connectTestEnv();
});
afterAll(async () => {
  await pool.closeAll();
  await env?.teardown();
});

const startWorker = (taskQueue: string) => startWorkerProcess(temporalAddress(), taskQueue);

async function remote(cmd: string): Promise<string> {
  return (await pool.use(fleetHost(3), (c) => exec(c, cmd))).stdout;
}

test('SIGKILL the worker while the step runs: a new worker re-attaches and the command ran exactly once', async () => {
  const taskQueue = uniqueTaskQueue('once');
  const marker = `once-${taskQueue}.log`;
  const first = await startWorker(taskQueue);
  const handle = await env.client.workflow.start<typeof runCommand>('runCommand', {
    taskQueue,
    workflowId: `${taskQueue}-wf`,
    args: [
      {
        host: 'host-3',
        inventory: path.join(fleetDir(), 'inventory.yaml'),
        command: `echo started >> ${marker}; sleep 12; echo finished`,
      },
    ],
  });
  await waitUntil(
    async () => (await remote(`cat ${marker} 2>/dev/null || true`)) === 'started\n',
    'the command to start on the host',
  );
  await stopProcess(first, 'SIGKILL');

  const second = await startWorker(taskQueue);
  try {
    const result = await handle.result();
    expect(result.mode).toBe('attached');
    expect(result.stdout).toBe('finished\n');
    expect(result.exitCode).toBe(0);
  } finally {
    await stopProcess(second);
  }
  expect(await remote(`cat ${marker}`)).toBe('started\n');
  const { events } = await handle.fetchHistory();
  const attempts = events!
    .filter((e) => e.activityTaskStartedEventAttributes)
    .map((e) => e.activityTaskStartedEventAttributes!.attempt);
  expect(attempts).toEqual([2]); // history records the final attempt; it was a retry of the lost one
}, 120_000);
