// Integration (real Temporal, real sshd fleet, a real worker, the real `runbook` CLI processes): `runbook logs`.
// A long step's lines shown while it runs (its heartbeats) and after it ends (its result), each once; a secret the
// step prints masked everywhere; two hosts at once; 1 MiB of output, terminal escapes and binary; ids that are
// no run or no runbook run; a run without SSH steps; exit codes of --follow; Ctrl-C.
import { spawn, type ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import path from 'node:path';
import type { WorkflowHandle } from '@temporalio/client';
import type { runbook } from '../../workflows/runbook';
import { stateQuery } from '../../workflows/messages';
import { temporalAddress, uniqueTaskQueue, useFleetRuns, withEngineWorker } from '../harness/env';
import { waitUntil, runCliProcess, type CliResult } from '../harness/processes';
import { newKeyEntry, parseCodecKeys } from '../../common/codec';

const fleet = useFleetRuns();
const bin = path.join(__dirname, '..', '..', 'bin', 'runbook.js');
const TOKEN = `logs-token-${crypto.randomUUID().slice(0, 8)}`;
process.env.RB_TEST_LOGS_TOKEN = TOKEN; // the env secret the fixture's step prints (read by the worker here)

/** The CLI's environment: this server; `codecKeys` when the history it reads is encrypted. */
let codecKeys: string | undefined;
const cliEnv = () => ({
  ...process.env,
  TEMPORAL_ADDRESS: temporalAddress(),
  ...(codecKeys ? { RUNBOOK_CODEC_KEYS: codecKeys } : {}),
});
/** CLI processes still running when a test ends (it failed half-way): stopped, so jest can exit. */
const children = new Set<ChildProcess>();
afterEach(() => {
  codecKeys = undefined;
  for (const c of children) c.kill('SIGKILL');
  children.clear();
});

/** Runs the CLI to its end without blocking this process (the worker under test runs in it). */
function cli(...args: string[]): Promise<CliResult> {
  return runCliProcess(args, cliEnv(), { maxBuffer: 16 * 1024 * 1024 });
}

/** Starts the CLI and lets the test watch its output as it comes. */
function cliRunning(...args: string[]) {
  const child = spawn('node', [bin, ...args], { env: cliEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  child.on('close', () => children.delete(child));
  const out = { stdout: '', stderr: '' };
  child.stdout.on('data', (c: Buffer) => (out.stdout += c.toString()));
  child.stderr.on('data', (c: Buffer) => (out.stderr += c.toString()));
  const exited = new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) =>
    child.on('close', (code) => resolve({ code, ...out })),
  );
  return { child, out, exited };
}

async function start(
  tq: string,
  name: string,
  params: Record<string, unknown> = {},
): Promise<WorkflowHandle<typeof runbook>> {
  return fleet.env.client.workflow.start<typeof runbook>('runbook', {
    taskQueue: tq,
    workflowId: `${tq}-${name}`,
    args: [{ runbook: name, params, inventory: fleet.inventory(), initiator: 'logs-test' }],
  });
}

/** The numbers of the lines `line N on HOST` printed for a host, in order. */
const numbers = (stdout: string, host: string, prefix = `${host} count | `) =>
  stdout
    .split('\n')
    .filter((l) => l.startsWith(`${prefix}line `))
    .map((l) => {
      expect(l).toBe(`${prefix}line ${/line (\d+)/.exec(l)![1]} on ${host} ***`);
      return Number(/line (\d+)/.exec(l)![1]);
    });
const oneTo = (n: number) => Array.from({ length: n }, (_, i) => i + 1);

// Control characters other than newline and tab, and bidirectional controls: none may reach the terminal.
// eslint-disable-next-line no-control-regex -- what is looked for
const RAW_CONTROL = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/;

test('--follow shows a long step’s lines while it runs, each line once; after the end `logs` shows the tail; the secret is masked', async () => {
  const tq = uniqueTaskQueue('logs');
  await withEngineWorker(fleet.env, tq, async () => {
    const handle = await start(tq, 'log-lines', { count: 12, pause: '0.5' });
    const follow = cliRunning('logs', handle.workflowId, '--follow');
    await waitUntil(async () => follow.out.stdout.includes('line 1 on host-1'), 'the first line', 30_000);
    // Shown while the step still runs (6 s of output): its activity is still pending, its last line not printed.
    const desc = await handle.describe();
    expect(desc.raw.pendingActivities?.map((a) => a.activityType?.name)).toEqual(['sshStep']);
    expect(follow.out.stdout).not.toContain('line 12 on');
    const followed = await follow.exited;
    expect(followed.code).toBe(0);
    expect(numbers(followed.stdout, 'host-1')).toEqual(oneTo(12));
    expect(followed.stdout).toContain('host-1 count ! warn 12\n');
    expect(followed.stdout).toContain('host-1 short | short done\n');
    expect(followed.stderr).toContain(`${handle.workflowId}: run succeeded`);
    expect(followed.stdout + followed.stderr).not.toContain(TOKEN);

    const after = await cli('logs', handle.workflowId);
    expect(after.code).toBe(0);
    expect(numbers(after.stdout, 'host-1')).toEqual(oneTo(12));
    expect(after.stdout + after.stderr).not.toContain(TOKEN);

    // One step on one host: no prefix; its stderr lines on stderr.
    const one = await cli('logs', handle.workflowId, '--step', 'count', '--host', 'host-1');
    expect(one.code).toBe(0);
    expect(numbers(one.stdout, 'host-1', '')).toEqual(oneTo(12));
    expect(one.stderr).toContain('warn 12\n');

    const json = await cli('logs', handle.workflowId, '--json', '--step', 'steps[0]');
    const objects = json.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { type: string; stream?: string; n?: number; text?: string; status?: string });
    expect(objects.filter((o) => o.type === 'line' && o.stream === 'stdout').map((o) => [o.n, o.text])).toEqual(
      oneTo(12).map((i) => [i - 1, `line ${i} on host-1 ***`]),
    );
    expect(objects.at(-1)).toEqual({ type: 'run', workflowId: handle.workflowId, status: 'succeeded', exitCode: 0 });
  });
}, 120_000);

