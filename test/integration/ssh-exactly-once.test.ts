// Integration (real Temporal, real sshd, a real worker process killed with SIGKILL): a step's remote effect
// happens once. The retried activity re-attaches to the command the dead worker started.
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { exec } from '../../activities/ssh/exec';
import { SshPool } from '../../activities/ssh/pool';
import { connectTestEnv, fleetHost, temporalAddress, uniqueTaskQueue } from '../harness/env';
import type { runCommand } from '../../workflows';

const runbook = path.join(__dirname, '..', '..', 'bin', 'runbook.js');
let env: TestWorkflowEnvironment;
const pool = new SshPool();
beforeAll(async () => { env = await connectTestEnv(); });
afterAll(async () => { await pool.closeAll(); await env?.teardown(); });

function startWorker(taskQueue: string): Promise<ChildProcess> {
  const child = spawn('node', [runbook, 'worker'], {
    env: { ...process.env, TEMPORAL_ADDRESS: temporalAddress(), RUNBOOK_TASK_QUEUE: taskQueue, LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`worker did not start: ${out}`)), 60_000);
    child.stdout!.on('data', (c: Buffer) => {
      out += c.toString();
      if (out.includes('Worker       polling')) { clearTimeout(timer); resolve(child); }
    });
    child.once('exit', (code) => { clearTimeout(timer); reject(new Error(`worker exited ${code}: ${out}`)); });
  });
}

async function remote(cmd: string): Promise<string> {
  return (await pool.use(fleetHost(3), (c) => exec(c, cmd))).stdout;
}

async function waitFor(pred: () => Promise<boolean>, what: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await pred())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

test('SIGKILL the worker while the step runs: a new worker re-attaches and the command ran exactly once', async () => {
  const taskQueue = uniqueTaskQueue('once');
  const marker = `once-${taskQueue}.log`;
  const first = await startWorker(taskQueue);
  const handle = await env.client.workflow.start<typeof runCommand>('runCommand', {
    taskQueue, workflowId: `${taskQueue}-wf`,
    args: [{ target: fleetHost(3), command: `echo started >> ${marker}; sleep 12; echo finished` }],
  });
  await waitFor(async () => (await remote(`cat ${marker} 2>/dev/null || true`)) === 'started\n', 'the command to start on the host');
  first.kill('SIGKILL');
  await new Promise((r) => first.once('exit', r));

  const second = await startWorker(taskQueue);
  try {
    const result = await handle.result();
    expect(result.mode).toBe('attached');
    expect(result.stdout).toBe('finished\n');
    expect(result.exitCode).toBe(0);
  } finally {
    second.kill('SIGTERM');
    await new Promise((r) => second.once('exit', r));
  }
  expect(await remote(`cat ${marker}`)).toBe('started\n');
  const { events } = await handle.fetchHistory();
  const attempts = events!.filter((e) => e.activityTaskStartedEventAttributes).map((e) => e.activityTaskStartedEventAttributes!.attempt);
  expect(attempts).toEqual([2]); // history records the final attempt; it was a retry of the lost one
}, 120_000);
