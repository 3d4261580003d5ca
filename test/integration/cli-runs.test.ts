// Integration (real Temporal, real sshd, the real `runbook` CLI processes): run --wait exit codes and JSON,
// status, list, approve through the CLI, and a run started the way the UI's Start Workflow form starts one.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { runbook } from '../../workflows/runbook';
import { connectTestEnv, fleetDir, temporalAddress, uniqueTaskQueue, withEngineWorker } from '../harness/env';
import { startWorkerProcess, stopProcess, waitUntil, runCliProcess, type CliResult } from '../harness/processes';
import { temporal } from '@temporalio/proto';

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
function cli(tq: string, ...args: string[]): Promise<CliResult> {
  return runCliProcess(args, { TEMPORAL_ADDRESS: temporalAddress(), RUNBOOK_TASK_QUEUE: tq, RUNBOOK_DIR });
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
    // The form names nobody: the run is put down to the starting client's identity, as the server recorded it.
    expect(described.typedSearchAttributes.get({ name: 'Initiator', type: 'KEYWORD' } as never)).toBe(
      env.client.options.identity,
    );
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

/** The identities of the workers polling `tq` for activities, as the server lists them. */
async function pollers(tq: string): Promise<string[]> {
  const res = await env.client.workflowService.describeTaskQueue({
    namespace: 'default',
    taskQueue: { name: tq, kind: temporal.api.enums.v1.TaskQueueKind.TASK_QUEUE_KIND_NORMAL },
    taskQueueType: temporal.api.enums.v1.TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY,
  });
  return (res.pollers ?? []).map((p) => p.identity ?? '');
}

/** How many workflows were started on `tq`. */
async function started(tq: string): Promise<number> {
  return (await env.client.workflow.count(`TaskQueue = '${tq}'`)).count;
}

describe('runbook run FILE.yaml: the runbook travels with the run', () => {
  // A copy outside the worker's runbook directory: only the run can bring it.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'runbook-file-'));
  const file = path.join(dir, 'file-touch.yaml');
  fs.writeFileSync(
    file,
    fs
      .readFileSync(path.join(RUNBOOK_DIR, 'fleet-touch.yaml'), 'utf8')
      .replace('name: fleet-touch', 'name: file-touch'),
  );
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  test('a worker that allows runbook files runs it, pinned to the hash of what was sent', async () => {
    const tq = uniqueTaskQueue('cli-file');
    await withEngineWorker(
      env,
      tq,
      async () => {
        const r = await cli(
          tq,
          'run',
          file,
          '-p',
          'note=from-a-file',
          '-p',
          `marker=${tq}.txt`,
          '-i',
          inventory(),
          '--wait',
          '--json',
        );
        expect(r.stderr).toBe('');
        expect(r.code).toBe(0);
        const result = JSON.parse(r.stdout) as {
          workflowId: string;
          status: string;
          runbook: string;
          contentHash: string;
        };
        expect(result).toMatchObject({ status: 'succeeded', runbook: 'file-touch' });
        const crypto = await import('node:crypto');
        expect(result.contentHash).toBe(crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex'));
        const memo = (await env.client.workflow.getHandle(result.workflowId).describe()).memo;
        expect(memo).toMatchObject({ source: 'sent with the run' });
      },
      { config: { allowRunbookFiles: true } },
    );
  }, 90_000);

  test('workers that do not allow them: the CLI says so and starts nothing; a run that carries one anyway is refused before any step', async () => {
    const tq = uniqueTaskQueue('cli-file-off');
    await withEngineWorker(
      env,
      tq,
      async () => {
        await waitUntil(async () => (await pollers(tq)).length > 0, 'the worker to poll', 20_000);
        const r = await cli(tq, 'run', file, '-p', 'note=x', '-p', `marker=${tq}.txt`, '-i', inventory(), '--wait');
        expect(r.code).toBe(2);
        expect(r.stderr).toContain('RUNBOOK_ALLOW_RUNBOOK_FILES=on');
        expect(r.stderr).toContain('Nothing was started');
        expect(r.stderr).not.toMatch(/\n\s+at /); // no stack trace
        expect(await started(tq)).toBe(0);

        // The same input from the UI's form or any client: the worker refuses it at prepare.
        const handle = await env.client.workflow.start('runbook', {
          taskQueue: tq,
          workflowId: `${tq}-carried`,
          args: [
            {
              runbook: 'file-touch',
              source: fs.readFileSync(file, 'utf8'),
              params: { note: 'x', marker: `${tq}.txt` },
              inventory: inventory(),
            },
          ],
        });
        const err = await handle.result().then(
          () => undefined,
          (e: { cause?: { type?: string; message?: string } }) => e.cause,
        );
        expect(err?.type).toBe('RunbookFilesDisabled');
        expect(err?.message).toContain("Put the file in the worker's RUNBOOK_DIR");
      },
      { config: { allowRunbookFiles: false } },
    );
  }, 90_000);

  test('one worker of two that does not take files is enough to refuse (its prepare step may get the run)', async () => {
    const tq = uniqueTaskQueue('cli-file-mixed');
    // A second worker, as its own process (one process cannot run two workers of one task queue).
    const other = await startWorkerProcess(temporalAddress(), tq, {
      RUNBOOK_ALLOW_RUNBOOK_FILES: 'off',
      RUNBOOK_METRICS_ADDRESS: 'off',
      RUNBOOK_DIR,
    });
    try {
      await withEngineWorker(
        env,
        tq,
        async () => {
          await waitUntil(async () => (await pollers(tq)).length >= 2, 'both workers to poll', 20_000);
          const r = await cli(tq, 'run', file, '-p', 'note=x', '-p', `marker=${tq}.txt`, '-i', inventory());
          expect(r.code).toBe(2);
          expect(r.stderr).toContain('1 of the 2 workers');
          expect(await started(tq)).toBe(0);
        },
        { config: { allowRunbookFiles: true } },
      );
    } finally {
      await stopProcess(other);
    }
  }, 90_000);

  test('a file whose runbook does not validate, or is too big to carry, is refused here', async () => {
    const bad = path.join(dir, 'broken.yaml');
    fs.writeFileSync(bad, 'apiVersion: runbooks/v1\nkind: Runbook\nmetadata: { name: other }\nsteps: []\n');
    const r = await cli('unused', 'run', bad);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/broken\.yaml:\d+:\d+: /);
    const big = path.join(dir, 'big.yaml');
    fs.writeFileSync(big, `# ${'x'.repeat(300 * 1024)}\n`);
    const b = await cli('unused', 'run', big);
    expect(b.code).toBe(2);
    expect(b.stderr).toContain("Put it in the worker's RUNBOOK_DIR");
    const missing = await cli('unused', 'run', path.join(dir, 'nope.yaml'));
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('no such file');
  });
});

test('RUNBOOK_INVENTORY is the inventory of `run` and `exec` without -i, as for the worker', async () => {
  const tq = uniqueTaskQueue('cli-inv');
  await withEngineWorker(env, tq, async () => {
    const withEnv = (...args: string[]) =>
      runCliProcess(args, {
        TEMPORAL_ADDRESS: temporalAddress(),
        RUNBOOK_TASK_QUEUE: tq,
        RUNBOOK_DIR,
        RUNBOOK_INVENTORY: inventory(),
      });
    const r = await withEnv('run', 'fleet-touch', '-p', 'note=x', '-p', `marker=${tq}.txt`, '--wait', '--json');
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const { workflowId } = JSON.parse(r.stdout) as { workflowId: string };
    // The CLI sends the inventory it checked, so both ends use the same file.
    const payload = (await env.client.workflow.getHandle(workflowId).fetchHistory()).events?.[0]
      ?.workflowExecutionStartedEventAttributes?.input?.payloads?.[0];
    expect(JSON.parse(Buffer.from(payload!.data!).toString())).toMatchObject({ inventory: inventory() });
    const plan = await withEnv('plan', 'fleet-touch', '-p', 'note=x', '-p', 'marker=y.txt');
    expect(plan.code).toBe(0);
  });
}, 90_000);

describe('run --wait of a 20-second run exits with its outcome, never a stack trace', () => {
  const run = (tq: string, hosts: string, fail = 'none', seconds = 20) =>
    cli(
      tq,
      'run',
      'wait-outcome',
      '-p',
      `hosts=${hosts}`,
      '-p',
      `seconds=${seconds}`,
      '-p',
      `fail=${fail}`,
      '-i',
      inventory(),
      '--wait',
    );
  /** `run --wait` as a child process: its run id as soon as it prints it, and its exit. */
  const follow = (tq: string, hosts: string) => {
    const child = spawn(
      'node',
      [bin, 'run', 'wait-outcome', '-p', `hosts=${hosts}`, '-p', 'seconds=20', '-i', inventory(), '--wait'],
      { env: { ...process.env, TEMPORAL_ADDRESS: temporalAddress(), RUNBOOK_TASK_QUEUE: tq, RUNBOOK_DIR } },
    );
    let stdout = '';
    let stderr = '';
    let gotId: (id: string) => void;
    const id = new Promise<string>((resolve) => (gotId = resolve));
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
      const m = /^started (rb-wait-outcome-[0-9a-f]+)/.exec(stderr);
      if (m) gotId(m[1]!);
    });
    const exit = new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) =>
      child.on('exit', (code) => resolve({ code, stdout, stderr })),
    );
    return { child, id, exit, stderr: () => stderr };
  };
  const clean = (r: { stderr: string; stdout: string }) => {
    expect(r.stderr).not.toContain('Channel has been shut down');
    expect(r.stderr).not.toMatch(/\n\s+at /);
  };

  test('0 succeeded, 3 degraded, 1 failed, 130 cancelled, 130 on Ctrl-C (the run goes on)', async () => {
    const tq = uniqueTaskQueue('cli-wait');
    await withEngineWorker(env, tq, async () => {
      // Distinct hosts, so the runs do not wait for each other's host locks.
      const [ok, degraded] = await Promise.all([run(tq, 'host-1'), run(tq, 'host-2,host-3', 'host-3')]);
      clean(ok);
      clean(degraded);
      expect(ok.stdout).toMatch(/wait-outcome succeeded/);
      expect(ok.code).toBe(0);
      expect(degraded.stdout).toMatch(/wait-outcome degraded \(1 failed, 1 tolerated/);
      expect(degraded.code).toBe(3);

      const failed = run(tq, 'host-1', 'host-1');
      const cancelled = follow(tq, 'host-2');
      const interrupted = follow(tq, 'host-3');
      // Ctrl-C while following: the CLI stops, the run does not.
      const interruptedId = await interrupted.id;
      await waitUntil(async () => /\[running\]/.test(interrupted.stderr()), 'the follower to print progress', 30_000);
      interrupted.child.kill('SIGINT');
      const i = await interrupted.exit;
      clean(i);
      expect(i.code).toBe(130);
      expect(i.stderr).toContain(`stopped following ${interruptedId}; the run goes on`);
      expect((await env.client.workflow.getHandle(interruptedId).describe()).status.name).toBe('RUNNING');
      // Cancelled while followed: the run's own outcome, 130.
      expect((await cli(tq, 'cancel', await cancelled.id)).code).toBe(0);
      const c = await cancelled.exit;
      clean(c);
      expect(c.stdout).toMatch(/wait-outcome cancelled/);
      expect(c.code).toBe(130);
      const f = await failed;
      clean(f);
      expect(f.stdout).toMatch(/wait-outcome failed/);
      expect(f.code).toBe(1);
      // The interrupted run ends on its own, before this worker stops (it holds host-3's lock until then).
      const rest = await env.client.workflow.getHandle(interruptedId).result();
      expect(rest).toMatchObject({ status: 'succeeded' });
    });
  }, 180_000);
});
