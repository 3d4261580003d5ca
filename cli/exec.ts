// Node side. `runbook exec`: runs one ad hoc command on one inventory host as a durable workflow.
import crypto from 'node:crypto';
import os from 'node:os';
import { WorkflowFailedError } from '@temporalio/client';
import { UserError } from '../common/errors';
import { DEFAULT_SSH_LOGIN, loadInventory, sshTargetFor } from '../dsl/inventory';
import { connectClient, inventoryFor, temporalTargetFromEnv, workerSettingsFromEnv } from '../worker/config';
import type { runCommand } from '../workflows';

export interface ExecOptions {
  inventory?: string;
  host: string;
  wait: boolean;
  json: boolean;
  timeout: number;
}

export async function runExec(command: string[], opts: ExecOptions): Promise<number> {
  if (command.length === 0)
    throw new UserError('Give the command to run after `--`, e.g. runbook exec --host web-1 -- uptime');
  const inventory = inventoryFor(opts.inventory);
  if (!inventory)
    throw new UserError('Give the inventory: -i FILE, or set RUNBOOK_INVENTORY (the worker must allow it).');
  sshTargetFor(loadInventory(inventory), opts.host, DEFAULT_SSH_LOGIN); // a typo fails here, before anything starts
  const client = await connectClient(temporalTargetFromEnv());
  try {
    const workflowId = `exec-${opts.host}-${crypto.randomUUID()}`;
    const handle = await client.workflow.start<typeof runCommand>('runCommand', {
      taskQueue: workerSettingsFromEnv().taskQueue,
      workflowId,
      args: [
        {
          host: opts.host,
          inventory,
          command: command.join(' '),
          timeoutMs: opts.timeout * 1000,
          initiator: os.userInfo().username,
        },
      ],
    });
    if (!opts.wait) {
      console.log(
        opts.json ? JSON.stringify({ workflowId, runId: handle.firstExecutionRunId }) : `started ${workflowId}`,
      );
      return 0;
    }
    let result;
    try {
      result = await handle.result();
    } catch (err) {
      if (err instanceof WorkflowFailedError) {
        // The activity's own failure says why (a host key, a login file); "Activity task failed" does not.
        let cause: Error | undefined = err;
        while (cause?.cause instanceof Error) cause = cause.cause;
        throw new UserError(`Run ${workflowId} failed: ${cause?.message ?? err.message}`, {
          cause: err,
          exitCode: 1,
        });
      }
      throw err;
    }
    if (opts.json) {
      console.log(JSON.stringify({ workflowId, ...result }));
    } else {
      process.stdout.write(result.stdout);
      process.stderr.write(result.stderr);
    }
    return result.exitCode ?? 1;
  } finally {
    await client.connection.close();
  }
}
