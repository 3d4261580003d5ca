// Integration (real Temporal, real sshd, the engine's worker, a JSONL audit file): every step outcome, skip,
// rollback, approval decision and the run's start and end become change records; secrets never reach them;
// `runbook audit verify` passes on the result and fails naming the record after one is tampered with.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { WorkflowFailedError } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { FileAuditStore } from '../../audit/file-store';
import type { AuditRecord } from '../../audit/record';
import { query, verifyStore, type AuditStore } from '../../audit/store';
import type { runbook } from '../../workflows/runbook';
import { decideSignal, stateQuery } from '../../workflows/messages';
import { connectTestEnv, fleetDir, testRoot, uniqueTaskQueue, withEngineWorker } from '../harness/env';

process.env.RUNBOOK_DIR = path.join(__dirname, '..', 'fixtures', 'runbooks');
const TOKEN = 'sw0rdfish-audit-7431';
process.env.RB_TEST_AUDIT_TOKEN = TOKEN;
const CLI = path.join(__dirname, '..', '..', 'bin', 'runbook.js');
let env: TestWorkflowEnvironment;
beforeAll(async () => {
  env = await connectTestEnv();
});
afterAll(async () => {
  await env?.teardown();
});

const inventory = () => path.join(fleetDir(), 'inventory.yaml');
const records = async (store: FileAuditStore, run?: string) => {
  const out: AuditRecord[] = [];
  for await (const r of query(store, { run })) out.push(r);
  return out;
};

test('a failing rolling run: every outcome, skip and rollback is a chained record with no secret in it', async () => {
  const tq = uniqueTaskQueue('audit');
  const file = path.join(testRoot(), `${tq}.jsonl`);
  const store = new FileAuditStore(file);
  const workflowId = `${tq}-audited`;
  const err = await withEngineWorker(
    env,
    tq,
    async () => {
      const handle = await env.client.workflow.start<typeof runbook>('runbook', {
        taskQueue: tq,
        workflowId,
        args: [{ runbook: 'audited', params: { marker: `${tq}.txt` }, inventory: inventory(), initiator: 'alice' }],
      });
      return handle.result().then(
        () => undefined,
        (e: unknown) => e,
      );
    },
    { audit: store },
  );
  expect(err).toBeInstanceOf(WorkflowFailedError);

  const all = await records(store, workflowId);
  const summary = all.map((r) => [r.kind, r.step ?? '', r.stepId ?? '', r.target ?? '', r.status]);
  expect(summary).toEqual([
    ['run.started', '', '', '', 'started'],
    ['step', 'steps[0]', 'write', 'host-1', 'succeeded'],
    ['step', 'steps[1]', 'leak', 'host-1', 'succeeded'],
    ['skip', 'steps[2]', 'never', 'host-1', 'skipped'],
    ['step', 'steps[3]', 'break_on_two', 'host-1', 'succeeded'],
    ['step', 'steps[0]', 'write', 'host-2', 'succeeded'],
    ['step', 'steps[1]', 'leak', 'host-2', 'succeeded'],
    ['skip', 'steps[2]', 'never', 'host-2', 'skipped'],
    ['step', 'steps[3]', 'break_on_two', 'host-2', 'failed'],
    ['rollback', 'steps[0].rollback[0]', 'rollback:remove', 'host-2', 'succeeded'],
    ['skip', '', '', 'host-3', 'skipped'],
    ['run.finished', '', '', '', 'failed'],
  ]);
  const runId = all[0]!.run.runId;
  expect(
    all.every(
      (r) =>
        r.run.workflowId === workflowId &&
        r.run.runId === runId &&
        r.runbook.name === 'audited' &&
        /^[0-9a-f]{64}$/.test(r.runbook.contentHash) &&
        r.initiator.trigger === 'manual' &&
        r.initiator.id === 'alice',
    ),
  ).toBe(true);
  const write = all[1]!;
  expect(write.action).toBe(`echo <secret:token> | sha256sum > ${tq}.txt`);
  expect(write).toMatchObject({
    exitCode: 0,
    output: { digest: expect.stringMatching(/^sha256:[0-9a-f]{64}$/), bytes: 0 },
  });
  expect(write.durationMs).toBeGreaterThanOrEqual(0);
  expect(all[2]!.output?.tail).toBe('the token is ***\n');
  expect(all[8]).toMatchObject({
    exitCode: 1,
    action: 'test host-2 != host-2',
    error: expect.stringMatching(/exited with 1/),
  });
  expect(all[0]!.detail).toMatchObject({ params: { marker: `${tq}.txt` }, targets: ['host-1', 'host-2', 'host-3'] });
  expect(fs.readFileSync(file, 'utf8')).not.toContain(TOKEN);

  // The chain holds, through the CLI too; tampering is named.
  expect(await verifyStore(store)).toMatchObject({ ok: true, records: all.length });
  const run = (...args: string[]) =>
    promisify(execFile)('node', [CLI, 'audit', ...args, '--audit-url', `file:${file}`]).then(
      (r) => ({ code: 0, out: r.stdout }),
      (e: { code: number; stdout: string }) => ({ code: e.code, out: e.stdout }),
    );
  expect(await run('verify')).toEqual({
    code: 0,
    out: expect.stringMatching(/^OK: 12 records in file:.*, chain intact/),
  });
  const shown = await run('show', '--target', 'host-2');
  expect(shown.code).toBe(0);
  expect(shown.out.split('\n')[0]).toMatch(/^TIME\s+KIND\s+STATUS\s+RUNBOOK\s+STEP\s+TARGET/);
  expect(shown.out).toMatch(
    /step\s+failed\s+audited\s+break_on_two\s+host-2\s+manual:alice\s+1\s+\d+\s+test host-2 != host-2 -- ERROR The command on host-2 exited with 1/,
  );
  const csv = await run('export', '--format', 'csv', '--run', workflowId);
  expect(csv.out.split('\n')[0]).toMatch(
    /^seq,id,time,kind,status,workflow_id,run_id,runbook,content_hash,step,target,/,
  );
  expect(csv.out.split('\n').filter((l) => /^\d+,[0-9a-f]{32},/.test(l))).toHaveLength(12); // fields with newlines are quoted
  const lines = fs.readFileSync(file, 'utf8').split('\n');
  lines[5] = lines[5]!.replace('"status":"succeeded"', '"status":"skipped"');
  fs.writeFileSync(file, lines.join('\n'));
  expect(await run('verify')).toEqual({
    code: 1,
    out: expect.stringMatching(
      new RegExp(
        `^TAMPERED: file:.*: record 6 \\(id ${all[5]!.id}\\), entry 6 in the store: its content does not match its hash`,
      ),
    ),
  });
});

