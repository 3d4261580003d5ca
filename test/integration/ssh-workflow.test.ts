// Integration: real Temporal dev server, real worker, real sshd. A workflow's activity runs a command on a
// fleet host and the workflow returns its output.
import { WorkflowFailedError } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import fs from 'node:fs';
import path from 'node:path';
import { connectTestEnv, fleetDir, fleetHost, testRoot, uniqueTaskQueue, withEngineWorker } from '../harness/env';
import type { runCommand } from '../../workflows';

let env: TestWorkflowEnvironment;
beforeAll(async () => {
  env = await connectTestEnv();
});
afterAll(async () => {
  await env?.teardown();
});

test('runCommand runs a command over SSH on a fleet host and returns its output and exit code', async () => {
  const taskQueue = uniqueTaskQueue('ssh');
  const target = fleetHost(2);
  const result = await withEngineWorker(env, taskQueue, () =>
    env.client.workflow.execute<typeof runCommand>('runCommand', {
      taskQueue,
      workflowId: `${taskQueue}-wf`,
      args: [
        {
          host: 'host-2',
          inventory: path.join(fleetDir(), 'inventory.yaml'),
          command: 'echo "user=$(whoami) home=$HOME"; echo oops >&2; exit 7',
        },
      ],
    }),
  );
  expect(result.stdout).toBe(
    `user=${target.user} home=${path.join(path.dirname(target.identityFile!), 'hosts', 'host-2', 'home')}\n`,
  );
  expect(result.stderr).toBe('oops\n');
  expect(result.exitCode).toBe(7);
  expect(result.stdoutSha256).toMatch(/^[0-9a-f]{64}$/);
});

test('an unknown host key fails the run at once with HostKeyError naming host and fingerprint', async () => {
  const taskQueue = uniqueTaskQueue('hostkey');
  const emptyKnownHosts = path.join(testRoot(), `${taskQueue}-known_hosts`);
  fs.writeFileSync(emptyKnownHosts, '');
  // The known_hosts file comes from the worker's inventory (never from the input): an inventory that names an empty one.
  const target = fleetHost(1);
  const inventory = path.join(testRoot(), `${taskQueue}-inventory.yaml`);
  fs.writeFileSync(
    inventory,
    `kind: Inventory\nvars: { identityFile: ${target.identityFile}, knownHosts: ${emptyKnownHosts}, user: ${target.user} }\n` +
      `hosts:\n  host-1: { address: ${target.address}, port: ${target.port} }\n`,
  );
  const err = await withEngineWorker(
    env,
    taskQueue,
    () =>
      env.client.workflow.execute<typeof runCommand>('runCommand', {
        taskQueue,
        workflowId: `${taskQueue}-wf`,
        args: [{ host: 'host-1', inventory, command: 'true' }],
      }),
    { config: { inventories: [inventory] } },
  ).catch((e: unknown) => e);
  expect(err).toBeInstanceOf(WorkflowFailedError);
  const activityFailure = (err as WorkflowFailedError).cause;
  const failure = activityFailure?.cause as { type?: string; message?: string } | undefined;
  expect(failure?.type).toBe('HostKeyError');
  expect(failure?.message).toMatch(
    new RegExp(
      `^Host key of host-1 \\(${target.address.replace(/\./g, '\\.')}:${target.port}\\) is unknown: SHA256:[A-Za-z0-9+/]{43} is not in `,
    ),
  );
});
