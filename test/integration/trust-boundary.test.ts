// Integration (real Temporal dev server, real worker, real sshd): the trust boundary. Workflows are started with
// `temporal workflow start --input JSON`, the path the Web UI's Start Workflow form takes, with hostile inputs: a
// whole SSH target with a secret provider that would run a command on the worker, paths to worker files, unknown
// fields, internal fields, reserved ids, a reused Workflow ID and a Reset. The outcome is read with the SDK.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { WorkflowFailedError } from '@temporalio/client';
import { stateQuery } from '../../workflows/messages';
import type { RunbookResult } from '../../workflows/runbook';
import { useFleetRuns, fleetHost, temporalAddress, testRoot, uniqueTaskQueue, withEngineWorker } from '../harness/env';
import { waitUntil } from '../harness/processes';

const fleet = useFleetRuns();
const { inventory, remote } = fleet;

/** The Temporal CLI, as an operator (or the UI form) starts a workflow. */
function temporal(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.env.RUNBOOK_TEST_TEMPORAL_CLI!,
      [...args, '--address', temporalAddress(), '--namespace', 'default'],
      { timeout: 60_000 },
      (err, stdout, stderr) => resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

/** Starts a workflow with a raw JSON input (from a file: one argv string may not exceed 128 KiB). */
async function startRaw(
  tq: string,
  type: string,
  workflowId: string,
  input: string,
  ...extra: string[]
): Promise<void> {
  const file = path.join(testRoot(), `${workflowId.replace(/[^\w-]/g, '_')}.input.json`);
  fs.writeFileSync(file, input);
  const r = await temporal(
    'workflow',
    'start',
    '--task-queue',
    tq,
    '--type',
    type,
    '--workflow-id',
    workflowId,
    '--input-file',
    file,
    ...extra,
  );
  if (r.code !== 0) throw new Error(`temporal workflow start failed: ${r.stderr}`);
}

/** The failure a workflow ended with (its type and message), read through the SDK. */
async function failureOf(workflowId: string, runId?: string): Promise<{ type?: string; message: string }> {
  const err = await fleet.env.client.workflow
    .getHandle(workflowId, runId)
    .result()
    .then(
      () => undefined,
      (e: unknown) => e,
    );
  expect(err).toBeInstanceOf(WorkflowFailedError);
  const cause = (err as WorkflowFailedError).cause as {
    type?: string;
    message: string;
    cause?: { type?: string; message: string };
  };
  return cause.type ? cause : (cause.cause ?? cause);
}

test('runCommand refuses an SSH target in its input: a secret provider from the form never runs on the worker', async () => {
  const tq = uniqueTaskQueue('trust');
  const pwned = path.join(testRoot(), `${tq}-pwned`);
  const h = fleetHost(1);
  // Wave 1's input: a whole target whose password secret is an `exec` provider (a command run by the worker).
  const hostile = {
    target: {
      ...h,
      passwordSecret: { name: 'x', decl: { provider: 'exec', key: `touch ${pwned}` } },
      identityFile: undefined,
      hostKeyPolicy: 'accept-new',
    },
    command: 'true',
  };
  await withEngineWorker(fleet.env, tq, async () => {
    await startRaw(tq, 'runCommand', `${tq}-a`, JSON.stringify(hostile));
    const f = await failureOf(`${tq}-a`);
    expect(f.type).toBe('InputInvalid');
    expect(f.message).toContain(
      'input.target: unknown field; the input accepts only host, inventory, command, timeoutMs, initiator',
    );
    expect(f.message).toContain('input.host: Expected required property');
  });
  expect(fs.existsSync(pwned)).toBe(false);
});

test('paths from input are confined: no worker file is read or quoted, runbook names are names', async () => {
  const tq = uniqueTaskQueue('trust');
  const secretFile = path.join(testRoot(), `${tq}-credentials.yaml`);
  fs.writeFileSync(secretFile, 'hosts:\n  TOPSECRETVALUE: { address: 1 }\n');
  await withEngineWorker(fleet.env, tq, async () => {
    const cases: [string, object, string, RegExp][] = [
      [
        'inv',
        { runbook: 'append-line', params: { marker: 'x' }, inventory: secretFile },
        'InventoryInvalid',
        /is not one this worker serves/,
      ],
      [
        'passwd',
        { runbook: 'append-line', params: { marker: 'x' }, inventory: '/etc/passwd' },
        'InventoryInvalid',
        /is not one this worker serves/,
      ],
      ['dotdot', { runbook: '../../../etc/passwd' }, 'InputInvalid', /input\.runbook: Expected string to match/],
      ['abs', { runbook: '/etc/passwd.yaml' }, 'InputInvalid', /input\.runbook/],
      ['yaml', { runbook: 'append-line.yaml' }, 'InputInvalid', /input\.runbook/],
      [
        'missing',
        { runbook: 'no-such-runbook' },
        'UnknownRunbook',
        /No runbook named "no-such-runbook" in the worker's runbook directory/,
      ],
      [
        'exec-inv',
        { host: 'host-1', inventory: secretFile, command: 'true' },
        'InventoryInvalid',
        /is not one this worker serves/,
      ],
    ];
    for (const [name, input, type, message] of cases) {
      await startRaw(tq, 'host' in input ? 'runCommand' : 'runbook', `${tq}-${name}`, JSON.stringify(input));
      const f = await failureOf(`${tq}-${name}`);
      expect([name, f.type]).toEqual([name, type]);
      expect(f.message).toMatch(message);
      expect(f.message).not.toContain('TOPSECRETVALUE');
      expect(f.message).not.toContain('root:x:0');
    }
  });
});

test('malformed inputs of every shape fail the run at once with the field named, never wedge it', async () => {
  const tq = uniqueTaskQueue('trust');
  const deep = `${'['.repeat(5000)}${']'.repeat(5000)}`;
  await withEngineWorker(fleet.env, tq, async () => {
    const cases: [string, string, RegExp][] = [
      [
        'unknown',
        JSON.stringify({ runbook: 'append-line', params: { marker: 'x' }, inventory: inventory(), rogue: 1 }),
        /input\.rogue: unknown field; the input accepts only runbook, source, params/,
      ],
      ['string', '"append-line"', /^The workflow input is invalid:\ninput: Expected object/],
      ['null', 'null', /input: Expected object/],
      ['array', '[1,2]', /input: Expected object/],
      [
        'types',
        JSON.stringify({ runbook: 7, params: 'x', initiator: 'a\nforged line' }),
        /input\.runbook: Expected string[\s\S]*input\.params: Expected object[\s\S]*input\.initiator/,
      ],
      [
        'trigger',
        JSON.stringify({ runbook: 'append-line', trigger: 'sub-runbook' }),
        /input\.trigger: "sub-runbook" is set only by a parent run/,
      ],
      [
        'held',
        JSON.stringify({
          runbook: 'append-line',
          params: { marker: 'x' },
          inventory: inventory(),
          heldHosts: ['host-1'],
        }),
        /input\.heldHosts: set only by a parent run/,
      ],
      [
        'deep',
        `{"runbook":"append-line","params":{"marker":${deep}},"inventory":${JSON.stringify(inventory())}}`,
        /^The workflow input is invalid:\ninput\.params\.marker\[0\]: nested deeper than 32 levels$/,
      ],
      [
        'list',
        JSON.stringify({ runbook: 'append-line', params: { marker: [[['x']]] }, inventory: inventory() }),
        /params\.marker: expected a string, got a list of 1 items/,
      ],
      [
        'big',
        JSON.stringify({ runbook: 'append-line', params: { marker: 'Y'.repeat(200_000) }, inventory: inventory() }),
        /params\.marker: "Y{56}\.\.\. does not match the pattern/,
      ],
    ];
    for (const [name, input] of cases) await startRaw(tq, 'runbook', `${tq}-${name}`, input);
    for (const [name, , message] of cases) {
      const f = await failureOf(`${tq}-${name}`);
      expect([name, f.type]).toEqual([name, name === 'list' || name === 'big' ? 'ParamsInvalid' : 'InputInvalid']);
      expect(f.message).toMatch(message);
      expect(f.message.length).toBeLessThan(2000);
      // Its state, asked after the end, says it failed (a refused input used to stay `preparing`).
      expect([name, (await fleet.env.client.workflow.getHandle(`${tq}-${name}`).query(stateQuery)).status]).toEqual([
        name,
        'failed',
      ]);
    }
  });
});

test('host-lock ids are reserved: a lock started by hand fails at once, a squatter is cleared, runs cannot take the ids', async () => {
  // (Old-style `host-lock:HOST` locks are checked, and a squatter cleared, by the lock manager before it first
  // grants a host.)
  const tq = uniqueTaskQueue('trust');
  const marker = `${tq}.txt`;
  await withEngineWorker(fleet.env, tq, async () => {
    // A hostLock started by hand (no parent run) ends at once instead of blocking the host.
    await startRaw(tq, 'hostLock', `host-lock:${tq}`, '"me"');
    expect((await failureOf(`host-lock:${tq}`)).type).toBe('ReservedWorkflowId');
    // A runbook run may not use a lock id either, nor a lock manager's.
    await startRaw(tq, 'runbook', `host-lock:${tq}-r`, JSON.stringify({ runbook: 'append-line' }));
    expect((await failureOf(`host-lock:${tq}-r`)).message).toMatch(
      /workflow id: ids starting with "host-lock:" are reserved/,
    );
    await startRaw(tq, 'runbook', `runbook-host-locks:${tq}-r`, JSON.stringify({ runbook: 'append-line' }));
    expect((await failureOf(`runbook-host-locks:${tq}-r`)).message).toMatch(
      /workflow id: ids starting with "runbook-host-locks:" are reserved/,
    );
    // A lock manager started by hand under another queue's id fails at once.
    await startRaw(tq, 'hostLockManager', `runbook-host-locks:${tq}-other`, '{}');
    expect((await failureOf(`runbook-host-locks:${tq}-other`)).type).toBe('ReservedWorkflowId');

    // A workflow of another type on a queue no worker polls squats host-2's lock id; a run that needs host-2
    // clears it and goes ahead. (Another test's run may hold the real lock for a moment: start when it is free.)
    let squatRun = '';
    await waitUntil(
      async () => {
        // The CLI hands back the running workflow when the id is taken (a real lock of another test's run), exit 0.
        const r = await temporal(
          'workflow',
          'start',
          '--task-queue',
          `${tq}-nobody`,
          '--type',
          'squat',
          '--workflow-id',
          'host-lock:host-2',
          '-o',
          'json',
        );
        if (r.code !== 0) return false;
        squatRun = (JSON.parse(r.stdout) as { runId: string }).runId;
        return (await fleet.env.client.workflow.getHandle('host-lock:host-2', squatRun).describe()).type === 'squat';
      },
      'host-lock:host-2 to be free',
      60_000,
    );
    const run = await fleet.env.client.workflow.start('runbook', {
      taskQueue: tq,
      workflowId: `${tq}-after-squat`,
      args: [{ runbook: 'append-line', params: { marker, hosts: 'host:host-2' }, inventory: inventory() }],
    });
    expect(((await run.result()) as RunbookResult).status).toBe('succeeded');
    const squat = await fleet.env.client.workflow.getHandle('host-lock:host-2', squatRun).describe();
    expect([squat.type, squat.status.name]).toEqual(['squat', 'TERMINATED']);
    expect(await remote(2, `cat ${marker}`)).toBe('line\n');
  });
});

test("a reused Workflow ID and a Reset act again; they never return the first run's records", async () => {
  const tq = uniqueTaskQueue('trust');
  const marker = `${tq}.txt`;
  const wf = `${tq}-same-id`;
  const input = JSON.stringify({
    runbook: 'append-line',
    params: { marker, hosts: 'host:host-3' },
    inventory: inventory(),
    initiator: 'ops',
  });
  await withEngineWorker(fleet.env, tq, async () => {
    await startRaw(tq, 'runbook', wf, input);
    expect(((await fleet.env.client.workflow.getHandle(wf).result()) as RunbookResult).status).toBe('succeeded');
    // The UI allows the same Workflow ID again once the first run closed.
    await startRaw(tq, 'runbook', wf, input);
    const second = await fleet.env.client.workflow.getHandle(wf).describe();
    expect(((await fleet.env.client.workflow.getHandle(wf, second.runId).result()) as RunbookResult).status).toBe(
      'succeeded',
    );
    expect(await remote(3, `cat ${marker}`)).toBe('line\nline\n');

    // A Reset to the first workflow task replays nothing that acted: the step runs again, under the new run.
    const reset = await temporal(
      'workflow',
      'reset',
      '--workflow-id',
      wf,
      '--run-id',
      second.runId,
      '--type',
      'FirstWorkflowTask',
      '--reason',
      'test',
    );
    expect(reset.stderr).toBe('');
    await waitUntil(
      async () => (await fleet.env.client.workflow.getHandle(wf).describe()).runId !== second.runId,
      'the reset run',
    );
    expect(((await fleet.env.client.workflow.getHandle(wf).result()) as RunbookResult).status).toBe('succeeded');
    expect(await remote(3, `cat ${marker}`)).toBe('line\nline\nline\n');
  });
});

test('a worker without RUNBOOK_ALLOW_EXEC refuses ad hoc commands', async () => {
  const tq = uniqueTaskQueue('trust');
  await withEngineWorker(
    fleet.env,
    tq,
    async () => {
      await startRaw(
        tq,
        'runCommand',
        `${tq}-x`,
        JSON.stringify({ host: 'host-1', inventory: inventory(), command: 'touch should-not-exist' }),
      );
      const f = await failureOf(`${tq}-x`);
      expect(f.type).toBe('ExecDisabled');
      expect(f.message).toMatch(/^This worker does not run ad hoc commands/);
    },
    { config: { allowExec: false } },
  );
  expect(await remote(1, 'test -e should-not-exist && echo yes || echo no')).toBe('no\n');
});
