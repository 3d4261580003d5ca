// Integration (real Temporal, real sshd, the real `runbook` CLI processes): run --wait exit codes and JSON,
// status, list, approve through the CLI, and a run started the way the UI's Start Workflow form starts one.
import { execFile } from 'node:child_process';
import path from 'node:path';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { runbook } from '../../workflows/runbook';
import { connectTestEnv, fleetDir, temporalAddress, uniqueTaskQueue, withEngineWorker } from '../harness/env';
import { waitUntil } from '../harness/processes';

const RUNBOOK_DIR = path.join(__dirname, '..', 'fixtures', 'runbooks');
process.env.RUNBOOK_DIR = RUNBOOK_DIR;
const bin = path.join(__dirname, '..', '..', 'bin', 'runbook.js');
let env: TestWorkflowEnvironment;
beforeAll(async () => {
  env = await connectTestEnv();
});
afterAll(async () => {
  await env?.teardown();
});
const inventory = () => path.join(fleetDir(), 'inventory.yaml');

/** Runs the CLI without blocking this process (the worker under test runs in it). */
function cli(tq: string, ...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      'node',
      [bin, ...args],
      { env: { ...process.env, TEMPORAL_ADDRESS: temporalAddress(), RUNBOOK_TASK_QUEUE: tq, RUNBOOK_DIR } },
      (err, stdout, stderr) => resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

test('run --wait on a run with long steps: the success summary, exit 0, and nothing after it', async () => {
  // Progress queries wait while a long local activity holds the workflow task, so one is in flight when the run
  // ends; closing the connection under it used to crash the CLI ("Channel has been shut down", exit 1).
  const tq = uniqueTaskQueue('cli-long');
  await withEngineWorker(env, tq, async () => {
    for (let i = 0; i < 2; i++) {
      const r = await cli(
        tq,
        'run',
        'slow-append',
        '-p',
        `marker=${tq}-${i}.txt`,
        '-p',
        'seconds=3',
        '-i',
        inventory(),
        '--wait',
      );
      expect(r.stderr).not.toContain('Channel has been shut down');
      expect(r.stdout).toMatch(/succeeded/);
      expect(r.code).toBe(0);
    }
  });
});

test('run --wait exits with the outcome; status and list show the run', async () => {
  const tq = uniqueTaskQueue('cli');
  await withEngineWorker(env, tq, async () => {
    const ok = await cli(
      tq,
      'run',
      'fleet-touch',
      '-p',
      'note=hello',
      '-p',
      `marker=${tq}.txt`,
      '-i',
      inventory(),
      '--wait',
      '--json',
      '--initiator',
      `carol-${tq}`,
    );
    expect(ok.code).toBe(0);
    const result = JSON.parse(ok.stdout) as {
      workflowId: string;
      status: string;
      hosts: Record<string, { state: string }>;
    };
    expect(result.status).toBe('succeeded');
    expect(Object.keys(result.hosts)).toEqual(['host-1', 'host-2', 'host-3']);

    const failed = await cli(tq, 'run', 'fail-rollback', '-p', `marker=${tq}-f.txt`, '-i', inventory(), '--wait');
    expect(failed.code).toBe(1);
    expect(failed.stderr).toMatch(/^started rb-fail-rollback-[0-9a-f]{8}; following its progress/);
    expect(failed.stdout).toMatch(/host-2\s.*rolled-back/);

    const bad = await cli(tq, 'run', 'fleet-touch', '-p', 'note=x', '-p', 'marker=../etc/passwd', '-i', inventory());
    expect(bad.code).toBe(1); // checked here before anything starts, as `validate` and `plan` do
    expect(bad.stderr).toContain('params.marker: "../etc/passwd" does not match the pattern');

    const status = await cli(tq, 'status', result.workflowId, '--json');
    expect(status.code).toBe(0);
    expect(JSON.parse(status.stdout)).toMatchObject({
      state: { status: 'succeeded', hosts: { 'host-1': { state: 'succeeded' } } },
    });
    // Other test files start fleet-touch runs at the same time, so the newest 20 need not include this one:
    // filter on this test's own initiator.
    const list = async () =>
      JSON.parse(
        (await cli(tq, 'list', '--runbook', 'fleet-touch', '--initiator', `carol-${tq}`, '--json')).stdout,
      ) as { workflowId: string }[];
    await waitUntil(async () => (await list()).length > 0, 'the run to be listed');
    expect(await list()).toEqual([
      expect.objectContaining({
        workflowId: result.workflowId,
        status: 'COMPLETED',
        runbook: 'fleet-touch',
        runbookStatus: 'succeeded',
        initiator: `carol-${tq}`,
      }),
    ]);
  });
}, 120_000);

test('approve through the CLI: a quorum of allowed approvers lets a gated run proceed', async () => {
  const tq = uniqueTaskQueue('cli');
  await withEngineWorker(env, tq, async () => {
    const started = await cli(tq, 'run', 'gated', '-p', `marker=${tq}.txt`, '-i', inventory(), '--json');
    const { workflowId } = JSON.parse(started.stdout) as { workflowId: string };
    await waitUntil(
      async () => (await cli(tq, 'status', workflowId)).stdout.includes('pending approval "gate"'),
      'the gate to be pending',
    );
    const nobody = await cli(tq, 'approve', workflowId, '--by', 'mallory');
    expect(nobody.code).toBe(0);
    await cli(tq, 'approve', workflowId, '--by', 'alice', '--comment', 'looks fine');
    await cli(tq, 'approve', workflowId, '--by', 'dan', '--group', 'dba');
    const handle = env.client.workflow.getHandle<typeof runbook>(workflowId);
    expect((await handle.result()).status).toBe('succeeded');
    const status = await cli(tq, 'status', workflowId);
    expect(status.stdout).toMatch(/decision on "gate": approved by alice \(looks fine\)/);
  });
}, 120_000);

test('the UI Start Workflow form: one JSON input with just the runbook and params works', async () => {
  const tq = uniqueTaskQueue('cli');
  process.env.RUNBOOK_INVENTORY = inventory();
  try {
    const result = await withEngineWorker(env, tq, () =>
      env.client.workflow.execute('runbook', {
        taskQueue: tq,
        workflowId: `${tq}-ui`,
        args: [{ runbook: 'fleet-touch', params: { note: 'from the UI', marker: `${tq}.txt` } }],
      }),
    );
    expect(result).toMatchObject({ status: 'succeeded', runbook: 'fleet-touch' });
    const described = await env.client.workflow.getHandle(`${tq}-ui`).describe();
    expect(described.typedSearchAttributes.get({ name: 'Initiator', type: 'KEYWORD' } as never)).toBe('unknown');
    expect(described.typedSearchAttributes.get({ name: 'Trigger', type: 'KEYWORD' } as never)).toBe('manual');
  } finally {
    delete process.env.RUNBOOK_INVENTORY;
  }
});

test('status says why a run was refused at its input (the Temporal CLI only shows "Encoded failure")', async () => {
  const tq = uniqueTaskQueue('cli-refused');
  const workflowId = `${tq}-bogus`;
  await withEngineWorker(env, tq, async () => {
    const handle = await env.client.workflow.start('runbook', {
      taskQueue: tq,
      workflowId,
      args: [{ runbook: 'fleet-touch', params: { note: 'x', marker: `${tq}.txt` }, bogus: 1 }],
    });
    await handle.result().catch(() => undefined);
    const text = await cli(tq, 'status', workflowId);
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(/: FAILED \(/);
    expect(text.stdout).toContain('error: The workflow input is invalid:');
    expect(text.stdout).toContain('bogus');
    const json = JSON.parse((await cli(tq, 'status', workflowId, '--json')).stdout) as {
      status: string;
      error?: string;
    };
    expect(json.status).toBe('FAILED');
    expect(json.error).toMatch(/^The workflow input is invalid:\n.*bogus/);
  });
  // With no worker polling, status still answers (the state query gives up after a few seconds).
  const alone = await cli(tq, 'status', workflowId);
  expect(alone.code).toBe(0);
  expect(alone.stdout).toContain('error: The workflow input is invalid:');
}, 90_000);