test('approval decisions and the outcome are recorded, and later steps carry the approvals', async () => {
  const tq = uniqueTaskQueue('audit');
  const store = new FileAuditStore(path.join(testRoot(), `${tq}.jsonl`));
  const workflowId = `${tq}-gated`;
  await withEngineWorker(
    env,
    tq,
    async () => {
      const handle = await env.client.workflow.start<typeof runbook>('runbook', {
        taskQueue: tq,
        workflowId,
        args: [{ runbook: 'gated', params: { marker: `${tq}.txt` }, inventory: inventory(), initiator: 'bob' }],
      });
      for (let i = 0; i < 100 && (await handle.query(stateQuery)).pendingApprovals.length === 0; i++)
        await new Promise((r) => setTimeout(r, 100));
      await handle.signal(decideSignal, { id: 'gate', approve: true, by: 'mallory', comment: 'me too' });
      await handle.signal(decideSignal, { id: 'gate', approve: true, by: 'alice', comment: 'ok' });
      await handle.signal(decideSignal, {
        id: 'gate',
        approve: true,
        by: 'dan',
        groups: ['dba'],
        comment: 'checked replicas',
      });
      expect((await handle.result()).status).toBe('succeeded');
    },
    { audit: store },
  );
  const all = await records(store, workflowId);
  expect(all.map((r) => [r.kind, r.status, r.detail?.by ?? ''])).toEqual([
    ['run.started', 'started', ''],
    ['approval.decision', 'approve', 'mallory'],
    ['approval.decision', 'approve', 'alice'],
    ['approval.decision', 'approve', 'dan'],
    ['approval', 'approved', ''],
    ['step', 'succeeded', ''],
    ['run.finished', 'succeeded', ''],
  ]);
  expect(all[1]!.detail).toMatchObject({ counted: false, comment: 'me too' });
  expect(all[4]!.approvals).toEqual([
    { by: 'alice', comment: 'ok' },
    { by: 'dan', comment: 'checked replicas' },
  ]);
  expect(all[5]!.approvals).toEqual(all[4]!.approvals);
  expect((await verifyStore(store)).ok).toBe(true);
});

test('a step whose activity could not write its record is recorded by the workflow, once, without re-running the step', async () => {
  const tq = uniqueTaskQueue('audit');
  const inner = new FileAuditStore(path.join(testRoot(), `${tq}.jsonl`));
  let refused = 0;
  // The store refuses the first write of each SSH step's success (as a brief outage would).
  const flaky: AuditStore = {
    description: 'flaky',
    append: async (entries) => {
      if (
        entries.some((e) => e.kind === 'step' && e.status === 'succeeded' && e.exitCode !== undefined) &&
        refused++ % 2 === 0
      )
        throw new Error('store down');
      return inner.append(entries);
    },
    scan: () => inner.scan(),
    close: () => inner.close(),
  };
  const workflowId = `${tq}-touch`;
  const marker = `${tq}.txt`;
  const result = await withEngineWorker(
    env,
    tq,
    async () =>
      env.client.workflow.execute<typeof runbook>('runbook', {
        taskQueue: tq,
        workflowId,
        args: [{ runbook: 'fleet-touch', params: { note: 'n', marker }, inventory: inventory(), initiator: 'test' }],
      }),
    { audit: flaky },
  );
  expect(result.status).toBe('succeeded');
  const steps = (await records(inner, workflowId)).filter((r) => r.kind === 'step');
  expect(steps).toHaveLength(9); // 3 hosts x 3 steps that ran (one is skipped by `when`)
  expect(steps.every((r) => r.status === 'succeeded' && r.exitCode === 0 && r.output?.digest)).toBe(true);
  expect(refused).toBeGreaterThanOrEqual(9);
  expect((await verifyStore(inner)).ok).toBe(true);
});

test('audit commands on a store that does not exist say so and create nothing', async () => {
  const missing = path.join(testRoot(), 'no-such-dir', 'audit.jsonl');
  const r = await promisify(execFile)('node', [CLI, 'audit', 'show', '--audit-url', `file:${missing}`]).then(
    () => ({ code: 0, stderr: '' }),
    (e: { code: number; stderr: string }) => ({ code: e.code, stderr: e.stderr }),
  );
  expect(r).toEqual({
    code: 2,
    stderr: `runbook: No audit file at ${missing}. Point --audit-url or AUDIT_URL at the store the workers write (runbook dev writes DATA_DIR/audit.jsonl).\n`,
  });
  expect(fs.existsSync(path.dirname(missing))).toBe(false);
});
