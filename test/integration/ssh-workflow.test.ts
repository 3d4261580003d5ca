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

test('a missing known_hosts or key file fails the run at once with one paragraph naming the file and the settings', async () => {
  const taskQueue = uniqueTaskQueue('login-files');
  const target = fleetHost(1);
  // An inventory that names neither file: the worker's RUNBOOK_KNOWN_HOSTS / RUNBOOK_SSH_KEY apply, and are missing.
  const inventory = path.join(testRoot(), `${taskQueue}-inventory.yaml`);
  fs.writeFileSync(
    inventory,
    `kind: Inventory\nvars: { user: ${target.user} }\nhosts:\n  host-1: { address: ${target.address}, port: ${target.port} }\n`,
  );
  const missing = path.join(testRoot(), `${taskQueue}-nowhere`);
  const run = (ssh: { identityFile: string; knownHosts: string }) =>
    withEngineWorker(
      env,
      taskQueue,
      () =>
        env.client.workflow.execute<typeof runCommand>('runCommand', {
          taskQueue,
          workflowId: `${taskQueue}-${path.basename(ssh.knownHosts)}-${path.basename(ssh.identityFile)}`,
          args: [{ host: 'host-1', inventory, command: 'true' }],
        }),
      {
        config: {
          inventories: [inventory],
          ssh: { identityFile: ssh.identityFile, knownHosts: ssh.knownHosts, shellAgent: true },
        },
      },
    ).then(
      () => undefined,
      (e: unknown) => (e as WorkflowFailedError).cause?.cause as { type?: string; message?: string } | undefined,
    );
  const noKnownHosts = await run({ identityFile: target.identityFile!, knownHosts: `${missing}/known_hosts` });
  expect(noKnownHosts?.type).toBe('HostKeyError');
  expect(noKnownHosts?.message).toBe(
    `host-1 (${target.user}@${target.address}:${target.port}): the known_hosts file ${missing}/known_hosts does not exist, ` +
      "so the host's key cannot be checked and the worker does not connect. It uses the file the inventory names " +
      "(`knownHosts` in the host's or the inventory's vars), else RUNBOOK_KNOWN_HOSTS (default ~/.ssh/known_hosts): " +
      "point one of them at a file holding the hosts' keys " +
      `(for example \`ssh-keyscan -p ${target.port} ${target.address} >> FILE\`, after checking the fingerprint).`,
  );
  const noKey = await run({ identityFile: `${missing}/id_ed25519`, knownHosts: target.knownHosts });
  expect(noKey?.type).toBe('SshAuthError');
  expect(noKey?.message).toContain(`the SSH key file ${missing}/id_ed25519 does not exist`);
  expect(noKey?.message).toContain('RUNBOOK_SSH_KEY');
  expect(noKey?.message).not.toMatch(/ENOENT|stat '/);
});
