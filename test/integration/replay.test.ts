// Replay: recorded histories of the runbook workflow must replay on today's workflow code (determinism), and a
// history that no longer matches the code must raise DeterminismViolationError. RECORD_HISTORIES=1 re-records
// the fixture from a real run (do that only together with a patched() guard for the change that needs it).
import fs from 'node:fs';
import path from 'node:path';
import { historyToJSON } from '@temporalio/common/lib/proto-utils';
import { Worker } from '@temporalio/worker';
import { DeterminismViolationError } from '@temporalio/workflow';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { runbook } from '../../workflows/runbook';
import { dataConverterFor } from '../../common/codec';
import { connectTestEnv, fleetDir, uniqueTaskQueue, withEngineWorker, workflowBundle } from '../harness/env';

const dir = path.join(__dirname, '..', 'fixtures', 'histories');
/** The oldest recording (before host locks and local-activity steps, which replay through patched()). */
const recorded = path.join(dir, 'fleet-touch.history.json');
const histories = fs
  .readdirSync(dir)
  .filter((f) => f.endsWith('.history.json'))
  .sort();
let env: TestWorkflowEnvironment;
beforeAll(async () => {
  env = await connectTestEnv();
});
afterAll(async () => {
  await env?.teardown();
});

if (process.env.RECORD_HISTORIES === '1')
  test('record a history of a real run', async () => {
    process.env.RUNBOOK_DIR = path.join(__dirname, '..', 'fixtures', 'runbooks');
    const tq = uniqueTaskQueue('record');
    await withEngineWorker(env, tq, async () => {
      const handle = await env.client.workflow.start<typeof runbook>('runbook', {
        taskQueue: tq,
        workflowId: 'recorded-fleet-touch',
        args: [
          {
            runbook: 'fleet-touch',
            params: { note: 'recorded', marker: 'recorded.txt' },
            inventory: path.join(fleetDir(), 'inventory.yaml'),
            initiator: 'recorder',
          },
        ],
      });
      await handle.result();
      fs.writeFileSync(path.join(dir, 'fleet-touch-current.history.json'), historyToJSON(await handle.fetchHistory()));
    });
  });

// parallel-*.history.json: runs of 8 targets at once (parallel strategy with a limit, failures, rollback, retries,
// locks: fail against a holder), steps as regular activities, recorded on 1d2ad9d. Their commands interleave
// across targets by the order the targets' promise chains resolve, so an extra await layer in the interpreter
// reorders them; a sequential history cannot show that.
test.each(histories)('recorded run %s replays on the current workflow code', async (file) => {
  const history = JSON.parse(fs.readFileSync(path.join(dir, file), 'utf8')) as object;
  await expect(
    Worker.runReplayHistory(
      { workflowBundle: await workflowBundle(), dataConverter: dataConverterFor([]) },
      history,
      file.replace(/\.history\.json$/, ''),
    ),
  ).resolves.toBeUndefined();
});

test('a history whose steps no longer match the code raises DeterminismViolationError', async () => {
  const history = JSON.parse(fs.readFileSync(recorded, 'utf8')) as {
    events: { activityTaskScheduledEventAttributes?: { activityType?: { name: string } } }[];
  };
  // As if the recorded run had been made by code that called a different activity at its first step.
  const scheduled = history.events.filter((e) => e.activityTaskScheduledEventAttributes);
  scheduled[1]!.activityTaskScheduledEventAttributes!.activityType!.name = 'httpStep';
  await expect(
    Worker.runReplayHistory({ workflowBundle: await workflowBundle() }, history, 'recorded-fleet-touch'),
  ).rejects.toBeInstanceOf(DeterminismViolationError);
});

// Fresh histories: runs made now, by today's code, replay at once. fleet-touch's second batch runs two targets whose
// step groups (local activities) end in one workflow task; the SDK's core may hand both results over in one
// activation on replay where the first run had two. Code whose commands depend on that split (lock requests
// batched by microtask did) passed every recorded fixture and failed here in every run.
test('runs made now, with local-activity steps on targets in parallel, replay on the code that made them', async () => {
  process.env.RUNBOOK_DIR = path.join(__dirname, '..', 'fixtures', 'runbooks');
  const tq = uniqueTaskQueue('replay-fresh');
  await withEngineWorker(env, tq, async () => {
    for (let i = 0; i < 6; i++) {
      const handle = await env.client.workflow.start<typeof runbook>('runbook', {
        taskQueue: tq,
        workflowId: `${tq}-${i}`,
        args: [
          {
            runbook: 'fleet-touch',
            params: { note: `fresh${i}`, marker: `${tq}.txt` },
            inventory: path.join(fleetDir(), 'inventory.yaml'),
            initiator: 'test',
          },
        ],
      });
      expect((await handle.result()).status).toBe('succeeded');
      await expect(
        Worker.runReplayHistory(
          { workflowBundle: await workflowBundle(), dataConverter: dataConverterFor([]) },
          await handle.fetchHistory(),
          handle.workflowId,
        ),
      ).resolves.toBeUndefined();
    }
  });
}, 180_000);