test('two hosts printing at once: every line once, in order per host, prefixed by its host and step', async () => {
  const tq = uniqueTaskQueue('logs-two');
  await withEngineWorker(fleet.env, tq, async () => {
    const handle = await start(tq, 'log-lines', { count: 8, pause: '0.4', hosts: 'host-1,host-2' });
    const followed = await cliRunning('logs', handle.workflowId, '--follow').exited;
    expect(followed.code).toBe(0);
    expect(numbers(followed.stdout, 'host-1')).toEqual(oneTo(8));
    expect(numbers(followed.stdout, 'host-2')).toEqual(oneTo(8));
    expect(followed.stdout + followed.stderr).not.toContain(TOKEN);
  });
}, 120_000);

test('hostile output: 1 MiB in a step, terminal escapes, binary: bounded, escaped, never raw', async () => {
  const tq = uniqueTaskQueue('logs-hostile');
  await withEngineWorker(fleet.env, tq, async () => {
    const handle = await start(tq, 'log-hostile');
    const follow = cliRunning('logs', handle.workflowId, '--follow');
    expect((await handle.result()).status).toBe('succeeded');
    const followed = await follow.exited;
    const after = await cli('logs', handle.workflowId);
    for (const r of [followed, after]) {
      expect(r.code).toBe(0);
      expect(r.stdout + r.stderr).not.toMatch(RAW_CONTROL);
      expect(Buffer.byteLength(r.stdout)).toBeLessThan(64 * 1024); // of 1 MiB
      expect(r.stdout).toContain(
        'host-1 escapes | clear\\e[2J title\\e]0;pwned\\x07 cr\\rback bell\\x07 csi\\x9b bidi\\u{202e}txt tab\there\n',
      );
      expect(r.stdout).toContain('host-1 flood | flood done\n');
      expect(r.stdout).toMatch(/host-1 binary \| .*\\x00\\x01/);
      expect(r.stdout).toContain('host-1 binary | after binary\n');
      expect(r.stderr).toMatch(/host-1 flood: \[… \d+ earlier stdout lines not kept\]/);
    }
    // Each flood line shown once (live and from the result alike), in order.
    const flood = followed.stdout
      .split('\n')
      .filter((l) => l.startsWith('host-1 flood | flood 0'))
      .map((l) => Number(l.slice('host-1 flood | flood '.length, 'host-1 flood | flood '.length + 7)));
    expect(flood.length).toBeGreaterThan(10);
    expect(flood).toEqual([...flood].sort((a, b) => a - b).filter((n, i, all) => all.indexOf(n) === i));
  });
}, 120_000);

test('no such run, not a runbook run: one paragraph, exit 2; no SSH steps: said; --follow exits with the outcome', async () => {
  const tq = uniqueTaskQueue('logs-edges');
  const missing = await cli('logs', `${tq}-nothing`);
  expect(missing.code).toBe(2);
  expect(missing.stdout).toBe('');
  expect(missing.stderr).toMatch(
    /^runbook: There is no run test-logs-edges-\w+-nothing in namespace default of this Temporal server\. Check the workflow id: `runbook list` shows recent runs\.\n$/,
  );

  // A workflow of another type (no worker polls its queue: it just sits there).
  const other = await fleet.env.client.workflow.start('somethingElse', {
    taskQueue: `${tq}-nobody`,
    workflowId: `${tq}-other`,
  });
  try {
    const notRun = await cli('logs', other.workflowId);
    expect(notRun.code).toBe(2);
    expect(notRun.stderr).toMatch(/^runbook: \S+ is a somethingElse workflow, not a runbook run: .*\n$/);
    expect(notRun.stderr).not.toContain('    at ');
  } finally {
    await other.terminate('test over');
  }

  await withEngineWorker(fleet.env, tq, async () => {
    const none = await start(tq, 'log-none');
    const quiet = await cli('logs', none.workflowId, '--follow');
    expect(quiet.code).toBe(0);
    expect(quiet.stdout).toBe('');
    expect(quiet.stderr).toContain('runbook log-none has no SSH steps: there is no step output to show');

    const failing = await start(tq, 'fail-stderr', { note: 'broken-thing' });
    const failed = await cli('logs', failing.workflowId, '--follow');
    expect(failed.code).toBe(1);
    expect(failed.stdout).toContain('host-1 complain ! broken-thing\n');
    expect(failed.stderr).toContain('host-1 complain: failed (exit 4): The command on host-1 exited with 4');
    expect(failed.stderr).toContain('run failed');
  });
}, 120_000);

test('Ctrl-C stops following only (exit 130, no stack trace); a run cancelled at its gate ends --follow with 130', async () => {
  const tq = uniqueTaskQueue('logs-int');
  await withEngineWorker(fleet.env, tq, async () => {
    const handle = await start(tq, 'log-lines', { count: 60, pause: '0.5' });
    const follow = cliRunning('logs', handle.workflowId, '--follow');
    await waitUntil(async () => follow.out.stdout.includes('line 1 on'), 'the first line', 30_000);
    follow.child.kill('SIGINT');
    const stopped = await follow.exited;
    expect(stopped.code).toBe(130);
    expect(stopped.stderr).toContain(`stopped following ${handle.workflowId} (the run goes on)`);
    expect(stopped.stderr).not.toMatch(/\n\s+at |unexpected error/);
    expect((await handle.describe()).status.name).toBe('RUNNING');

    await handle.cancel();
    await handle.result().catch(() => undefined);

    // A run cancelled while it waits (here at its approval gate): --follow ends with 130, as `run --wait` does.
    const gated = await start(tq, 'gated', { marker: `${tq}.txt` });
    const waiting = cliRunning('logs', gated.workflowId, '--follow');
    await waitUntil(
      async () => (await gated.query(stateQuery)).status === 'awaiting-approval',
      'the gate to be pending',
      30_000,
    );
    await gated.cancel();
    const cancelled = await waiting.exited;
    expect(cancelled.code).toBe(130);
    expect(cancelled.stderr).toContain(`${gated.workflowId}: run cancelled`);
  });
}, 120_000);

test('encrypted history: heartbeats and results decoded with the keys; without them, one paragraph and exit 2', async () => {
  const tq = uniqueTaskQueue('logs-codec');
  const entry = newKeyEntry('logs-test');
  await withEngineWorker(
    fleet.env,
    tq,
    async () => {
      const handle = await start(tq, 'log-lines', { count: 8, pause: '0.5' });
      codecKeys = entry;
      const follow = cliRunning('logs', handle.workflowId, '--follow');
      await waitUntil(async () => follow.out.stdout.includes('line 1 on host-1'), 'the first line', 30_000);
      // Still running: the line came from an encrypted heartbeat. (Raw: this test's client has no key.)
      const raw = await fleet.env.client.workflowService.describeWorkflowExecution({
        namespace: 'default',
        execution: { workflowId: handle.workflowId },
      });
      expect(raw.pendingActivities?.length).toBe(1);
      const followed = await follow.exited;
      expect(followed.code).toBe(0);
      expect(numbers(followed.stdout, 'host-1')).toEqual(oneTo(8));
      expect(followed.stdout + followed.stderr).not.toContain(TOKEN);

      codecKeys = undefined;
      const keyless = await cli('logs', handle.workflowId);
      expect(keyless.code).toBe(2);
      expect(keyless.stdout).toBe('');
      expect(keyless.stderr).toMatch(
        /^runbook: The run's history could not be decoded \(.*\)\. If the worker encrypts history, give this command the same keys \(RUNBOOK_CODEC_KEYS or RUNBOOK_CODEC_KEYS_FILE\)\.\n$/,
      );
    },
    { config: { codecKeys: parseCodecKeys(entry, 'test') } },
  );
}, 120_000);
